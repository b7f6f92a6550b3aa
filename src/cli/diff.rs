//! `kiln diff A B`: the layered comparison, as a text report (grouped by category, the most
//! important differences first) or JSON, and an exit code CI can gate on.

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::{CacheArgs, DiffArgs, DiffCheckArgs};
use super::printer::human_size;
use crate::diff::{
    self, Class, DiffOptions, DiffReport, FieldDiff, FileFacts, Glob, LayerStatus, Verdict,
};
use crate::image::{self, ImageRef, OpenedImage, Transports};
use crate::recipe::Platform;

pub fn run(args: DiffArgs) -> Result<ExitCode> {
    let platform = platform(&args.check);
    let cache = CacheArgs {
        cache: args.cache.clone(),
        offline: false,
        mirror: Vec::new(),
        max_download_size: crate::fetch::DEFAULT_MAX_DOWNLOAD_SIZE,
    };
    let ctx = super::copy::transports(&cache, &args.registry)?;
    let a = open(&args.a, &platform, &ctx)?;
    let b = open(&args.b, &platform, &ctx)?;
    let report = diff::diff_images(&a, &b, &options(&args.check))
        .with_context(|| format!("failed to compare {} with {}", args.a, args.b))?;
    let accept = accept(&args.check);
    if args.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        emit(&render(&report, accept, args.max_lines))?;
    }
    Ok(exit_code(report.verdict, accept))
}

/// Writes `text` to stdout; a closed pipe (`kiln diff … | head`) is not an error, and, unlike
/// `outln!` (which exits 0 on a closed pipe), the verdict's exit code still stands: a
/// `different` verdict must not turn into a pass because a reader stopped early.
pub fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("failed to write to stdout")
        }
        _ => Ok(()),
    }
}

pub fn platform(check: &DiffCheckArgs) -> Platform {
    check.platform.clone().unwrap_or_else(Platform::host)
}

pub fn open(reference: &str, platform: &Platform, ctx: &Transports) -> Result<OpenedImage> {
    let r: ImageRef = reference.parse()?;
    image::open_image_with(&r, Some(platform), ctx)
        .with_context(|| format!("failed to open {reference}"))
}

pub fn options(check: &DiffCheckArgs) -> DiffOptions {
    DiffOptions {
        ignore: check.ignore.iter().map(|g| Glob::new(g)).collect(),
        threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
    }
}

/// The weakest verdict that passes.
pub fn accept(check: &DiffCheckArgs) -> Verdict {
    if check.semantic {
        return Verdict::Equivalent;
    }
    match check.accept.as_deref() {
        Some("same-layers") => Verdict::SameLayers,
        Some("equivalent") => Verdict::Equivalent,
        _ => Verdict::Identical,
    }
}

fn exit_code(verdict: Verdict, accept: Verdict) -> ExitCode {
    if verdict.passes(accept) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn short(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

/// The text report.
pub fn render(r: &DiffReport, accept: Verdict, max_lines: usize) -> String {
    let mut out = String::new();
    let pass = r.verdict.passes(accept);
    let note = if !pass && r.verdict == Verdict::Equivalent {
        "; --semantic would pass"
    } else if !pass && r.verdict == Verdict::SameLayers {
        "; --accept same-layers would pass"
    } else {
        ""
    };
    out.push_str(&format!(
        "verdict: {} ({}: accepting {} or better{note})\n",
        r.verdict.as_str(),
        if pass { "pass" } else { "FAIL" },
        accept.as_str(),
    ));
    for (label, side) in [("a", &r.a), ("b", &r.b)] {
        out.push_str(&format!(
            "  {label}: {}  manifest {}  config {}  {}  {} layer{}\n",
            side.reference,
            short(&side.manifest),
            short(&side.config),
            side.platform,
            side.layers.len(),
            if side.layers.len() == 1 { "" } else { "s" }
        ));
        if let Some(index) = &side.index {
            out.push_str(&format!("     (from index {index})\n"));
        }
    }
    if r.verdict == Verdict::Identical {
        out.push_str("\nthe manifests are the same: nothing else can differ\n");
        return out;
    }
    if !r.summary.is_empty() {
        out.push_str("\ndifferences, most important first:\n");
        for s in &r.summary {
            out.push_str(&format!(
                "  {:<18} {:>7}  {}\n",
                s.class.as_str(),
                s.count,
                if s.significant {
                    "significant"
                } else {
                    "cosmetic"
                }
            ));
        }
    }
    if !r.files.is_empty() {
        out.push_str("\nfiles (applied filesystem, a -> b):\n");
        for s in &r.summary {
            let paths: Vec<_> = r
                .files
                .iter()
                .filter(|f| f.classes.contains(&s.class))
                .collect();
            if paths.is_empty() {
                continue;
            }
            out.push_str(&format!("  {} ({}):\n", s.class.as_str(), paths.len()));
            for f in paths.iter().take(max_lines) {
                out.push_str(&format!(
                    "    {}  {}\n",
                    f.path,
                    file_change(s.class, f.a.as_ref(), f.b.as_ref())
                ));
            }
            if paths.len() > max_lines {
                out.push_str(&format!(
                    "    … and {} more (--max-lines, or --json for all)\n",
                    paths.len() - max_lines
                ));
            }
        }
    } else if !r.files_compared {
        out.push_str("\nfiles: not read (the uncompressed layers are the same)\n");
    }
    if !r.config.is_empty() {
        out.push_str("\nconfig:\n");
        let mut config: Vec<&FieldDiff> = r.config.iter().collect();
        config.sort_by_key(|d| d.class);
        for d in config.iter().take(max_lines * 3) {
            out.push_str(&format!("  {}\n", field_line(d)));
        }
    }
    let layer_lines: Vec<String> = r
        .layers
        .iter()
        .filter(|l| l.status != LayerStatus::Same)
        .map(|l| {
            let side = |s: &diff::ImageSide| {
                s.layers
                    .get(l.index)
                    .map(|x| format!("{} ({})", short(&x.digest), human_size(x.size)))
                    .unwrap_or_else(|| "-".into())
            };
            let what = match l.status {
                LayerStatus::CompressionOnly if l.explanation.is_empty() => {
                    "compression only: same tar, same headers, other encoder or level".to_string()
                }
                LayerStatus::CompressionOnly => {
                    format!("compression only: {}", l.explanation.join("; "))
                }
                LayerStatus::Different if l.explanation.is_empty() => "different tar".into(),
                LayerStatus::Different => format!("different tar: {}", l.explanation.join(", ")),
                LayerStatus::OnlyInA => "only in a".into(),
                LayerStatus::OnlyInB => "only in b".into(),
                LayerStatus::Same => unreachable!("filtered"),
            };
            format!(
                "  layer {}: {what}\n    {} -> {}\n",
                l.index,
                side(&r.a),
                side(&r.b)
            )
        })
        .collect();
    if !layer_lines.is_empty() {
        out.push_str("\nlayers:\n");
        for l in layer_lines {
            out.push_str(&l);
        }
    }
    if !r.tar.is_empty() {
        out.push_str("\ntar headers:\n");
        for d in &r.tar {
            out.push_str(&format!("  {}\n", field_line(d)));
        }
    }
    if !r.manifest.is_empty() {
        out.push_str("\nmanifest:\n");
        for d in &r.manifest {
            out.push_str(&format!("  {}\n", field_line(d)));
        }
    }
    if !r.summary.is_empty() {
        out.push_str("\nhints:\n");
        for s in &r.summary {
            out.push_str(&format!("  {}: {}\n", s.class.as_str(), s.hint));
        }
    }
    if !r.ignored.is_empty() {
        out.push_str(&format!("\nignored paths: {}\n", r.ignored.join(", ")));
    }
    out
}

fn field_line(d: &FieldDiff) -> String {
    let mut name = d.field.clone();
    if let Some(layer) = d.layer {
        name = format!("layer {layer}: {name}");
    }
    if let Some(k) = &d.key {
        name = format!("{name} {k}");
    }
    let show = |v: &serde_json::Value| {
        if v.is_null() {
            "(none)".to_string()
        } else {
            let s = v.to_string();
            if s.chars().count() > 120 {
                format!("{}…", s.chars().take(120).collect::<String>())
            } else {
                s
            }
        }
    };
    format!(
        "{:<10} {name}: {} -> {}",
        d.class.as_str(),
        show(&d.a),
        show(&d.b)
    )
}

fn describe(f: &FileFacts) -> String {
    let mut s = format!("{} {} {}:{}", f.kind, f.mode, f.uid, f.gid);
    if let Some(size) = f.size {
        s.push_str(&format!(" {}", human_size(size)));
    }
    if let Some(t) = &f.target {
        s.push_str(&format!(" -> {t}"));
    }
    s
}

fn file_change(class: Class, a: Option<&FileFacts>, b: Option<&FileFacts>) -> String {
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        (Some(a), None) => return describe(a),
        (None, Some(b)) => return describe(b),
        (None, None) => return String::new(),
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    match class {
        Class::Type => format!("{} -> {}", a.kind, b.kind),
        Class::Content => format!(
            "{} ({}) -> {} ({})",
            short(&opt(&a.sha256)),
            human_size(a.size.unwrap_or(0)),
            short(&opt(&b.sha256)),
            human_size(b.size.unwrap_or(0))
        ),
        Class::LinkTarget => format!("-> {} became -> {}", opt(&a.target), opt(&b.target)),
        Class::Hardlink => format!(
            "link group {} -> {}",
            opt(&a.hardlink_group),
            opt(&b.hardlink_group)
        ),
        Class::Mode => format!("{} -> {}", a.mode, b.mode),
        Class::Owner => format!("{}:{} -> {}:{}", a.uid, a.gid, b.uid, b.gid),
        Class::Xattr => format!(
            "{:?} -> {:?}",
            a.xattrs.keys().collect::<Vec<_>>(),
            b.xattrs.keys().collect::<Vec<_>>()
        ),
        Class::Mtime => format!(
            "{} -> {}{}",
            a.mtime,
            b.mtime,
            match (a.implicit, b.implicit) {
                (true, false) => " (implicit parent in a)",
                (false, true) => " (implicit parent in b)",
                _ => "",
            }
        ),
        _ => String::new(),
    }
}
