//! Compresses stdin to stdout with kiln's layer encoder, for benchmarks and spot checks:
//! `compress_layer gzip|zstd|none [LEVEL] [THREADS] < layer.tar > layer.tar.gz`.
//! Prints the encoder description, sizes and throughput to stderr.

use std::io::{self, BufWriter};
use std::time::Instant;

use kiln::layer::compress::{compress, Compression};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let codec = args.first().map(String::as_str).unwrap_or("gzip");
    let level = args.get(1).map(|s| s.parse::<i64>()).transpose()?;
    let threads = args
        .get(2)
        .map(|s| s.parse::<usize>())
        .transpose()?
        .unwrap_or(1);
    let compression = match codec {
        "gzip" => Compression::Gzip {
            level: level.map_or(Ok(Compression::DEFAULT_GZIP_LEVEL), u32::try_from)?,
        },
        "zstd" => Compression::Zstd {
            level: level.map_or(Ok(Compression::DEFAULT_ZSTD_LEVEL), i32::try_from)?,
        },
        "none" => Compression::None,
        other => anyhow::bail!("unknown codec `{other}`: expected gzip, zstd or none"),
    };
    let start = Instant::now();
    let stats = compress(
        io::stdin().lock(),
        BufWriter::new(io::stdout().lock()),
        compression,
        threads,
    )?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{} threads={threads} in={} out={} ratio={:.4} secs={secs:.3} MB/s={:.1}",
        compression.describe(),
        stats.uncompressed,
        stats.compressed,
        stats.compressed as f64 / stats.uncompressed.max(1) as f64,
        stats.uncompressed as f64 / 1e6 / secs
    );
    Ok(())
}
