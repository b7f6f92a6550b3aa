//! `kiln build`: reproducibility under every perturbation of the contract, real readers of the
//! output (skopeo, umoci, podman), and clear errors that change nothing.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

const EPOCH: i64 = 1_700_000_000;

/// Makes a gzip tarball of `files` (path, contents, mode) with GNU tar, as upstreams do.
fn make_tarball(ctx: &TestContext, name: &str, files: &[(&str, &str, u32)]) -> PathBuf {
    let src = ctx.join(format!("tarsrc-{name}"));
    for (path, contents, mode) in files {
        let p = src.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    let out = ctx.join(name);
    run_ok(Command::new("sh").arg("-c").arg(format!(
        "tar -C {} --sort=name --owner=0 --group=0 --numeric-owner --mode=go-w -cf - . | gzip -n > {}",
        src.display(),
        out.display()
    )));
    out
}

/// Writes the site input under `dir`, creating entries in `order` with `mtime`, with the
/// permissions a process with `umask` would have given them (set explicitly: the process umask
/// is shared by every test thread).
fn write_site(dir: &Path, reverse: bool, mtime: i64, umask: u32) {
    let mut files = vec![
        ("index.html", "<h1>hi</h1>\n"),
        ("css/site.css", "h1{}\n"),
        ("js/app.js", "console.log(1)\n"),
        ("deep/a/b/c.txt", "c\n"),
        ("bin/tool", "#!/bin/sh\necho tool\n"),
    ];
    if reverse {
        files.reverse();
    }
    for (path, contents) in &files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
    }
    std::fs::hard_link(dir.join("index.html"), dir.join("index-copy.html")).unwrap();
    std::os::unix::fs::symlink("index.html", dir.join("home.html")).unwrap();
    for entry in walk(dir) {
        let md = std::fs::symlink_metadata(&entry).unwrap();
        if !md.file_type().is_symlink() {
            let base = if md.is_dir() || entry.ends_with("bin/tool") {
                0o777
            } else {
                0o666
            };
            let mode = (base & !umask)
                | if entry.ends_with("bin/tool") {
                    0o100
                } else {
                    0
                };
            std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let t = filetime::FileTime::from_unix_time(mtime, 0);
        filetime::set_symlink_file_times(&entry, t, t).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

const RECIPE: &str = r#"
[image]
name = "repro"
epoch = 1700000000

[inputs.site]
path = "site"

[inputs.etc]
path = "etc.tar.gz"

[[layer]]
[[layer.step]]
extract = "etc"
dest = "/"
[[layer.step]]
mkdir = "/tmp"
mode = "1777"

[[layer]]
[[layer.step]]
copy = "site"
dest = "/srv/www"
owner = "65532:65532"
[[layer.step]]
write = "/etc/motd"
content = "hello\n"
mode = "0640"
[[layer.step]]
symlink = "/srv/index.html"
target = "www/index.html"

[config]
entrypoint = ["/bin/sh"]
env = { PATH = "/usr/bin:/bin", LANG = "C.UTF-8" }
labels = { "b" = "2", "a" = "1", "c" = "3" }
exposed-ports = ["8080/tcp", "443/tcp"]
"#;

/// A recipe directory created with the given perturbations.
fn make_recipe_dir(
    ctx: &TestContext,
    name: &str,
    reverse: bool,
    mtime: i64,
    umask: u32,
) -> PathBuf {
    let dir = ctx.join(name);
    std::fs::create_dir_all(dir.join("site")).unwrap();
    write_site(&dir.join("site"), reverse, mtime, umask);
    // The archive input is an upstream artifact: the same bytes for every build.
    let tarball = ctx.join("etc.tar.gz");
    if !tarball.exists() {
        make_tarball(
            ctx,
            "etc.tar.gz",
            &[
                ("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644),
                ("etc/shadow", "root:*::\n", 0o600),
            ],
        );
    }
    std::fs::copy(&tarball, dir.join("etc.tar.gz")).unwrap();
    std::fs::write(dir.join("recipe.toml"), RECIPE).unwrap();
    dir
}

struct Perturbation {
    cache: PathBuf,
    cwd: PathBuf,
    umask: &'static str,
    tz: &'static str,
    lang: &'static str,
    threads: &'static str,
}

fn build_with(ctx: &TestContext, recipe: &Path, out: &Path, p: &Perturbation) -> String {
    std::fs::create_dir_all(&p.cwd).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "umask {} && exec \"$KILN\" build \"$RECIPE\" -o \"$OUT\" --cache \"$CACHE\" --threads {}",
            p.umask, p.threads
        ))
        .env("KILN", env!("CARGO_BIN_EXE_kiln"))
        .env("RECIPE", recipe)
        .env("OUT", out)
        .env("CACHE", &p.cache)
        .env("TZ", p.tz)
        .env("LANG", p.lang)
        .env("LC_ALL", p.lang)
        .env("HOME", ctx.join("home"))
        .current_dir(&p.cwd);
    last_line(&run_ok(&mut cmd))
}

fn blobs(layout: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn same_recipe_same_digest_under_every_perturbation() {
    let ctx = TestContext::new();
    let a = make_recipe_dir(&ctx, "a", false, 1_000_000_000, 0o022);
    let b = make_recipe_dir(&ctx, "b", true, 1_800_000_000, 0o077);
    let pa = Perturbation {
        cache: ctx.join("cache-a"),
        cwd: ctx.join("cwd-a"),
        umask: "077",
        tz: "UTC",
        lang: "C",
        threads: "1",
    };
    let pb = Perturbation {
        cache: ctx.join("cache-b/deeper"),
        cwd: ctx.join("cwd-b/x/y"),
        umask: "000",
        tz: "Asia/Kathmandu",
        lang: "de_DE.UTF-8",
        threads: "8",
    };
    let da = build_with(&ctx, &a.join("recipe.toml"), &ctx.join("out-a"), &pa);
    let db = build_with(&ctx, &b.join("recipe.toml"), &ctx.join("out-b"), &pb);
    assert!(
        da.starts_with("sha256:") && da.len() == 71,
        "last line is the digest: {da}"
    );
    assert_eq!(da, db, "same recipe, same inputs: same manifest digest");
    let (ba, bb) = (blobs(&ctx.join("out-a")), blobs(&ctx.join("out-b")));
    assert_eq!(ba.len(), bb.len());
    for ((na, ca), (nb, cb)) in ba.iter().zip(&bb) {
        assert_eq!(na, nb);
        assert!(ca == cb, "blob {na} differs");
        assert_eq!(
            kiln::Sha256Digest::of(ca).hex(),
            *na,
            "blob {na} is named by its digest"
        );
    }
    assert_eq!(
        std::fs::read(ctx.join("out-a/index.json")).unwrap(),
        std::fs::read(ctx.join("out-b/index.json")).unwrap()
    );

    // A warm cache writes the same bytes.
    let dw = build_with(&ctx, &a.join("recipe.toml"), &ctx.join("out-warm"), &pa);
    assert_eq!(dw, da);
    assert_eq!(blobs(&ctx.join("out-warm")), ba);
}

#[test]
fn output_blobs_are_readable_by_all_and_writable_by_their_owner_only() {
    // The layout is written with fixed modes whatever the umask.
    let ctx = TestContext::new();
    let dir = make_recipe_dir(&ctx, "r", false, EPOCH, 0o022);
    let p = Perturbation {
        cache: ctx.join("c"),
        cwd: ctx.path().to_path_buf(),
        umask: "077",
        tz: "UTC",
        lang: "C",
        threads: "2",
    };
    build_with(&ctx, &dir.join("recipe.toml"), &ctx.join("out"), &p);
    for (name, _) in blobs(&ctx.join("out")) {
        let md = std::fs::metadata(ctx.join("out/blobs/sha256").join(&name)).unwrap();
        assert_eq!(md.mode() & 0o444, 0o444, "blob {name} is readable by all");
        assert_eq!(
            md.mode() & 0o022,
            0,
            "blob {name} is writable by nobody but its owner"
        );
    }
}

/// Builds the hello recipe shipped in the repository, offline, from a copy of `recipes/`.
#[test]
fn example_recipe_builds_offline() {
    let ctx = TestContext::new();
    copy_recipes(&ctx);
    let out = run_ok(
        ctx.kiln()
            .args(["build", "recipes/hello/recipe.toml", "--offline"]),
    );
    let digest = last_line(&out);
    assert!(digest.starts_with("sha256:"), "{out}");
    let inspect = run_ok(
        ctx.kiln()
            .args(["inspect", "--json", "oci:out/hello:hello"]),
    );
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["digest"], digest);
    assert_eq!(v["layers"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["referrers"][0]["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
}

#[test]
fn skopeo_and_umoci_read_the_layout_and_the_tree_matches_the_recipe() {
    let ctx = TestContext::new();
    let dir = make_recipe_dir(&ctx, "r", false, EPOCH, 0o022);
    let digest = last_line(&run_ok(
        ctx.kiln()
            .args(["build"])
            .arg(dir.join("recipe.toml"))
            .arg("-o")
            .arg(ctx.join("img")),
    ));

    let inspect = run_ok(
        tool("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:repro", ctx.join("img").display())),
    );
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"], digest, "skopeo sees the digest kiln printed");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    let raw = run_ok(
        tool("skopeo")
            .arg("inspect")
            .arg("--config")
            .arg(format!("oci:{}:repro", ctx.join("img").display())),
    );
    let cfg: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
    assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["/bin/sh"]));

    let bundle = ctx.join("bundle");
    run_ok(
        tool("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:repro", ctx.join("img").display()))
            .arg(&bundle),
    );
    let root = bundle.join("rootfs");
    let md =
        |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(md("etc/motd").mode() & 0o7777, 0o640);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/motd")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        md("etc/shadow").mode() & 0o7777,
        0o600,
        "modes from the archive are kept"
    );
    assert_eq!(md("srv/www/index.html").mode() & 0o7777, 0o644);
    assert_eq!(
        md("srv/www/bin/tool").mode() & 0o7777,
        0o755,
        "the executable bit survives"
    );
    assert_eq!(
        (
            md("srv/www/index.html").uid(),
            md("srv/www/index.html").gid()
        ),
        (65532, 65532)
    );
    assert_eq!(md("srv/www/index.html").mtime(), EPOCH);
    assert_eq!(
        std::fs::read_link(root.join("srv/index.html")).unwrap(),
        Path::new("www/index.html")
    );
    assert_eq!(
        std::fs::read_link(root.join("srv/www/home.html")).unwrap(),
        Path::new("index.html")
    );
    assert_eq!(
        md("srv/www/index.html").ino(),
        md("srv/www/index-copy.html").ino(),
        "hardlinks stay hardlinks"
    );
}

/// A busybox image from the host's static busybox runs under podman with runc, from the OCI
/// layout and from the docker-archive after `podman load`.
#[test]
fn busybox_image_runs_under_podman() {
    let ctx = TestContext::new();
    // The host's static busybox, as a `path` input beside the recipe.
    busybox_recipe(
        &ctx,
        "bb",
        "[config]\ncmd = [\"/bin/busybox\", \"echo\", \"hello from a kiln image\"]\n",
    );
    let digest = last_line(&run_ok(ctx.kiln().args([
        "build",
        "bb/recipe.toml",
        "-o",
        "bb-oci",
    ])));
    let out = run_ok(
        podman(&ctx)
            .args(["run", "--rm", "--network=none"])
            .arg(format!("oci:{}:bb", ctx.join("bb-oci").display())),
    );
    assert_eq!(out.trim(), "hello from a kiln image");

    run_ok(ctx.kiln().args([
        "build",
        "bb/recipe.toml",
        "--format",
        "docker-archive",
        "-o",
        "bb.tar",
    ]));
    let loaded = run_ok(podman(&ctx).arg("load").arg("-i").arg(ctx.join("bb.tar")));
    assert!(loaded.contains("bb"), "{loaded}");
    let out = run_ok(podman(&ctx).args([
        "run",
        "--rm",
        "--network=none",
        "localhost/bb:latest",
        "/bin/sh",
        "-c",
        "echo $((6*7))",
    ]));
    assert_eq!(out.trim(), "42");

    run_ok(ctx.kiln().args([
        "build",
        "bb/recipe.toml",
        "--format",
        "oci-archive",
        "-o",
        "bb-oci.tar",
    ]));
    let inspect = run_ok(tool("skopeo").arg("inspect").arg(format!(
        "oci-archive:{}:bb",
        ctx.join("bb-oci.tar").display()
    )));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"], digest, "the oci-archive holds the same image");
}

/// `kiln inspect` reads all three local outputs of one build and tells the same story: digest,
/// platform, layers (sizes and diff_ids) and the attached provenance.
#[test]
fn inspect_reads_layout_oci_archive_and_docker_archive() {
    let ctx = TestContext::new();
    let dir = make_recipe_dir(&ctx, "r", false, EPOCH, 0o022);
    let recipe = dir.join("recipe.toml");
    let digest = last_line(&run_ok(
        ctx.kiln().arg("build").arg(&recipe).args(["-o", "img"]),
    ));
    run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&recipe)
            .args(["--format", "oci-archive", "-o", "img.tar"]),
    );
    run_ok(ctx.kiln().arg("build").arg(&recipe).args([
        "--format",
        "docker-archive",
        "-o",
        "img-docker.tar",
    ]));
    let inspect = |r: &str| -> serde_json::Value {
        serde_json::from_str(&run_ok(ctx.kiln().args(["inspect", "--json", r]))).unwrap()
    };
    let layout = inspect("oci:img:repro");
    let archive = inspect("oci-archive:img.tar:repro");
    let docker = inspect("docker-archive:img-docker.tar");

    assert_eq!(layout["digest"], digest);
    assert_eq!(
        archive["digest"], digest,
        "the oci-archive holds the same image"
    );
    assert_eq!(archive["layers"], layout["layers"]);
    assert_eq!(archive["referrers"], layout["referrers"]);
    assert_eq!(
        layout["referrers"][0]["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    let layers = layout["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for l in layers {
        assert!(l["size"].as_u64().unwrap() > 0);
        assert!(l["diffId"].as_str().unwrap().starts_with("sha256:"));
    }
    // docker-archive stores layers uncompressed: its layer digests are the diff_ids.
    let docker_layers: Vec<&str> = docker["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let diff_ids: Vec<&str> = layers
        .iter()
        .map(|l| l["diffId"].as_str().unwrap())
        .collect();
    assert_eq!(docker_layers, diff_ids);
    assert_eq!(docker["platform"], layout["platform"]);
    assert_eq!(docker["config"], layout["config"]);

    // Text output names the same digest.
    let text = run_ok(ctx.kiln().args(["inspect", "oci:img:repro"]));
    assert!(text.contains(&digest), "{text}");
}

/// Regression: `kiln inspect … | head` panicked on the closed pipe; it must end quietly
/// and successfully like any Unix filter.
#[test]
fn inspect_into_a_closed_pipe_exits_quietly() {
    let ctx = TestContext::new();
    let dir = make_recipe_dir(&ctx, "r", false, EPOCH, 0o022);
    run_ok(
        ctx.kiln()
            .arg("build")
            .arg(dir.join("recipe.toml"))
            .args(["-o", "img"]),
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg("set -o pipefail; \"$KILN\" inspect --json oci:img:repro | true")
        .env("KILN", env!("CARGO_BIN_EXE_kiln"))
        .current_dir(ctx.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
