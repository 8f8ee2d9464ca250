//! Reading layer blobs back: decompression chosen by media type, with the
//! blob's digest and size and the uncompressed diff_id checked as the bytes
//! stream past. Bases, `verify` and the seal all read layers through here.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

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

/// How many decoded bytes the decoding thread hands over at a time, and
/// how many such chunks may wait for the reader: what reading a layer
/// holds beyond the decoder's own state, whatever the layer's size.
const CHUNK: usize = 256 * 1024;
const CHUNKS_IN_FLIGHT: usize = 4;

/// A layer blob's uncompressed tar stream. Read it, then call
/// [`finish`](LayerReader::finish) to learn whether it was what the
/// descriptor and the config promised.
///
/// The blob is read, decompressed and hashed (its digest and the
/// diff_id) on a thread of its own, a few chunks ahead of the reader:
/// a reader of layers parses, hashes files and builds a view, and
/// decompression is as much work again, so on two cores each takes one
/// (issue 19: a 300,000-file layer read back for the SBOM).
pub struct LayerReader {
    decoded: mpsc::Receiver<Decoded>,
    /// Chunks read out, for the decoding thread to fill again.
    spent: mpsc::Sender<Vec<u8>>,
    /// Set when the reader stops before the stream's end: the decoding
    /// thread then checks the rest of the blob raw.
    stop: Arc<AtomicBool>,
    chunk: Vec<u8>,
    at: usize,
    digest: Digest,
    /// The first error the stream gave, kept for `finish`: only the blob's
    /// own check, at its end, can say whether the blob is damaged or its
    /// intact bytes do not decode.
    broken: Option<io::Error>,
    /// What the decoding thread said at the end, once it has.
    end: Option<End>,
}

/// What the decoding thread sends.
enum Decoded {
    Chunk(Vec<u8>),
    /// The stream broke; an [`End`] follows, once the blob is checked.
    Broken(io::Error),
    End(End),
}

/// The end of a layer's reading: the uncompressed stream's digest (when
/// it was read to its end) and the blob's own check.
struct End {
    diff_id: Option<Digest>,
    blob: Result<(), BlobError>,
    /// How much of the stream was decoded.
    #[cfg(test)]
    decoded: u64,
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
    let (send, decoded) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let (spent, refill) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("layer-decode".into())
        .spawn(move || decode(HashingReader::new(tar), &send, &refill, &stopped))
        .map_err(|source| BlobError::Io { digest, source })?;
    Ok(LayerReader {
        decoded,
        spent,
        stop,
        chunk: Vec::new(),
        at: 0,
        digest,
        broken: None,
        end: None,
    })
}

/// The decoding thread: chunks of the stream to `send` until its end, a
/// break, or the reader stopping; then the blob's check. It stops early,
/// silently, when the reader is gone.
fn decode(
    mut tar: HashingReader<Decoder<VerifiedReader>>,
    send: &mpsc::SyncSender<Decoded>,
    refill: &mpsc::Receiver<Vec<u8>>,
    stop: &AtomicBool,
) {
    let diff_id = loop {
        if stop.load(Ordering::Relaxed) {
            break None;
        }
        let mut chunk = refill.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0);
        let (n, broke) = fill(&mut tar, &mut chunk);
        // The bytes before a break are the stream's, as a reader on this
        // thread would have had them.
        if n > 0 {
            chunk.truncate(n);
            if send.send(Decoded::Chunk(chunk)).is_err() {
                return;
            }
        }
        match broke {
            Some(e) => {
                if send.send(Decoded::Broken(e)).is_err() {
                    return;
                }
                break None;
            }
            None if n == 0 => break Some(()),
            None => {}
        }
    };
    let (found, _decoded, decoder) = tar.into_parts();
    // The rest of a stream not read to its end is checked raw: it is not
    // worth decoding, and may be gigabytes out of a few compressed MB.
    let blob = decoder.into_inner().finish();
    let _ = send.send(Decoded::End(End {
        diff_id: diff_id.map(|()| found),
        blob,
        #[cfg(test)]
        decoded: _decoded,
    }));
}

/// Reads into `buf` until it is full, the stream ends or it breaks: the
/// bytes read, and the break.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(m) => n += m,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
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
        let end = self.end(false);
        end.blob?;
        match (self.broken, end.diff_id) {
            (None, Some(found)) => Ok(found),
            (broken, _) => Err(LayerError::Decode {
                layer: self.digest,
                source: broken.unwrap_or_else(|| io::Error::other("the decoding thread stopped")),
            }),
        }
    }

    /// For a reading that stopped before the stream's end (a refusal of
    /// what it holds): checks the blob's size and digest, reading the rest
    /// of the blob raw, not decoded, then says whether the stream broke
    /// before the reading stopped. The rest of the stream is not worth
    /// decoding, and may be gigabytes out of a few compressed megabytes;
    /// what was refused came from a blob that is what its digest says.
    pub fn check_blob(mut self) -> Result<(), LayerError> {
        self.end(true).blob?;
        match self.broken {
            Some(source) => Err(LayerError::Decode {
                layer: self.digest,
                source,
            }),
            None => Ok(()),
        }
    }

    /// Waits for the decoding thread's end, the chunks before it read
    /// past (and, if `stop`, no more decoded). A break it reports on the
    /// way counts as the reader's own unless the reader stopped.
    fn end(&mut self, stop: bool) -> End {
        if stop {
            self.stop.store(true, Ordering::Relaxed);
        }
        loop {
            if let Some(end) = self.end.take() {
                return end;
            }
            match self.decoded.recv() {
                Ok(Decoded::Chunk(_)) => {}
                Ok(Decoded::Broken(e)) if !stop && self.broken.is_none() => self.broken = Some(e),
                Ok(Decoded::Broken(_)) => {}
                Ok(Decoded::End(end)) => self.end = Some(end),
                Err(_) => return gone(self.digest),
            }
        }
    }
}

/// The end of a decoding thread that stopped without saying so: it
/// panicked.
fn gone(digest: Digest) -> End {
    End {
        diff_id: None,
        blob: Err(BlobError::Io {
            digest,
            source: io::Error::other("the layer's decoding thread stopped"),
        }),
        #[cfg(test)]
        decoded: 0,
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.broken {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        while self.at == self.chunk.len() {
            if self.end.is_some() {
                return Ok(0);
            }
            let spent = std::mem::take(&mut self.chunk);
            self.at = 0;
            if spent.capacity() > 0 {
                let _ = self.spent.send(spent);
            }
            match self.decoded.recv() {
                Ok(Decoded::Chunk(chunk)) => self.chunk = chunk,
                Ok(Decoded::End(end)) => self.end = Some(end),
                Ok(Decoded::Broken(e)) => {
                    // The caller gets the same words; the error itself is kept.
                    let told = io::Error::new(e.kind(), e.to_string());
                    self.broken = Some(e);
                    return Err(told);
                }
                Err(_) => {
                    self.end = Some(gone(self.digest));
                    return Err(io::Error::other("the layer's decoding thread stopped"));
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
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
    fn a_reading_stopped_early_decodes_a_few_chunks_past_it_at_most() {
        use std::io::Write;
        // 16 MiB of zeros as 16 gzip members of 1 MiB: a blob of 16 KB.
        let mut member = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        member.write_all(&[0; 1 << 20]).unwrap();
        let member = member.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let blob = blobs.put(&member.repeat(16)).unwrap();
        let desc = Descriptor::new(MediaType::ImageLayerGzip, blob.size, blob.digest.to_oci());

        let mut r = open(&blobs, &desc).unwrap();
        r.read_exact(&mut [0; 512]).unwrap();
        let end = r.end(true);
        assert!(end.blob.is_ok());
        assert!(
            end.decoded <= ((CHUNKS_IN_FLIGHT + 2) * CHUNK) as u64,
            "decoded {} bytes",
            end.decoded
        );
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
