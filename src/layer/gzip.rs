//! Block gzip: the compressed form of a layer (design.md, rule 8).
//!
//! This module owns every byte of the gzip stream. It is one gzip member
//! (RFC 1952) whose deflate data is the uncompressed stream cut into fixed
//! [`BLOCK_SIZE`] blocks, each compressed on its own, pigz `--independent`
//! style: no block sees another's data as a dictionary, and every block but
//! the last ends byte-aligned with a sync flush. A block's bytes therefore
//! depend only on its own input, so blocks can later be compressed on any
//! number of threads and concatenated into the same stream; their CRCs are
//! combined rather than computed in one pass for the same reason.
//!
//! Level and backend (flate2 on zlib-rs) are fixed: another level or
//! backend may emit other bytes and would mean a new `ENCODING_VERSION`.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, mpsc};

use crc32fast::Hasher;
use flate2::{Compress, Compression, FlushCompress, Status};

/// Uncompressed bytes per independently compressed block.
pub const BLOCK_SIZE: usize = 128 * 1024;

/// Deflate level of every block. Measured with bench/run on zlib-rs: level
/// 3 compresses about 1.5x faster than 6 for layers 1-3% larger (within 1%
/// to 3% of umoci's); level 2 was faster still but 4.5% larger than umoci's
/// on a Debian root, and level 1 28% larger. Encoding version 2; version 3
/// stores incompressible blocks (see [`incompressible`]).
const LEVEL: u32 = 3;

/// The gzip member header: magic, CM=deflate, no flags (so no name and no
/// comment), MTIME=0, XFL=0, OS=255 ("unknown"). Nothing from the host.
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];

/// Compresses one block as raw deflate, as a fresh compressor would, and returns
/// the compressed bytes with the CRC32 state of `data`.
///
/// A non-last block ends with a sync flush (an empty stored block), so the
/// next block starts on a byte boundary; the last ends the deflate stream.
/// An empty last block is still a valid final deflate block.
pub fn compress_block(data: &[u8], last: bool) -> io::Result<(Vec<u8>, Hasher)> {
    let mut crc = Hasher::new();
    crc.update(data);

    // Already-compressed data gains nothing from a match search that
    // costs as much as on text: it is stored.
    let level = if incompressible(data) { 0 } else { LEVEL };
    COMPRESSORS.with_borrow_mut(|spare| {
        // A reset compressor emits what a fresh one would, without
        // allocating and zeroing its window and tables again per block.
        let z = spare
            .entry(level)
            .or_insert_with(|| Compress::new(Compression::new(level), false));
        z.reset();
        deflate_into(z, data, last).map(|out| (out, crc))
    })
}

thread_local! {
    /// Each thread's compressors, by level, reused block after block.
    static COMPRESSORS: std::cell::RefCell<BTreeMap<u32, Compress>> =
        const { std::cell::RefCell::new(BTreeMap::new()) };
}

/// Runs `z` over all of `data` to the end of the block.
fn deflate_into(z: &mut Compress, data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // Deflate rarely grows data by more than a few bytes per 16 KiB; the
    // loop below grows the buffer in the rare case this is not enough.
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 64);
    loop {
        let consumed = usize::try_from(z.total_in()).map_err(io::Error::other)?;
        let status = z
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = z.total_in() == data.len() as u64;
        // zlib's contract: a flush is complete once the call returns with
        // output space to spare; `Finish` is complete at stream end.
        let done = if last {
            status == Status::StreamEnd
        } else {
            all_in && out.len() < out.capacity()
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64));
    }
}

/// Whether `data` looks already compressed (or random): a sample of every
/// [`SAMPLE_STRIDE`]th byte holds every byte value, none more than twice
/// as often as an even spread would. Text, code and binaries fail by far
/// (missing values, or a flood of zeros); gzip, zstd, JPEG and PNG data
/// pass. Integer counts only, so every machine decides alike.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < MIN_SAMPLED {
        return false;
    }
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for &b in data.iter().step_by(SAMPLE_STRIDE) {
        counts[usize::from(b)] += 1;
        n += 1;
    }
    let most = 2 * n / 256 + 1;
    counts.iter().all(|&c| c > 0 && c <= most)
}

/// Bytes between two samples of [`incompressible`].
const SAMPLE_STRIDE: usize = 8;

/// Below this, a block is always compressed: too few samples to judge.
const MIN_SAMPLED: usize = 32 * 1024;

/// The gzip trailer: CRC32 and ISIZE (length mod 2^32), little-endian.
fn trailer(crc: &Hasher) -> [u8; 8] {
    let mut t = [0u8; 8];
    t[..4].copy_from_slice(&crc.clone().finalize().to_le_bytes());
    // ISIZE is defined modulo 2^32: the truncation is the format.
    t[4..].copy_from_slice(&(crc.total_len() as u32).to_le_bytes());
    t
}

/// A `Write` adapter that block-gzips everything written through it.
///
/// Full blocks are compressed on a pool of worker threads while the caller
/// goes on producing input, and written in order: the bytes are those of
/// [`compress_block`] on each block, whatever the thread count. Memory is
/// bounded by four blocks held per thread.
///
/// Call [`BlockGzWriter::finish`] to end the stream: dropping the writer
/// leaves it incomplete (rather than silently swallowing a write error).
pub struct BlockGzWriter<W: Write> {
    inner: W,
    /// Input not yet handed to a compressor: at most one block.
    pending: Vec<u8>,
    /// CRC of all input written out so far.
    crc: Hasher,
    header_written: bool,
    /// None: compress on the calling thread.
    pool: Option<Pool>,
}

impl<W: Write> BlockGzWriter<W> {
    /// A writer compressing on every available core.
    pub fn new(inner: W) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        BlockGzWriter::with_threads(inner, threads)
    }

    /// A writer compressing on `threads` worker threads (1: inline).
    pub fn with_threads(inner: W, threads: usize) -> Self {
        BlockGzWriter {
            inner,
            pending: Vec::with_capacity(BLOCK_SIZE),
            crc: Hasher::new(),
            header_written: false,
            pool: (threads > 1).then(|| Pool::new(threads)),
        }
    }

    /// Compresses the remaining input as the last block, writes the
    /// trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_header()?;
        if let Some(mut pool) = self.pool.take() {
            for (bytes, crc) in pool.drain()? {
                self.inner.write_all(&bytes)?;
                self.crc.combine(&crc);
            }
        }
        let (bytes, crc) = compress_block(&self.pending, true)?;
        self.inner.write_all(&bytes)?;
        self.crc.combine(&crc);
        self.inner.write_all(&trailer(&self.crc))?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.inner.write_all(&HEADER)?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Hands the pending full block on: to the pool, or compressed here.
    fn emit(&mut self) -> io::Result<()> {
        self.write_header()?;
        let block = std::mem::replace(&mut self.pending, Vec::with_capacity(BLOCK_SIZE));
        let ready = match &mut self.pool {
            Some(pool) => pool.submit(block)?,
            None => vec![compress_block(&block, false)?],
        };
        for (bytes, crc) in ready {
            self.inner.write_all(&bytes)?;
            self.crc.combine(&crc);
        }
        Ok(())
    }
}

impl<W: Write> Write for BlockGzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // A full block is only compressed once more input arrives: until
        // then it may be the last block, which ends differently.
        if self.pending.len() == BLOCK_SIZE {
            self.emit()?;
        }
        let n = buf.len().min(BLOCK_SIZE - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Flushes the inner writer only. Pending input stays pending: cutting a
    /// block early would change the bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type Compressed = (Vec<u8>, Hasher);

/// Worker threads compressing non-last blocks, with results put back in
/// submission order.
struct Pool {
    jobs: Option<mpsc::SyncSender<(u64, Vec<u8>)>>,
    results: mpsc::Receiver<(u64, io::Result<Compressed>)>,
    workers: Vec<std::thread::JoinHandle<()>>,
    submitted: u64,
    written: u64,
    /// Results that arrived ahead of their turn.
    early: BTreeMap<u64, Compressed>,
    /// Blocks submitted and not yet written out, at most.
    max_held: u64,
    /// Blocks the submitting thread compressed itself.
    compressed_here: u64,
}

impl Pool {
    fn new(threads: usize) -> Pool {
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(threads);
        let (result_tx, results) = mpsc::channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let jobs = Arc::clone(&job_rx);
                let results = result_tx.clone();
                std::thread::spawn(move || {
                    loop {
                        // A poisoned lock means another worker panicked:
                        // stop, and `drain` reports the missing results.
                        let job = match jobs.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok((seq, block)) = job else { return };
                        if results.send((seq, compress_block(&block, false))).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Pool {
            jobs: Some(job_tx),
            results,
            workers,
            submitted: 0,
            written: 0,
            early: BTreeMap::new(),
            max_held: 4 * threads as u64,
            compressed_here: 0,
        }
    }

    /// Queues a block, or compresses it here when every worker is busy and
    /// the queue full; returns the results now due, in order. Blocks while
    /// too many are held, so memory stays bounded.
    ///
    /// A caller that waited for a worker instead left cores idle: the
    /// writer, the workers and the handoffs between them on as many cores
    /// as workers kept 15% of two cores idle through a cold build of many
    /// small files (issue 19).
    fn submit(&mut self, block: Vec<u8>) -> io::Result<Vec<Compressed>> {
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("pool closed"))?;
        let seq = self.submitted;
        match jobs.try_send((seq, block)) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full((_, block))) => {
                self.early.insert(seq, compress_block(&block, false)?);
                self.compressed_here += 1;
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                return Err(io::Error::other("compression worker stopped"));
            }
        }
        self.submitted += 1;
        while let Ok((seq, result)) = self.results.try_recv() {
            self.early.insert(seq, result?);
        }
        let mut due = self.due();
        while self.submitted - self.written >= self.max_held {
            self.receive()?;
            due.extend(self.due());
        }
        Ok(due)
    }

    /// Waits for every queued block and returns the rest, in order.
    fn drain(&mut self) -> io::Result<Vec<Compressed>> {
        self.jobs = None;
        let mut out = Vec::new();
        while self.written < self.submitted {
            let due = self.due();
            if due.is_empty() {
                self.receive()?;
            }
            out.extend(due);
        }
        for worker in self.workers.drain(..) {
            worker
                .join()
                .map_err(|_| io::Error::other("a compression worker panicked"))?;
        }
        Ok(out)
    }

    fn receive(&mut self) -> io::Result<()> {
        let (seq, result) = self
            .results
            .recv()
            .map_err(|_| io::Error::other("compression workers stopped early"))?;
        self.early.insert(seq, result?);
        Ok(())
    }

    /// The results next in order that have arrived.
    fn due(&mut self) -> Vec<Compressed> {
        let mut out = Vec::new();
        while let Some(c) = self.early.remove(&self.written) {
            out.push(c);
            self.written += 1;
        }
        out
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the job queue lets idle workers exit; their handles are
        // detached if the writer was abandoned mid-stream.
        self.jobs = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use proptest::prelude::*;
    use std::io::Read;

    /// Deterministic, poorly compressible test data. The golden test below
    /// depends on it: keep it as it is.
    fn data(len: usize) -> Vec<u8> {
        let mut x: u32 = 0x1234_5678;
        (0..len)
            .map(|i| {
                // xorshift, mixed with runs so blocks compress a little.
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 1000 < 300 { b'a' } else { x as u8 }
            })
            .collect()
    }

    fn gzip(input: &[u8], chunk: usize) -> Vec<u8> {
        gzip_on(input, chunk, 1)
    }

    fn gzip_on(input: &[u8], chunk: usize, threads: usize) -> Vec<u8> {
        let mut w = BlockGzWriter::with_threads(Vec::new(), threads);
        for piece in input.chunks(chunk.max(1)) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(gz).read_to_end(&mut out).unwrap();
        out
    }

    /// The stream the writer must produce, assembled from independent
    /// blocks: what a parallel compressor would concatenate.
    fn assembled(input: &[u8]) -> Vec<u8> {
        let blocks: Vec<&[u8]> = if input.is_empty() {
            vec![&[]]
        } else {
            input.chunks(BLOCK_SIZE).collect()
        };
        let mut out = HEADER.to_vec();
        let mut crc = Hasher::new();
        for (i, block) in blocks.iter().enumerate() {
            let (bytes, block_crc) = compress_block(block, i + 1 == blocks.len()).unwrap();
            out.extend_from_slice(&bytes);
            crc.combine(&block_crc);
        }
        out.extend_from_slice(&trailer(&crc));
        out
    }

    const SIZES: [usize; 7] = [
        0,
        1,
        BLOCK_SIZE - 1,
        BLOCK_SIZE,
        BLOCK_SIZE + 1,
        3 * BLOCK_SIZE,
        5 * 1024 * 1024 + 17,
    ];

    #[test]
    fn round_trips_at_block_edges() {
        for len in SIZES {
            let input = data(len);
            let gz = gzip(&input, usize::MAX);
            assert_eq!(gunzip(&gz), input, "len {len}");
            // Exactly one gzip member: a plain (single-member) decoder
            // reads it all.
            let mut single = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut single)
                .unwrap();
            assert_eq!(single, input, "len {len}");
        }
    }

    #[test]
    fn header_and_trailer_bytes_are_fixed() {
        let input = data(BLOCK_SIZE + 5);
        let gz = gzip(&input, usize::MAX);
        assert_eq!(
            gz[..10],
            [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff]
        );
        let tail = &gz[gz.len() - 8..];
        assert_eq!(tail[..4], crc32fast::hash(&input).to_le_bytes());
        assert_eq!(tail[4..], ((BLOCK_SIZE + 5) as u32).to_le_bytes());
    }

    #[test]
    fn empty_input_is_header_final_block_trailer() {
        let gz = gzip(&[], 1);
        let (block, _) = compress_block(&[], true).unwrap();
        assert!(!block.is_empty());
        assert_eq!(gz.len(), 10 + block.len() + 8);
        assert_eq!(gz[gz.len() - 8..], [0; 8]);
    }

    #[test]
    fn stream_is_the_concatenation_of_independent_blocks() {
        for len in SIZES {
            let input = data(len);
            assert_eq!(gzip(&input, usize::MAX), assembled(&input), "len {len}");
        }
    }

    #[test]
    fn non_last_blocks_end_byte_aligned_with_a_sync_marker() {
        let input = data(BLOCK_SIZE);
        let (bytes, _) = compress_block(&input, false).unwrap();
        assert_eq!(bytes[bytes.len() - 4..], [0x00, 0x00, 0xff, 0xff]);
        // The same data as a last block ends the stream instead.
        let (last, _) = compress_block(&input, true).unwrap();
        assert_ne!(last[last.len() - 4..], [0x00, 0x00, 0xff, 0xff]);
    }

    #[test]
    fn a_block_does_not_depend_on_its_predecessor() {
        // Two streams whose second block is identical but whose first block
        // differs: with a shared dictionary the second block's bytes would
        // differ too.
        let second = data(1000);
        let mut a = vec![b'x'; BLOCK_SIZE];
        let mut b = second.clone();
        b.resize(BLOCK_SIZE, b'y');
        a.extend_from_slice(&second);
        b.extend_from_slice(&second);
        let (tail, _) = compress_block(&second, true).unwrap();
        for input in [a, b] {
            let gz = gzip(&input, usize::MAX);
            let body = &gz[..gz.len() - 8];
            assert!(body.ends_with(&tail));
        }
    }

    /// Pins the compressor (level, backend, flush discipline) on input that
    /// spans blocks and slides the deflate window. A change here changes
    /// layer bytes: a new `ENCODING_VERSION`, not a value to update quietly.
    #[test]
    fn golden_multi_block_stream() {
        let gz = gzip(&data(3 * BLOCK_SIZE + 5), usize::MAX);
        let digest = crate::digest::Digest::of(&gz);
        println!("{digest} {}", gz.len());
        assert_eq!(
            digest.to_string(),
            "sha256:03f97090c771cc9458358adb5b336cee400fa07eed97557daf6c107e7ee009fb"
        );
        assert_eq!(gz.len(), 278_178);
    }

    #[test]
    fn incompressible_blocks_are_stored_and_others_compressed() {
        // A xorshift stream stands for compressed data.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let random: Vec<u8> = (0..BLOCK_SIZE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert!(incompressible(&random));
        let (stored, _) = compress_block(&random, false).unwrap();
        // Stored: the data plus a few bytes of block headers.
        assert!(stored.len() > random.len() && stored.len() < random.len() + 64);
        assert!(!incompressible(&data(BLOCK_SIZE)));
        assert!(!incompressible(&vec![0u8; BLOCK_SIZE]));
        assert!(
            !incompressible(&random[..MIN_SAMPLED - 1]),
            "too short to judge"
        );
        // Either way the stream decodes to the input.
        let mut mixed = data(BLOCK_SIZE);
        mixed.extend_from_slice(&random);
        mixed.extend_from_slice(&data(1000));
        let gz = gzip(&mixed, usize::MAX);
        assert_eq!(gunzip(&gz), mixed);
        // Pinned like golden_multi_block_stream: which blocks are stored is
        // part of the encoding.
        assert_eq!(
            crate::digest::Digest::of(&gz).to_string(),
            "sha256:bd07011faf5fc6d58cdeacee49c979a540fe768db03c12c9ac7d5977b3db5cce"
        );
    }

    #[test]
    fn crcs_combine_to_the_crc_of_the_whole() {
        let input = data(3 * BLOCK_SIZE + 7);
        let mut crc = Hasher::new();
        for block in input.chunks(BLOCK_SIZE) {
            crc.combine(&compress_block(block, false).unwrap().1);
        }
        assert_eq!(crc.total_len(), input.len() as u64);
        assert_eq!(crc.finalize(), crc32fast::hash(&input));
    }

    #[test]
    fn thread_count_does_not_change_the_bytes() {
        for len in SIZES {
            let input = data(len);
            let one = gzip_on(&input, usize::MAX, 1);
            for threads in [2, 3, 8] {
                let many = gzip_on(&input, 4093, threads);
                // Digests, not bytes: a mismatch would print megabytes.
                assert_eq!(
                    crate::digest::Digest::of(&many),
                    crate::digest::Digest::of(&one),
                    "len {len}, {threads} threads"
                );
            }
        }
    }

    /// Input far faster than the workers compress it: the writer compresses
    /// blocks itself, and they still land in their place.
    #[test]
    fn blocks_the_writer_compresses_itself_keep_their_place() {
        let input = data(40 * BLOCK_SIZE + 7);
        let mut w = BlockGzWriter::with_threads(Vec::new(), 2);
        w.write_all(&input).unwrap();
        let here = w.pool.as_ref().map_or(0, |pool| pool.compressed_here);
        assert!(here > 0, "the writer compressed no block itself");
        let many = w.finish().unwrap();
        let one = gzip_on(&input, usize::MAX, 1);
        assert_eq!(
            crate::digest::Digest::of(&many),
            crate::digest::Digest::of(&one)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn bytes_do_not_depend_on_write_sizes(
            len in prop_oneof![0..2048usize, (BLOCK_SIZE - 3)..(3 * BLOCK_SIZE + 3)],
            chunk in prop_oneof![1..8usize, 4090..4100usize, 1..(2 * BLOCK_SIZE)],
        ) {
            let input = data(len);
            let whole = gzip(&input, usize::MAX);
            prop_assert_eq!(&gzip(&input, chunk), &whole);
            prop_assert_eq!(gunzip(&whole), input);
        }
    }
}
