//! The image comparison engine and its verdict taxonomy.
//!
//! Auditors hold a downloaded image and a rebuilt one and need to know exactly how they differ
//! and why; CI needs a verdict to gate on. Raw-tar tools miss that two layouts of the same
//! files are the same filesystem, file-level tools miss metadata and digests; this engine walks
//! every level — index, manifest, config, layers, the applied filesystem, the raw tar headers
//! — and classifies each difference ([`Class`]), with a hint for what would remove it.
//!
//! It reads as little as the verdict needs: nothing past the manifest when the manifest
//! digests match, only layer headers when the diff_ids match, and otherwise every distinct
//! layer blob exactly once (a layer both images share is read once), streamed and never
//! extracted ([`scan`]). Memory is bounded by the file-tree metadata, not by layer sizes.

mod applied;
mod compression;
mod config;
mod files;
mod glob;
mod report;
mod scan;
mod statement;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

pub use applied::AppliedFs;
pub use glob::Glob;
pub use report::{
    Class, ClassSummary, DiffReport, FieldDiff, FileFacts, ImageSide, LayerDiff, LayerSide,
    LayerStatus, Verdict, SCHEMA,
};
#[cfg(test)]
pub(crate) use scan::scan_reader;
pub use scan::{
    scan_layer, scan_layer_capturing, Capture, FileDigest, LayerScan, NodeKind, TarFacts,
};
pub use statement::{rebuild_statement, RebuildFacts, NOT_INDEPENDENT, REBUILD_PREDICATE_TYPE};

use crate::digest::Sha256Digest;
use crate::image::layout::digest_of;
use crate::image::{ImageError, OpenedImage};

pub type Result<T, E = DiffError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("failed to read {what}")]
    Image {
        what: String,
        #[source]
        source: ImageError,
    },
    #[error("failed to read layer {digest}")]
    Blob {
        digest: Sha256Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to decompress layer {digest}")]
    Decompress {
        digest: Sha256Digest,
        #[source]
        source: crate::layer::decompress::DecompressError,
    },
    #[error("failed to read the tar of layer {digest}")]
    Tar {
        digest: Sha256Digest,
        #[source]
        source: crate::layer::read::ReadError,
    },
    #[error("failed to read layer {digest}")]
    Member {
        digest: Sha256Digest,
        #[source]
        source: crate::layer::member::MemberError,
    },
    #[error("failed to read layer {digest}: the hard link `{path}` names `{target}`: {reason}")]
    Hardlink {
        digest: Sha256Digest,
        path: String,
        target: String,
        reason: &'static str,
    },
    #[error(
        "failed to verify layer {index} of {reference}: its tar has digest {actual}, the config's \
         diff_id is {expected}"
    )]
    DiffIdMismatch {
        reference: String,
        index: usize,
        expected: String,
        actual: Sha256Digest,
    },
    #[error("failed to parse the config of {reference} as JSON")]
    BadConfig {
        reference: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to read {reference}: it has {layers} layers but {diff_ids} diff_ids")]
    LayerCount {
        reference: String,
        layers: usize,
        diff_ids: usize,
    },
}

/// How to compare.
#[derive(Clone, Debug)]
pub struct DiffOptions {
    /// Paths of the applied filesystem to leave out of `files` (and so of the verdict).
    pub ignore: Vec<Glob>,
    /// Layers read in parallel.
    pub threads: usize,
}

impl Default for DiffOptions {
    fn default() -> Self {
        Self {
            ignore: Vec::new(),
            threads: 2,
        }
    }
}

/// Compares image `a` with image `b` (think "upstream" and "rebuilt").
pub fn diff_images(a: &OpenedImage, b: &OpenedImage, opts: &DiffOptions) -> Result<DiffReport> {
    let side_a = side(a)?;
    let side_b = side(b)?;
    let mut report = DiffReport {
        schema: SCHEMA,
        verdict: Verdict::Identical,
        a: side_a,
        b: side_b,
        summary: Vec::new(),
        manifest: Vec::new(),
        layers: Vec::new(),
        config: Vec::new(),
        files: Vec::new(),
        tar: Vec::new(),
        ignored: opts.ignore.iter().map(|g| g.as_str().to_string()).collect(),
        files_compared: false,
    };
    if a.manifest_digest == b.manifest_digest {
        report.layers = (0..a.manifest.layers().len())
            .map(|index| LayerDiff {
                index,
                status: LayerStatus::Same,
                explanation: Vec::new(),
            })
            .collect();
        report.summarize();
        return Ok(report);
    }
    report.manifest = manifest_diffs(a, b);
    let config_a = parse_config(a)?;
    let config_b = parse_config(b)?;
    report.config = config::compare(&config_a, &config_b);

    let same_diff_ids = a.diff_ids() == b.diff_ids();
    let scans = if same_diff_ids {
        // Same uncompressed layers: the filesystems are equal by construction; only the
        // compressed headers can explain the blobs.
        for (i, l) in report.a.layers.iter_mut().enumerate() {
            l.compression = Some(scan::read_compression(a, &layer_digest(a, i)?)?);
        }
        for (i, l) in report.b.layers.iter_mut().enumerate() {
            l.compression = Some(scan::read_compression(b, &layer_digest(b, i)?)?);
        }
        None
    } else {
        let scans = scan_all(a, b, opts.threads)?;
        for (side, img) in [(&mut report.a, a), (&mut report.b, b)] {
            for (i, l) in side.layers.iter_mut().enumerate() {
                let scan = &scans[&layer_digest(img, i)?];
                l.compression = Some(scan.compression.clone());
                l.tar = Some(scan.tar.clone());
            }
        }
        Some(scans)
    };
    report.layers = layer_diffs(&report.a, &report.b);

    if let Some(scans) = scans {
        let stack = |img: &OpenedImage| -> Result<Vec<&LayerScan>> {
            (0..img.manifest.layers().len())
                .map(|i| Ok(&scans[&layer_digest(img, i)?]))
                .collect()
        };
        let fs_a = AppliedFs::apply(stack(a)?)?;
        let fs_b = AppliedFs::apply(stack(b)?)?;
        report.files = files::compare(&fs_a, &fs_b, &opts.ignore);
        report.files_compared = true;
        report.tar = tar_diffs(&report.a, &report.b, &stack(a)?, &stack(b)?);
        let (only_a, only_b) = files::parent_entries(&fs_a, &fs_b, &opts.ignore);
        if !only_a.is_empty() || !only_b.is_empty() {
            let listed = |paths: Vec<String>| json!({"count": paths.len(), "paths": paths.into_iter().take(scan::MAX_LISTED_DUPLICATES).collect::<Vec<_>>()});
            report.tar.push(FieldDiff {
                class: Class::ParentEntries,
                field: "parent directory entries".into(),
                key: None,
                layer: None,
                a: listed(only_a),
                b: listed(only_b),
            });
        }
        explain_different_layers(&mut report);
        if report.a.layers.len() != report.b.layers.len() {
            report.manifest.push(FieldDiff {
                class: Class::LayerBoundaries,
                field: "layers".into(),
                key: None,
                layer: None,
                a: json!(report.a.layers.len()),
                b: json!(report.b.layers.len()),
            });
        }
    }

    let significant = report
        .files
        .iter()
        .any(|f| f.classes.iter().any(|c| c.is_significant()))
        || report.config.iter().any(|d| d.class.is_significant());
    report.verdict = if significant {
        Verdict::Different
    } else if same_diff_ids {
        Verdict::SameLayers
    } else {
        Verdict::Equivalent
    };
    report.summarize();
    Ok(report)
}

fn parse_config(img: &OpenedImage) -> Result<Value> {
    serde_json::from_slice(&img.config_bytes).map_err(|source| DiffError::BadConfig {
        reference: img.reference.clone(),
        source,
    })
}

fn layer_digest(img: &OpenedImage, index: usize) -> Result<Sha256Digest> {
    digest_of(&img.manifest.layers()[index]).map_err(|source| DiffError::Image {
        what: format!("layer {index} of {}", img.reference),
        source,
    })
}

fn side(img: &OpenedImage) -> Result<ImageSide> {
    let diff_ids = img.diff_ids();
    if diff_ids.len() != img.manifest.layers().len() {
        return Err(DiffError::LayerCount {
            reference: img.reference.clone(),
            layers: img.manifest.layers().len(),
            diff_ids: diff_ids.len(),
        });
    }
    Ok(ImageSide {
        reference: img.reference.clone(),
        index: (img.resolved_digest != img.manifest_digest)
            .then(|| img.resolved_digest.to_string()),
        manifest: img.manifest_digest.to_string(),
        manifest_media_type: img.manifest_media_type.clone(),
        config: img.manifest.config().digest().to_string(),
        platform: img.platform(),
        layers: img
            .manifest
            .layers()
            .iter()
            .zip(&diff_ids)
            .map(|(l, d)| LayerSide {
                digest: l.digest().to_string(),
                size: l.size(),
                media_type: l.media_type().to_string(),
                diff_id: d.clone(),
                compression: None,
                tar: None,
            })
            .collect(),
    })
}

fn manifest_diffs(a: &OpenedImage, b: &OpenedImage) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let meta = |field: &str, key: Option<String>, x: Value, y: Value| FieldDiff {
        class: Class::ManifestMetadata,
        field: field.to_string(),
        key,
        layer: None,
        a: x,
        b: y,
    };
    if a.manifest_media_type != b.manifest_media_type {
        out.push(meta(
            "media type",
            None,
            json!(a.manifest_media_type),
            json!(b.manifest_media_type),
        ));
    }
    let ann = |img: &OpenedImage| img.manifest.annotations().clone().unwrap_or_default();
    let (aa, ab) = (ann(a), ann(b));
    let keys: std::collections::BTreeSet<&String> = aa.keys().chain(ab.keys()).collect();
    for k in keys {
        if aa.get(k) != ab.get(k) {
            out.push(meta(
                "annotations",
                Some(k.clone()),
                json!(aa.get(k)),
                json!(ab.get(k)),
            ));
        }
    }
    for (i, (la, lb)) in a
        .manifest
        .layers()
        .iter()
        .zip(b.manifest.layers())
        .enumerate()
    {
        if la.media_type() != lb.media_type() {
            out.push(meta(
                "layer media type",
                Some(i.to_string()),
                json!(la.media_type().to_string()),
                json!(lb.media_type().to_string()),
            ));
        }
    }
    out
}

/// Reads every distinct layer blob of both images once, `threads` at a time, and checks each
/// against its diff_id.
fn scan_all(
    a: &OpenedImage,
    b: &OpenedImage,
    threads: usize,
) -> Result<BTreeMap<Sha256Digest, LayerScan>> {
    let mut jobs: Vec<(&OpenedImage, usize, Sha256Digest)> = Vec::new();
    for img in [a, b] {
        for i in 0..img.manifest.layers().len() {
            let d = layer_digest(img, i)?;
            if !jobs.iter().any(|(_, _, j)| *j == d) {
                jobs.push((img, i, d));
            }
        }
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<LayerScan>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, jobs.len().max(1)) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some((img, i, digest)) = jobs.get(k) else {
                    break;
                };
                let size = img.manifest.layers()[*i].size();
                let result = scan_layer(img, digest, size).and_then(|scan| {
                    let expected = img.diff_ids()[*i].clone();
                    if scan.diff_id.to_string() != expected {
                        return Err(DiffError::DiffIdMismatch {
                            reference: img.reference.clone(),
                            index: *i,
                            expected,
                            actual: scan.diff_id,
                        });
                    }
                    Ok(scan)
                });
                let failed = result.is_err();
                results.lock().expect("no worker panics")[k] = Some(result);
                if failed {
                    // Let the other workers stop at their next job.
                    next.store(usize::MAX / 2, Ordering::SeqCst);
                }
            });
        }
    });
    let mut out = BTreeMap::new();
    let mut first_error = None;
    for r in results
        .into_inner()
        .expect("no worker panics")
        .into_iter()
        .flatten()
    {
        match r {
            Ok(scan) => {
                out.insert(scan.digest, scan);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn layer_diffs(a: &ImageSide, b: &ImageSide) -> Vec<LayerDiff> {
    let n = a.layers.len().max(b.layers.len());
    (0..n)
        .map(|index| {
            let (status, explanation) = match (a.layers.get(index), b.layers.get(index)) {
                (Some(x), Some(y)) if x.digest == y.digest => (LayerStatus::Same, Vec::new()),
                (Some(x), Some(y)) if x.diff_id == y.diff_id => {
                    let explanation = match (&x.compression, &y.compression) {
                        (Some(cx), Some(cy)) => cx.differences(cy),
                        _ => Vec::new(),
                    };
                    (LayerStatus::CompressionOnly, explanation)
                }
                (Some(_), Some(_)) => (LayerStatus::Different, Vec::new()),
                (Some(_), None) => (LayerStatus::OnlyInA, Vec::new()),
                _ => (LayerStatus::OnlyInB, Vec::new()),
            };
            LayerDiff {
                index,
                status,
                explanation,
            }
        })
        .collect()
}

/// Says why each `different` layer pair differs: its tar-level classes (with those compared
/// over all layers), and `files` when the applied filesystems differ. A pair that differs for neither reason gets a `tar-bytes`
/// difference, so no layer is ever "different" without a class.
fn explain_different_layers(report: &mut DiffReport) {
    let files_differ = !report.files.is_empty();
    let same_count = report.a.layers.len() == report.b.layers.len();
    for layer in &mut report.layers {
        if layer.status != LayerStatus::Different {
            continue;
        }
        let mut why: Vec<String> = Vec::new();
        // This pair's tar-level classes, and those found over all layers (the applied
        // filesystems; every layer when the counts differ).
        for d in report
            .tar
            .iter()
            .filter(|d| d.layer.is_none_or(|l| l == layer.index))
        {
            let class = d.class.as_str().to_string();
            if !why.contains(&class) {
                why.push(class);
            }
        }
        if files_differ {
            why.push("files".into());
        }
        if why.is_empty() && same_count {
            let entries = |s: &ImageSide| {
                s.layers[layer.index]
                    .tar
                    .as_ref()
                    .map(|t| json!({"entries": t.entries}))
                    .unwrap_or(Value::Null)
            };
            report.tar.push(FieldDiff {
                class: Class::TarBytes,
                field: "tar bytes".into(),
                key: None,
                layer: Some(layer.index),
                a: entries(&report.a),
                b: entries(&report.b),
            });
            why.push(Class::TarBytes.as_str().into());
        }
        layer.explanation = why;
    }
}

/// Tar-level differences: per layer pair when both images have as many layers, else over
/// all layers together.
fn tar_diffs(a: &ImageSide, b: &ImageSide, sa: &[&LayerScan], sb: &[&LayerScan]) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    if sa.len() == sb.len() {
        for (i, (x, y)) in sa.iter().zip(sb).enumerate() {
            if a.layers[i].diff_id != b.layers[i].diff_id {
                compare_tar_facts(&mut out, Some(i), &x.tar, &y.tar);
            }
        }
    } else {
        compare_tar_facts(&mut out, None, &aggregate(sa), &aggregate(sb));
    }
    out
}

fn aggregate(scans: &[&LayerScan]) -> TarFacts {
    let mut facts = TarFacts {
        sorted: true,
        ..TarFacts::default()
    };
    for s in scans {
        facts.entries += s.tar.entries;
        for (k, v) in &s.tar.formats {
            *facts.formats.entry(k.clone()).or_default() += v;
        }
        facts.unames.extend(s.tar.unames.iter().cloned());
        facts.gnames.extend(s.tar.gnames.iter().cloned());
        if !s.tar.sorted && facts.sorted {
            facts.sorted = false;
            facts.first_unsorted = s.tar.first_unsorted.clone();
        }
        if facts.root_entry.is_none() {
            facts.root_entry = s.tar.root_entry.clone();
        }
        facts.mode_type_bits += s.tar.mode_type_bits;
        for (total, part) in [
            (&mut facts.device_fields, &s.tar.device_fields),
            (&mut facts.checksums, &s.tar.checksums),
            (&mut facts.pax_records, &s.tar.pax_records),
        ] {
            for (k, v) in part {
                *total.entry(k.clone()).or_default() += v;
            }
        }
        facts
            .end_of_archive
            .extend(s.tar.end_of_archive.iter().copied());
        facts.duplicate_count += s.tar.duplicate_count;
        facts.duplicates.extend(s.tar.duplicates.iter().cloned());
    }
    facts.duplicates.truncate(scan::MAX_LISTED_DUPLICATES);
    facts
}

fn compare_tar_facts(out: &mut Vec<FieldDiff>, layer: Option<usize>, x: &TarFacts, y: &TarFacts) {
    let mut push = |class, field: &str, a: Value, b: Value| {
        out.push(FieldDiff {
            class,
            field: field.to_string(),
            key: None,
            layer,
            a,
            b,
        })
    };
    let same_paths = x.path_set_digest.is_some() && x.path_set_digest == y.path_set_digest;
    if x.sorted != y.sorted || (same_paths && x.order_digest != y.order_digest) {
        let order = |f: &TarFacts| json!({"sorted": f.sorted, "firstUnsorted": f.first_unsorted});
        push(Class::EntryOrder, "entry order", order(x), order(y));
    }
    // The formats used, not how many entries each: counts differ with the file sets.
    if x.formats.keys().ne(y.formats.keys()) {
        push(
            Class::TarFormat,
            "tar format",
            json!(x.formats),
            json!(y.formats),
        );
    }
    if x.root_entry != y.root_entry {
        push(
            Class::RootEntry,
            "root entry",
            json!(x.root_entry),
            json!(y.root_entry),
        );
    }
    if (x.mode_type_bits > 0) != (y.mode_type_bits > 0) {
        push(
            Class::ModeTypeBits,
            "mode type bits",
            json!(x.mode_type_bits),
            json!(y.mode_type_bits),
        );
    }
    for (class, field, mx, my) in [
        (
            Class::DeviceFields,
            "devmajor/devminor",
            &x.device_fields,
            &y.device_fields,
        ),
        (Class::ChecksumStyle, "checksum", &x.checksums, &y.checksums),
        (
            Class::PaxRecords,
            "pax records",
            &x.pax_records,
            &y.pax_records,
        ),
    ] {
        // The spellings used, not how many entries each: counts differ with the file sets.
        if mx.keys().ne(my.keys()) {
            push(class, field, json!(mx), json!(my));
        }
    }
    if x.end_of_archive != y.end_of_archive {
        push(
            Class::EndOfArchive,
            "end of archive",
            json!(x.end_of_archive),
            json!(y.end_of_archive),
        );
    }
    if x.unames != y.unames {
        push(Class::OwnerNames, "uname", json!(x.unames), json!(y.unames));
    }
    if x.gnames != y.gnames {
        push(Class::OwnerNames, "gname", json!(x.gnames), json!(y.gnames));
    }
    if x.duplicate_count != y.duplicate_count || x.duplicates != y.duplicates {
        let dups = |f: &TarFacts| json!({"count": f.duplicate_count, "paths": f.duplicates});
        push(
            Class::DuplicateEntries,
            "duplicate entries",
            dups(x),
            dups(y),
        );
    }
}
