#!/usr/bin/env python3
"""cosign's encrypted private key format, read and written apart from
ingot's code, so tests/signatures.rs can check ingot's key files against
an implementation that shares nothing with it but the published format.

The format, as go-securesystemslib `encrypted` and sigstore `cryptoutils`
define it: a PEM block labelled ENCRYPTED COSIGN PRIVATE KEY (or
ENCRYPTED SIGSTORE PRIVATE KEY) whose body is the JSON

    {"kdf": {"name": "scrypt", "params": {"N": .., "r": .., "p": ..},
             "salt": B64},
     "cipher": {"name": "nacl/secretbox", "nonce": B64},
     "ciphertext": B64}

(Go's []byte as standard base64): the secretbox key is scrypt(passphrase,
salt, N, r, p, 32 bytes), the nonce 24 bytes, and the ciphertext NaCl's
secretbox (Poly1305 tag, then the encrypted bytes) of the PKCS#8 DER of
the private key.

Usage (the passphrase is $COSIGN_PASSWORD):
    cosign_key.py public KEY          print KEY's public key, PEM
    cosign_key.py generate KEY PUB    a fresh P-256 key: KEY sealed with
                                      N=32768 r=8 p=1, PUB its public key

Needs pynacl and cryptography (the venv of scripts/test).
"""

import base64
import hashlib
import json
import os
import sys
import textwrap

import nacl.exceptions
import nacl.secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

LABELS = ("ENCRYPTED COSIGN PRIVATE KEY", "ENCRYPTED SIGSTORE PRIVATE KEY")
SALT_SIZE = 32
NONCE_SIZE = 24
KEY_SIZE = 32


def passphrase():
    value = os.environ.get("COSIGN_PASSWORD")
    if value is None:
        sys.exit("cosign_key.py: set COSIGN_PASSWORD")
    return value.encode()


def pem_decode(text):
    lines = text.strip().splitlines()
    begin, end = lines[0], lines[-1]
    label = begin.removeprefix("-----BEGIN ").removesuffix("-----")
    if end != "-----END %s-----" % label:
        sys.exit("cosign_key.py: not one PEM block")
    return label, base64.b64decode("".join(lines[1:-1]))


def pem_encode(label, der):
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, body, label)


def scrypt(secret, salt, n, r, p):
    # scrypt needs 128 * r * N bytes, and some room beyond.
    return hashlib.scrypt(
        secret, salt=salt, n=n, r=r, p=p, maxmem=256 * r * (n + p + 2), dklen=KEY_SIZE
    )


def open_key(path):
    label, body = pem_decode(open(path).read())
    if label not in LABELS:
        sys.exit("cosign_key.py: a %r block, not an encrypted cosign key" % label)
    sealed = json.loads(body)
    if sealed["kdf"]["name"] != "scrypt" or sealed["cipher"]["name"] != "nacl/secretbox":
        sys.exit("cosign_key.py: not scrypt and nacl/secretbox")
    params = sealed["kdf"]["params"]
    key = scrypt(
        passphrase(),
        base64.b64decode(sealed["kdf"]["salt"]),
        params["N"],
        params["r"],
        params["p"],
    )
    nonce = base64.b64decode(sealed["cipher"]["nonce"])
    try:
        der = nacl.secret.SecretBox(key).decrypt(base64.b64decode(sealed["ciphertext"]), nonce)
    except nacl.exceptions.CryptoError:
        sys.exit("cosign_key.py: the passphrase does not open the key")
    private = serialization.load_der_private_key(der, password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp256r1":
        sys.exit("cosign_key.py: not an ECDSA P-256 key")
    return private


def public_pem(private):
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate(key_path, pub_path):
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    n, r, p = 32768, 8, 1
    salt = os.urandom(SALT_SIZE)
    nonce = os.urandom(NONCE_SIZE)
    key = scrypt(passphrase(), salt, n, r, p)
    # .ciphertext is the tag and the encrypted bytes, without the nonce.
    ciphertext = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
    b64 = lambda b: base64.b64encode(b).decode()
    sealed = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
        "ciphertext": b64(ciphertext),
    }
    body = json.dumps(sealed, separators=(",", ":")).encode()
    with open(key_path, "x") as f:
        f.write(pem_encode(LABELS[0], body))
    with open(pub_path, "xb") as f:
        f.write(public_pem(private))


def main(argv):
    if len(argv) == 3 and argv[1] == "public":
        sys.stdout.write(public_pem(open_key(argv[2])).decode())
    elif len(argv) == 4 and argv[1] == "generate":
        generate(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
