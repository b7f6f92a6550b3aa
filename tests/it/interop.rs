//! Issue 12: archives and layers other tools write are read, what kiln writes loads in the
//! stock skopeo and podman (without a tag too), and every tar-level difference has a class.
//! Images come from local inputs (the host's busybox), podman uses a private storage per test.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn inspect(ctx: &TestContext, reference: &str) -> Value {
    json(&run_ok(ctx.kiln().args(["inspect", "--json", reference])))
}

/// Builds `localhost/pb:1` with podman (`FROM scratch`, two `COPY` layers, `--timestamp 0`)
/// from the host's busybox.
fn podman_build(ctx: &TestContext) {
    std::fs::create_dir_all(ctx.join("pctx")).unwrap();
    std::fs::copy(require_tool("busybox"), ctx.join("pctx/busybox")).unwrap();
    ctx.write("pctx/hello.txt", "hello from podman\n");
    ctx.write(
        "pctx/Containerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY hello.txt /etc/hello.txt\n\
         CMD [\"/bin/busybox\", \"cat\", \"/etc/hello.txt\"]\n",
    );
    run_ok(
        podman(ctx)
            .args(["build", "--timestamp", "0", "-t", "localhost/pb:1"])
            .arg(ctx.join("pctx")),
    );
}

/// `tar -tvf` of an archive.
fn tar_listing(archive: &Path) -> String {
    run_ok(tool("tar").arg("-tvf").arg(archive))
}

/// Regression (issue 12.2): `podman save --format docker-archive` stores `<id>/layer.tar` as
/// a symlink to `../<diff_id>.tar`; kiln refused it. Every archive `podman save` writes, of a
/// two-layer image, is read by `inspect`, `diff` and `copy`, and serves as a build base.
#[test]
fn podman_saved_archives_are_read_by_inspect_diff_copy_and_as_a_base() {
    let ctx = TestContext::new();
    podman_build(&ctx);
    for (format, file) in [
        (Some("docker-archive"), "pd.tar"),
        (Some("oci-archive"), "po.tar"),
        (None, "pdefault.tar"),
    ] {
        let mut save = podman(&ctx);
        save.arg("save");
        if let Some(f) = format {
            save.args(["--format", f]);
        }
        run_ok(save.arg("-o").arg(ctx.join(file)).arg("localhost/pb:1"));
    }
    for file in ["pd.tar", "pdefault.tar"] {
        let listing = tar_listing(&ctx.join(file));
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with('l') && l.contains("/layer.tar -> ../")),
            "podman's docker-archive links its layers: {listing}"
        );
    }

    let docker = inspect(&ctx, "docker-archive:pd.tar");
    let default = inspect(&ctx, "docker-archive:pdefault.tar");
    let oci = inspect(&ctx, "oci-archive:po.tar");
    let diff_ids = |v: &Value| -> Vec<String> {
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["diffId"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(diff_ids(&docker).len(), 2, "{docker}");
    assert_eq!(diff_ids(&docker), diff_ids(&oci));
    assert_eq!(diff_ids(&default), diff_ids(&oci));
    assert_eq!(docker["configDigest"], oci["configDigest"]);

    // The same image in both archives: only the compression differs.
    let out = run_ok(ctx.kiln().args([
        "diff",
        "--semantic",
        "--json",
        "docker-archive:pd.tar",
        "oci-archive:po.tar",
    ]));
    assert_eq!(json(&out)["verdict"], "same-layers", "{out}");

    // copy out of the docker-archive, then build on it (and on the oci-archive) and run.
    let copied = last_line(&run_ok(ctx.kiln().args([
        "copy",
        "docker-archive:pd.tar",
        "oci:from-docker",
    ])));
    let manifest = oci["digest"].as_str().unwrap();
    for (name, base) in [
        ("on-docker", format!("oci:../from-docker@{copied}")),
        ("on-oci", format!("oci-archive:../po.tar@{manifest}")),
    ] {
        ctx.write(
            format!("{name}/recipe.toml"),
            format!(
                "[image]\nname = \"{name}\"\n[base]\nref = \"{base}\"\n[[layer]]\n\
                 [[layer.step]]\nwrite = \"/etc/motd\"\ncontent = \"built on podman\\n\"\n\
                 [config]\ncmd = [\"/bin/busybox\", \"cat\", \"/etc/hello.txt\", \"/etc/motd\"]\n"
            ),
        );
        run_ok(ctx.kiln().args([
            "build",
            &format!("{name}/recipe.toml"),
            "-o",
            &format!("out-{name}"),
        ]));
        let out = run_ok(
            podman(&ctx)
                .args(["run", "--rm", "--network=none"])
                .arg(format!("oci:{}", ctx.join(format!("out-{name}")).display())),
        );
        assert_eq!(out, "hello from podman\nbuilt on podman\n", "{name}");
    }
}

/// Regression (issue 12.4): kiln's outputs did not load (`podman load`: "more than one image
/// in oci, choose an image") because the provenance was a second `index.json` entry. Now the
/// image is the only entry, with and without signing, and kiln still finds the provenance,
/// the signature and the attestation.
#[test]
fn kiln_outputs_load_and_run_in_podman_and_open_in_skopeo_without_a_tag() {
    let ctx = TestContext::new();
    busybox_recipe(
        &ctx,
        "bb",
        "[config]\ncmd = [\"/bin/busybox\", \"echo\", \"hello from kiln\"]\n",
    );
    run_ok(ctx.kiln().args(["key", "generate", "--out", "k"]));
    let digest = last_line(&run_ok(ctx.kiln().args([
        "build",
        "bb/recipe.toml",
        "-o",
        "out",
        "--sign-key",
        "k.key",
    ])));
    let index = json(&std::fs::read_to_string(ctx.join("out/index.json")).unwrap());
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    let layout = format!("oci:{}", ctx.join("out").display());

    let skopeo = json(&run_ok(tool("skopeo").arg("inspect").arg(&layout)));
    assert_eq!(skopeo["Digest"], digest.as_str());
    let id = run_ok(podman(&ctx).args(["create", "--network=none"]).arg(&layout));
    let out = run_ok(podman(&ctx).args(["start", "--attach", id.trim()]));
    assert_eq!(out.trim(), "hello from kiln");

    // kiln still finds what it attached.
    let inspected = inspect(&ctx, "oci:out");
    let referrers = inspected["referrers"].as_array().unwrap();
    assert!(
        referrers
            .iter()
            .any(|r| r["predicateType"] == "https://slsa.dev/provenance/v1"),
        "{inspected}"
    );
    let verified = run_ok(ctx.kiln().args([
        "verify",
        "oci:out",
        "--key",
        "k.pub",
        "--attestation",
        "slsaprovenance1",
    ]));
    assert!(verified.contains("✓ signature"), "{verified}");
    assert!(verified.contains("✓ attestation"), "{verified}");
    // …and so does a copy, which keeps the one-entry layout.
    run_ok(ctx.kiln().args(["copy", "oci:out", "oci:copied"]));
    let index = json(&std::fs::read_to_string(ctx.join("copied/index.json")).unwrap());
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    run_ok(ctx.kiln().args(["verify", "oci:copied", "--key", "k.pub"]));

    // Both archive formats load into podman and run.
    for (format, file) in [("oci-archive", "x.tar"), ("docker-archive", "d.tar")] {
        run_ok(
            ctx.kiln()
                .args(["build", "bb/recipe.toml", "--format", format, "-o", file]),
        );
        let loaded = run_ok(podman(&ctx).arg("load").arg("-i").arg(ctx.join(file)));
        assert!(loaded.contains("localhost/bb:latest"), "{format}: {loaded}");
        let out =
            run_ok(podman(&ctx).args(["run", "--rm", "--network=none", "localhost/bb:latest"]));
        assert_eq!(out.trim(), "hello from kiln", "{format}");
        run_ok(podman(&ctx).args(["rmi", "localhost/bb:latest"]));
    }
    let skopeo = json(&run_ok(
        tool("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}", ctx.join("x.tar").display())),
    ));
    assert_eq!(skopeo["Digest"], digest.as_str());
}

// --- tar-level differences (issue 12.3, 12.5) --------------------------------------------------

const EPOCH: i64 = 1_700_000_000;

/// A tree on disk with fixed modes: `bin/busybox` (the host's, 0755), `etc/hello.txt` (0644),
/// directories 0755.
fn busybox_tree(ctx: &TestContext, dir: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tree = ctx.join(dir);
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::copy(require_tool("busybox"), tree.join("bin/busybox")).unwrap();
    ctx.write(format!("{dir}/etc/hello.txt"), "hello\n");
    for (p, mode) in [
        ("", 0o755),
        ("bin", 0o755),
        ("etc", 0o755),
        ("bin/busybox", 0o755),
        ("etc/hello.txt", 0o644),
    ] {
        std::fs::set_permissions(tree.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    tree
}

/// Builds the tree `dir` (a `path` input) into the layout `ctx/<name>` with kiln.
fn kiln_tree_image(
    ctx: &TestContext,
    dir: &str,
    name: &str,
    epoch: i64,
    config: &str,
) -> std::path::PathBuf {
    let recipe = ctx.write(
        format!("{name}.toml"),
        format!(
            "[image]\nname = \"{name}\"\nepoch = {epoch}\n[inputs.tree]\npath = \"{dir}\"\n\
             [[layer]]\n[[layer.step]]\ncopy = \"tree\"\ndest = \"/\"\nowner = \"0:0\"\n{config}"
        ),
    );
    run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&recipe)
            .arg("-o")
            .arg(ctx.join(name)),
    );
    ctx.join(name)
}

fn tar_diffs<'a>(report: &'a Value, class: &str) -> Vec<&'a Value> {
    report["tar"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["class"] == class)
        .collect()
}

fn hint<'a>(report: &'a Value, class: &str) -> &'a str {
    report["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["class"] == class)
        .unwrap_or_else(|| panic!("no {class} in {}", report["summary"]))["hint"]
        .as_str()
        .unwrap()
}

/// Regression (issue 12.3): `umoci insert` writes a layer that ends right after the last
/// file's data (no padding, no end-of-archive marker); `kiln diff` stopped with "truncated".
/// It reads it as podman does, names the difference with a class and a hint, and builds on it.
#[test]
fn umoci_insert_layers_without_an_end_marker_are_diffed_with_a_class() {
    let ctx = TestContext::new();
    let tree = busybox_tree(&ctx, "tree");
    let kiln_image = kiln_tree_image(&ctx, "tree", "kiln-image", EPOCH, "");
    let umoci = ctx.join("umoci-image");
    let image = format!("{}:t", umoci.display());
    run_ok(tool("umoci").args(["init", "--layout"]).arg(&umoci));
    run_ok(tool("umoci").args(["new", "--image"]).arg(&image));
    run_ok(
        tool("umoci")
            .args(["insert", "--rootless", "--image"])
            .arg(&image)
            .arg(&tree)
            .arg("/"),
    );
    // The layer umoci wrote really lacks the marker.
    let manifest = inspect(&ctx, &format!("oci:{image}"));
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = std::fs::read(umoci.join("blobs/sha256").join(&layer[7..])).unwrap();
    let tar = crate::diff::pipe("gzip", &["-dc"], &blob);
    assert!(
        tar.len() % 512 != 0 || !tar.ends_with(&[0u8; 1024]),
        "umoci wrote an end marker after all"
    );

    let (code, report) = crate::diff::diff_json(&ctx, &umoci, &kiln_image, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["verdict"], "equivalent", "{report:#}");
    let end = tar_diffs(&report, "end-of-archive");
    assert_eq!(end.len(), 1, "{report:#}");
    assert_eq!(end[0]["a"][0]["ending"], "unpadded", "{}", end[0]);
    assert_eq!(
        end[0]["b"],
        serde_json::json!([{"ending": "marker", "trailingBytes": 1024}])
    );
    assert!(
        hint(&report, "end-of-archive")
            .contains("umoci's `insert` writes neither padding nor marker"),
        "{report:#}"
    );
    // umoci also writes an entry for the root directory.
    let root = tar_diffs(&report, "root-entry");
    assert_eq!(root.len(), 1, "{report:#}");
    assert!(
        root[0]["a"].is_string() && root[0]["b"].is_null(),
        "{}",
        root[0]
    );
    assert!(hint(&report, "root-entry").contains("entry for the root directory itself"));
    let explanation = report["layers"][0]["explanation"].as_array().unwrap();
    assert!(explanation.len() >= 2, "{explanation:?}");

    // A build on it reads the layer through the safe extractor for its `run` step.
    let digest = manifest["digest"].as_str().unwrap();
    let recipe = ctx.write(
        "on-umoci.toml",
        format!(
            "[image]\nname = \"on-umoci\"\n[base]\nref = \"oci:umoci-image:t@{digest}\"\n\
             [[layer]]\n[[layer.step]]\nrun = [\"/bin/busybox\", \"cp\", \"/etc/hello.txt\", \"/etc/copied\"]\n"
        ),
    );
    run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&recipe)
            .args(["-o", "on-umoci"]),
    );
    let out = run_ok(
        podman(&ctx)
            .args(["run", "--rm", "--network=none"])
            .arg(format!("oci:{}", ctx.join("on-umoci").display()))
            .args(["/bin/busybox", "cat", "/etc/copied"]),
    );
    assert_eq!(out, "hello\n");
}

/// Regression (issue 12.5): a `podman build --timestamp 0` image of the tree a kiln recipe
/// builds compared `equivalent` with "layer 0: different tar" and no reason. The reasons are
/// named: Go's archive/tar writes file-type bits into the mode field, and podman lists `bin/`.
#[test]
fn podman_and_kiln_builds_of_one_tree_differ_by_named_tar_classes_only() {
    let ctx = TestContext::new();
    std::fs::create_dir_all(ctx.join("pctx")).unwrap();
    std::fs::copy(require_tool("busybox"), ctx.join("pctx/busybox")).unwrap();
    std::fs::set_permissions(
        ctx.join("pctx/busybox"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    ctx.write(
        "pctx/Containerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\n",
    );
    run_ok(
        podman(&ctx)
            .args(["build", "--timestamp", "0", "-t", "localhost/same:1"])
            .arg(ctx.join("pctx")),
    );
    run_ok(
        podman(&ctx)
            .args(["save", "--format", "oci-archive", "-o"])
            .arg(ctx.join("podman.tar"))
            .arg("localhost/same:1"),
    );
    run_ok(
        ctx.kiln()
            .args(["copy", "oci-archive:podman.tar", "oci:podman-image"]),
    );
    let podman_config = inspect(&ctx, "oci:podman-image");
    let path = podman_config["config"]["Env"][0]
        .as_str()
        .unwrap()
        .to_string();
    let version = podman_config["config"]["Labels"]["io.buildah.version"]
        .as_str()
        .unwrap()
        .to_string();
    let path = path.strip_prefix("PATH=").unwrap();
    std::fs::create_dir_all(ctx.join("r")).unwrap();
    std::fs::copy(ctx.join("pctx/busybox"), ctx.join("r/busybox")).unwrap();
    // Built twice: as written first, then with the `mkdir` the parent-entries hint asks for.
    let build = |name: &str, mkdir: &str| {
        let recipe = ctx.write(
            format!("r/{name}.toml"),
            format!(
                "[image]\nname = \"same\"\nepoch = 0\n[inputs.busybox]\npath = \"busybox\"\n\
                 [[layer]]\n{mkdir}[[layer.step]]\ncopy = \"busybox\"\ndest = \"/bin/busybox\"\n\
                 mode = \"0755\"\n[config]\nenv = {{ PATH = \"{path}\" }}\n\
                 labels = {{ \"io.buildah.version\" = \"{version}\" }}\n"
            ),
        );
        run_ok(
            ctx.kiln()
                .arg("build")
                .arg(&recipe)
                .arg("-o")
                .arg(ctx.join(name)),
        );
        let (_, report) =
            crate::diff::diff_json(&ctx, &ctx.join("podman-image"), &ctx.join(name), &[]);
        assert_eq!(report["verdict"], "equivalent", "{report:#}");
        assert_eq!(report["layers"][0]["status"], "different");
        let classes: Vec<String> = report["tar"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["class"].as_str().unwrap().to_string())
            .collect();
        (report, classes)
    };

    let (report, classes) = build("kiln-image", "");
    assert_eq!(classes, ["mode-type-bits", "parent-entries"], "{report:#}");
    assert_eq!(
        report["layers"][0]["explanation"],
        serde_json::json!(["mode-type-bits", "parent-entries"])
    );
    let parents = &report["tar"][1];
    assert_eq!(
        parents["a"],
        serde_json::json!({"count": 1, "paths": ["/bin"]})
    );
    assert_eq!(parents["b"], serde_json::json!({"count": 0, "paths": []}));
    assert!(
        hint(&report, "mode-type-bits").starts_with(
            "the tar mode field carries file-type bits in one image (`0040755`, `0100644`: Go's archive/tar"
        ),
        "{report:#}"
    );
    assert!(
        hint(&report, "parent-entries").contains("add `mkdir` steps"),
        "{report:#}"
    );
    let text =
        run_ok(
            ctx.kiln()
                .args(["diff", "--semantic", "oci:podman-image", "oci:kiln-image"]),
        );
    assert!(
        text.contains("layer 0: different tar: mode-type-bits, parent-entries"),
        "{text}"
    );

    // Following the hint leaves the mode field as the only difference.
    let (report, classes) = build(
        "kiln-mkdir",
        "[[layer.step]]\nmkdir = \"/bin\"\nmode = \"0755\"\n",
    );
    assert_eq!(classes, ["mode-type-bits"], "{report:#}");
    assert_eq!(
        report["layers"][0]["explanation"],
        serde_json::json!(["mode-type-bits"])
    );
}

/// Rewrites every header of an uncompressed ustar archive written by kiln (no extension
/// headers) with `edit`, then sets its checksum as `checksum` spells it.
fn edit_headers(tar: &mut [u8], edit: impl Fn(&mut [u8]), checksum: impl Fn(u32) -> Vec<u8>) {
    let mut off = 0;
    while off + 512 <= tar.len() && tar[off..off + 512].iter().any(|&b| b != 0) {
        let h = &mut tar[off..off + 512];
        let size_text = String::from_utf8_lossy(&h[124..135])
            .trim_matches('\0')
            .to_string();
        let size = u64::from_str_radix(size_text.trim(), 8).unwrap();
        edit(h);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(&checksum(sum));
        off += 512 + size.div_ceil(512) as usize * 512;
    }
}

/// A rewritten layer: its name, how the tar is rewritten, the tar classes expected and a piece
/// of the hint of some of them.
type Variant = (
    &'static str,
    Box<dyn Fn(usize, Vec<u8>) -> Vec<u8>>,
    &'static [&'static str],
    Vec<(&'static str, &'static str)>,
);

/// Every tar-level class of issue 12.5, each from one layer rewritten by a real tool (GNU
/// tar) or by hand where no tool on this machine writes it, with the hint asserted.
#[test]
fn every_tar_level_difference_has_a_class_and_a_hint() {
    let ctx = TestContext::new();
    let tree = busybox_tree(&ctx, "tree");
    std::fs::remove_file(tree.join("bin/busybox")).unwrap();
    ctx.write("tree/bin/tool", "#!/bin/sh\n");
    std::fs::set_permissions(
        tree.join("bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let base = kiln_tree_image(&ctx, "tree", "base", EPOCH, "");
    let gnu_tar = |extra: &[&str]| {
        crate::diff::run_out(
            tool("tar")
                .arg("-C")
                .arg(&tree)
                .args(["--sort=name", &format!("--mtime=@{EPOCH}"), "-cf", "-"])
                .args(extra)
                .arg("."),
        )
    };
    let kiln_tar = |_: usize, old: Vec<u8>| old;
    let variants: Vec<Variant> = vec![
        (
            "gnu",
            Box::new({
                let t = gnu_tar(&["--format=gnu", "--owner=root:0", "--group=root:0"]);
                move |_, _| t.clone()
            }),
            &[
                "root-entry",
                "tar-format",
                "device-fields",
                "owner-names",
                "end-of-archive",
            ],
            vec![
                ("root-entry", "archive the directory's members"),
                (
                    "tar-format",
                    "tar header formats differ (ustar, gnu, pax, v7)",
                ),
                (
                    "device-fields",
                    "devmajor/devminor of entries that are not devices",
                ),
                ("owner-names", "tar uname/gname differ"),
                ("end-of-archive", "GNU tar pads to 10240-byte records"),
            ],
        ),
        (
            "posix",
            Box::new({
                let t = gnu_tar(&[
                    "--format=posix",
                    "--numeric-owner",
                    "--owner=0",
                    "--group=0",
                ]);
                move |_, _| t.clone()
            }),
            &["pax-records", "tar-format", "root-entry", "end-of-archive"],
            vec![(
                "pax-records",
                "PAX extended headers carry different records",
            )],
        ),
        (
            "checksum",
            Box::new(move |i, old| {
                let mut t = kiln_tar(i, old);
                edit_headers(&mut t, |_| {}, |sum| format!("{sum:07o}\0").into_bytes());
                t
            }),
            &["checksum-style"],
            vec![("checksum-style", "header checksums are spelled differently")],
        ),
        (
            "mode-bits",
            Box::new(move |i, old| {
                let mut t = kiln_tar(i, old);
                edit_headers(
                    &mut t,
                    |h| {
                        let high = match h[156] {
                            b'5' => b'4',
                            b'2' => b'2',
                            _ => b'1',
                        };
                        h[101] = high;
                    },
                    |sum| format!("{sum:06o}\0 ").into_bytes(),
                );
                t
            }),
            &["mode-type-bits"],
            vec![("mode-type-bits", "Go's archive/tar")],
        ),
        (
            "uid-spelling",
            // A uid written `000000 \0` instead of `0000000\0`: nothing else names it.
            Box::new(move |i, old| {
                let mut t = kiln_tar(i, old);
                edit_headers(
                    &mut t,
                    |h| h[108..116].copy_from_slice(b"000000 \0"),
                    |sum| format!("{sum:06o}\0 ").into_bytes(),
                );
                t
            }),
            &["tar-bytes"],
            vec![("tar-bytes", "compare the two layers with `diffoscope`")],
        ),
    ];
    for (name, rewrite, want, hints) in variants {
        let variant = ctx.join(name);
        crate::diff::rewrite_layers(&base, &variant, rewrite, crate::diff::kiln_like_gzip);
        let (_, report) = crate::diff::diff_json(&ctx, &base, &variant, &[]);
        assert_eq!(report["verdict"], "equivalent", "{name}: {report:#}");
        let mut classes: Vec<&str> = report["tar"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["class"].as_str().unwrap())
            .collect();
        classes.sort();
        classes.dedup();
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(classes, want, "{name}: {report:#}");
        for (class, text) in hints {
            assert!(
                hint(&report, class).contains(text),
                "{name}: {class}: {}",
                hint(&report, class)
            );
        }
        let explanation = report["layers"][0]["explanation"].as_array().unwrap();
        assert!(
            !explanation.is_empty(),
            "{name}: every different layer says why"
        );
    }
}
