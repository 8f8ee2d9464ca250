//! Reading layer blobs back: decompression chosen by media type, with the
//! blob's digest and size and the uncompressed diff_id checked as the bytes
//! stream past. Bases, `verify` and the seal all read layers through here.

use std::io::{self, Read};

use oci_spec::image::Descriptor;

use crate::digest::{Digest, HashingReader};
use crate::image::media::Compression;
use crate::store::{BlobRef, BlobStore, VerifiedReader};

/// Wraps `r` to yield the uncompressed tar.
pub fn decoder<R: Read>(compression: Compression, r: R) -> io::Result<Decoder<R>> {
    Ok(match compression {
        Compression::None => Decoder::None(r),
        Compression::Gzip => Decoder::Gzip(Box::new(flate2::read::MultiGzDecoder::new(r))),
        Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::new(r)?),
    })
}

/// A decompressing reader that gives its source back when done.
pub enum Decoder<R: Read> {
    None(R),
    // Boxed: a gzip decoder is ten times the size of the others.
    Gzip(Box<flate2::read::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, io::BufReader<R>>),
}

impl<R: Read> Decoder<R> {
    pub fn into_inner(self) -> R {
        match self {
            Decoder::None(r) => r,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish().into_inner(),
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::None(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

/// A layer blob's uncompressed tar stream. Read it, then call
/// [`finish`](LayerReader::finish) to learn whether it was what the
/// descriptor and the config promised.
pub struct LayerReader {
    tar: HashingReader<Decoder<VerifiedReader>>,
    digest: Digest,
}

/// Opens the layer `desc` from `blobs`.
pub fn open(blobs: &BlobStore, desc: &Descriptor) -> Result<LayerReader, String> {
    let compression = Compression::of(desc.media_type())?;
    let digest = Digest::try_from(desc.digest()).map_err(|e| e.to_string())?;
    let blob = BlobRef {
        digest,
        size: desc.size(),
    };
    let reader = blobs
        .open_blob(&blob)
        .map_err(|e| format!("layer {digest}: {e}"))?;
    let tar = decoder(compression, reader).map_err(|e| format!("layer {digest}: {e}"))?;
    Ok(LayerReader {
        tar: HashingReader::new(tar),
        digest,
    })
}

impl LayerReader {
    /// Drains the rest, checks the blob's size and digest and the
    /// uncompressed stream's digest against `diff_id`.
    pub fn finish(mut self, diff_id: &Digest) -> Result<(), String> {
        let digest = self.digest;
        io::copy(&mut self.tar, &mut io::sink())
            .map_err(|e| format!("layer {digest}: corrupt or truncated: {e}"))?;
        let (found, _, decoder) = self.tar.into_parts();
        decoder
            .into_inner()
            .finish()
            .map_err(|e| format!("layer {digest}: {e}"))?;
        if found != *diff_id {
            return Err(format!(
                "layer {digest}: diff_id mismatch: expected {diff_id}, found {found}"
            ));
        }
        Ok(())
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tar.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{self, Content, Entry, EntryKind};
    use oci_spec::image::MediaType;

    fn store_layer(blobs: &BlobStore) -> (Descriptor, Digest) {
        let entries = vec![Entry {
            path: "a".into(),
            kind: EntryKind::File(Content::Bytes(b"hello".to_vec())),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }];
        let mut w = blobs.writer().unwrap();
        let l = layer::write(entries, 0, &mut w).unwrap();
        w.commit().unwrap();
        let desc = Descriptor::new(MediaType::ImageLayerGzip, l.size, l.digest.to_oci());
        (desc, l.diff_id)
    }

    #[test]
    fn reads_and_verifies_a_layer() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let (desc, diff_id) = store_layer(&blobs);
        let mut r = open(&blobs, &desc).unwrap();
        let names: Vec<String> = tar::Archive::new(&mut r)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a"]);
        r.finish(&diff_id).unwrap();

        let err = open(&blobs, &desc)
            .unwrap()
            .finish(&Digest::of(b"x"))
            .unwrap_err();
        assert!(err.contains("diff_id mismatch"), "{err}");
    }

    #[test]
    fn a_corrupt_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let (desc, diff_id) = store_layer(&blobs);
        let path = blobs.path(&Digest::try_from(desc.digest()).unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(open(&blobs, &desc).unwrap().finish(&diff_id).is_err());
    }
}
