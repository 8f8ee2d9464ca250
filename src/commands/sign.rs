//! `ingot keygen`, `ingot sign` and `ingot verify --key`: the files,
//! registries and layouts around [`crate::sign`].
//!
//! A registry image's signatures are at the tag `sha256-<hex>.sig` of its
//! repository, where skopeo, podman and cosign look. A layout's are at that
//! tag in its index.json, signed for an identity given explicitly (a
//! layout has no repository); `ingot push` carries them along
//! ([`push_signatures`]), so they arrive where the identity says.
//!
//! Provenance is signed with the image: each in-toto statement attached
//! to it (a referrer, [`crate::store::referrers`] in a layout, the
//! registry's referrers at a registry) gets a DSSE envelope attached
//! beside it ([`crate::sign::attestation`]), which `push` and `pull` carry
//! as they carry every referrer; `verify --key` checks them.
//!
//! Everything read back is bounded: the `.sig` manifest as any manifest
//! ([`MAX_MANIFEST_SIZE`]), each payload at [`MAX_PAYLOAD`], at most
//! [`MAX_SIGNATURES`] signatures; statements and envelopes at
//! [`MAX_DOCUMENT`], at most [`MAX_REFERRERS`] of them.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageManifest, MediaType};
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, IoContext, RegistryError, Result, Within};
use crate::image::MAX_MANIFEST_SIZE;
use crate::image::reference::{OciRef, RegistryRef};
use crate::registry::referrers::MAX_REFERRERS;
use crate::registry::{self, Access, Progress, PushOptions, PushReport, Remote, Tally};
use crate::sign::attachment::{self, MAX_PAYLOAD, tag_for};
use crate::sign::attestation::{self, Document, ENVELOPE, IN_TOTO, MAX_DOCUMENT, ProvenanceReport};
use crate::sign::payload::{self, Claims, Identity};
use crate::sign::{Attachment, PublicKey, SignatureLayer, SigningKey};
use crate::store::file::{self as store_file, Links};
use crate::store::layout::{self, Entry, Layout, Staging, blob_ref, commit_referrers, tag_of};
use crate::store::{BlobRef, BlobStore, referrers};

/// What `keygen` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct KeygenReport {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
}

/// Where `keygen -o OUT` writes: `OUT/ingot.key` and `OUT/ingot.pub`
/// for a directory, else `OUT.key` and `OUT.pub`.
pub fn key_paths(out: &Path) -> (PathBuf, PathBuf) {
    if out.is_dir() {
        (out.join("ingot.key"), out.join("ingot.pub"))
    } else {
        let with = |ext: &str| {
            let mut s = out.as_os_str().to_owned();
            s.push(ext);
            PathBuf::from(s)
        };
        (with(".key"), with(".pub"))
    }
}

/// Writes a new key pair: the private key sealed under `passphrase`
/// (mode 0600), the public key beside it. Neither file may exist.
pub fn keygen(out: &Path, passphrase: &[u8]) -> Result<KeygenReport> {
    let (private, public) = key_paths(out);
    for path in [&private, &public] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(Error::Usage(format!(
                "{} exists; refusing to overwrite a key (choose another -o, or remove it)",
                path.display()
            )));
        }
    }
    let key = SigningKey::generate();
    let sealed = key.to_encrypted_pem(passphrase)?;
    let public_pem = key.public().to_pem()?;
    write_new(&private, sealed.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public, public_pem.as_bytes(), 0o644) {
        let _ = fs::remove_file(&private);
        return Err(e);
    }
    Ok(KeygenReport {
        private_key: private,
        public_key: public,
    })
}

/// Creates `path` (never replacing one) with `mode`, and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .context(|| format!("writing {}", path.display()))
}

/// Reads a private key file and opens it with `passphrase`.
pub fn load_private_key(path: &Path, passphrase: &[u8]) -> Result<SigningKey> {
    let text = store_file::read_regular(path, Links::Follow, crate::sign::keys::MAX_KEY_FILE)
        .context(|| format!("reading {}", path.display()))?;
    SigningKey::from_encrypted_pem(&text, passphrase)
        .map_err(|e| Error::Failed(format!("{}: {e}", path.display())))
}

/// Reads a public key file.
pub fn load_public_key(path: &Path) -> Result<PublicKey> {
    let text = store_file::read_regular(path, Links::Follow, crate::sign::keys::MAX_KEY_FILE)
        .context(|| format!("reading {}", path.display()))?;
    PublicKey::from_pem(&text).map_err(|e| Error::Failed(format!("{}: {e}", path.display())))
}

/// What `sign` did.
#[derive(Debug, Clone, Serialize)]
pub struct SignReport {
    /// The image, as given.
    pub image: String,
    /// The manifest (or index) digest signed.
    pub digest: Digest,
    /// The `docker-reference` signed.
    pub identity: String,
    /// Where the signatures are: the `.sig` tag.
    pub signature_tag: String,
    /// Signatures there now.
    pub signatures: usize,
    /// False when the same signature was there already.
    pub added: bool,
    /// Each in-toto statement attached to the image and the DSSE envelope
    /// that signs it (attached now, or there already).
    pub provenance: Vec<SignedProvenance>,
}

/// A provenance statement's referrer and the envelope's that signs it.
#[derive(Debug, Clone, Serialize)]
pub struct SignedProvenance {
    pub statement: Digest,
    pub envelope: Digest,
}

/// Signs a registry image: its repository is the identity.
pub fn sign_registry(
    image: &RegistryRef,
    key: &SigningKey,
    access: &Access,
    progress: Progress,
) -> Result<SignReport> {
    let remote = Remote::connect(image, access, progress)?;
    let raw = remote.get_manifest(image)?;
    let digest = raw.digest;
    let identity = Identity::of(image);
    let payload = payload::payload(&identity, &digest);
    let layer = SignatureLayer::new(&payload, &key.sign(&payload));
    let tag = tag_for(&digest);
    let mut att = remote_attachment(&remote, image, &tag)?.unwrap_or_default();
    let added = att.add(&layer);
    if added {
        let local = tempfile::tempdir().context(|| "creating a temp directory".into())?;
        let store = BlobStore::open(local.path()).context(|| "creating a temp store".into())?;
        store
            .put(&payload)
            .context(|| "storing the payload".into())?;
        put_attachment(&remote, image, &tag, &att, &store, &[layer.payload])?;
    }
    let subject = Descriptor::new(
        MediaType::from(raw.media_type.as_str()),
        raw.bytes.len() as u64,
        digest.to_oci(),
    );
    let provenance = sign_registry_provenance(&remote, image, &subject, key)?;
    Ok(SignReport {
        image: image.to_string(),
        digest,
        identity: identity.to_string(),
        signature_tag: tag,
        signatures: att.signatures().len(),
        added,
        provenance,
    })
}

/// Signs each provenance statement about `subject` at the registry: its
/// envelope pushed as a referrer of the same image.
fn sign_registry_provenance(
    remote: &Remote,
    image: &RegistryRef,
    subject: &Descriptor,
    key: &SigningKey,
) -> Result<Vec<SignedProvenance>> {
    let digest = blob_ref(subject)?.digest;
    let local = tempfile::tempdir().context(|| "creating a temp directory".into())?;
    let store = BlobStore::open(local.path()).context(|| "creating a temp store".into())?;
    let statements = registry_documents(remote, image, &digest, IN_TOTO, &store)?;
    let mut signed = Vec::new();
    for statement in &statements {
        let artifact = attestation::envelope_artifact(key, &statement.bytes)?;
        let referrer = referrers::put(&store, &artifact, subject)?;
        registry::push_referrer(remote, image, &store, &referrer.manifest)?;
        signed.push(SignedProvenance {
            statement: statement.manifest,
            envelope: referrer.manifest.digest,
        });
    }
    Ok(signed)
}

/// Signs an image of a layout for `identity` (where it will be pushed):
/// the `.sig` manifest goes into the layout, tagged.
pub fn sign_layout(image: &OciRef, identity: &Identity, key: &SigningKey) -> Result<SignReport> {
    let layout = Layout::open(&image.path)?;
    let desc = layout.find(&image.selector)?;
    let digest = blob_ref(&desc)?.digest;
    let payload = payload::payload(identity, &digest);
    let layer = SignatureLayer::new(&payload, &key.sign(&payload));
    let tag = tag_for(&digest);
    let mut att = match layout_attachment(&layout, &tag)? {
        Some((_, att)) => att,
        None => Attachment::default(),
    };
    let added = att.add(&layer);
    if added {
        let encoded = att.encode()?;
        let staging = Staging::new(&image.path)?;
        let staged = |bytes: &[u8], what: &str| {
            staging
                .blobs
                .put(bytes)
                .context(|| format!("staging the {what}"))
        };
        staged(&payload, "signature payload")?;
        staged(&encoded.config, "signature config")?;
        let manifest = staged(&encoded.manifest, "signature manifest")?;
        layout::commit_entry(
            staging,
            Entry {
                recipe: None,
                tag: Some(&tag),
                manifest,
                media_type: MediaType::ImageManifest,
                platform: None,
                artifact_type: None,
            },
            &[],
        )?;
    }
    let provenance = sign_layout_provenance(&image.path, &desc, key)?;
    Ok(SignReport {
        image: image.to_string(),
        digest,
        identity: identity.to_string(),
        signature_tag: tag,
        signatures: att.signatures().len(),
        added,
        provenance,
    })
}

/// Signs each provenance statement about `subject` in the layout at
/// `dir`: the envelopes listed beside it, in one commit (an envelope
/// there already changes nothing).
fn sign_layout_provenance(
    dir: &Path,
    subject: &Descriptor,
    key: &SigningKey,
) -> Result<Vec<SignedProvenance>> {
    let layout = Layout::open(dir)?;
    let statements = layout_documents(&layout, &blob_ref(subject)?.digest, IN_TOTO)?;
    if statements.is_empty() {
        return Ok(Vec::new());
    }
    let staging = Staging::new(dir)?;
    let mut signed = Vec::new();
    let mut envelopes = Vec::new();
    for statement in &statements {
        let artifact = attestation::envelope_artifact(key, &statement.bytes)?;
        let referrer = referrers::put(&staging.blobs, &artifact, subject)?;
        signed.push(SignedProvenance {
            statement: statement.manifest,
            envelope: referrer.manifest.digest,
        });
        envelopes.push(referrer);
    }
    commit_referrers(staging, &envelopes)?;
    Ok(signed)
}

/// The one layer of an artifact manifest, which must be of `media_type`
/// and at most [`MAX_DOCUMENT`] bytes.
fn document_blob(
    manifest: &ImageManifest,
    media_type: &str,
) -> std::result::Result<BlobRef, String> {
    let [layer] = manifest.layers().as_slice() else {
        return Err(format!(
            "{} layers; an artifact of this type has one",
            manifest.layers().len()
        ));
    };
    if layer.media_type().to_string() != media_type {
        return Err(format!(
            "its layer is a {}, not a {media_type}",
            layer.media_type()
        ));
    }
    let blob = blob_ref(layer).map_err(|e| e.to_string())?;
    if blob.size > MAX_DOCUMENT {
        return Err(format!(
            "its layer claims {} bytes, more than the {MAX_DOCUMENT} read",
            blob.size
        ));
    }
    Ok(blob)
}

fn is_of_type(desc: &Descriptor, artifact_type: &str) -> bool {
    desc.artifact_type()
        .as_ref()
        .is_some_and(|t| t.to_string() == artifact_type)
}

/// The documents of the artifacts of `artifact_type` that the layout
/// lists about `subject`, each read and verified.
fn layout_documents(
    layout: &Layout,
    subject: &Digest,
    artifact_type: &str,
) -> Result<Vec<Document>> {
    let mut out = Vec::new();
    for desc in referrers::of(layout, subject)? {
        if !is_of_type(&desc, artifact_type) {
            continue;
        }
        let manifest_ref = blob_ref(&desc)?;
        let manifest: ImageManifest = layout.read_json(&desc, MAX_MANIFEST_SIZE)?;
        let blob = document_blob(&manifest, artifact_type).map_err(|m| {
            Error::Failed(format!(
                "{}: artifact {}: {m}",
                layout.dir.display(),
                manifest_ref.digest
            ))
        })?;
        let bytes = layout
            .blobs
            .read(&blob)
            .within(|| format!("reading {}", layout.dir.display()))?;
        out.push(Document {
            manifest: manifest_ref.digest,
            bytes,
        });
    }
    Ok(out)
}

/// The documents of the artifacts of `artifact_type` about `subject` in
/// `image`'s repository: the listing is not trusted (each manifest must
/// name the subject), every blob is verified as it arrives in `store`.
fn registry_documents(
    remote: &Remote,
    image: &RegistryRef,
    subject: &Digest,
    artifact_type: &str,
    store: &BlobStore,
) -> Result<Vec<Document>> {
    let repo = image.with_tag(None);
    let about = repo.with_digest(*subject);
    // A registry may ignore the filter: it is applied again here.
    let listed: Vec<Descriptor> = registry::referrers(remote, &about, Some(artifact_type))?
        .into_iter()
        .filter(|d| is_of_type(d, artifact_type))
        .collect();
    if listed.len() > MAX_REFERRERS {
        return Err(Error::Failed(format!(
            "referrers of {about}: {} of type {artifact_type}; refusing more than {MAX_REFERRERS}",
            listed.len()
        )));
    }
    let mut out = Vec::new();
    for desc in &listed {
        let manifest_ref = blob_ref(desc)?;
        let at = repo.with_digest(manifest_ref.digest);
        let bad = |m: String| Error::Failed(format!("{at}: {m}"));
        layout::check_json_size(&manifest_ref, MAX_MANIFEST_SIZE)?;
        // By digest: the registry's bytes are checked against it.
        let raw = remote.get_manifest(&at)?;
        let manifest: ImageManifest = serde_json::from_slice(&raw.bytes)
            .map_err(|e| bad(format!("not an artifact manifest: {e}")))?;
        let names = manifest
            .subject()
            .as_ref()
            .is_some_and(|s| s.digest().to_string() == subject.to_string());
        if !names {
            return Err(bad(format!(
                "listed among the referrers of {subject}, but not about it"
            )));
        }
        let blob = document_blob(&manifest, artifact_type).map_err(bad)?;
        let what = format!("document {} of {at}", blob.digest);
        remote.fetch_blob(&repo, &blob, store, &what)?;
        let bytes = store.read(&blob).within(|| what.clone())?;
        out.push(Document {
            manifest: manifest_ref.digest,
            bytes,
        });
    }
    Ok(out)
}

/// Checks the provenance envelopes attached to `subject` (see
/// [`attestation::check`]); a failure is one line naming `image`.
fn check_provenance(
    image: &str,
    subject: &Digest,
    statements: &[Document],
    envelopes: &[Document],
    key: &PublicKey,
) -> Result<ProvenanceReport> {
    attestation::check(subject, statements, envelopes, key)
        .map_err(|reason| Error::Unverified(format!("{image}: {reason}")))
}

/// The `.sig` manifest at `tag` in a registry, if there is one.
fn remote_attachment(
    remote: &Remote,
    image: &RegistryRef,
    tag: &str,
) -> Result<Option<Attachment>> {
    let at = image.with_tag(Some(tag));
    match remote.get_manifest(&at) {
        Ok(raw) => Attachment::parse(&raw.bytes)
            .map(Some)
            .map_err(|e| Error::Failed(format!("{at}: {e}"))),
        Err(Error::Registry(RegistryError::NotFound { .. })) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `pull`: the signatures of the manifest `digest` at `image`'s
/// registry (the `sha256-<hex>.sig` manifest, its config and payloads)
/// into `store`, each blob verified as it streams; the manifest and its
/// tag, or None when the image is not signed. Payloads are bounded as
/// `verify --key` bounds them: a layout keeps what its check will read.
pub fn fetch_signatures(
    remote: &Remote,
    image: &RegistryRef,
    digest: &Digest,
    store: &BlobStore,
) -> Result<Option<(BlobRef, String)>> {
    let tag = tag_for(digest);
    let at = image.with_tag(Some(&tag));
    let raw = match remote.get_manifest(&at) {
        Ok(raw) => raw,
        Err(Error::Registry(RegistryError::NotFound { .. })) => return Ok(None),
        Err(e) => return Err(e),
    };
    let manifest: ImageManifest = serde_json::from_slice(&raw.bytes)
        .map_err(|e| Error::Failed(format!("{at}: not a signature manifest: {e}")))?;
    if manifest.layers().len() > attachment::MAX_SIGNATURES {
        return Err(Error::Failed(format!(
            "{at}: {} signatures; refusing more than {}",
            manifest.layers().len(),
            attachment::MAX_SIGNATURES
        )));
    }
    let repo = image.with_tag(None);
    let config = blob_ref(manifest.config())?;
    layout::check_json_size(&config, crate::image::MAX_CONFIG_SIZE)?;
    remote.fetch_blob(&repo, &config, store, &format!("config of {at}"))?;
    for layer in manifest.layers() {
        let blob = blob_ref(layer)?;
        if blob.size > MAX_PAYLOAD {
            return Err(Error::Failed(format!(
                "{at}: a signature payload of {} bytes; refusing more than {MAX_PAYLOAD}",
                blob.size
            )));
        }
        remote.fetch_blob(
            &repo,
            &blob,
            store,
            &format!("payload {} of {at}", blob.digest),
        )?;
    }
    let stored = store.put(&raw.bytes).context(|| format!("storing {at}"))?;
    Ok(Some((stored, tag)))
}

/// The `.sig` manifest at `tag` in a layout: its descriptor and layers.
fn layout_attachment(layout: &Layout, tag: &str) -> Result<Option<(Descriptor, Attachment)>> {
    let index = layout.index()?;
    let Some(desc) = index.manifests().iter().find(|d| tag_of(d) == Some(tag)) else {
        return Ok(None);
    };
    let blob = blob_ref(desc)?;
    layout::check_json_size(&blob, MAX_MANIFEST_SIZE)?;
    let bytes = layout
        .blobs
        .read(&blob)
        .within(|| format!("reading {}", layout.dir.display()))?;
    let att = Attachment::parse(&bytes)
        .map_err(|e| Error::Failed(format!("{} tag {tag}: {e}", layout.dir.display())))?;
    Ok(Some((desc.clone(), att)))
}

/// Puts `att` at `tag`: its config (made here), the `blobs` of `store`
/// it needs (those the registry has are skipped), then the manifest.
fn put_attachment(
    remote: &Remote,
    image: &RegistryRef,
    tag: &str,
    att: &Attachment,
    store: &BlobStore,
    blobs: &[BlobRef],
) -> Result<Tally> {
    let encoded = att.encode()?;
    let config = store
        .put(&encoded.config)
        .context(|| "storing the signature config".into())?;
    let mut all = blobs.to_vec();
    all.push(config);
    let repo = image.with_tag(None);
    let mut report = PushReport::new(
        repo.with_tag(Some(tag)).to_string(),
        Digest::of(&encoded.manifest),
        crate::image::media::MANIFEST,
    );
    registry::push_blobs(
        remote,
        &repo,
        store,
        &all,
        &[],
        &PushOptions::default(),
        "signatures",
        &mut report,
    )?;
    remote.put_manifest(
        &repo.with_tag(Some(tag)),
        &encoded.manifest,
        crate::image::media::MANIFEST,
    )?;
    Ok(report.uploaded)
}

/// `push`: the layout's signatures of `digest`, if it has any, to the
/// same tag of `target`'s repository, merged with those already there.
/// The tag pushed, or None when the layout holds no signatures.
pub fn push_signatures(
    remote: &Remote,
    target: &RegistryRef,
    layout: &Layout,
    digest: &Digest,
) -> Result<Option<String>> {
    let tag = tag_for(digest);
    let Some((_, ours)) = layout_attachment(layout, &tag)? else {
        return Ok(None);
    };
    let mut att = remote_attachment(remote, target, &tag)?.unwrap_or_default();
    if att.merge(&ours) == 0 {
        return Ok(Some(tag));
    }
    let blobs: Vec<BlobRef> = ours.layers().iter().map(blob_ref).collect::<Result<_>>()?;
    // The config is made anew; it goes into a temp store, the layers come
    // from the layout (each verified as read).
    let local = tempfile::tempdir().context(|| "creating a temp directory".into())?;
    let store = BlobStore::open(local.path()).context(|| "creating a temp store".into())?;
    for b in &blobs {
        let bytes = layout
            .blobs
            .read(b)
            .within(|| format!("reading {}", layout.dir.display()))?;
        store.put(&bytes).context(|| "staging a signature".into())?;
    }
    put_attachment(remote, target, &tag, &att, &store, &blobs)?;
    Ok(Some(tag))
}

/// What `verify --key` found.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    pub image: String,
    pub digest: Digest,
    /// The identity the signature had to name.
    pub identity: String,
    pub signature_tag: String,
    /// Signatures at the tag, and which (1-based) verified.
    pub signatures: usize,
    pub verified: usize,
    /// The provenance statements attached to the image and the DSSE
    /// envelopes that sign them, every one of which verified.
    pub provenance: ProvenanceReport,
}

/// Checks a registry image's signatures: one must verify under `key`,
/// name its manifest digest and `identity` (else its own repository).
pub fn verify_registry(
    image: &RegistryRef,
    identity: Option<&Identity>,
    key: &PublicKey,
    access: &Access,
    progress: Progress,
) -> Result<SignatureReport> {
    let remote = Remote::connect(image, access, progress)?;
    let digest = remote.get_manifest(image)?.digest;
    let identity = identity.cloned().unwrap_or_else(|| Identity::of(image));
    let tag = tag_for(&digest);
    let Some(att) = remote_attachment(&remote, image, &tag)? else {
        return Err(unsigned(&image.to_string(), &digest, &tag));
    };
    let local = tempfile::tempdir().context(|| "creating a temp directory".into())?;
    let store = BlobStore::open(local.path()).context(|| "creating a temp store".into())?;
    let repo = image.with_tag(None);
    let read = |blob: &BlobRef| -> Result<Vec<u8>> {
        let what = format!("signature payload {} of {image}", blob.digest);
        remote.fetch_blob(&repo, blob, &store, &what)?;
        store.read(blob).within(|| what.clone())
    };
    let mut report = check(
        &image.to_string(),
        &digest,
        &identity,
        &tag,
        &att,
        key,
        read,
    )?;
    let statements = registry_documents(&remote, image, &digest, IN_TOTO, &store)?;
    let envelopes = registry_documents(&remote, image, &digest, ENVELOPE, &store)?;
    report.provenance =
        check_provenance(&image.to_string(), &digest, &statements, &envelopes, key)?;
    Ok(report)
}

/// Checks the signatures of an image in a layout, for `identity`.
pub fn verify_layout(
    image: &OciRef,
    identity: &Identity,
    key: &PublicKey,
) -> Result<SignatureReport> {
    let layout = Layout::open(&image.path)?;
    // Without a tag: the layout's one image, its signatures aside.
    let desc = layout.find(&image.selector)?;
    let digest = blob_ref(&desc)?.digest;
    let tag = tag_for(&digest);
    let Some((_, att)) = layout_attachment(&layout, &tag)? else {
        return Err(unsigned(&image.to_string(), &digest, &tag));
    };
    let read = |blob: &BlobRef| -> Result<Vec<u8>> {
        layout
            .blobs
            .read(blob)
            .within(|| format!("reading {}", layout.dir.display()))
    };
    let mut report = check(&image.to_string(), &digest, identity, &tag, &att, key, read)?;
    let statements = layout_documents(&layout, &digest, IN_TOTO)?;
    let envelopes = layout_documents(&layout, &digest, ENVELOPE)?;
    report.provenance =
        check_provenance(&image.to_string(), &digest, &statements, &envelopes, key)?;
    Ok(report)
}

fn unsigned(image: &str, digest: &Digest, tag: &str) -> Error {
    Error::Unverified(format!(
        "{image}: not signed: no signatures of {digest} (tag {tag})"
    ))
}

/// One signature must pass every check; else the failure names each
/// signature's reason.
fn check(
    image: &str,
    digest: &Digest,
    identity: &Identity,
    tag: &str,
    att: &Attachment,
    key: &PublicKey,
    mut read: impl FnMut(&BlobRef) -> Result<Vec<u8>>,
) -> Result<SignatureReport> {
    let signatures = att.signatures();
    if signatures.is_empty() {
        return Err(Error::Unverified(format!(
            "{image}: not signed: the manifest at tag {tag} holds no {} layer with a signature",
            attachment::SIMPLE_SIGNING
        )));
    }
    let mut reasons = Vec::new();
    for (n, sig) in signatures.iter().enumerate() {
        match check_one(digest, identity, sig, key, &mut read) {
            Ok(()) => {
                return Ok(SignatureReport {
                    image: image.to_string(),
                    digest: *digest,
                    identity: identity.to_string(),
                    signature_tag: tag.to_string(),
                    signatures: signatures.len(),
                    verified: n + 1,
                    provenance: ProvenanceReport::default(),
                });
            }
            Err(reason) => reasons.push(reason),
        }
    }
    let reasons = if reasons.len() == 1 {
        reasons.concat()
    } else {
        reasons
            .iter()
            .enumerate()
            .map(|(n, r)| format!("signature {}: {r}", n + 1))
            .collect::<Vec<_>>()
            .join("; ")
    };
    Err(Error::Unverified(format!(
        "{image}: no valid signature: {reasons}"
    )))
}

/// Why one signature does not vouch for the image, if it does not. The
/// payload is read (bounded) and its signature checked before a byte of
/// it is parsed.
fn check_one(
    digest: &Digest,
    identity: &Identity,
    sig: &SignatureLayer,
    key: &PublicKey,
    read: &mut impl FnMut(&BlobRef) -> Result<Vec<u8>>,
) -> std::result::Result<(), String> {
    if sig.payload.size > MAX_PAYLOAD {
        return Err(format!(
            "its payload claims {} bytes, more than the {MAX_PAYLOAD} a payload may have",
            sig.payload.size
        ));
    }
    let payload = read(&sig.payload).map_err(|e| e.to_string())?;
    let signature = sig.signature_bytes().map_err(|e| e.to_string())?;
    key.verify(&payload, &signature)
        .map_err(|e| e.to_string())?;
    let claims = Claims::parse(&payload).map_err(|e| e.to_string())?;
    if claims.digest != *digest {
        return Err(format!(
            "it signs manifest {}, not this image's {digest}",
            claims.digest
        ));
    }
    if !claims.names(identity) {
        return Err(format!(
            "it is signed for {}, not {identity}",
            claims.docker_reference
        ));
    }
    Ok(())
}
