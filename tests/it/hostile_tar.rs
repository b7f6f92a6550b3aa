//! Hostile and unusual archives through the real binary (issues 11.4, 11.5, 11.9, 12.1): an
//! `extract` step of `kiln build`, and `kiln diff` of an image whose layer is the archive.
//! Memory and time are measured with `/usr/bin/time` around the `kiln` process itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::diff::{pipe, rewrite_layers};
use crate::support::*;
use crate::testtar::{header, Tar};

/// Peak RSS allowed for any of these cases.
const MAX_RSS_KB: u64 = 256 * 1024;
/// CPU time allowed (user + system, debug build, where decompressing and hashing are slow):
/// seconds, not minutes. CPU time, not wall time, so a loaded machine does not fail the test.
const MAX_CPU_SECS: f64 = 60.0;
/// Wall time after which kiln is killed (a quadratic kiln takes many minutes).
const KILL_AFTER_SECS: u64 = 300;

/// What one measured run of `kiln` did.
struct Measured {
    out: Output,
    rss_kb: u64,
    /// User plus system CPU time.
    cpu_secs: f64,
}

/// Runs `cmd` (a `ctx.kiln()` command) under `/usr/bin/time` and a hard timeout, so a
/// quadratic or runaway kiln fails the test instead of hanging it.
fn measured(ctx: &TestContext, cmd: &Command) -> Measured {
    let report = ctx.join("time.out");
    let mut timed = tool("timeout");
    timed
        .arg("--signal=KILL")
        .arg(KILL_AFTER_SECS.to_string())
        .arg(require_tool("time"))
        .args(["-f", "%M %U %S", "-o"])
        .arg(&report)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    let out = timed.output().expect("start kiln under time");
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let last = text.lines().last().unwrap_or_default();
    let mut fields = last.split_whitespace();
    let (Some(rss), Some(user), Some(sys)) = (fields.next(), fields.next(), fields.next()) else {
        panic!(
            "no measurement (killed after {KILL_AFTER_SECS} s?): {text}\n{}",
            stderr(&out)
        );
    };
    let secs = |v: &str| v.parse::<f64>().unwrap();
    let m = Measured {
        out,
        rss_kb: rss.parse().unwrap(),
        cpu_secs: secs(user) + secs(sys),
    };
    eprintln!(
        "measured {:?}: peak RSS {} KiB, {:.2} s CPU",
        cmd.get_args().collect::<Vec<_>>(),
        m.rss_kb,
        m.cpu_secs
    );
    assert!(
        m.rss_kb < MAX_RSS_KB,
        "peak RSS {} KiB is not under {MAX_RSS_KB} KiB\n{}",
        m.rss_kb,
        stderr(&m.out)
    );
    assert!(
        m.cpu_secs < MAX_CPU_SECS,
        "took {:.1} s of CPU\n{}",
        m.cpu_secs,
        stderr(&m.out)
    );
    m
}

/// A recipe with one layer extracting `archive` (written beside the recipe as `file`) at `/`.
fn extract_recipe_of(ctx: &TestContext, name: &str, file: &str, archive: &[u8]) -> PathBuf {
    ctx.write(format!("{name}/{file}"), archive);
    ctx.write(
        format!("{name}/recipe.toml"),
        format!(
            "[image]\nname = \"t\"\nepoch = 1700000000\n[inputs.a]\npath = \"{file}\"\n\
             [[layer]]\n[[layer.step]]\nextract = \"a\"\ndest = \"/\"\n"
        ),
    )
}

/// [`extract_recipe_of`] a compressed archive, `in.tar.gz`.
fn extract_recipe(ctx: &TestContext, name: &str, archive: &[u8]) -> PathBuf {
    extract_recipe_of(ctx, name, "in.tar.gz", archive)
}

fn build_cmd(ctx: &TestContext, recipe: &Path, out: &Path) -> Command {
    let mut cmd = ctx.kiln();
    cmd.arg("build").arg(recipe).arg("-o").arg(out);
    cmd
}

fn gzip(tar: &[u8]) -> Vec<u8> {
    pipe("gzip", &["-n", "-c"], tar)
}

/// The image of layout `dir` (the entry of index.json that is not a referrer).
fn image_manifest(dir: &Path) -> Value {
    let read = |digest: &str| -> Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index = read_json(&dir.join("index.json"));
    let image = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m.get("artifactType").is_none())
        .unwrap()
        .clone();
    read(image["digest"].as_str().unwrap())
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The digests of the image's layers, and the path of the first layer's blob.
fn layers(dir: &Path) -> (Vec<String>, PathBuf) {
    let manifest = image_manifest(dir);
    let digests: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let first = dir
        .join("blobs/sha256")
        .join(digests[0].strip_prefix("sha256:").unwrap());
    (digests, first)
}

/// A small image built by kiln, whose layer the tests replace with a hostile one.
fn base_image(ctx: &TestContext) -> PathBuf {
    let recipe = ctx.write(
        "base/recipe.toml",
        "[image]\nname = \"b\"\nepoch = 1700000000\n[[layer]]\n[[layer.step]]\n\
         write = \"/etc/motd\"\ncontent = \"hi\\n\"\n",
    );
    let out = ctx.join("base/img");
    run_ok(&mut build_cmd(ctx, &recipe, &out));
    out
}

/// `kiln diff` of the base image against a copy whose layer is `tar`.
fn diff_against(ctx: &TestContext, name: &str, tar: &[u8]) -> Measured {
    let base = base_image(ctx);
    let other = ctx.join(name);
    rewrite_layers(&base, &other, |_, _| tar.to_vec(), gzip);
    let mut cmd = ctx.kiln();
    cmd.args(["diff", "--json"])
        .arg(format!("oci:{}", base.display()))
        .arg(format!("oci:{}", other.display()));
    measured(ctx, &cmd)
}

/// One global PAX header with a `value_len`-byte xattr `key`, then `entries` empty files.
fn global_xattr_archive(key: &str, value_len: usize, entries: usize) -> Vec<u8> {
    let value = vec![b'A'; value_len];
    let mut t = Tar::new();
    t.pax(b'g', &[(key, &value)]);
    for i in 0..entries {
        t.file(&format!("f{i:05}"), b"");
    }
    t.finish()
}

/// Regression (issue 11.4): a global PAX header's 1 MB xattr cloned into every later entry
/// took gigabytes, from a few kilobytes of archive.
#[test]
fn a_global_pax_xattr_bomb_is_a_clear_error_in_bounded_memory() {
    let ctx = TestContext::new();
    let tar = global_xattr_archive("SCHILY.xattr.security.capability", 1_000_000, 400);
    let archive = gzip(&tar);
    assert!(archive.len() < 16 * 1024, "{} bytes", archive.len());
    let recipe = extract_recipe(&ctx, "bomb", &archive);
    let m = measured(&ctx, &build_cmd(&ctx, &recipe, &ctx.join("bomb/out")));
    assert!(!m.out.status.success());
    let err = stderr(&m.out);
    assert!(
        err.contains(
            "global pax header at byte 0: its records take 1000032 bytes, above the cap of 65536"
        ) && err.contains("recipe.toml:7:1: step `extract`"),
        "{err}"
    );
    assert!(!ctx.join("bomb/out").exists());

    // Under the value cap, but repeated on every entry: the archive's cap stops it.
    let tar = global_xattr_archive("SCHILY.xattr.security.capability", 60_000, 1_000);
    let recipe = extract_recipe(&ctx, "many", &gzip(&tar));
    let m = measured(&ctx, &build_cmd(&ctx, &recipe, &ctx.join("many/out")));
    assert!(!m.out.status.success());
    let err = stderr(&m.out);
    assert!(
        err.contains("xattrs of the archive's entries exceed the cap of 33554432 bytes"),
        "{err}"
    );

    // `kiln diff` reads every xattr of a layer: the same caps, the same error.
    let m = diff_against(
        &ctx,
        "diffbomb",
        &global_xattr_archive("SCHILY.xattr.user.big", 1_000_000, 400),
    );
    assert_eq!(m.out.status.code(), Some(2), "{}", stderr(&m.out));
    let err = stderr(&m.out);
    assert!(
        err.contains("global pax header at byte 0: its records take 1000021 bytes"),
        "{err}"
    );
    let m = diff_against(
        &ctx,
        "diffmany",
        &global_xattr_archive("SCHILY.xattr.user.x", 60_000, 1_000),
    );
    assert_eq!(m.out.status.code(), Some(2), "{}", stderr(&m.out));
    let err = stderr(&m.out);
    assert!(
        err.contains("xattrs of the archive's entries exceed the cap of 33554432 bytes"),
        "{err}"
    );
}

/// N empty files, then the same N names again with other contents.
fn duplicates_archive(n: usize) -> Vec<u8> {
    let mut t = Tar::new();
    t.dir("d/", 0o755);
    for round in [&b""[..], b"x"] {
        for i in 0..n {
            t.file(&format!("d/f{i:06}"), round);
        }
    }
    t.finish()
}

/// Regression (issue 11.5): N files followed by the same N names took 98 s for 80k names:
/// every replacement scanned the tree. (40k names: 190 s of CPU before, 8 s after, in a
/// debug build.)
#[test]
fn duplicate_names_are_replaced_in_linear_time() {
    let ctx = TestContext::new();
    let n = 40_000;
    let tar = duplicates_archive(n);
    let recipe = extract_recipe_of(&ctx, "dups", "in.tar", &tar);
    let out = ctx.join("dups/out");
    let m = measured(&ctx, &build_cmd(&ctx, &recipe, &out));
    assert!(m.out.status.success(), "{}", stderr(&m.out));
    // The last entry of each name won.
    let (_, blob) = layers(&out);
    let listing =
        String::from_utf8(pipe("tar", &["-tvzf", "-"], &std::fs::read(blob).unwrap())).unwrap();
    let files: Vec<&str> = listing.lines().filter(|l| l.contains("d/f")).collect();
    assert_eq!(files.len(), n);
    assert!(files.iter().all(|l| l.contains(" 1 ")), "{}", files[0]);

    let m = diff_against(&ctx, "dupdiff", &tar);
    assert_eq!(m.out.status.code(), Some(1), "{}", stderr(&m.out));
    let report: Value = serde_json::from_slice(&m.out.stdout).unwrap();
    assert!(
        report.to_string().contains("\"count\":40000"),
        "{}",
        &report.to_string()[..2000.min(report.to_string().len())]
    );
}

/// Regression (issue 11.9): a `0` member named `d/` carrying 1024 bytes that look like a
/// header: kiln read it as a directory and parsed its data as headers, so the layer held an
/// `evil` file that GNU tar's listing, busybox, Python and Go do not see.
#[test]
fn a_regular_member_named_like_a_directory_keeps_the_stream_in_sync() {
    let ctx = TestContext::new();
    let mut inner = Tar::new();
    inner.file("evil", b"EVIL!");
    let data = inner.out.clone();
    assert_eq!(data.len(), 1024);
    let mut t = Tar::new();
    t.raw(header(b"d/", b'0', 1024, 0o755, b""), &data)
        .file("after", b"abc");
    let tar = t.finish();
    // What the other readers see: `d/` and `after`, never `evil`.
    let theirs = String::from_utf8(pipe("tar", &["-tf", "-"], &tar)).unwrap();
    assert_eq!(theirs, "d/\nafter\n");
    let busybox = String::from_utf8(pipe("busybox", &["tar", "-tf", "-"], &tar)).unwrap();
    assert_eq!(busybox, "d/\nafter\n");

    let recipe = extract_recipe(&ctx, "slash", &gzip(&tar));
    let out = ctx.join("slash/out");
    run_ok(&mut build_cmd(&ctx, &recipe, &out));
    let (_, blob) = layers(&out);
    let listing =
        String::from_utf8(pipe("tar", &["-tvzf", "-"], &std::fs::read(blob).unwrap())).unwrap();
    let names: Vec<(&str, &str)> = listing
        .lines()
        .map(|l| (&l[..1], l.split_whitespace().last().unwrap()))
        .collect();
    // A regular file with its 1024 bytes, as Go's archive/tar (container runtimes) reads it.
    assert_eq!(names, [("-", "after"), ("-", "d")], "{listing}");
    assert!(listing.contains(" 1024 "), "{listing}");
}

/// Regression (issue 11.9): `extract` accepted a gzip stream with a bad CRC, without its
/// trailer, or with trailing garbage, because it stopped reading at the tar's end. Each is
/// refused as `gzip -t` refuses it; NUL padding after the stream is accepted, as by gzip.
#[test]
fn extract_checks_the_whole_gzip_stream_like_gzip_t() {
    let ctx = TestContext::new();
    let mut t = Tar::new();
    t.file("etc/motd", b"hello\n");
    let good = gzip(&t.finish());
    let mut bad_crc = good.clone();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0xff;
    let no_trailer = good[..good.len() - 8].to_vec();
    let mut garbage = good.clone();
    garbage.extend_from_slice(b"junk after the stream");
    let mut zeros = good.clone();
    zeros.extend_from_slice(&[0u8; 100]);
    for (name, bytes, ok) in [
        ("good", &good, true),
        ("zeros", &zeros, true),
        ("crc", &bad_crc, false),
        ("trailer", &no_trailer, false),
        ("garbage", &garbage, false),
    ] {
        let gz = ctx.write(format!("{name}.gz"), bytes);
        let tested = tool("gzip").arg("-t").arg(&gz).output().unwrap();
        assert_eq!(tested.status.success(), ok, "gzip -t {name}");
        let recipe = extract_recipe(&ctx, name, bytes);
        let out = ctx.join(name).join("out");
        let got = build_cmd(&ctx, &recipe, &out).output().unwrap();
        assert_eq!(got.status.success(), ok, "{name}: {}", stderr(&got));
        if !ok {
            let err = stderr(&got);
            assert!(
                err.contains("in.tar.gz") && err.contains("gzip"),
                "{name}: {err}"
            );
            assert!(!out.exists(), "{name}");
        }
    }
}

/// Extracts the first layer of `dir` with GNU tar and lists it (names, modes, link counts,
/// contents).
fn unpacked(ctx: &TestContext, dir: &Path, name: &str) -> (PathBuf, Vec<String>) {
    let (_, blob) = layers(dir);
    let root = ctx.join(name);
    std::fs::create_dir_all(&root).unwrap();
    run_ok(
        tool("tar")
            .arg("-xzf")
            .arg(blob)
            .arg("-C")
            .arg(&root)
            .arg("--numeric-owner"),
    );
    let list = listing(&root);
    (root, list)
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).unwrap().ino()
}

/// Issue 12.1: GNU tar writes a hard-link group's content at whichever member it meets first
/// (readdir order); `extract` refused archives where that member is not the first path in
/// sort order. Every order must give the same layer, with one inode group and the right
/// content, the first path in sort order carrying it.
#[test]
fn gnu_tar_hardlinks_in_any_order_give_one_layer() {
    let ctx = TestContext::new();
    let src = ctx.join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/z.conf"), "shared\n").unwrap();
    std::fs::hard_link(src.join("etc/z.conf"), src.join("etc/a.conf")).unwrap();
    std::fs::hard_link(src.join("etc/z.conf"), src.join("etc/m.conf")).unwrap();
    let orders: [&[&str]; 3] = [
        &["./etc/z.conf", "./etc/a.conf", "./etc/m.conf"],
        &["./etc/a.conf", "./etc/m.conf", "./etc/z.conf"],
        &["./etc/m.conf", "./etc/z.conf", "./etc/a.conf"],
    ];
    let mut digests = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        let archive = ctx.join(format!("in{i}.tar"));
        run_ok(
            tool("tar")
                .arg("-C")
                .arg(&src)
                .args(["--numeric-owner", "--mtime=@1000", "-cf"])
                .arg(&archive)
                .args(*order),
        );
        // GNU tar wrote the content at the first member it met: the order really differs.
        let members = String::from_utf8(
            tool("tar")
                .arg("-tvf")
                .arg(&archive)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let first = order[0].trim_start_matches("./");
        assert!(
            members.lines().next().unwrap().ends_with(first),
            "{members}"
        );
        let recipe = extract_recipe(&ctx, &format!("o{i}"), &std::fs::read(&archive).unwrap());
        let out = ctx.join(format!("o{i}/out"));
        run_ok(&mut build_cmd(&ctx, &recipe, &out));
        let (layer_digests, blob) = layers(&out);
        digests.push(layer_digests);
        let listing =
            String::from_utf8(pipe("tar", &["-tvzf", "-"], &std::fs::read(blob).unwrap())).unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert!(
            lines[0].ends_with("etc/a.conf") && lines[0].starts_with('-'),
            "{listing}"
        );
        assert!(
            lines[1].ends_with("etc/m.conf link to etc/a.conf"),
            "{listing}"
        );
        assert!(
            lines[2].ends_with("etc/z.conf link to etc/a.conf"),
            "{listing}"
        );
        let (root, _) = unpacked(&ctx, &out, &format!("x{i}"));
        let ids: Vec<u64> = ["a", "m", "z"]
            .iter()
            .map(|n| inode(&root.join(format!("etc/{n}.conf"))))
            .collect();
        assert!(ids.iter().all(|&id| id == ids[0]), "one inode group");
        assert_eq!(
            std::fs::read_to_string(root.join("etc/z.conf")).unwrap(),
            "shared\n"
        );
    }
    assert_eq!(digests[0], digests[1]);
    assert_eq!(digests[0], digests[2]);
}

/// Issue 12.1: a link to a link joins the group, and a link whose target is replaced later in
/// the archive keeps the content it linked to: the layer extracts exactly as the archive does
/// with GNU tar. A link to a member that comes later is refused, as GNU tar cannot make it.
#[test]
fn hardlink_chains_and_replaced_targets_extract_like_gnu_tar() {
    let ctx = TestContext::new();
    let mut t = Tar::new();
    t.dir("etc/", 0o755)
        .file("etc/z.conf", b"old\n")
        .hardlink("etc/a.conf", "etc/z.conf")
        .hardlink("etc/b.conf", "etc/a.conf")
        .file("etc/z.conf", b"new\n")
        .file("etc/y.conf", b"y\n")
        .hardlink("etc/c.conf", "etc/y.conf")
        .file("etc/c.conf", b"c replaced\n");
    let tar = t.finish();
    let gnu = ctx.join("gnu");
    std::fs::create_dir_all(&gnu).unwrap();
    let archive = ctx.write("chain.tar", &tar);
    run_ok(
        tool("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&gnu)
            .arg("--numeric-owner"),
    );
    let recipe = extract_recipe(&ctx, "chain", &tar);
    let out = ctx.join("chain/out");
    run_ok(&mut build_cmd(&ctx, &recipe, &out));
    let (root, mine) = unpacked(&ctx, &out, "mine");
    let names = ["a", "b", "c", "y", "z"];
    for n in names {
        let p = format!("etc/{n}.conf");
        assert_eq!(
            std::fs::read(root.join(&p)).unwrap(),
            std::fs::read(gnu.join(&p)).unwrap(),
            "{p}"
        );
    }
    let groups = |root: &Path| -> Vec<Vec<&str>> {
        let mut by_inode: std::collections::BTreeMap<u64, Vec<&str>> = Default::default();
        for n in names {
            by_inode
                .entry(inode(&root.join(format!("etc/{n}.conf"))))
                .or_default()
                .push(n);
        }
        let mut g: Vec<Vec<&str>> = by_inode.into_values().collect();
        g.sort();
        g
    };
    assert_eq!(groups(&root), groups(&gnu), "{mine:?}");
    assert_eq!(
        groups(&root),
        [vec!["a", "b"], vec!["c"], vec!["y"], vec!["z"]]
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/a.conf")).unwrap(),
        "old\n"
    );

    // A link to a member that comes later: GNU tar cannot link it either.
    let mut t = Tar::new();
    t.hardlink("etc/a.conf", "etc/z.conf")
        .file("etc/z.conf", b"z\n");
    let tar = t.finish();
    let archive = ctx.write("later.tar", &tar);
    let dir = ctx.join("gnu-later");
    std::fs::create_dir_all(&dir).unwrap();
    let gnu = tool("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!gnu.status.success());
    let recipe = extract_recipe(&ctx, "later", &tar);
    let err = stderr(&run_err(&mut build_cmd(
        &ctx,
        &recipe,
        &ctx.join("later/out"),
    )));
    assert!(
        err.contains("etc/a.conf") && err.contains("not an entry of this layer"),
        "{err}"
    );
}

#[test]
fn measured_runs_report_what_the_process_used() {
    // The measurement itself: a process that allocates 300 MB is over the cap.
    let ctx = TestContext::new();
    let mut cmd = tool("python3");
    cmd.args([
        "-c",
        "x = bytearray(300 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])",
    ]);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| measured(&ctx, &cmd)));
    assert!(caught.is_err(), "300 MB must exceed the cap");
}
