//! One set of layer rules (issue 17.2): the same hostile whiteout layers, from the one case
//! table the unit tests use (`src/layer/member_cases.rs`), through the real `kiln` binary.
//! `build` reads a base image holding the layer where a `run` step materializes its rootfs,
//! `kiln diff` scans it, and an `extract` step reads it as a plain archive; each case is
//! accepted by all with the table's tree, or refused by all with an error naming the layer's
//! digest and the member.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kiln::Sha256Digest;
use serde_json::Value;

use crate::diff::rewrite_layers;
use crate::member_cases::{lower, Case, Expect, CASES, LOWER_TREE};
use crate::support::*;
use crate::testtar::Tar;

/// The cases driven through the binary: accepted ones (one of them disputed before: the
/// extractor kept the lower contents of a directory the layer recreated and whited out) and
/// refused ones (diff accepted a whiteout that is a directory and a root replaced by a
/// symlink; every reader accepted an entry below a `.wh.` name).
const DRIVEN: &[&str] = &[
    "whiteout",
    "opaque-directory",
    "whiteout-of-a-directory-this-layer-recreated",
    "whiteout-as-directory",
    "root-as-symlink",
    "entry-below-a-whiteout-name",
];

fn case(name: &str) -> &'static Case {
    CASES.iter().find(|c| c.name == name).unwrap()
}

/// A busybox image with two more layers, which the tests replace.
fn skeleton(ctx: &TestContext) -> PathBuf {
    busybox_recipe(
        ctx,
        "skel",
        "[[layer]]\n[[layer.step]]\nwrite = \"/one\"\ncontent = \"1\"\n\
         [[layer]]\n[[layer.step]]\nwrite = \"/two\"\ncontent = \"2\"\n",
    );
    let out = ctx.join("skel/oci");
    run_ok(
        ctx.kiln()
            .arg("build")
            .arg(ctx.join("skel/recipe.toml"))
            .arg("-o")
            .arg(&out),
    );
    out
}

fn gzip(tar: &[u8]) -> Vec<u8> {
    crate::diff::kiln_like_gzip(tar)
}

/// The skeleton with [`lower`] as its second layer and `top` as its third, in `ctx/name`.
fn image_with(ctx: &TestContext, skel: &Path, name: &str, top: &[u8]) -> PathBuf {
    let dst = ctx.join(name);
    rewrite_layers(
        skel,
        &dst,
        |i, old| match i {
            1 => lower(),
            2 => top.to_vec(),
            _ => old,
        },
        gzip,
    );
    dst
}

fn index_digest(layout: &Path) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The top-level names any case's tree has (what the `run` step lists).
fn tops() -> BTreeSet<String> {
    CASES
        .iter()
        .filter_map(|c| match c.expect {
            Expect::Tree(t) => Some(t),
            Expect::Refused(_) => None,
        })
        .chain([LOWER_TREE])
        .flatten()
        .map(|p| p.split('/').next().unwrap().to_string())
        .collect()
}

/// `kiln build` of a `run` step over `image`: the rootfs the step saw, as the table lists
/// trees, or the build's stderr.
fn build_over(ctx: &TestContext, name: &str, image: &Path) -> Result<Vec<String>, String> {
    let tops: Vec<String> = tops().into_iter().collect();
    let script = format!(
        "cd / && for t in {}; do if [ -e \\\"$t\\\" ] || [ -L \\\"$t\\\" ]; then /bin/busybox find \\\"$t\\\"; fi; done \
         | while read p; do if [ -d \\\"$p\\\" ] && [ ! -L \\\"$p\\\" ]; then echo \\\"$p/\\\"; else echo \\\"$p\\\"; fi; done \
         | /bin/busybox sort > /listing",
        tops.join(" ")
    );
    let recipe = ctx.write(
        format!("{name}-build.toml"),
        format!(
            "[image]\nname = \"w\"\nepoch = 1700000000\n[base]\nref = \"oci:{}@{}\"\n\
             [[layer]]\n[[layer.step]]\nrun = \"{script}\"\n",
            image.display(),
            index_digest(image)
        ),
    );
    let out = ctx.join(format!("{name}-built"));
    let result = ctx
        .kiln()
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    if !result.status.success() {
        return Err(stderr(&result));
    }
    let manifest: Value = {
        let digest = index_digest(&out);
        serde_json::from_slice(&std::fs::read(blob(&out, &digest)).unwrap()).unwrap()
    };
    let layers = manifest["layers"].as_array().unwrap();
    let last = blob(&out, layers.last().unwrap()["digest"].as_str().unwrap());
    let listing = run_ok(tool("tar").arg("-xzOf").arg(last).arg("listing"));
    Ok(listing.lines().map(str::to_string).collect())
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// `kiln diff` of the image without the case's layer (`base`) against `image`: the added and
/// removed paths, or the error.
fn diff_over(ctx: &TestContext, base: &Path, image: &Path) -> Result<Vec<String>, String> {
    let out = ctx
        .kiln()
        .args(["diff", "--json"])
        .arg(format!("oci:{}", base.display()))
        .arg(format!("oci:{}", image.display()))
        .output()
        .unwrap();
    if out.status.code() != Some(0) && out.status.code() != Some(1) {
        return Err(stderr(&out));
    }
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut changed: Vec<String> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let classes: Vec<&str> = f["classes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            format!("{} {}", f["path"].as_str().unwrap(), classes.join(","))
        })
        .filter(|l| l.ends_with(" added") || l.ends_with(" removed"))
        .collect();
    changed.sort();
    Ok(changed)
}

/// The added and removed paths between [`LOWER_TREE`] and `tree`, as `kiln diff` reports them.
fn changes(tree: &[&str]) -> Vec<String> {
    let strip = |p: &&str| p.trim_end_matches('/').to_string();
    let before: BTreeSet<String> = LOWER_TREE.iter().map(strip).collect();
    let after: BTreeSet<String> = tree.iter().map(strip).collect();
    let mut out: Vec<String> = before
        .difference(&after)
        .map(|p| format!("/{p} removed"))
        .chain(after.difference(&before).map(|p| format!("/{p} added")))
        .collect();
    out.sort();
    out
}

/// A build with one `extract` step of the layer as a plain archive input.
fn extract_step(ctx: &TestContext, name: &str, layer: &[u8]) -> Result<(), String> {
    ctx.write(format!("{name}-in.tar"), layer);
    let recipe = ctx.write(
        format!("{name}-extract.toml"),
        format!(
            "[image]\nname = \"x\"\nepoch = 1700000000\n[inputs.a]\npath = \"{name}-in.tar\"\n\
             [[layer]]\n[[layer.step]]\nextract = \"a\"\ndest = \"/\"\n"
        ),
    );
    let out = ctx
        .kiln()
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(ctx.join(format!("{name}-extracted")))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(stderr(&out))
    }
}

#[test]
fn build_diff_and_extract_agree_on_hostile_whiteout_layers() {
    let ctx = TestContext::new();
    let skel = skeleton(&ctx);
    let empty = Tar::new().finish();
    let base = image_with(&ctx, &skel, "lower-only", &empty);
    // The rootfs of the lower layer alone, as the `run` step sees it.
    assert_eq!(build_over(&ctx, "lower-only", &base).unwrap(), LOWER_TREE);
    for name in DRIVEN {
        let case = case(name);
        let layer = (case.layer)();
        let image = image_with(&ctx, &skel, name, &layer);
        let digest = Sha256Digest::of(&gzip(&layer)).to_string();
        let built = build_over(&ctx, name, &image);
        let diffed = diff_over(&ctx, &base, &image);
        let extracted = extract_step(&ctx, name, &layer);
        match case.expect {
            Expect::Tree(tree) => {
                let tree: Vec<String> = tree.iter().map(|p| p.to_string()).collect();
                assert_eq!(built, Ok(tree.clone()), "{name}: build");
                let tree: Vec<&str> = tree.iter().map(String::as_str).collect();
                assert_eq!(diffed, Ok(changes(&tree)), "{name}: diff");
                // Whiteout names mean nothing in a plain archive: refused there.
                let err = extracted.unwrap_err();
                assert!(
                    err.contains("whiteout names are not allowed"),
                    "{name}: {err}"
                );
            }
            Expect::Refused(member) => {
                let named = format!("`{member}`");
                for (reader, outcome) in [("build", &built), ("diff", &diffed)] {
                    let err = outcome.as_ref().unwrap_err();
                    assert!(
                        err.contains(&digest) && err.contains(&named),
                        "{name}: {reader} must name the layer {digest} and the member {named}: {err}"
                    );
                }
                let err = extracted.unwrap_err();
                assert!(err.contains(&named), "{name}: extract step: {err}");
            }
        }
    }
}

/// A step cannot smuggle a whiteout into its layer: `write` to `/.wh.etc` would delete the
/// base's `/etc` in every reader of the image.
#[test]
fn a_step_cannot_write_a_whiteout_name() {
    let ctx = TestContext::new();
    for path in ["/.wh.etc", "/.wh.d/x"] {
        let recipe = ctx.write(
            "wh.toml",
            format!(
                "[image]\nname = \"w\"\nepoch = 1700000000\n[[layer]]\n[[layer.step]]\n\
                 write = \"{path}\"\ncontent = \"\"\n"
            ),
        );
        let out = run_err(
            ctx.kiln()
                .arg("build")
                .arg(&recipe)
                .arg("-o")
                .arg(ctx.join("wh-out")),
        );
        let err = stderr(&out);
        assert!(
            err.contains(path.trim_start_matches('/')) && err.contains("`.wh.` name"),
            "{path}: {err}"
        );
        assert!(!ctx.join("wh-out").exists(), "{path}");
    }
}
