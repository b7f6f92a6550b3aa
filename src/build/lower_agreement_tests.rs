//! Every reader of layers, driven by the one case table ([`crate::layer::member_cases`]): the
//! extractor (what `build` materializes below a `run` step), this index of lower layers (the
//! image's own metadata of that rootfs), `diff`'s scanner and applied filesystem, and the tree
//! reader (whose tree, written back as a layer, must extract to the same tree). Each case is
//! either accepted by all with the table's tree, or refused by all with an error naming the
//! member. An `extract` step, which reads plain archives, refuses every `.wh.` name and
//! otherwise agrees.

use std::error::Error;

use super::LowerIndex;
use crate::diff::{scan_reader, AppliedFs, NodeKind};
use crate::digest::Sha256Digest;
use crate::layer::extract::{apply_layer, ExtractOptions};
use crate::layer::from_tar::AddTarOptions;
use crate::layer::member_cases::{lower, Expect, CASES, LOWER_TREE};
use crate::layer::read::{ReadLimits, TarReader};
use crate::layer::tree::FileTree;
use crate::layer::write::write_tar;

/// The outcome one reader gave: the sorted paths (directories with `/`), or the error chain.
type Outcome = Result<Vec<String>, String>;

fn chain(e: &dyn Error) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        cur = s.source();
    }
    msg
}

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walkdir(dir, "") {
        out.push(e);
    }
    out.sort();
    out
}

fn walkdir(dir: &std::path::Path, rel: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs_err::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = format!("{rel}{}", e.file_name().into_string().unwrap());
        if e.file_type().unwrap().is_dir() {
            out.push(format!("{name}/"));
            out.extend(walkdir(&e.path(), &format!("{name}/")));
        } else {
            out.push(name);
        }
    }
    out
}

fn extracted(layers: &[&[u8]]) -> Outcome {
    let root = tempfile::tempdir().unwrap();
    for layer in layers {
        apply_layer(root.path(), *layer, &ExtractOptions::default()).map_err(|e| chain(&e))?;
    }
    Ok(listing(root.path()))
}

fn indexed(lower: &[u8], layer: &[u8]) -> Outcome {
    let mut index = LowerIndex::default();
    index.add_tar(lower).unwrap();
    index.add_tar(layer).map_err(|e| chain(&e))?;
    let mut out: Vec<String> = index
        .entries
        .iter()
        .map(|(p, e)| if e.dir { format!("{p}/") } else { p.clone() })
        .collect();
    out.sort();
    Ok(out)
}

fn diffed(lower: &[u8], layer: &[u8]) -> Outcome {
    let scan = |tar: &[u8]| {
        let digest = Sha256Digest::of(tar);
        scan_reader(tar, &digest)
    };
    let lower = scan(lower).unwrap();
    let layer = scan(layer).map_err(|e| chain(&e))?;
    let fs = AppliedFs::apply([&lower, &layer]).map_err(|e| chain(&e))?;
    let mut out: Vec<String> = fs
        .nodes
        .iter()
        .map(|(p, n)| {
            if n.node.kind == NodeKind::Dir {
                format!("{p}/")
            } else {
                p.clone()
            }
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The tree reader's tree of `layer`, written as a layer again, then extracted on `lower`.
fn tree_read(lower: &[u8], layer: &[u8], whiteouts: bool) -> Outcome {
    let spill = tempfile::tempdir().unwrap();
    let mut tree = FileTree::new();
    let mut reader = TarReader::new(layer, ReadLimits::default());
    let opts = AddTarOptions {
        epoch: 0,
        spill_dir: spill.path(),
        whiteouts,
    };
    tree.add_tar(&mut reader, "/", &opts)
        .map_err(|e| chain(&e))?;
    let mut written = Vec::new();
    write_tar(&tree, 0, &mut written).unwrap();
    extracted(&[lower, &written])
}

#[test]
fn every_layer_reader_agrees_on_every_hostile_whiteout_case() {
    let lower = lower();
    assert_eq!(
        extracted(&[&lower]).unwrap(),
        LOWER_TREE,
        "the lower layer alone"
    );
    for case in CASES {
        let layer = (case.layer)();
        let readers: [(&str, Outcome); 4] = [
            ("extract", extracted(&[&lower, &layer])),
            ("build lower index", indexed(&lower, &layer)),
            ("diff", diffed(&lower, &layer)),
            ("tree reader", tree_read(&lower, &layer, true)),
        ];
        for (reader, outcome) in readers {
            match (&case.expect, &outcome) {
                (Expect::Tree(want), Ok(got)) => {
                    assert_eq!(got, want, "{}: {reader}", case.name)
                }
                (Expect::Refused(member), Err(msg)) => assert!(
                    msg.contains(&format!("`{member}`")),
                    "{}: {reader}: the error does not name `{member}`: {msg}",
                    case.name
                ),
                (want, got) => panic!("{}: {reader}: expected {want:?}, got {got:?}", case.name),
            }
        }
        // An `extract` step reads a plain archive: `.wh.` names are refused there.
        let plain = tree_read(&lower, &layer, false);
        let has_whiteout_name = layer_names(&layer).iter().any(|n| n.contains(".wh."));
        match (&case.expect, &plain) {
            (_, Err(msg)) if has_whiteout_name => assert!(
                msg.contains("whiteout names are not allowed"),
                "{}: extract step: {msg}",
                case.name
            ),
            (Expect::Tree(want), Ok(got)) => assert_eq!(got, want, "{}: extract step", case.name),
            (Expect::Refused(member), Err(msg)) => assert!(
                msg.contains(&format!("`{member}`")),
                "{}: extract step: {msg}",
                case.name
            ),
            (want, got) => panic!(
                "{}: extract step: expected {want:?}, got {got:?}",
                case.name
            ),
        }
    }
}

fn layer_names(layer: &[u8]) -> Vec<String> {
    let mut reader = TarReader::new(layer, ReadLimits::default());
    let mut names = Vec::new();
    while let Some(e) = reader.next_entry().unwrap() {
        names.push(e.path);
    }
    names
}

/// A hard link to a lower layer's file shares its inode: the extractor, which tracks what the
/// layer created by inode, took the lower name for one of the layer's own and kept it against
/// the layer's whiteout or opaque marker, while the lower index and `diff` removed it. (The
/// tree reader reads one archive alone and refuses links to lower layers, so it is not asked.)
#[test]
fn a_hardlink_to_a_lower_file_does_not_keep_that_file_from_its_whiteout() {
    use crate::layer::testtar::Tar;
    let lower = lower();
    let cases: [(&str, Vec<u8>, &[&str]); 3] = [
        (
            "link, then a whiteout of its target",
            Tar::new()
                .hardlink("h", "etc/gone")
                .file("etc/.wh.gone", b"")
                .finish(),
            &[
                "etc/",
                "etc/keep",
                "f",
                "h",
                "var/",
                "var/old",
                "var/sub/",
                "var/sub/deep",
            ],
        ),
        (
            "an opaque directory, and a link elsewhere to a file it hides",
            Tar::new()
                .dir("var", 0o755)
                .file("var/.wh..wh..opq", b"")
                .hardlink("h", "var/old")
                .finish(),
            &["etc/", "etc/gone", "etc/keep", "f", "h", "var/"],
        ),
        (
            "a link inside an opaque directory to a file it hides",
            Tar::new()
                .dir("var", 0o755)
                .file("var/.wh..wh..opq", b"")
                .hardlink("var/h", "var/old")
                .finish(),
            &["etc/", "etc/gone", "etc/keep", "f", "var/", "var/h"],
        ),
    ];
    for (name, layer, want) in cases {
        for (reader, outcome) in [
            ("extract", extracted(&[&lower, &layer])),
            ("build lower index", indexed(&lower, &layer)),
            ("diff", diffed(&lower, &layer)),
        ] {
            assert_eq!(
                outcome,
                Ok(want.iter().map(|p| p.to_string()).collect()),
                "{name}: {reader}"
            );
        }
    }
}

/// A hard link whose target is a directory, or is not there when the link comes in the archive
/// (no layer has it, a whiteout name is no path, it comes later, or the layer removed it
/// first), is refused by the extractor, which links in archive order as containerd does;
/// `diff` accepted each (a link to a directory became a directory). The lower index keeps
/// metadata only and is not asked.
#[test]
fn a_hardlink_to_nothing_or_to_a_directory_is_refused_by_extract_and_diff() {
    use crate::layer::testtar::Tar;
    let lower = lower();
    let cases: [(&str, Vec<u8>); 6] = [
        ("to-absent", Tar::new().hardlink("h", "nope").finish()),
        (
            "before-its-target",
            Tar::new()
                .hardlink("h", "later")
                .file("later", b"l")
                .finish(),
        ),
        (
            "after-a-whiteout-of-its-target",
            Tar::new()
                .file("etc/.wh.gone", b"")
                .hardlink("h", "etc/gone")
                .finish(),
        ),
        (
            "below-a-file-put-over-a-directory",
            Tar::new()
                .file("etc", b"now a file")
                .hardlink("h", "etc/keep")
                .finish(),
        ),
        ("to-directory", Tar::new().hardlink("h", "etc").finish()),
        (
            "to-a-whiteout-name",
            Tar::new()
                .file("etc/.wh.gone", b"")
                .hardlink("h", "etc/.wh.gone")
                .finish(),
        ),
    ];
    for (name, layer) in cases {
        for (reader, outcome) in [
            ("extract", extracted(&[&lower, &layer])),
            ("diff", diffed(&lower, &layer)),
        ] {
            let err = outcome.unwrap_err();
            assert!(err.contains("`h`"), "{name}: {reader}: {err}");
        }
    }
}
