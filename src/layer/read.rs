//! Reading layer blobs back: decompression chosen by media type, with the
//! blob's digest and size and the uncompressed diff_id checked as the bytes
//! stream past. Bases, `verify` and the seal all read layers through here.

use std::io::{self, Read};

use oci_spec::image::Descriptor;

use crate::digest::{Digest, HashingReader};
use crate::error::{BlobError, LayerError};
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
    /// The first error the stream gave, kept for `finish`: only the blob's
    /// own check, at its end, can say whether the blob is damaged or its
    /// intact bytes do not decode.
    broken: Option<io::Error>,
}

/// Opens the layer `desc` from `blobs`.
pub fn open(blobs: &BlobStore, desc: &Descriptor) -> Result<LayerReader, LayerError> {
    let digest = Digest::try_from(desc.digest())?;
    let compression = Compression::of(desc.media_type()).map_err(|_| LayerError::MediaType {
        layer: digest,
        media_type: desc.media_type().to_string(),
    })?;
    let blob = BlobRef {
        digest,
        size: desc.size(),
    };
    let reader = blobs.open_blob(&blob)?;
    // Making a decoder reads nothing: it fails only for want of memory.
    let tar = decoder(compression, reader).map_err(|source| BlobError::Io { digest, source })?;
    Ok(LayerReader {
        tar: HashingReader::new(tar),
        digest,
        broken: None,
    })
}

impl LayerReader {
    /// The layer's blob digest.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Drains the rest, checks the blob's size and digest and the
    /// uncompressed stream's digest against `diff_id`.
    pub fn finish(self, diff_id: &Digest) -> Result<(), LayerError> {
        let layer = self.digest;
        let found = self.diff_id()?;
        if found != *diff_id {
            return Err(LayerError::DiffIdMismatch {
                layer,
                expected: *diff_id,
                found,
            });
        }
        Ok(())
    }

    /// Drains the rest and checks the blob's size and digest; returns the
    /// uncompressed stream's digest, the layer's diff_id.
    ///
    /// A stream that broke is still drained, raw, through the blob's
    /// check: a flipped bit in a compressed blob usually shows first as a
    /// decoding error, and "digest mismatch" says more plainly what is
    /// wrong. Either way the blob is read once.
    pub fn diff_id(mut self) -> Result<Digest, LayerError> {
        if self.broken.is_none()
            && let Err(e) = io::copy(&mut self.tar, &mut io::sink())
        {
            self.broken = Some(e);
        }
        let (found, _, decoder) = self.tar.into_parts();
        decoder.into_inner().finish()?;
        match self.broken {
            Some(source) => Err(LayerError::Decode {
                layer: self.digest,
                source,
            }),
            None => Ok(found),
        }
    }

    /// For a reading that stopped before the stream's end (a refusal of
    /// what it holds): checks the blob's size and digest, reading the rest
    /// of the blob raw, not decoded, then says whether the stream broke
    /// before the reading stopped. The rest of the stream is not worth
    /// decoding, and may be gigabytes out of a few compressed megabytes;
    /// what was refused came from a blob that is what its digest says.
    pub fn check_blob(self) -> Result<(), LayerError> {
        let (_, _, decoder) = self.tar.into_parts();
        decoder.into_inner().finish()?;
        match self.broken {
            Some(source) => Err(LayerError::Decode {
                layer: self.digest,
                source,
            }),
            None => Ok(()),
        }
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.broken {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        self.tar.read(buf).map_err(|e| {
            // The caller gets the same words; the error itself is kept.
            let told = io::Error::new(e.kind(), e.to_string());
            if e.kind() != io::ErrorKind::Interrupted {
                self.broken = Some(e);
            }
            told
        })
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
        assert!(
            matches!(err, LayerError::DiffIdMismatch { expected, found, .. }
                if expected == Digest::of(b"x") && found == diff_id),
            "{err}"
        );
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
        std::fs::write(&path, &bytes).unwrap();
        // However the stream broke, the blob's own check has the last word.
        let mut r = open(&blobs, &desc).unwrap();
        let _ = io::copy(&mut r, &mut io::sink());
        let err = r.finish(&diff_id).unwrap_err();
        assert!(
            matches!(&err, LayerError::Blob(BlobError::DigestMismatch { found, .. })
                if *found == Digest::of(&bytes)),
            "{err}"
        );
    }

    #[test]
    fn a_reading_stopped_early_checks_the_blob_without_decoding_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let (desc, _) = store_layer(&blobs);
        let path = blobs.path(&Digest::try_from(desc.digest()).unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        // A gzip trailer whose CRC is wrong, in a blob stored as it is.
        let n = bytes.len();
        bytes[n - 5] ^= 0xff;
        let bad = blobs.put(&bytes).unwrap();
        let desc = Descriptor::new(desc.media_type().clone(), bad.size, bad.digest.to_oci());
        let mut r = open(&blobs, &desc).unwrap();
        r.read_exact(&mut [0; 512]).unwrap();
        r.check_blob().unwrap();
        let mut r = open(&blobs, &desc).unwrap();
        r.read_exact(&mut [0; 512]).unwrap();
        assert!(matches!(r.diff_id(), Err(LayerError::Decode { .. })));

        // A damaged blob is still found out.
        std::fs::write(blobs.path(&bad.digest), &bytes[..n - 1]).unwrap();
        let mut r = open(&blobs, &desc).unwrap();
        r.read_exact(&mut [0; 512]).unwrap();
        assert!(matches!(
            r.check_blob(),
            Err(LayerError::Blob(BlobError::SizeMismatch { .. }))
        ));
    }

    #[test]
    fn an_intact_blob_that_does_not_decode_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let junk = blobs.put(b"not gzip at all").unwrap();
        let desc = Descriptor::new(MediaType::ImageLayerGzip, junk.size, junk.digest.to_oci());
        let err = open(&blobs, &desc)
            .unwrap()
            .finish(&Digest::of(b""))
            .unwrap_err();
        assert!(
            matches!(err, LayerError::Decode { layer, .. } if layer == junk.digest),
            "{err}"
        );

        let odd = Descriptor::new(
            MediaType::Other("text/plain".into()),
            junk.size,
            junk.digest.to_oci(),
        );
        assert!(matches!(
            open(&blobs, &odd),
            Err(LayerError::MediaType { .. })
        ));
    }
}
