//! `kiln cache verify` and `kiln cache gc`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use super::args::{CacheCommand, CacheCommandArgs};
use super::printer::{human_size, outln};
use crate::store::Store;

pub fn run(args: CacheCommandArgs) -> Result<ExitCode> {
    match args.command {
        CacheCommand::Verify(a) => {
            let store = open(a.cache)?;
            let report = store.verify_all().context("failed to verify the cache")?;
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for d in &report.quarantined {
                    outln!(
                        "corrupt: {d} (moved to {})",
                        store.root().join("quarantine").join(d.hex()).display()
                    );
                }
                outln!(
                    "verified {} entries ({}): {} corrupt, {} records not authentic",
                    report.checked,
                    human_size(report.bytes),
                    report.quarantined.len(),
                    report.bad_records
                );
            }
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        CacheCommand::Gc(a) => {
            let store = open(a.cache)?;
            let keep = Duration::from_secs(a.keep_days.saturating_mul(86400));
            let report = store
                .gc(keep, SystemTime::now())
                .context("failed to collect the cache")?;
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                outln!(
                    "removed {} entries ({}), {} records, {} quarantined; kept {} entries ({})",
                    report.removed_blobs,
                    human_size(report.removed_bytes),
                    report.removed_records,
                    report.removed_quarantined,
                    report.kept_blobs,
                    human_size(report.kept_bytes)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn open(cache: Option<PathBuf>) -> Result<Store> {
    let root = super::build::cache_root(cache.as_deref())?;
    Ok(Store::open(&root)?)
}
