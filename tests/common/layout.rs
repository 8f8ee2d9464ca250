//! A raw OCI layout generator: layer tars written header by header (so the
//! tar crate's own checks cannot tidy up a hostile name), PAX records, and
//! layouts that may lie about their blobs. Shared by the hostile-base and
//! seal tests.

use std::io::Write as _;
use std::path::Path;

use flate2::write::GzEncoder;
use ingot::digest::Digest;
use serde_json::json;
pub use tar::EntryType;

// ---------------------------------------------------------------------------
// Raw tar entries

/// One tar entry, header bytes written as a hostile layer would.
pub struct Raw {
    pub name: Vec<u8>,
    /// The ustar `prefix` field, which readers put before `name`.
    pub prefix: Vec<u8>,
    pub kind: EntryType,
    pub link: Vec<u8>,
    pub data: Vec<u8>,
    /// The size the header claims, when it is not `data.len()`.
    pub claimed_size: Option<u64>,
    pub device: Option<(u32, u32)>,
    /// The header's mode, when it is not 0755 (directories) or 0644.
    pub mode: Option<u32>,
    /// The header's uid and gid, when they are not 0.
    pub owner: Option<(u64, u64)>,
    /// The raw type flag byte, when it is not `kind`'s: `\0`, the
    /// pre-POSIX regular file, has no `EntryType` of its own.
    pub typeflag: Option<u8>,
}

impl Raw {
    /// This entry with the header mode `mode`.
    pub fn with_mode(self, mode: u32) -> Raw {
        Raw {
            mode: Some(mode),
            ..self
        }
    }

    /// This entry owned by `uid:gid`.
    pub fn with_owner(self, uid: u64, gid: u64) -> Raw {
        Raw {
            owner: Some((uid, gid)),
            ..self
        }
    }

    /// This entry claiming `size` bytes of data whatever it holds.
    pub fn with_claimed_size(self, size: u64) -> Raw {
        Raw {
            claimed_size: Some(size),
            ..self
        }
    }
}

pub fn raw(name: impl AsRef<[u8]>, kind: EntryType) -> Raw {
    Raw {
        name: name.as_ref().to_vec(),
        prefix: Vec::new(),
        kind,
        link: Vec::new(),
        data: Vec::new(),
        claimed_size: None,
        device: None,
        mode: None,
        owner: None,
        typeflag: None,
    }
}

pub fn dir(name: &str) -> Raw {
    raw(name, EntryType::Directory)
}

pub fn file(name: impl AsRef<[u8]>, data: &[u8]) -> Raw {
    Raw {
        data: data.to_vec(),
        ..raw(name, EntryType::Regular)
    }
}

pub fn symlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Raw {
    Raw {
        link: target.as_ref().to_vec(),
        ..raw(name, EntryType::Symlink)
    }
}

pub fn hardlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Raw {
    Raw {
        link: target.as_ref().to_vec(),
        ..raw(name, EntryType::Link)
    }
}

/// A PAX extended header: its records apply to the next entry. The value
/// may be binary, as xattrs (`SCHILY.xattr.*`) are.
pub fn pax(key: &str, value: impl AsRef<[u8]>) -> Raw {
    pax_records(&[(key, value.as_ref())])
}

/// A PAX extended header holding several records, in order (keys may
/// repeat, as a hostile writer's do).
pub fn pax_records(records: &[(&str, &[u8])]) -> Raw {
    let one = |key: &str, value: &[u8]| {
        let record = |len: usize| {
            let mut r = format!("{len} {key}=").into_bytes();
            r.extend_from_slice(value);
            r.push(b'\n');
            r
        };
        // The length counts its own digits.
        let mut len = record(0).len();
        while record(len).len() != len {
            len = record(len).len();
        }
        record(len)
    };
    Raw {
        data: records.iter().flat_map(|(k, v)| one(k, v)).collect(),
        ..raw("PaxHeaders/x", EntryType::XHeader)
    }
}

/// A GNU long name (`GNULongName`) or link name (`GNULongLink`) entry: its
/// data replaces the next entry's name or link target.
pub fn gnu_long(kind: EntryType, name: &str) -> Raw {
    let mut data = name.as_bytes().to_vec();
    data.push(0);
    Raw {
        data,
        ..raw("././@LongLink", kind)
    }
}

/// An uncompressed layer tar: the entries, then the two zero blocks.
pub fn tar(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..e.name.len()].copy_from_slice(&e.name);
        h.as_old_mut().linkname[..e.link.len()].copy_from_slice(&e.link);
        h.as_ustar_mut().unwrap().prefix[..e.prefix.len()].copy_from_slice(&e.prefix);
        h.set_entry_type(e.kind);
        h.set_mode(
            e.mode
                .unwrap_or(if e.kind.is_dir() { 0o755 } else { 0o644 }),
        );
        let (uid, gid) = e.owner.unwrap_or((0, 0));
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(0);
        h.set_size(e.claimed_size.unwrap_or(e.data.len() as u64));
        if let Some((major, minor)) = e.device {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        }
        if let Some(flag) = e.typeflag {
            h.as_old_mut().linkflag = [flag];
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}
/// A gzip layer whose tar holds an extension entry of `kind` (a GNU long
/// name or a PAX extended header) claiming `claimed` bytes and carrying
/// them all (zeros; for PAX, one well-formed `comment` record), then a
/// file: a tar-header bomb a thousandth of its size. The stream is gzip
/// members, one of 1 MiB of zeros compressed once and repeated (every
/// reader reads multi-member gzip), so a 3 GiB bomb costs the test no more
/// than compressing 1 MiB.
pub fn bomb_layer(kind: EntryType, claimed: u64) -> Vec<u8> {
    const CHUNK: u64 = 1 << 20;
    let head = tar(&[raw("././@LongLink", kind).with_claimed_size(claimed)]);
    let mut header = head[..512].to_vec();
    let mut trailer = Vec::new();
    let mut zeros = claimed;
    if kind == EntryType::XHeader {
        let key = format!("{claimed} comment=");
        header.extend_from_slice(key.as_bytes());
        zeros -= key.len() as u64 + 1;
        trailer.push(b'\n');
    }
    trailer.resize(trailer.len() + ((512 - claimed % 512) % 512) as usize, 0);
    trailer.extend(tar(&[file("etc/hostname", b"victim\n")]));
    let chunk = gzip(&vec![0; CHUNK as usize]);
    let mut out = gzip(&header);
    for _ in 0..zeros / CHUNK {
        out.extend_from_slice(&chunk);
    }
    out.extend(gzip(&vec![0; (zeros % CHUNK) as usize]));
    out.extend(gzip(&trailer));
    out
}

// ---------------------------------------------------------------------------
// OCI layouts that lie

/// What a generated layout gets wrong. Every lie is about the first layer;
/// the default is an honest layout.
#[derive(Default, Clone, Copy)]
pub struct Lies {
    /// Rewrites each compressed layer blob; descriptors follow the result,
    /// so only the stream itself is broken.
    pub mangle: Option<fn(Vec<u8>) -> Vec<u8>>,
    /// Added to the layer descriptor's size.
    pub layer_size: i64,
    /// The layer descriptor names another digest; the blob is stored under
    /// that name all the same.
    pub layer_digest: bool,
    /// The config lists another diff_id.
    pub diff_id: bool,
    /// The manifest's config descriptor names another digest.
    pub config_digest: bool,
    /// index.json names another digest for the manifest.
    pub manifest_digest: bool,
}

/// A digest no blob here has.
pub fn other_digest(what: &str) -> Digest {
    Digest::of(format!("not the real {what}").as_bytes())
}

/// Writes an OCI layout at `dir` with one image tagged `t` made of `layers`
/// (uncompressed tars, bottom first); returns the manifest digest
/// index.json lists.
pub fn write_layout(dir: &Path, layers: &[Vec<u8>], lies: Lies) -> Digest {
    let layers: Vec<(Vec<u8>, Digest)> = layers
        .iter()
        .map(|layer| (gzip(layer), Digest::of(layer)))
        .collect();
    write_gzip_layout(dir, &layers, lies)
}

/// [`write_layout`] of layers already gzipped, each with its diff_id.
pub fn write_gzip_layout(dir: &Path, layers: &[(Vec<u8>, Digest)], lies: Lies) -> Digest {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |name: &Digest, bytes: &[u8]| std::fs::write(blobs.join(name.hex()), bytes).unwrap();
    // A blob stored under `claimed` (a lie) or its own digest; its descriptor.
    let store = |media_type: &str, bytes: &[u8], lie: bool, what: &str, size_delta: i64| {
        let name = if lie {
            other_digest(what)
        } else {
            Digest::of(bytes)
        };
        put(&name, bytes);
        json!({
            "mediaType": media_type,
            "digest": name.to_string(),
            "size": bytes.len() as i64 + size_delta,
        })
    };

    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, (blob, diff_id)) in layers.iter().enumerate() {
        let first = i == 0;
        let mut blob = blob.clone();
        if let Some(mangle) = lies.mangle {
            blob = mangle(blob);
        }
        descriptors.push(store(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &blob,
            first && lies.layer_digest,
            "layer",
            if first { lies.layer_size } else { 0 },
        ));
        let diff_id = if first && lies.diff_id {
            other_digest("tar")
        } else {
            *diff_id
        };
        diff_ids.push(diff_id.to_string());
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config = store(
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
        lies.config_digest,
        "config",
        0,
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": descriptors,
    });
    let mut manifest = store(
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
        lies.manifest_digest,
        "manifest",
        0,
    );
    let digest: Digest = manifest["digest"].as_str().unwrap().parse().unwrap();
    manifest["annotations"] = json!({ "org.opencontainers.image.ref.name": "t" });
    manifest["platform"] = json!({ "architecture": "amd64", "os": "linux" });
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest],
    });
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    digest
}
