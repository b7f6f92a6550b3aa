//! Layer compression whose output is the same bytes for any thread count and any CPU.
//!
//! A layer's digest is computed over its *compressed* bytes, so the compressor is part of the
//! reproducibility contract. Ordinary parallel compressors do not promise identical output
//! across thread counts, and a single-threaded gzip of a 1 GB layer is slow, so kiln splits the
//! input at fixed offsets and compresses each piece independently; how the pieces are spread
//! over threads cannot change a byte.
//!
//! - **gzip** (`kiln-pgzip/2`, multi-member gzip like `bgzip`): the input is cut into
//!   [`GZIP_BLOCK`]-byte blocks, and each block into [`PROBE`]-byte pieces that are judged
//!   incompressible or not from their byte histogram alone ([`looks_incompressible`]: random,
//!   encrypted and already-compressed data). Each run of pieces of one kind inside a block
//!   becomes one complete gzip member: header with mtime 0, no name, XFL from the level (2 for
//!   9, 4 for 1, else 0, as gzip writes it), OS = 3 (Unix, as `gzip -n` writes it); the run as
//!   raw deflate from libdeflate, or as stored deflate blocks for an incompressible run (which
//!   deflate would spend the most time on to save nothing); trailer with the run's CRC32 and
//!   length. RFC 1952 makes a gzip file a sequence of members, and
//!   every reader that matters decompresses them all (GNU gzip, Go's `compress/gzip` used by
//!   containerd, podman, skopeo and umoci, flate2's `MultiGzDecoder`, our own `decompress`).
//!   Default level 1: libdeflate's level 1 compresses layer tars about as well as zlib's level
//!   6 (and better than umoci's gzip) at three to four times the speed; see README
//!   "Performance". libdeflate has no streaming API, which is why the blocks are independent
//!   instead of pigz-style dictionary-primed: with a 32 KiB window, priming costs well under
//!   0.1% of ratio at 1 MiB blocks.
//! - **zstd** (`kiln-pzstd/1`): the input is cut into [`ZSTD_CHUNK`]-byte chunks, each one an
//!   independent zstd frame (single-threaded libzstd, content size and checksum in the frame).
//!   Concatenated frames are a valid zstd stream. zstd's own multithreaded mode is not used:
//!   its output differs between one and several workers, and it needs the `zstdmt` build.
//!   Default level 3 (zstd's default).
//!
//! Why the output does not depend on the CPU: libdeflate's runtime CPU dispatch only selects
//! checksum and match-finder helpers with one exact answer (CRC32, Adler-32, hash-table
//! rebasing); its parsing decisions are plain C. libzstd likewise produces the same frames on
//! every platform for a given version and parameters. What *does* change the bytes is the
//! encoder version, so [`Compression::describe`] names it for the provenance, and known-answer
//! tests pin the exact output digests: an upgrade of libdeflate or libzstd that changes them
//! fails the tests instead of silently changing layer digests. A libdeflate compressor keeps
//! no state between calls (each call compresses one whole buffer), so a worker reuses its own.
//!
//! Memory is bounded: at most `2 × threads` blocks are in flight; a worker pool compresses,
//! and the thread that feeds the encoder writes finished blocks in order.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Input bytes per gzip member. Larger blocks gain almost nothing (0.01% of ratio from 1 MiB
/// to 4 MiB on a layer tar) and cost memory; smaller ones add 18 bytes of framing each.
pub(crate) const GZIP_BLOCK: usize = 1024 * 1024;
/// Bytes per piece judged compressible or not inside a gzip block.
const PROBE: usize = 64 * 1024;
/// Input bytes per independent zstd frame.
pub(crate) const ZSTD_CHUNK: usize = 4 * 1024 * 1024;
/// The gzip OS byte: 3 = Unix, what `gzip -n` writes on Linux.
const GZIP_OS: u8 = 3;
/// The deflate implementation and version whose output the known-answer tests pin (the C
/// library bundled by `libdeflate-sys`, whose crate version follows it).
const LIBDEFLATE: &str = "libdeflate/1.26";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip { level: u32 },
    Zstd { level: i32 },
    None,
}

impl Compression {
    /// libdeflate's level 1: see the module docs for why it is the default.
    pub const DEFAULT_GZIP_LEVEL: u32 = 1;
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

    #[cfg(test)]
    pub(crate) fn gzip() -> Self {
        Compression::Gzip {
            level: Self::DEFAULT_GZIP_LEVEL,
        }
    }

    #[cfg(test)]
    pub(crate) fn zstd() -> Self {
        Compression::Zstd {
            level: Self::DEFAULT_ZSTD_LEVEL,
        }
    }

    /// The encoder and every setting that determines its output, for the provenance.
    pub fn describe(&self) -> String {
        match self {
            Compression::Gzip { level } => {
                format!("kiln-pgzip/2 {LIBDEFLATE} level={level} block={GZIP_BLOCK} probe={PROBE} stored-if-h2>=7.98 os={GZIP_OS}")
            }
            Compression::Zstd { level } => format!(
                "kiln-pzstd/1 libzstd/{} level={level} chunk={ZSTD_CHUNK} checksum=1",
                zstd::zstd_safe::version_string()
            ),
            Compression::None => "none".to_string(),
        }
    }

    fn validate(&self) -> Result<(), CompressError> {
        match *self {
            Compression::Gzip { level } if level > 9 => Err(CompressError::InvalidLevel {
                codec: "gzip",
                level: i64::from(level),
                range: "0..=9",
            }),
            Compression::Zstd { level } if !(1..=19).contains(&level) => {
                Err(CompressError::InvalidLevel {
                    codec: "zstd",
                    level: i64::from(level),
                    range: "1..=19",
                })
            }
            _ => Ok(()),
        }
    }
}

/// Sizes of what went through the encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodeStats {
    pub uncompressed: u64,
    pub compressed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("invalid {codec} compression level {level}: expected {range}")]
    InvalidLevel {
        codec: &'static str,
        level: i64,
        range: &'static str,
    },
    #[error("failed to deflate block {block} of the layer")]
    Deflate {
        block: u64,
        source: libdeflater::CompressionError,
    },
    #[error("failed to zstd-compress chunk {block} of the layer")]
    Zstd { block: u64, source: io::Error },
    #[error("failed to read the layer to compress")]
    Read { source: io::Error },
    #[error("failed to write the compressed layer")]
    Write { source: io::Error },
    #[error("failed to start a compression worker thread")]
    Spawn { source: io::Error },
    #[error("a compression worker thread stopped unexpectedly")]
    WorkerLost,
}

/// Compresses everything `reader` yields into `writer`.
pub fn compress(
    mut reader: impl Read,
    writer: impl Write,
    compression: Compression,
    threads: usize,
) -> Result<EncodeStats, CompressError> {
    let mut encoder = LayerEncoder::new(writer, compression, threads)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(CompressError::Read { source }),
        };
        encoder.push(&buf[..n])?;
    }
    Ok(encoder.finish()?.1)
}

/// One piece of input on its way to a worker.
struct Job {
    seq: u64,
    data: Vec<u8>,
}

struct Done {
    seq: u64,
    bytes: Vec<u8>,
}

/// A `Write` sink that compresses a layer. Call [`LayerEncoder::finish`] at the end; dropping
/// it without `finish` leaves the output incomplete.
pub(crate) struct LayerEncoder<W: Write> {
    out: W,
    compression: Compression,
    block_size: usize,
    buf: Vec<u8>,
    next_seq: u64,
    next_to_write: u64,
    ready: BTreeMap<u64, Done>,
    pool: Option<Pool>,
    /// The block compressor of the single-threaded mode (workers own theirs).
    local: BlockCompressor,
    stats: EncodeStats,
}

impl<W: Write> LayerEncoder<W> {
    /// `threads` ≤ 1 compresses on the calling thread; more starts that many workers. The
    /// output is the same either way.
    pub fn new(out: W, compression: Compression, threads: usize) -> Result<Self, CompressError> {
        compression.validate()?;
        let block_size = match compression {
            Compression::Gzip { .. } => GZIP_BLOCK,
            Compression::Zstd { .. } => ZSTD_CHUNK,
            Compression::None => 64 * 1024,
        };
        let pool = match compression {
            Compression::None => None,
            _ if threads <= 1 => None,
            _ => Some(Pool::start(compression, threads)?),
        };
        Ok(Self {
            out,
            compression,
            block_size,
            buf: Vec::with_capacity(block_size),
            next_seq: 0,
            next_to_write: 0,
            ready: BTreeMap::new(),
            local: BlockCompressor::new(compression),
            pool,
            stats: EncodeStats::default(),
        })
    }

    /// Compresses `data`; block boundaries depend only on the bytes, never on how they arrive.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), CompressError> {
        self.stats.uncompressed += data.len() as u64;
        while !data.is_empty() {
            if self.buf.len() == self.block_size {
                self.dispatch(false)?;
            }
            let take = (self.block_size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Compresses the last block and flushes; returns the sink.
    pub fn finish(mut self) -> Result<(W, EncodeStats), CompressError> {
        // gzip: no trailing empty member when the input ends on a block boundary, but one
        // (empty) member for empty input, which must still be a gzip file. zstd keeps its
        // original rule (always a last frame) so that its digests stay what they were.
        let gzip = matches!(self.compression, Compression::Gzip { .. });
        if !gzip || !self.buf.is_empty() || self.next_seq == 0 {
            self.dispatch(true)?;
        }
        while self.next_to_write < self.next_seq {
            self.receive_one()?;
        }
        self.out
            .flush()
            .map_err(|source| CompressError::Write { source })?;
        Ok((self.out, self.stats))
    }

    fn dispatch(&mut self, last: bool) -> Result<(), CompressError> {
        let data = std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(if last { 0 } else { self.block_size }),
        );
        if let Compression::None = self.compression {
            return self.emit(&data);
        }
        let job = Job {
            seq: self.next_seq,
            data,
        };
        self.next_seq += 1;
        let Some(max_in_flight) = self.pool.as_ref().map(|p| p.max_in_flight) else {
            let done = self.local.compress(&job)?;
            self.ready.insert(done.seq, done);
            return self.write_ready();
        };
        // Bounded memory: wait for the oldest block before queueing more than the cap.
        while self.next_seq - self.next_to_write > max_in_flight {
            self.receive_one()?;
        }
        let pool = self.pool.as_ref().expect("checked above");
        pool.jobs
            .as_ref()
            .expect("open until drop")
            .send(job)
            .map_err(|_| CompressError::WorkerLost)?;
        while let Ok(result) = pool.results.try_recv() {
            let done = result?;
            self.ready.insert(done.seq, done);
        }
        self.write_ready()
    }

    /// Blocks until one more result arrives (or the next in order is already here), then writes.
    fn receive_one(&mut self) -> Result<(), CompressError> {
        if !self.ready.contains_key(&self.next_to_write) {
            let pool = self.pool.as_ref().ok_or(CompressError::WorkerLost)?;
            let done = pool
                .results
                .recv()
                .map_err(|_| CompressError::WorkerLost)??;
            self.ready.insert(done.seq, done);
        }
        self.write_ready()
    }

    fn write_ready(&mut self) -> Result<(), CompressError> {
        while let Some(done) = self.ready.remove(&self.next_to_write) {
            self.emit(&done.bytes)?;
            self.next_to_write += 1;
        }
        Ok(())
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<(), CompressError> {
        self.out
            .write_all(bytes)
            .map_err(|source| CompressError::Write { source })?;
        self.stats.compressed += bytes.len() as u64;
        Ok(())
    }
}

impl<W: Write> Write for LayerEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    /// Does not end a block (that would make the output depend on flush calls); it only
    /// flushes what was already compressed.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Compresses one job; owns the reusable libdeflate state of one thread.
struct BlockCompressor {
    compression: Compression,
    deflate: Option<libdeflater::Compressor>,
    scratch: Vec<u8>,
}

impl BlockCompressor {
    fn new(compression: Compression) -> Self {
        let deflate = match compression {
            Compression::Gzip { level } => Some(libdeflater::Compressor::new(
                libdeflater::CompressionLvl::new(level as i32)
                    .expect("validated: gzip levels 0..=9 are libdeflate levels"),
            )),
            _ => None,
        };
        Self {
            compression,
            deflate,
            scratch: Vec::new(),
        }
    }

    fn compress(&mut self, job: &Job) -> Result<Done, CompressError> {
        let bytes = match (self.compression, self.deflate.as_mut()) {
            (Compression::Gzip { level }, Some(deflate)) => {
                gzip_block(deflate, &mut self.scratch, level, &job.data).map_err(|source| {
                    CompressError::Deflate {
                        block: job.seq,
                        source,
                    }
                })?
            }
            (Compression::Zstd { level }, _) => {
                zstd_frame(level, &job.data).map_err(|source| CompressError::Zstd {
                    block: job.seq,
                    source,
                })?
            }
            _ => job.data.clone(),
        };
        Ok(Done {
            seq: job.seq,
            bytes,
        })
    }
}

/// The gzip members of one block: runs of [`PROBE`]-byte pieces that look incompressible are
/// stored, the other runs deflated (see [`looks_incompressible`]).
fn gzip_block(
    deflate: &mut libdeflater::Compressor,
    scratch: &mut Vec<u8>,
    level: u32,
    data: &[u8],
) -> Result<Vec<u8>, libdeflater::CompressionError> {
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    let mut run_start = 0;
    let mut run_stored = false;
    let pieces = data
        .chunks(PROBE)
        .map(|p| level > 0 && looks_incompressible(p));
    for (i, stored) in pieces.enumerate() {
        let at = i * PROBE;
        if stored != run_stored && at > run_start {
            member(
                &mut out,
                deflate,
                scratch,
                xfl,
                run_stored,
                &data[run_start..at],
            )?;
            run_start = at;
        }
        run_stored = stored;
    }
    if run_start < data.len() || data.is_empty() {
        member(
            &mut out,
            deflate,
            scratch,
            xfl,
            run_stored,
            &data[run_start..],
        )?;
    }
    Ok(out)
}

/// Appends one complete gzip member holding `data`, deflated or in stored blocks.
fn member(
    out: &mut Vec<u8>,
    deflate: &mut libdeflater::Compressor,
    scratch: &mut Vec<u8>,
    xfl: u8,
    stored: bool,
    data: &[u8],
) -> Result<(), libdeflater::CompressionError> {
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, GZIP_OS]);
    if stored {
        let mut blocks = data.chunks(usize::from(u16::MAX)).peekable();
        while let Some(block) = blocks.next() {
            let len = block.len() as u16;
            out.push(u8::from(blocks.peek().is_none())); // BFINAL, BTYPE = 00 (stored)
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(block);
        }
    } else {
        // One scratch buffer per thread, zeroed once: libdeflate wants an initialized slice.
        let bound = deflate.deflate_compress_bound(data.len());
        if scratch.len() < bound {
            scratch.resize(bound, 0);
        }
        let n = deflate.deflate_compress(data, &mut scratch[..bound])?;
        out.extend_from_slice(&scratch[..n]);
    }
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(())
}

/// Whether `piece` is so close to uniformly random bytes that deflate cannot shrink it: true
/// when its order-2 Rényi entropy (from the byte histogram's pair collisions) is at least
/// ~7.98 bits per byte, which bounds the Shannon entropy from below, so Huffman coding could
/// save at most ~0.3%. Compressed assets, encrypted or random data test true; text, code and
/// executables test false. Integer arithmetic only, so every machine decides the same; a
/// piece of under 4 KiB is never judged (its histogram is too noisy). The test is blind to
/// repeats: a random 20 KiB file stored twice in a row in the tar is stored twice, where
/// deflate would have matched the second copy; that costs size, never correctness. Deflating such data
/// costs more than compressible data (libdeflate level 1: ~110 MB/s against ~165 MB/s on a
/// layer tar) for nothing, and storing it is a copy.
fn looks_incompressible(piece: &[u8]) -> bool {
    if piece.len() < 4096 {
        return false;
    }
    // Four histograms, so that runs of one byte do not serialize on one counter.
    let mut hist = [[0u32; 256]; 4];
    let mut quads = piece.chunks_exact(4);
    for q in &mut quads {
        hist[0][usize::from(q[0])] += 1;
        hist[1][usize::from(q[1])] += 1;
        hist[2][usize::from(q[2])] += 1;
        hist[3][usize::from(q[3])] += 1;
    }
    for &b in quads.remainder() {
        hist[0][usize::from(b)] += 1;
    }
    let collisions: u64 = (0..256)
        .map(|i| u64::from(hist[0][i] + hist[1][i] + hist[2][i] + hist[3][i]))
        .map(|c| c * c.saturating_sub(1))
        .sum();
    let n = piece.len() as u64;
    // Σ c(c-1) / n(n-1) estimates Σ p² without bias; uniform bytes give 1/256. The bound is
    // 2^-7.98 ≈ 1.014 / 256.
    256 * 1000 * collisions <= 1014 * n * (n - 1)
}

fn zstd_frame(level: i32, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(level)?;
    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
    c.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(true))?;
    c.compress(data)
}

/// Worker threads that compress jobs; dropping the pool closes the queue and joins them.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Result<Done, CompressError>>,
    workers: Vec<JoinHandle<()>>,
    max_in_flight: u64,
}

impl Pool {
    fn start(compression: Compression, threads: usize) -> Result<Self, CompressError> {
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (result_tx, results) = mpsc::channel();
        let mut pool = Pool {
            jobs: Some(job_tx),
            results,
            workers: Vec::new(),
            max_in_flight: 2 * threads as u64,
        };
        for i in 0..threads {
            let (rx, tx): (Arc<Mutex<Receiver<Job>>>, Sender<_>) =
                (Arc::clone(&job_rx), result_tx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("kiln-compress-{i}"))
                .spawn(move || worker(BlockCompressor::new(compression), &rx, &tx))
                .map_err(|source| CompressError::Spawn { source })?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }
}

fn worker(
    mut compressor: BlockCompressor,
    jobs: &Mutex<Receiver<Job>>,
    results: &Sender<Result<Done, CompressError>>,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        if results.send(compressor.compress(&job)).is_err() {
            return;
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.take();
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::process::Command;

    use super::*;
    use crate::digest::Sha256Digest;

    /// Deterministic, compressible input: words with runs of pseudo-random bytes between them.
    pub(crate) fn sample(len: usize) -> Vec<u8> {
        const WORDS: [&str; 8] = [
            "layer ",
            "kiln ",
            "reproducible ",
            "tar\n",
            "0755 ",
            "usr/bin/",
            "sha256:",
            "\0\0\0",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (state >> 33) as usize;
            if r % 5 == 0 {
                out.extend_from_slice(&state.to_le_bytes()[..(r >> 8) % 8]);
            } else {
                out.extend_from_slice(WORDS[r % WORDS.len()].as_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn encode(input: &[u8], compression: Compression, threads: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let stats = compress(input, &mut out, compression, threads).unwrap();
        assert_eq!(
            stats,
            EncodeStats {
                uncompressed: input.len() as u64,
                compressed: out.len() as u64
            }
        );
        out
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn tool(cmd: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
        crate::layer::write::tests::require_tool(cmd);
        let (ok, stdout, stderr) =
            crate::layer::write::tests::run_with_stdin(Command::new(cmd).args(args), input);
        assert!(ok, "{cmd} {args:?}: {stderr}");
        stdout
    }

    const EDGE_SIZES: [usize; 7] = [
        0,
        1,
        GZIP_BLOCK - 1,
        GZIP_BLOCK,
        GZIP_BLOCK + 1,
        2 * GZIP_BLOCK + 1,
        3 * GZIP_BLOCK,
    ];

    #[test]
    fn gzip_is_identical_for_1_2_and_8_threads_and_round_trips() {
        for len in EDGE_SIZES {
            for (kind, input) in [("text", sample(len)), ("noise", noise(len, len as u64 + 1))] {
                let one = encode(&input, Compression::gzip(), 1);
                assert_eq!(encode(&input, Compression::gzip(), 2), one, "{kind} {len}");
                assert_eq!(encode(&input, Compression::gzip(), 8), one, "{kind} {len}");
                assert_eq!(&one[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3]);
                assert_eq!(gunzip(&one), input, "{kind} {len}");
                assert_eq!(tool("gzip", &["-dc"], &one), input, "gzip -d, {kind} {len}");
            }
        }
    }

    #[test]
    fn gzip_passes_gzip_t_and_zcat_tar() {
        let mut tar = Vec::new();
        let mut tree = crate::layer::tree::FileTree::default();
        tree.entries.insert(
            "big".into(),
            crate::layer::tree::Entry {
                kind: crate::layer::tree::EntryKind::File(crate::layer::tree::Content::Inline(
                    sample(300_000).into(),
                )),
                meta: crate::layer::tree::Metadata::new(0o644, 0, 0, 0),
            },
        );
        crate::layer::write::write_tar(&tree, 0, &mut tar).unwrap();
        let gz = encode(&tar, Compression::gzip(), 2);
        tool("gzip", &["-t"], &gz);
        let listing = tool("sh", &["-c", "zcat | tar -tvf -"], &gz);
        assert!(String::from_utf8(listing)
            .unwrap()
            .contains("300000 1970-01-01 00:00 big"));
    }

    #[test]
    fn zstd_is_identical_for_1_2_and_8_threads_and_round_trips() {
        for len in [0, 1, ZSTD_CHUNK - 1, ZSTD_CHUNK, ZSTD_CHUNK + 1] {
            let input = sample(len);
            let one = encode(&input, Compression::zstd(), 1);
            assert_eq!(encode(&input, Compression::zstd(), 2), one, "len {len}");
            assert_eq!(encode(&input, Compression::zstd(), 8), one, "len {len}");
            assert_eq!(
                zstd::stream::decode_all(&one[..]).unwrap(),
                input,
                "len {len}"
            );
            assert_eq!(tool("zstd", &["-dc"], &one), input, "zstd -d, len {len}");
        }
    }

    #[test]
    fn gzip_writes_one_member_per_block() {
        let input = sample(2 * GZIP_BLOCK + 5);
        let gz = encode(&input, Compression::gzip(), 2);
        // A single-member reader stops after the first member: exactly the first block.
        let mut first = Vec::new();
        let mut reader = flate2::read::GzDecoder::new(&gz[..]);
        reader.read_to_end(&mut first).unwrap();
        assert_eq!(first, &input[..GZIP_BLOCK]);
        let members = gz
            .windows(10)
            .filter(|w| *w == [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3]);
        assert!(members.count() >= 3);
        // Every member ends with its block's CRC32 and length.
        assert_eq!(&gz[gz.len() - 4..], &5u32.to_le_bytes());
        assert_eq!(
            &gz[gz.len() - 8..gz.len() - 4],
            &crc32fast::hash(&input[2 * GZIP_BLOCK..]).to_le_bytes()
        );
        // Input ending on a block boundary gets no empty trailing member.
        let aligned = encode(&input[..GZIP_BLOCK], Compression::gzip(), 1);
        assert_eq!(aligned, &gz[..aligned.len()]);
    }

    /// Bytes no compressor can shrink (xorshift64*).
    fn noise(len: usize, mut state: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        out.truncate(len);
        out
    }

    #[test]
    fn incompressible_judgement_table() {
        let cases: [(&str, Vec<u8>, bool); 7] = [
            ("random 64 KiB", noise(PROBE, 1), true),
            ("random 4 KiB", noise(4096, 2), true),
            ("random under 4 KiB is never judged", noise(4095, 3), false),
            ("text", sample(PROBE), false),
            ("zeros", vec![0; PROBE], false),
            (
                "random with 1/8 text",
                [noise(PROBE * 7 / 8, 4), sample(PROBE / 8)].concat(),
                false,
            ),
            (
                "random bytes of 128 values (7 bits)",
                noise(PROBE, 5).iter().map(|b| b & 0x7f).collect(),
                false,
            ),
        ];
        for (name, data, want) in cases {
            assert_eq!(looks_incompressible(&data), want, "{name}");
        }
    }

    #[test]
    fn incompressible_runs_are_stored_and_compressible_runs_deflated() {
        // text | noise | text inside one block: three members, the middle one stored.
        let text = sample(3 * PROBE);
        let input = [&text[..2 * PROBE], &noise(3 * PROBE, 9), &text[2 * PROBE..]].concat();
        let gz = encode(&input, Compression::gzip(), 2);
        assert_eq!(gunzip(&gz), input);
        assert_eq!(tool("gzip", &["-dc"], &gz), input, "gzip -d");
        let header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3];
        let starts: Vec<usize> = (0..gz.len() - 10)
            .filter(|&i| gz[i..i + 10] == header)
            .collect();
        assert_eq!(starts.len(), 3, "{starts:?}");
        // The stored member: 3 × 64 KiB in four stored blocks of ≤ 65535 bytes, + 5 bytes each.
        assert_eq!(starts[2] - starts[1], 10 + 3 * PROBE + 4 * 5 + 8);
        assert_eq!(&gz[starts[1] + 10..starts[1] + 15], &[0, 0xff, 0xff, 0, 0]);
        // The text members are really compressed.
        assert!(starts[1] < PROBE, "first member is {} bytes", starts[1]);
        assert!(gz.len() - starts[2] < PROBE / 2);
    }

    #[test]
    fn block_boundaries_do_not_depend_on_write_sizes() {
        let input = sample(GZIP_BLOCK + 4000);
        let whole = encode(&input, Compression::gzip(), 1);
        let mut enc = LayerEncoder::new(Vec::new(), Compression::gzip(), 2).unwrap();
        for chunk in input.chunks(777) {
            enc.write_all(chunk).unwrap();
            enc.flush().unwrap();
        }
        assert_eq!(enc.finish().unwrap().0, whole);
    }

    #[test]
    fn known_answer_digests_pin_the_encoders() {
        // A change here changes every layer digest kiln produces: bump the encoder name in
        // `describe` (kiln-pgzip/N, kiln-pzstd/N) and say so in the changelog.
        let input = sample(3 * GZIP_BLOCK + 12345);
        let cases = [
            (
                Compression::gzip(),
                "sha256:1bc616d14b7b0e8db831e7738cb28fd1140e0c762f311aec75e5f0d54e435c15",
            ),
            (
                Compression::Gzip { level: 6 },
                "sha256:105bbea23abf1f9728580be97a537f1a1d0803d0bdbddee60bad7781331fbd67",
            ),
            (
                Compression::Gzip { level: 9 },
                "sha256:1be9d8639dd9267ba7dcde9bee44bb6a8f2b009a17628fc82962efeea0f16a15",
            ),
            (
                Compression::zstd(),
                "sha256:d3e4d8f44526b53ae695a916bb84e196bf227758b090a38f3a96043b3f4ee3c3",
            ),
            (
                Compression::None,
                "sha256:4b7f8a2ffddf9d86da8148ff016230da3bed50f352af8c3ffae4efeb3ea8b8c0",
            ),
        ];
        for (compression, want) in cases {
            let got = Sha256Digest::of(&encode(&input, compression, 2)).to_string();
            assert_eq!(got, want, "{}", compression.describe());
        }
        // Enough blocks for one thread to compress many in a row with the same (reused)
        // libdeflate compressor, and for three threads to share them out differently; with
        // incompressible stretches (stored members) across and inside blocks.
        let long = [
            sample(5 * GZIP_BLOCK + 3),
            noise(GZIP_BLOCK + PROBE / 2, 11),
            sample(5 * GZIP_BLOCK),
            noise(3 * PROBE, 12),
            sample(PROBE),
        ]
        .concat();
        for threads in [1, 3] {
            let got = Sha256Digest::of(&encode(&long, Compression::gzip(), threads)).to_string();
            assert_eq!(
                got, "sha256:a4de87e12eedd89d4c0f5e4f4db207e8acb073b1a026a6b50bef27138e844d2a",
                "{threads} threads"
            );
        }
    }

    #[test]
    fn describe_names_the_encoder_and_its_settings() {
        assert_eq!(
            Compression::gzip().describe(),
            "kiln-pgzip/2 libdeflate/1.26 level=1 block=1048576 probe=65536 stored-if-h2>=7.98 os=3"
        );
        assert_eq!(
            Compression::zstd().describe(),
            "kiln-pzstd/1 libzstd/1.5.7 level=3 chunk=4194304 checksum=1"
        );
        assert_eq!(Compression::None.describe(), "none");
        // The pinned libdeflate version must be the one Cargo.lock builds (libdeflate-sys's
        // version follows the C library's).
        let lock =
            fs_err::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
        let version = LIBDEFLATE.strip_prefix("libdeflate/").unwrap();
        assert!(
            lock.contains(&format!(
                "name = \"libdeflate-sys\"\nversion = \"{version}."
            )),
            "Cargo.lock has another libdeflate-sys"
        );
    }

    #[test]
    fn invalid_levels_are_refused() {
        for c in [
            Compression::Gzip { level: 10 },
            Compression::Zstd { level: 0 },
            Compression::Zstd { level: 20 },
        ] {
            assert!(
                matches!(
                    LayerEncoder::new(Vec::new(), c, 1),
                    Err(CompressError::InvalidLevel { .. })
                ),
                "{c:?}"
            );
        }
    }
}
