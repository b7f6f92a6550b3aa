//! `kiln copy SRC DST`, and the pieces every registry-aware command shares: the transports
//! (store, client, offline) built from the flags, and blob-transfer progress on stderr.

use super::printer::outln;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::args::{CacheArgs, CopyArgs, RegistryArgs};
use super::build::store_root;
use super::printer::{human_size, status};
use crate::digest::Sha256Digest;
use crate::image::copy::CopyReport;
use crate::image::{self, ImageRef, RegistryOptions, Transports};
use crate::recipe::Platform;
use crate::registry::{Direction, Progress};
use crate::store::Store;

/// Blob transfers on stderr: a bar per blob when stderr is a terminal, else one plain line
/// when a transfer starts and one when it ends.
pub struct StderrProgress {
    bars: Option<MultiProgress>,
    started: Mutex<BTreeMap<Sha256Digest, (Direction, Option<ProgressBar>)>>,
}

impl Default for StderrProgress {
    fn default() -> Self {
        Self {
            bars: std::io::stderr()
                .is_terminal()
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            started: Mutex::new(BTreeMap::new()),
        }
    }
}

fn short(d: &Sha256Digest) -> String {
    format!("sha256:{}", &d.hex()[..12])
}

impl Progress for StderrProgress {
    fn started(&self, digest: &Sha256Digest, total: Option<u64>, direction: Direction) {
        let verb = match direction {
            Direction::Download => "pulling",
            Direction::Upload => "pushing",
        };
        let bar = match &self.bars {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new(total.unwrap_or(0)));
                bar.set_style(
                    ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_message(format!("{verb} {}", short(digest)));
                Some(bar)
            }
            None => {
                let size = total
                    .map(|t| format!(" ({})", human_size(t)))
                    .unwrap_or_default();
                status(&format!("{verb} blob {}{size}", short(digest)));
                None
            }
        };
        if let Ok(mut m) = self.started.lock() {
            m.insert(*digest, (direction, bar));
        }
    }

    fn advanced(&self, digest: &Sha256Digest, bytes: u64) {
        if let Ok(m) = self.started.lock() {
            if let Some((_, Some(bar))) = m.get(digest) {
                bar.inc(bytes);
            }
        }
    }

    fn finished(&self, digest: &Sha256Digest, ok: bool) {
        let entry = self.started.lock().ok().and_then(|mut m| m.remove(digest));
        let (dir, bar) = match entry {
            Some((d, b)) => (Some(d), b),
            None => (None, None),
        };
        let verb = match (dir, ok) {
            (_, false) => "failed",
            (Some(Direction::Upload), true) => "pushed",
            _ => "pulled",
        };
        let line = format!("{verb} blob {}", short(digest));
        match (bar, &self.bars) {
            (Some(bar), Some(multi)) => {
                bar.finish_and_clear();
                multi.remove(&bar);
                let _ = multi.println(line);
            }
            _ => status(&line),
        }
    }
}

pub fn registry_options(args: &RegistryArgs) -> RegistryOptions {
    RegistryOptions {
        tls_verify: args.tls_verify,
        auth_file: args.authfile.clone(),
    }
}

/// The store, client and network policy for a command.
pub fn transports(cache: &CacheArgs, registry: &RegistryArgs) -> Result<Transports> {
    let store = Store::open(&store_root(cache)?)?;
    Ok(Transports::new(
        store,
        cache.offline,
        &registry_options(registry),
        Some(Box::new(StderrProgress::default())),
    )?)
}

/// Reports a copy on stderr.
pub fn report(dest: &str, r: &CopyReport) {
    match &r.push {
        Some(p) => status(&format!(
            "pushed {dest}@{}: {} blob(s) uploaded, {} mounted, {} already there; {} referrer(s), {} signature tag(s)",
            r.manifest_digest, p.uploaded, p.mounted, p.existed, p.referrers, p.attachments
        )),
        None => status(&format!("wrote {dest}")),
    }
}

pub fn run(args: CopyArgs) -> Result<ExitCode> {
    let src: ImageRef = args.source.parse()?;
    let dst: ImageRef = args.destination.parse()?;
    let ctx = transports(&args.cache, &args.registry)?;
    let platform = args.platform.clone().unwrap_or_else(Platform::host);
    let img = image::open_image_with(&src, Some(&platform), &ctx)
        .with_context(|| format!("failed to open {}", args.source))?;
    let r = image::copy_image(&img, &dst, &ctx, 0)
        .with_context(|| format!("failed to copy {} to {}", args.source, args.destination))?;
    report(&args.destination, &r);
    outln!("{}", r.manifest_digest);
    Ok(ExitCode::SUCCESS)
}
