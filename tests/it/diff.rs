//! `kiln diff` and `kiln rebuild`: one image pair per class of difference, made with kiln
//! recipes, by rewriting layers (other compressors, other tar writers), or with umoci; each
//! test asserts the verdict, the classes, and the exit code at each strictness.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kiln::Sha256Digest;
use serde_json::{json, Value};

use crate::support::*;

const EPOCH: i64 = 1_700_000_000;

// --- making image pairs -------------------------------------------------------------------------

/// A recipe with `layers` (TOML `[[layer]]` tables) and a fixed config.
fn recipe(epoch: i64, layers: &str) -> String {
    format!(
        "[image]\nname = \"t\"\nepoch = {epoch}\n\n{layers}\n[config]\ncmd = [\"/bin/sh\"]\n\
         env = {{ PATH = \"/usr/bin:/bin\" }}\n"
    )
}

fn write(path: &str, content: &str, extra: &str) -> String {
    format!("[[layer.step]]\nwrite = \"{path}\"\ncontent = \"{content}\"\n{extra}\n")
}

const LAYER: &str = "[[layer]]\n";

/// The common tree: three files, a directory, a symlink, all in one layer.
fn base_layer() -> String {
    format!(
        "{LAYER}[[layer.step]]\nmkdir = \"/var/log\"\n\n{}{}{}[[layer.step]]\nsymlink = \"/etc/motd.link\"\ntarget = \"motd\"\n\n",
        write("/etc/motd", "hello\\n", ""),
        write("/usr/bin/tool", "#!/bin/sh\\necho tool\\n", "mode = \"0755\""),
        write("/var/log/app.log", "log line\\n", ""),
    )
}

/// Builds `recipe_text` into the OCI layout `ctx/<name>` and returns its path.
fn build(ctx: &TestContext, name: &str, recipe_text: &str) -> PathBuf {
    let file = ctx.write(format!("{name}.toml"), recipe_text);
    let out = ctx.join(name);
    run_ok(ctx.kiln().arg("build").arg(&file).arg("-o").arg(&out));
    out
}

fn oci(path: &Path) -> String {
    format!("oci:{}", path.display())
}

/// Runs `kiln diff --json` and returns the exit code and the report.
pub(crate) fn diff_json(ctx: &TestContext, a: &Path, b: &Path, extra: &[&str]) -> (i32, Value) {
    let out = ctx
        .kiln()
        .args(["diff", "--json"])
        .arg(oci(a))
        .arg(oci(b))
        .args(extra)
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 1,
        "kiln diff failed with {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        code,
        serde_json::from_slice(&out.stdout).expect("a JSON report"),
    )
}

/// The exit code of `kiln diff` with `extra` flags (text output).
fn diff_code(ctx: &TestContext, a: &Path, b: &Path, extra: &[&str]) -> i32 {
    ctx.kiln()
        .arg("diff")
        .arg(oci(a))
        .arg(oci(b))
        .args(extra)
        .output()
        .unwrap()
        .status
        .code()
        .unwrap()
}

/// `(path, classes)` of the report's file differences.
fn file_classes(report: &Value) -> Vec<(String, Vec<String>)> {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["classes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

pub(crate) fn summary_classes(report: &Value) -> Vec<String> {
    report["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["class"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn pipe(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = tool(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    feeder.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success(), "{program} failed");
    out
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn put_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let d = Sha256Digest::of(bytes);
    std::fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
    (d.to_string(), bytes.len() as u64)
}

/// Copies the image of layout `src` into `dst`, with every layer's tar replaced by
/// `tar(index, old tar)` and compressed by `compress`; config diff_ids, manifest and index
/// are rewritten to match (referrers are dropped: their subject is gone).
pub(crate) fn rewrite_layers(
    src: &Path,
    dst: &Path,
    tar: impl Fn(usize, Vec<u8>) -> Vec<u8>,
    compress: impl Fn(&[u8]) -> Vec<u8>,
) {
    run_ok(Command::new("cp").arg("-a").arg(src).arg(dst));
    let index: Value =
        serde_json::from_slice(&std::fs::read(dst.join("index.json")).unwrap()).unwrap();
    let image = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m.get("artifactType").is_none())
        .unwrap()
        .clone();
    let mut manifest: Value = serde_json::from_slice(
        &std::fs::read(blob_path(dst, image["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let mut config: Value = serde_json::from_slice(
        &std::fs::read(blob_path(
            dst,
            manifest["config"]["digest"].as_str().unwrap(),
        ))
        .unwrap(),
    )
    .unwrap();
    let mut diff_ids = Vec::new();
    for (i, layer) in manifest["layers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        let blob = std::fs::read(blob_path(dst, layer["digest"].as_str().unwrap())).unwrap();
        let old = pipe("gzip", &["-dc"], &blob);
        let new_tar = tar(i, old);
        diff_ids.push(Sha256Digest::of(&new_tar).to_string());
        let (digest, size) = put_blob(dst, &compress(&new_tar));
        layer["digest"] = json!(digest);
        layer["size"] = json!(size);
    }
    config["rootfs"]["diff_ids"] = json!(diff_ids);
    let (cd, cs) = put_blob(dst, &serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = json!(cd);
    manifest["config"]["size"] = json!(cs);
    let (md, ms) = put_blob(dst, &serde_json::to_vec(&manifest).unwrap());
    let mut desc = image;
    desc["digest"] = json!(md);
    desc["size"] = json!(ms);
    let index = json!({"schemaVersion": 2, "mediaType": index["mediaType"], "manifests": [desc]});
    std::fs::write(dst.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

fn same_tar(_: usize, tar: Vec<u8>) -> Vec<u8> {
    tar
}

pub(crate) fn kiln_like_gzip(tar: &[u8]) -> Vec<u8> {
    pipe("gzip", &["-n", "-6"], tar)
}

/// Asserts the verdict, and that it passes exactly at the strictness it should.
fn assert_verdict(ctx: &TestContext, a: &Path, b: &Path, report: &Value, want: &str) {
    assert_eq!(report["verdict"], want, "{report:#}");
    let expect = |accept: &str| {
        let rank = |v: &str| {
            ["identical", "same-layers", "equivalent", "different"]
                .iter()
                .position(|x| *x == v)
                .unwrap()
        };
        i32::from(rank(want) > rank(accept))
    };
    assert_eq!(diff_code(ctx, a, b, &[]), expect("identical"));
    assert_eq!(
        diff_code(ctx, a, b, &["--accept", "same-layers"]),
        expect("same-layers")
    );
    assert_eq!(diff_code(ctx, a, b, &["--semantic"]), expect("equivalent"));
}

// --- one pair per class ---------------------------------------------------------------------------

#[test]
fn identical_images_are_identical_and_pass() {
    let ctx = TestContext::new();
    let a = build(&ctx, "a", &recipe(EPOCH, &base_layer()));
    let b = build(&ctx, "b", &recipe(EPOCH, &base_layer()));
    let (code, report) = diff_json(&ctx, &a, &b, &[]);
    assert_eq!(code, 0);
    assert_verdict(&ctx, &a, &b, &report, "identical");
    assert_eq!(report["files"], json!([]));
    assert_eq!(report["filesCompared"], false);
    assert_eq!(report["schema"], "https://kiln.build/diff/v1");
    let text = run_ok(ctx.kiln().arg("diff").arg(oci(&a)).arg(oci(&b)));
    assert!(text.starts_with("verdict: identical (pass"), "{text}");
}

#[test]
fn recompressed_layers_are_same_layers_with_the_gzip_facts() {
    let ctx = TestContext::new();
    let a = build(&ctx, "a", &recipe(EPOCH, &base_layer()));
    let b = ctx.join("b");
    // gzip -9 from a named file keeps the name and mtime in the header: both must show up.
    let tmp = ctx.join("layer.tar");
    rewrite_layers(&a, &b, same_tar, |tar| {
        std::fs::write(&tmp, tar).unwrap();
        filetime::set_file_mtime(&tmp, filetime::FileTime::from_unix_time(1_234_567, 0)).unwrap();
        run_ok(Command::new("gzip").args(["-9", "-k", "-f"]).arg(&tmp));
        std::fs::read(tmp.with_extension("tar.gz")).unwrap()
    });
    let (_, report) = diff_json(&ctx, &a, &b, &[]);
    assert_verdict(&ctx, &a, &b, &report, "same-layers");
    assert_eq!(report["layers"][0]["status"], "compression-only");
    let why = report["layers"][0]["explanation"].to_string();
    assert!(why.contains("gzip header mtime 0 vs 1234567"), "{why}");
    // kiln's XFL follows its gzip level (4 for the default level 1, as gzip -1 writes it).
    assert!(why.contains("gzip XFL 4") && why.contains("vs 2"), "{why}");
    assert!(why.contains("layer.tar"), "{why}");
    assert_eq!(report["b"]["layers"][0]["compression"]["xfl"], 2);
    assert_eq!(summary_classes(&report), ["compression"]);
    assert_eq!(report["filesCompared"], false);
    let text = run_ok(
        ctx.kiln()
            .args(["diff", "--accept", "same-layers"])
            .arg(oci(&a))
            .arg(oci(&b)),
    );
    assert!(
        text.contains("compression only: gzip header mtime"),
        "{text}"
    );
    assert!(text.contains("fixed gzip header"), "{text}");
}

#[test]
fn other_mtimes_are_equivalent() {
    let ctx = TestContext::new();
    let a = build(&ctx, "a", &recipe(EPOCH, &base_layer()));
    let b = build(&ctx, "b", &recipe(EPOCH + 3600, &base_layer()));
    let (_, report) = diff_json(&ctx, &a, &b, &[]);
    assert_verdict(&ctx, &a, &b, &report, "equivalent");
    let files = file_classes(&report);
    assert!(files.len() >= 5, "{files:?}");
    assert!(files.iter().all(|(_, c)| c == &["mtime"]), "{files:?}");
    assert_eq!(summary_classes(&report), ["mtime", "history", "created"]);
    let hint = report["summary"][0]["hint"].as_str().unwrap();
    assert!(hint.contains("SOURCE_DATE_EPOCH"), "{hint}");
}

/// Builds the base tree with one step changed by `edit` and diffs it against the base.
fn one_change(edit: impl Fn(String) -> String) -> (TestContext, PathBuf, PathBuf, Value) {
    let ctx = TestContext::new();
    let a = build(&ctx, "a", &recipe(EPOCH, &base_layer()));
    let b = build(&ctx, "b", &recipe(EPOCH, &edit(base_layer())));
    let (_, report) = diff_json(&ctx, &a, &b, &[]);
    (ctx, a, b, report)
}

#[test]
fn one_files_content_is_different() {
    let (ctx, a, b, report) = one_change(|l| l.replace("hello\\n", "hullo\\n"));
    assert_verdict(&ctx, &a, &b, &report, "different");
    assert_eq!(
        file_classes(&report),
        [("/etc/motd".to_string(), vec!["content".to_string()])]
    );
    let f = &report["files"][0];
    assert_eq!(
        f["a"]["sha256"],
        Sha256Digest::of(b"hello\n").to_string().as_str()
    );
    assert_eq!(f["b"]["size"], 6);
}

#[test]
fn a_mode_change_is_different() {
    let (ctx, a, b, report) = one_change(|l| l.replace("mode = \"0755\"", "mode = \"0700\""));
    assert_verdict(&ctx, &a, &b, &report, "different");
    assert_eq!(
        file_classes(&report),
        [("/usr/bin/tool".to_string(), vec!["mode".to_string()])]
    );
    assert_eq!(report["files"][0]["a"]["mode"], "0755");
    assert_eq!(report["files"][0]["b"]["mode"], "0700");
}

#[test]
fn an_owner_change_is_different() {
    let (ctx, a, b, report) =
        one_change(|l| l.replace("mode = \"0755\"", "mode = \"0755\"\nowner = \"1000:1000\""));
    assert_verdict(&ctx, &a, &b, &report, "different");
    assert_eq!(
        file_classes(&report),
        [("/usr/bin/tool".to_string(), vec!["owner".to_string()])]
    );
    assert_eq!(report["files"][0]["b"]["uid"], 1000);
}

#[test]
fn a_symlink_target_change_is_different() {
    let (ctx, a, b, report) =
        one_change(|l| l.replace("target = \"motd\"", "target = \"/etc/motd\""));
    assert_verdict(&ctx, &a, &b, &report, "different");
    assert_eq!(
        file_classes(&report),
        [(
            "/etc/motd.link".to_string(),
            vec!["link-target".to_string()]
        )]
    );
    let out = run_err(
        ctx.kiln()
            .arg("diff")
            .arg(oci(&a))
            .arg(oci(&b))
            .arg("--semantic"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("verdict: different (FAIL"), "{text}");
    assert!(
        text.contains("/etc/motd.link  -> motd became -> /etc/motd"),
        "{text}"
    );
}

#[test]
fn an_added_and_a_removed_file_are_different() {
    let (ctx, a, b, report) = one_change(|l| l.replace("/var/log/app.log", "/var/log/other.log"));
    assert_verdict(&ctx, &a, &b, &report, "different");
    assert_eq!(
        file_classes(&report),
        [
            ("/var/log/app.log".to_string(), vec!["removed".to_string()]),
            ("/var/log/other.log".to_string(), vec!["added".to_string()]),
        ]
    );
    // Ignoring the directory drops both, and the rest is the same tree.
    let (_, ignored) = diff_json(&ctx, &a, &b, &["--ignore", "/var/log/**"]);
    assert_eq!(ignored["verdict"], "equivalent", "{ignored:#}");
    assert_eq!(ignored["files"], json!([]));
    assert_eq!(ignored["ignored"], json!(["/var/log/**"]));
    assert_eq!(
        diff_code(&ctx, &a, &b, &["--semantic", "--ignore", "/var/log/**"]),
        0
    );
}

#[test]
fn a_whiteout_in_a_later_layer_is_applied() {
    let ctx = TestContext::new();
    // a: the base tree plus /tmp/scratch, then a second layer removes it (a whiteout).
    let with_whiteout = format!(
        "{}{}{LAYER}[[layer.step]]\nremove = \"/etc/scratch\"\n",
        base_layer(),
        write("/etc/scratch", "temporary\\n", "")
    );
    let a = build(&ctx, "a", &recipe(EPOCH, &with_whiteout));
    let b = build(&ctx, "b", &recipe(EPOCH, &base_layer()));
    let (_, report) = diff_json(&ctx, &a, &b, &[]);
    assert_verdict(&ctx, &a, &b, &report, "equivalent");
    assert_eq!(file_classes(&report), Vec::<(String, Vec<String>)>::new());
    assert_eq!(report["layers"][1]["status"], "only-in-a");
    let classes = summary_classes(&report);
    assert!(
        classes.contains(&"layer-boundaries".to_string()),
        "{classes:?}"
    );
    assert!(classes.contains(&"history".to_string()), "{classes:?}");
    // Without the whiteout layer, /etc/scratch would be there.
    let partial = format!(
        "{}{}",
        base_layer(),
        write("/etc/scratch", "temporary\\n", "")
    );
    let c = build(&ctx, "c", &recipe(EPOCH, &partial));
    let (_, report) = diff_json(&ctx, &c, &a, &[]);
    assert_eq!(
        file_classes(&report),
        [("/etc/scratch".to_string(), vec!["removed".to_string()])]
    );
}

#[test]
fn the_same_tree_in_one_layer_or_three_is_equivalent() {
    let ctx = TestContext::new();
    let one = format!(
        "{LAYER}{}{}{}",
        write("/a", "1\\n", ""),
        write("/b", "2\\n", ""),
        write("/c", "3\\n", "")
    );
    let three = format!(
        "{LAYER}{}{LAYER}{}{LAYER}{}",
        write("/a", "1\\n", ""),
        write("/b", "2\\n", ""),
        write("/c", "3\\n", "")
    );
    let a = build(&ctx, "a", &recipe(EPOCH, &one));
    let b = build(&ctx, "b", &recipe(EPOCH, &three));
    let (_, report) = diff_json(&ctx, &a, &b, &[]);
    assert_verdict(&ctx, &a, &b, &report, "equivalent");
    assert_eq!(report["files"], json!([]));
    assert_eq!(report["a"]["layers"].as_array().unwrap().len(), 1);
    assert_eq!(report["b"]["layers"].as_array().unwrap().len(), 3);
    let boundaries = report["manifest"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["class"] == "layer-boundaries")
        .expect("a layer-boundaries difference");
    assert_eq!((&boundaries["a"], &boundaries["b"]), (&json!(1), &json!(3)));
}

#[test]
fn tar_level_differences_are_reported_from_the_raw_layers() {
    let ctx = TestContext::new();
    let files = format!(
        "{LAYER}{}{}{}",
        write("/a", "1\\n", ""),
        write("/b", "2\\n", ""),
        write("/c", "3\\n", "")
    );
    let a = build(&ctx, "a", &recipe(EPOCH, &files));
    // The same three files written by GNU tar: reverse order, GNU format, owner names.
    let src = ctx.join("src");
    for (name, content) in [("a", "1\n"), ("b", "2\n"), ("c", "3\n")] {
        let p = ctx.write(format!("src/{name}"), content);
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    }
    let tar = run_out(tool("tar").arg("-C").arg(&src).args([
        "--format=gnu",
        "--owner=root:0",
        "--group=root:0",
        &format!("--mtime=@{EPOCH}"),
        "--no-recursion",
        "-cf",
        "-",
        "c",
        "b",
        "a",
    ]));
    let b = ctx.join("b");
    rewrite_layers(&a, &b, move |_, _| tar.clone(), kiln_like_gzip);
    let (_, report) = diff_json(&ctx, &a, &b, &[]);
    assert_verdict(&ctx, &a, &b, &report, "equivalent");
    assert_eq!(report["files"], json!([]));
    let classes = summary_classes(&report);
    for class in ["entry-order", "tar-format", "owner-names"] {
        assert!(classes.contains(&class.to_string()), "{class}: {classes:?}");
    }
    let order = report["tar"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["class"] == "entry-order")
        .unwrap();
    assert_eq!(order["layer"], 0);
    assert_eq!(order["a"]["sorted"], true);
    assert_eq!(order["b"]["firstUnsorted"], "/b");
    assert_eq!(report["b"]["layers"][0]["tar"]["unames"], json!(["root"]));
    let text = run_ok(
        ctx.kiln()
            .args(["diff", "--semantic"])
            .arg(oci(&a))
            .arg(oci(&b)),
    );
    assert!(text.contains("tar --sort=name"), "{text}");
    assert!(text.contains("--numeric-owner"), "{text}");
}

pub(crate) fn run_out(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
    out.stdout
}

#[test]
fn umoci_and_kiln_builds_of_one_tree_are_equivalent_with_hints() {
    let ctx = TestContext::new();
    // The tree, as a directory on disk.
    let tree = ctx.join("tree");
    for (path, content, mode) in [
        ("etc/motd", "hello\n", 0o644),
        ("usr/bin/tool", "#!/bin/sh\necho tool\n", 0o755),
        ("srv/www/index.html", "<h1>hi</h1>\n", 0o644),
    ] {
        let p = ctx.write(format!("tree/{path}"), content);
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    std::os::unix::fs::symlink("motd", tree.join("etc/motd.link")).unwrap();
    for d in ["", "etc", "usr", "usr/bin", "srv", "srv/www"] {
        std::fs::set_permissions(
            tree.join(d),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    // kiln's build of it.
    let recipe_text = format!(
        "[image]\nname = \"t\"\nepoch = {EPOCH}\n\n[inputs.tree]\npath = \"tree\"\n\n\
         {LAYER}[[layer.step]]\ncopy = \"tree\"\ndest = \"/\"\nowner = \"0:0\"\n"
    );
    let kiln_image = build(&ctx, "kiln-image", &recipe_text);
    // umoci's: unpack an empty image, copy the tree into its rootfs, repack. (`umoci insert`,
    // whose layers end without padding or marker, is in `interop`.)
    let umoci = ctx.join("umoci-image");
    let bundle = ctx.join("bundle");
    run_ok(tool("umoci").args(["init", "--layout"]).arg(&umoci));
    run_ok(
        tool("umoci")
            .args(["new", "--image"])
            .arg(format!("{}:t", umoci.display())),
    );
    run_ok(
        tool("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:t", umoci.display()))
            .arg(&bundle),
    );
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", tree.display()))
            .arg(bundle.join("rootfs")),
    );
    run_ok(
        tool("umoci")
            .args(["repack", "--image"])
            .arg(format!("{}:t", umoci.display()))
            .arg(&bundle),
    );
    let (_, report) = diff_json(&ctx, &umoci, &kiln_image, &[]);
    assert_verdict(&ctx, &umoci, &kiln_image, &report, "equivalent");
    let files = file_classes(&report);
    assert!(!files.is_empty());
    assert!(
        files.iter().all(|(_, c)| c == &["mtime"]),
        "only timestamps differ: {files:?}"
    );
    let classes = summary_classes(&report);
    for class in ["mtime", "history", "created"] {
        assert!(classes.contains(&class.to_string()), "{class}: {classes:?}");
    }
    for s in report["summary"].as_array().unwrap() {
        assert_eq!(s["significant"], false, "{s}");
        assert!(!s["hint"].as_str().unwrap().is_empty());
    }
    let text = run_ok(
        ctx.kiln()
            .args(["diff", "--semantic"])
            .arg(oci(&umoci))
            .arg(oci(&kiln_image)),
    );
    assert!(text.starts_with("verdict: equivalent (pass"), "{text}");
    assert!(
        text.contains("hints:\n  mtime: timestamps differ"),
        "{text}"
    );
}

// --- errors ---------------------------------------------------------------------------------------

#[test]
fn errors_exit_2_and_name_the_image() {
    let ctx = TestContext::new();
    let a = build(&ctx, "a", &recipe(EPOCH, &base_layer()));
    let out = run_err(ctx.kiln().arg("diff").arg(oci(&a)).arg("oci:nowhere"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nowhere"), "{}", stderr(&out));

    // A truncated layer blob is refused (the verifying reader and the decompressor both
    // catch it), not compared.
    let b = ctx.join("b");
    rewrite_layers(&a, &b, same_tar, kiln_like_gzip);
    let index: Value =
        serde_json::from_slice(&std::fs::read(b.join("index.json")).unwrap()).unwrap();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(blob_path(
            &b,
            index["manifests"][0]["digest"].as_str().unwrap(),
        ))
        .unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = blob_path(&b, layer);
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, &bytes[..bytes.len() / 2]).unwrap();
    let c = build(&ctx, "c", &recipe(EPOCH + 1, &base_layer()));
    let out = run_err(ctx.kiln().arg("diff").arg(oci(&c)).arg(oci(&b)));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(layer), "{}", stderr(&out));
}

// --- rebuild --------------------------------------------------------------------------------------

fn referrer_statements(layout: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for m in &layout_entries(layout) {
        if m.get("artifactType").is_none() {
            continue;
        }
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(blob_path(layout, m["digest"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        let statement: Value = serde_json::from_slice(
            &std::fs::read(blob_path(
                layout,
                manifest["layers"][0]["digest"].as_str().unwrap(),
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            manifest["annotations"]["in-toto.io/predicate-type"],
            statement["predicateType"]
        );
        out.push(statement);
    }
    out
}

#[test]
fn rebuild_records_the_verdict_as_a_statement_on_the_rebuilt_image() {
    let ctx = TestContext::new();
    let upstream = build(&ctx, "upstream", &recipe(EPOCH, &base_layer()));
    let file = ctx.write("r.toml", recipe(EPOCH, &base_layer()));
    let stdout = run_ok(
        ctx.kiln()
            .arg("rebuild")
            .arg(&file)
            .arg("--against")
            .arg(oci(&upstream))
            .args(["-o", "rebuilt", "--report", "report.json"]),
    );
    assert!(stdout.starts_with("verdict: identical (pass"), "{stdout}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(ctx.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["verdict"], "identical");
    let statements = referrer_statements(&ctx.join("rebuilt"));
    let rebuild: Vec<&Value> = statements
        .iter()
        .filter(|s| s["predicateType"] == "https://kiln.build/rebuild/v1")
        .collect();
    assert_eq!(rebuild.len(), 1, "{statements:#?}");
    let s = rebuild[0];
    assert_eq!(s["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(s["predicate"]["verdict"], "identical");
    assert_eq!(s["predicate"]["passed"], true);
    assert_eq!(s["subject"][0]["digest"]["sha256"], {
        let d = report["b"]["manifest"].as_str().unwrap();
        d.strip_prefix("sha256:").unwrap().to_string()
    });
    let report_bytes = std::fs::read(ctx.join("report.json")).unwrap();
    assert_eq!(
        s["predicate"]["report"]["digest"]["sha256"],
        Sha256Digest::of(&report_bytes).hex()
    );
    // The provenance is still there, and kiln inspect lists both.
    assert!(statements
        .iter()
        .any(|s| s["predicateType"] == "https://slsa.dev/provenance/v1"));
    let inspect = run_ok(ctx.kiln().args(["inspect", "--json", "oci:rebuilt"]));
    assert!(
        inspect.contains("https://kiln.build/rebuild/v1"),
        "{inspect}"
    );

    // Against an image with other timestamps: equivalent; fails unless --semantic, and the
    // statement records the verdict either way.
    let older = build(&ctx, "older", &recipe(EPOCH - 100, &base_layer()));
    let out = run_err(
        ctx.kiln()
            .arg("rebuild")
            .arg(&file)
            .arg("--against")
            .arg(oci(&older))
            .args(["-o", "rebuilt2"]),
    );
    assert_eq!(out.status.code(), Some(1));
    let s = referrer_statements(&ctx.join("rebuilt2"))
        .into_iter()
        .find(|s| s["predicateType"] == "https://kiln.build/rebuild/v1")
        .unwrap();
    assert_eq!(s["predicate"]["verdict"], "equivalent");
    assert_eq!(s["predicate"]["passed"], false);
    assert_eq!(s["predicate"]["accepted"], "identical");
    run_ok(
        ctx.kiln()
            .arg("rebuild")
            .arg(&file)
            .arg("--against")
            .arg(oci(&older))
            .args(["-o", "rebuilt3", "--semantic"]),
    );
}

// --- transports -----------------------------------------------------------------------------------

/// Runs `kiln diff --json` on two references as given.
fn diff_refs(ctx: &TestContext, a: &str, b: &str) -> (i32, Value) {
    let out = ctx.kiln().args(["diff", "--json", a, b]).output().unwrap();
    let code = out.status.code().unwrap();
    assert!(code == 0 || code == 1, "{}", stderr(&out));
    (code, serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn every_transport_can_be_compared() {
    let ctx = TestContext::new();
    let text = recipe(EPOCH, &base_layer());
    let layout = build(&ctx, "layout", &text);
    let file = ctx.write("r.toml", &text);
    for (format, name) in [
        ("oci-archive", "img.oci.tar"),
        ("docker-archive", "img.docker.tar"),
    ] {
        run_ok(
            ctx.kiln()
                .arg("build")
                .arg(&file)
                .args(["--format", format, "-o", name]),
        );
    }
    // The same image in a tarball of its layout.
    let (code, report) = diff_refs(&ctx, &oci(&layout), "oci-archive:img.oci.tar");
    assert_eq!((code, report["verdict"].as_str()), (0, Some("identical")));
    // docker save stores layers uncompressed under a Docker manifest: the same diff_ids.
    let (code, report) = diff_refs(&ctx, &oci(&layout), "docker-archive:img.docker.tar");
    assert_eq!(code, 1);
    assert_eq!(report["verdict"], "same-layers", "{report:#}");
    assert_eq!(report["layers"][0]["status"], "compression-only");
    assert_eq!(report["b"]["layers"][0]["compression"]["format"], "none");
    assert!(
        report["layers"][0]["explanation"]
            .to_string()
            .contains("compression gzip vs none"),
        "{report:#}"
    );

    // A registry: push with kiln copy, compare the pulled image with another build.
    let registry = crate::registry_support::LocalRegistry::start(&[]);
    let remote = registry.reference("diff/t:v1");
    run_ok(ctx.kiln().args(["copy", &oci(&layout), &remote]));
    let (code, report) = diff_refs(&ctx, &remote, &oci(&layout));
    assert_eq!((code, report["verdict"].as_str()), (0, Some("identical")));
    let other = build(
        &ctx,
        "other",
        &recipe(EPOCH, &base_layer().replace("hello", "howdy")),
    );
    let (code, report) = diff_refs(&ctx, &remote, &oci(&other));
    assert_eq!((code, report["verdict"].as_str()), (1, Some("different")));
    assert_eq!(
        file_classes(&report),
        [("/etc/motd".to_string(), vec!["content".to_string()])]
    );
}

/// A closed pipe (`kiln diff … | head`) must not panic, nor turn a failing verdict into a pass.
#[test]
fn a_closed_pipe_keeps_the_verdicts_exit_code() {
    let ctx = TestContext::new();
    build(&ctx, "a", &recipe(EPOCH, &base_layer()));
    build(
        &ctx,
        "b",
        &recipe(EPOCH, &base_layer().replace("hello", "howdy")),
    );
    for format in ["", "--json"] {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -o pipefail; \"$KILN\" diff {format} oci:a oci:b | true"
            ))
            .env("KILN", env!("CARGO_BIN_EXE_kiln"))
            .current_dir(ctx.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A hard link shares its target's object as the link's layer left it: a later layer that
/// rewrites the target does not change the link. `kiln diff` resolved links after stacking
/// every layer, so it reported `/h` of one image with the later content of `/a`, and two
/// images whose trees are the same (`/h` holds `1` in both) as different files.
#[test]
fn a_link_keeps_its_content_when_a_later_layer_rewrites_its_target() {
    use crate::testtar::Tar;
    let ctx = TestContext::new();
    let two = build(
        &ctx,
        "two",
        &recipe(
            EPOCH,
            &format!(
                "{LAYER}{}{LAYER}{}",
                write("/x", "x", ""),
                write("/y", "y", "")
            ),
        ),
    );
    // The image `name` whose first layer is `first` and whose second rewrites `/a`.
    let image = |name: &str, first: Vec<u8>| {
        let dst = ctx.join(name);
        let top = Tar::new().file("a", b"2").finish();
        rewrite_layers(
            &two,
            &dst,
            |i, _| if i == 0 { first.clone() } else { top.clone() },
            kiln_like_gzip,
        );
        dst
    };
    let linked = image(
        "linked",
        Tar::new().file("a", b"1").hardlink("h", "a").finish(),
    );
    let copied = image(
        "copied",
        Tar::new().file("a", b"1").file("h", b"1").finish(),
    );
    let (_, report) = diff_json(&ctx, &linked, &copied, &[]);
    assert_eq!(report["files"], json!([]), "{report:#}");
}
