//! Layer compression whose output is the same bytes for any thread count and any CPU.
//!
//! A layer's digest is computed over its *compressed* bytes, so the compressor is part of the
//! reproducibility contract. Ordinary parallel compressors do not promise identical output
//! across thread counts, and a single-threaded gzip of a 1 GB layer is slow, so kiln splits the
//! input at fixed offsets and compresses each piece independently; how the pieces are spread
//! over threads cannot change a byte.
//!
//! - **gzip** (`kiln-pgzip/1`, the pigz scheme): the input is cut into [`GZIP_BLOCK`]-byte
//!   blocks. Each block is raw deflate (zlib-rs) primed with the previous block's last 32 KiB
//!   as a dictionary and ended with a sync flush (byte-aligned, `00 00 ff ff`); the last block
//!   ends the stream instead. The pieces concatenate into one deflate stream inside one gzip
//!   member: header with mtime 0, no name, XFL from the level (2 for 9, 4 for 1, else 0, as
//!   gzip writes it), OS = 3 (Unix, as `gzip -n` writes it); trailer with the CRC32
//!   (per-block CRCs combined) and the length mod 2^32. Default level 6 (gzip's default).
//! - **zstd** (`kiln-pzstd/1`): the input is cut into [`ZSTD_CHUNK`]-byte chunks, each one an
//!   independent zstd frame (single-threaded libzstd, content size and checksum in the frame).
//!   Concatenated frames are a valid zstd stream. zstd's own multithreaded mode is not used:
//!   its output differs between one and several workers, and it needs the `zstdmt` build.
//!   Default level 3 (zstd's default).
//!
//! Why the output does not depend on the CPU: zlib-rs selects SIMD code (AVX2, NEON) only for
//! helpers with one exact answer (match-length comparison, hash-table sliding); its hash
//! function is a fixed multiply, unlike zlib-ng's CRC-based hash on SSE4.2. libzstd likewise
//! produces the same frames on every platform for a given version and parameters. What *does*
//! change the bytes is the encoder version, so [`Compression::describe`] names it for the
//! provenance, and known-answer tests pin the exact output digests: an upgrade of zlib-rs or
//! libzstd that changes them fails the tests instead of silently changing layer digests.
//!
//! Every block gets a fresh deflate state. Reusing one through `reset()` is measurably not
//! equivalent in zlib-rs 0.6.8 (with a dictionary, the output diverges after a few dozen
//! blocks), and would make a block's bytes depend on what its thread compressed before.
//!
//! Memory is bounded: at most `2 × threads` blocks are in flight; a worker pool compresses,
//! and the thread that feeds the encoder writes finished blocks in order.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

/// Input bytes per independently compressed gzip block (pigz's default).
pub const GZIP_BLOCK: usize = 128 * 1024;
/// Input bytes per independent zstd frame.
pub const ZSTD_CHUNK: usize = 4 * 1024 * 1024;
/// Bytes of the previous block used as the deflate dictionary (the deflate window).
const DICT: usize = 32 * 1024;
/// The gzip OS byte: 3 = Unix, what `gzip -n` writes on Linux.
const GZIP_OS: u8 = 3;
/// The deflate implementation and version whose output the known-answer tests pin.
const ZLIB_RS: &str = "zlib-rs/0.6.8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip { level: u32 },
    Zstd { level: i32 },
    None,
}

impl Compression {
    pub const DEFAULT_GZIP_LEVEL: u32 = 6;
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

    pub fn gzip() -> Self {
        Compression::Gzip {
            level: Self::DEFAULT_GZIP_LEVEL,
        }
    }

    pub fn zstd() -> Self {
        Compression::Zstd {
            level: Self::DEFAULT_ZSTD_LEVEL,
        }
    }

    /// The encoder and every setting that determines its output, for the provenance.
    pub fn describe(&self) -> String {
        match self {
            Compression::Gzip { level } => {
                format!("kiln-pgzip/1 {ZLIB_RS} level={level} block={GZIP_BLOCK} dict={DICT} os={GZIP_OS}")
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
        source: flate2::CompressError,
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
    data: Arc<Vec<u8>>,
    /// The previous block (gzip only), whose tail is the dictionary.
    prev: Option<Arc<Vec<u8>>>,
    last: bool,
}

struct Done {
    seq: u64,
    bytes: Vec<u8>,
    crc: crc32fast::Hasher,
}

/// A `Write` sink that compresses a layer. Call [`LayerEncoder::finish`] at the end; dropping
/// it without `finish` leaves the output incomplete.
pub struct LayerEncoder<W: Write> {
    out: W,
    compression: Compression,
    block_size: usize,
    buf: Vec<u8>,
    prev: Option<Arc<Vec<u8>>>,
    next_seq: u64,
    next_to_write: u64,
    ready: BTreeMap<u64, Done>,
    pool: Option<Pool>,
    crc: crc32fast::Hasher,
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
        let mut encoder = Self {
            out,
            compression,
            block_size,
            buf: Vec::with_capacity(block_size),
            prev: None,
            next_seq: 0,
            next_to_write: 0,
            ready: BTreeMap::new(),
            pool,
            crc: crc32fast::Hasher::new(),
            stats: EncodeStats::default(),
        };
        if let Compression::Gzip { level } = compression {
            let xfl = match level {
                9 => 2,
                1 => 4,
                _ => 0,
            };
            encoder.emit(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, GZIP_OS])?;
        }
        Ok(encoder)
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

    /// Compresses the last block, writes the trailer and flushes; returns the sink.
    pub fn finish(mut self) -> Result<(W, EncodeStats), CompressError> {
        self.dispatch(true)?;
        while self.next_to_write < self.next_seq {
            self.receive_one()?;
        }
        if let Compression::Gzip { .. } = self.compression {
            let crc = self.crc.clone().finalize();
            let mut trailer = [0u8; 8];
            trailer[..4].copy_from_slice(&crc.to_le_bytes());
            trailer[4..].copy_from_slice(&(self.stats.uncompressed as u32).to_le_bytes());
            self.emit(&trailer)?;
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
        let data = Arc::new(data);
        let prev = match self.compression {
            Compression::Gzip { .. } => self.prev.replace(Arc::clone(&data)),
            _ => None,
        };
        let job = Job {
            seq: self.next_seq,
            data,
            prev,
            last,
        };
        self.next_seq += 1;
        let Some(max_in_flight) = self.pool.as_ref().map(|p| p.max_in_flight) else {
            let done = compress_job(self.compression, &job)?;
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
            self.crc.combine(&done.crc);
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

fn compress_job(compression: Compression, job: &Job) -> Result<Done, CompressError> {
    let mut crc = crc32fast::Hasher::new();
    let bytes = match compression {
        Compression::Gzip { level } => {
            crc.update(&job.data);
            let dict = job
                .prev
                .as_deref()
                .map(|p| &p[p.len() - DICT.min(p.len())..]);
            deflate_block(level, dict, &job.data, job.last).map_err(|source| {
                CompressError::Deflate {
                    block: job.seq,
                    source,
                }
            })?
        }
        Compression::Zstd { level } => {
            zstd_frame(level, &job.data).map_err(|source| CompressError::Zstd {
                block: job.seq,
                source,
            })?
        }
        Compression::None => job.data.to_vec(),
    };
    Ok(Done {
        seq: job.seq,
        bytes,
        crc,
    })
}

/// One block of raw deflate: sync-flushed (byte-aligned) unless it is the last one.
fn deflate_block(
    level: u32,
    dict: Option<&[u8]>,
    data: &[u8],
    last: bool,
) -> Result<Vec<u8>, flate2::CompressError> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if let Some(dict) = dict {
        c.set_dictionary(dict)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        let status = c.compress_vec(&data[consumed..], &mut out, flush)?;
        let all_in = c.total_in() as usize == data.len();
        // zlib's rule: a flush is complete once a call leaves output space unused.
        let done = if last {
            status == Status::StreamEnd
        } else {
            all_in && out.len() < out.capacity()
        };
        if done {
            return Ok(out);
        }
    }
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
                .spawn(move || worker(compression, &rx, &tx))
                .map_err(|source| CompressError::Spawn { source })?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }
}

fn worker(
    compression: Compression,
    jobs: &Mutex<Receiver<Job>>,
    results: &Sender<Result<Done, CompressError>>,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        if results.send(compress_job(compression, &job)).is_err() {
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
    use std::process::{Command, Stdio};

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

    fn tool(cmd: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
        if !crate::layer::write::tests::have_tool(cmd) {
            return None;
        }
        let mut child = Command::new(cmd)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert!(
            out.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(out.stdout)
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
            let input = sample(len);
            let one = encode(&input, Compression::gzip(), 1);
            assert_eq!(encode(&input, Compression::gzip(), 2), one, "len {len}");
            assert_eq!(encode(&input, Compression::gzip(), 8), one, "len {len}");
            assert_eq!(&one[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
            assert_eq!(gunzip(&one), input, "len {len}");
            if let Some(out) = tool("gzip", &["-dc"], &one) {
                assert_eq!(out, input, "gzip -d, len {len}");
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
        let Some(_) = tool("gzip", &["-t"], &gz) else {
            return;
        };
        let listing = tool("sh", &["-c", "zcat | tar -tvf -"], &gz).unwrap();
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
            if let Some(out) = tool("zstd", &["-dc"], &one) {
                assert_eq!(out, input, "zstd -d, len {len}");
            }
        }
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
                "sha256:3f6f2779407503f8135760c572cab2b0443bbfcc2ae45ecd15fb1834faad7326",
            ),
            (
                Compression::Gzip { level: 9 },
                "sha256:af9c0fe994a48292fc443cee56d3fad9ed408f7875044482b6acae25e18afa17",
            ),
            (
                Compression::Gzip { level: 1 },
                "sha256:81931484e07bda139311fa680e180d019dc6eb7414d318acc7a20cd61587ceba",
            ),
            (
                Compression::zstd(),
                "sha256:9630523e4fd2ad5dc6719a75c111dd7b699691eae2a221144ebf4fd95a7e880e",
            ),
            (
                Compression::None,
                "sha256:4db8b435711f3ce91a97b61264f509f16d3442e01cbcce46f03f92112320dba7",
            ),
        ];
        for (compression, want) in cases {
            let got = Sha256Digest::of(&encode(&input, compression, 2)).to_string();
            assert_eq!(got, want, "{}", compression.describe());
        }
        // Enough blocks for one thread to compress many in a row: a deflate state reused with
        // `reset()` (zlib-rs 0.6.8) diverges from a fresh one at block 23 of this input, which
        // would make the bytes depend on which thread compressed which block.
        let long = sample(32 * GZIP_BLOCK + 1);
        for threads in [1, 3] {
            let got = Sha256Digest::of(&encode(&long, Compression::gzip(), threads)).to_string();
            assert_eq!(
                got, "sha256:b7f4aad63609af91767b3275ee5fd1a8d0c37f0c4e565a1db1d223bb9580d255",
                "{threads} threads"
            );
        }
    }

    #[test]
    fn describe_names_the_encoder_and_its_settings() {
        assert_eq!(
            Compression::gzip().describe(),
            "kiln-pgzip/1 zlib-rs/0.6.8 level=6 block=131072 dict=32768 os=3"
        );
        assert_eq!(
            Compression::zstd().describe(),
            "kiln-pzstd/1 libzstd/1.5.7 level=3 chunk=4194304 checksum=1"
        );
        assert_eq!(Compression::None.describe(), "none");
        // The pinned zlib-rs version must be the one Cargo.lock builds.
        let lock =
            fs_err::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
        let (name, version) = ZLIB_RS.split_once('/').unwrap();
        assert!(
            lock.contains(&format!("name = \"{name}\"\nversion = \"{version}\"")),
            "Cargo.lock has another {name}"
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
