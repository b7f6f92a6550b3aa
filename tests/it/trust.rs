//! The trust chain of local bases and of the cache (issue 11, SECURITY.md 33–38, 40): every
//! blob verified before use, nothing shared with the cache or a base, a private cache whatever
//! the umask, records that cannot be forged, bit rot caught before a blob leaves kiln, and no
//! scratch directory outliving its build.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::Sha256Digest;

use crate::support::*;

/// The image manifest of the single image in the layout at `dir`.
fn manifest(dir: &Path) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m.get("artifactType").is_none())
        .unwrap();
    let blob = blob_path(dir, desc["digest"].as_str().unwrap());
    serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap()
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// The layer blob files of the image in the layout at `dir`, in manifest order.
fn layer_blobs(dir: &Path) -> Vec<PathBuf> {
    manifest(dir)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob_path(dir, l["digest"].as_str().unwrap()))
        .collect()
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p);
            } else if md.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every blob of the layout at `dir` hashes to its name.
fn assert_layout_intact(dir: &Path) {
    for f in files_under(&dir.join("blobs/sha256")) {
        let name = f.file_name().unwrap().to_str().unwrap();
        let actual = Sha256Digest::of(&std::fs::read(&f).unwrap()).hex();
        assert_eq!(actual, name, "{} does not hash to its name", f.display());
    }
}

/// Overwrites a read-only file in place, keeping its inode.
fn overwrite(path: &Path, bytes: &[u8]) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn record_count(cache: &Path, kind: &str) -> usize {
    std::fs::read_dir(cache.join("refs").join(kind))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A busybox image whose `/etc/motd` says `motd`, built into the layout `out`; its digest.
fn busybox_image(ctx: &TestContext, dir: &str, motd: &str, out: &str) -> String {
    busybox_recipe(
        ctx,
        dir,
        &format!(
            "[[layer.step]]\nmkdir = \"/etc\"\n[[layer.step]]\nwrite = \"/etc/motd\"\n\
             content = \"{motd}\\n\"\n"
        ),
    );
    last_line(&run_ok(ctx.kiln().args([
        "build",
        &format!("{dir}/recipe.toml"),
        "-o",
        out,
        "--cache",
        "base-cache",
    ])))
}

/// A recipe on `base_ref` with a `run` step that copies `/etc/motd` (a layer whose cache key
/// follows the base).
fn recipe_reading_motd(ctx: &TestContext, name: &str, base_ref: &str) -> PathBuf {
    ctx.write(
        format!("{name}.toml"),
        format!(
            "[image]\nname = \"{name}\"\nepoch = 1700000000\n[base]\nref = \"{base_ref}\"\n\
             [[layer]]\n[[layer.step]]\nrun = \"cat /etc/motd > /seen\"\n"
        ),
    )
}

/// The content of `/seen` in the last layer of the layout at `dir`.
fn seen(dir: &Path) -> String {
    let layer = layer_blobs(dir).pop().unwrap();
    let out = run_ok(tool("tar").arg("-xzOf").arg(&layer).arg("seen"));
    out.trim().to_string()
}

/// SECURITY.md 36: a local base whose layer blob was swapped under an unchanged manifest digest
/// is refused with the digest named, leaves no layer record, and the genuine base then builds
/// the genuine result (no poisoned layer reused).
#[test]
fn swapped_layer_blob_in_an_oci_or_oci_archive_base_is_refused_and_never_cached() {
    let ctx = TestContext::new();
    let genuine = busybox_image(&ctx, "good", "genuine", "good-oci");
    busybox_image(&ctx, "evil", "evil", "evil-src");
    let layer = layer_blobs(&ctx.join("good-oci")).pop().unwrap();
    let layer_digest = format!("sha256:{}", layer.file_name().unwrap().to_str().unwrap());

    // The genuine layout with its layer's bytes replaced by the evil image's layer.
    run_ok(
        tool("cp")
            .args(["-a", "good-oci", "swapped-oci"])
            .current_dir(ctx.path()),
    );
    let evil_bytes = std::fs::read(layer_blobs(&ctx.join("evil-src")).pop().unwrap()).unwrap();
    let swapped_layer = ctx
        .join("swapped-oci/blobs/sha256")
        .join(layer.file_name().unwrap());
    overwrite(&swapped_layer, &evil_bytes);
    run_ok(
        tool("tar")
            .args(["-cf", "swapped.tar", "-C", "swapped-oci", "."])
            .current_dir(ctx.path()),
    );

    for (name, base_ref) in [
        ("viadir", format!("oci:swapped-oci@{genuine}")),
        ("viatar", format!("oci-archive:swapped.tar@{genuine}")),
    ] {
        recipe_reading_motd(&ctx, name, &base_ref);
        let out = run_err(ctx.kiln().args([
            "build",
            &format!("{name}.toml"),
            "-o",
            &format!("out-{name}"),
            "--cache",
            "cache",
        ]));
        let err = stderr(&out);
        assert!(
            err.contains(&layer_digest),
            "{name}: the digest is named: {err}"
        );
        assert!(err.contains("digest mismatch"), "{name}: {err}");
        assert!(!ctx.join(format!("out-{name}")).exists());
        assert_eq!(
            record_count(&ctx.join("cache"), "layers"),
            0,
            "{name}: no layer record"
        );
        let blobs = files_under(&ctx.join("cache/blobs/sha256"));
        let evil_digest = Sha256Digest::of(&evil_bytes).hex();
        assert!(
            !blobs.iter().any(|b| b.ends_with(&evil_digest)),
            "{name}: the swapped bytes did not enter the cache"
        );
    }

    // The same recipe on the genuine base, with the same cache: the genuine result.
    recipe_reading_motd(&ctx, "real", &format!("oci:good-oci@{genuine}"));
    run_ok(
        ctx.kiln()
            .args(["build", "real.toml", "-o", "out-real", "--cache", "cache"]),
    );
    assert_eq!(seen(&ctx.join("out-real")), "genuine");
}

/// A `docker-archive:` cannot be pinned, so it cannot be a base; reading one with a swapped
/// layer (`kiln copy`) is refused by the diff_id check, naming the layer.
#[test]
fn swapped_layer_in_a_docker_archive_is_refused() {
    let ctx = TestContext::new();
    busybox_recipe(
        &ctx,
        "good",
        "[[layer.step]]\nwrite = \"/motd\"\ncontent = \"genuine\\n\"\n",
    );
    busybox_recipe(
        &ctx,
        "evil",
        "[[layer.step]]\nwrite = \"/motd\"\ncontent = \"evil\\n\"\n",
    );
    for name in ["good", "evil"] {
        run_ok(ctx.kiln().args([
            "build",
            &format!("{name}/recipe.toml"),
            "--format",
            "docker-archive",
            "-o",
            &format!("{name}.tar"),
        ]));
        std::fs::create_dir(ctx.join(format!("{name}-x"))).unwrap();
        run_ok(
            tool("tar")
                .args(["-xf", &format!("{name}.tar"), "-C", &format!("{name}-x")])
                .current_dir(ctx.path()),
        );
    }
    let layer_name = |dir: &str| -> String {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(ctx.join(dir).join("manifest.json")).unwrap())
                .unwrap();
        m[0]["Layers"][0].as_str().unwrap().to_string()
    };
    let (good_layer, evil_layer) = (layer_name("good-x"), layer_name("evil-x"));
    let evil = std::fs::read(ctx.join("evil-x").join(&evil_layer)).unwrap();
    overwrite(&ctx.join("good-x").join(&good_layer), &evil);
    run_ok(
        tool("tar")
            .args(["-cf", "swapped.tar", "-C", "good-x", "."])
            .current_dir(ctx.path()),
    );
    let out = run_err(
        ctx.kiln()
            .args(["copy", "docker-archive:swapped.tar", "oci:copied"]),
    );
    let err = stderr(&out);
    assert!(err.contains("diff_id"), "{err}");
    assert!(err.contains(&Sha256Digest::of(&evil).to_string()), "{err}");
    assert!(!ctx.join("copied").exists());
}

/// SECURITY.md 36 and 38: an output shares no inode with the cache or the base layout, so
/// editing either afterwards does not change the output.
#[test]
fn output_shares_no_inode_with_the_cache_or_the_base() {
    let ctx = TestContext::new();
    let base = busybox_image(&ctx, "bb", "base", "base-oci");
    ctx.write(
        "child.toml",
        format!(
            "[image]\nname = \"child\"\nepoch = 1700000000\n[base]\nref = \"oci:base-oci@{base}\"\n\
             [[layer]]\n[[layer.step]]\nwrite = \"/child\"\ncontent = \"child\\n\"\n"
        ),
    );
    for out in ["out", "out-warm"] {
        run_ok(
            ctx.kiln()
                .args(["build", "child.toml", "-o", out, "--cache", "cache"]),
        );
    }
    let shared: Vec<PathBuf> = files_under(&ctx.join("cache"))
        .into_iter()
        .chain(files_under(&ctx.join("base-oci")))
        .collect();
    let inodes: Vec<(u64, u64)> = shared
        .iter()
        .map(|p| {
            let md = std::fs::metadata(p).unwrap();
            (md.dev(), md.ino())
        })
        .collect();
    for out in ["out", "out-warm"] {
        for f in files_under(&ctx.join(out)) {
            let md = std::fs::metadata(&f).unwrap();
            assert_eq!(md.nlink(), 1, "{} has other links", f.display());
            assert!(
                !inodes.contains(&(md.dev(), md.ino())),
                "{} shares an inode with the cache or the base",
                f.display()
            );
        }
    }
    // Edit the base's layer in place: the outputs are unchanged.
    let before = listing(&ctx.join("out"));
    let base_layer = layer_blobs(&ctx.join("base-oci")).remove(0);
    overwrite(&base_layer, b"edited later");
    assert_eq!(listing(&ctx.join("out")), before);
    assert_layout_intact(&ctx.join("out"));
    assert_layout_intact(&ctx.join("out-warm"));
}

/// Runs kiln under `umask 000`.
fn kiln_umask_000(ctx: &TestContext, args: &[&str]) -> Command {
    let mut cmd = ctx.kiln();
    let program = cmd.get_program().to_owned();
    let mut sh = Command::new("sh");
    sh.current_dir(ctx.path())
        .env("XDG_CACHE_HOME", ctx.join("xdg-cache"))
        .env("HOME", ctx.join("home"))
        .arg("-c")
        .arg("umask 000; exec \"$@\"")
        .arg("sh")
        .arg(program)
        .args(args);
    cmd = sh;
    cmd
}

/// Paths under `root` (itself included) that group or others can write.
fn writable_by_others(root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        if md.file_type().is_symlink() {
            continue;
        }
        if md.mode() & 0o022 != 0 {
            bad.push(format!("{} {:o}", p.display(), md.mode() & 0o7777));
        }
        if md.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    bad
}

/// SECURITY.md 35 and 37: under `umask 000` nothing kiln creates in the cache or the output is
/// writable by group or others.
#[test]
fn umask_000_leaves_nothing_in_the_cache_or_the_output_writable_by_others() {
    let ctx = TestContext::new();
    let base = busybox_image(&ctx, "bb", "base", "base-oci");
    ctx.write("site/index.html", "hello\n");
    ctx.write(
        "child.toml",
        format!(
            "[image]\nname = \"child\"\nepoch = 1700000000\n[base]\nref = \"oci:base-oci@{base}\"\n\
             [inputs.site]\npath = \"site\"\n\
             [[layer]]\n[[layer.step]]\ncopy = \"site\"\ndest = \"/srv\"\n"
        ),
    );
    run_ok(&mut kiln_umask_000(
        &ctx,
        &["build", "child.toml", "-o", "out/oci", "--cache", "cache"],
    ));
    run_ok(&mut kiln_umask_000(
        &ctx,
        &[
            "build",
            "child.toml",
            "--format",
            "oci-archive",
            "-o",
            "out/img.tar",
            "--cache",
            "cache",
        ],
    ));
    let bad: Vec<String> = writable_by_others(&ctx.join("cache"))
        .into_iter()
        .chain(writable_by_others(&ctx.join("out")))
        .collect();
    assert!(bad.is_empty(), "writable by others: {bad:#?}");
    for kind in ["layers", "dirs", "verified", "diffids"] {
        assert!(
            record_count(&ctx.join("cache"), kind) > 0,
            "refs/{kind} written"
        );
    }
}

/// An existing cache root that group or others can write is refused, with a hint.
#[test]
fn a_group_writable_cache_root_is_refused_with_a_hint() {
    let ctx = TestContext::new();
    ctx.write(
        "r.toml",
        "[image]\nname = \"r\"\n[[layer]]\n[[layer.step]]\nwrite = \"/f\"\ncontent = \"x\"\n",
    );
    std::fs::create_dir(ctx.join("cache")).unwrap();
    std::fs::set_permissions(ctx.join("cache"), std::fs::Permissions::from_mode(0o770)).unwrap();
    let out = run_err(
        ctx.kiln()
            .args(["build", "r.toml", "-o", "out", "--cache", "cache"]),
    );
    let err = stderr(&out);
    assert!(err.contains("writable by other users"), "{err}");
    // The hint is data (`StoreError::hint`), printed as its own last line.
    let hint = err.lines().last().unwrap_or_default();
    assert!(
        hint.starts_with("hint: check its contents, then run `chmod 700 ")
            && hint.ends_with("`, or choose another cache directory with --cache"),
        "{err}"
    );
    assert_eq!(err.matches("hint:").count(), 1, "{err}");
}

/// SECURITY.md 37: a layer record rewritten to point at another (valid) blob is not used: the
/// build produces the right image.
#[test]
fn a_tampered_layer_record_is_not_used() {
    let ctx = TestContext::new();
    let recipe = |name: &str, content: &str| {
        ctx.write(
            format!("{name}.toml"),
            format!(
                "[image]\nname = \"t\"\nepoch = 1700000000\n[[layer]]\n[[layer.step]]\n\
                 write = \"/f\"\ncontent = \"{content}\"\n"
            ),
        )
    };
    recipe("a", "the right content");
    recipe("b", "another user's content");
    let build = |name: &str, out: &str| {
        last_line(&run_ok(ctx.kiln().args([
            "build",
            &format!("{name}.toml"),
            "-o",
            out,
            "--cache",
            "cache",
        ])))
    };
    let a = build("a", "out-a");
    let layers = ctx.join("cache/refs/layers");
    let a_record = files_under(&layers).pop().unwrap();
    build("b", "out-b");
    let b_record = files_under(&layers)
        .into_iter()
        .find(|p| *p != a_record)
        .unwrap();
    // Another user rewrites a's record with b's (a valid record of this cache, for a valid
    // blob of this cache).
    std::fs::copy(&b_record, &a_record).unwrap();
    let again = build("a", "out-a2");
    assert_eq!(again, a, "the forged record was not used");
    assert_layout_intact(&ctx.join("out-a2"));
}

/// Flips one byte of `path` and puts its mtime back.
fn rot(path: &Path) {
    let md = std::fs::metadata(path).unwrap();
    let mtime = filetime::FileTime::from_last_modification_time(&md);
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x20;
    overwrite(path, &bytes);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
    filetime::set_file_mtime(path, mtime).unwrap();
}

fn gen_recipe(ctx: &TestContext) {
    // A layer big enough that its blob is easy to tell from the config.
    let mut data = Vec::new();
    for i in 0..20_000u32 {
        data.extend_from_slice(format!("line {i} of a file\n").as_bytes());
    }
    ctx.write("tree/data.txt", &data);
    ctx.write(
        "r.toml",
        "[image]\nname = \"r\"\nepoch = 1700000000\n[inputs.tree]\npath = \"tree\"\n\
         [[layer]]\n[[layer.step]]\ncopy = \"tree\"\ndest = \"/data\"\n",
    );
}

/// SECURITY.md 38: a cached layer with a flipped byte and its mtime restored is never written
/// out under its old digest; earlier outputs are not touched; the next build repairs it.
#[test]
fn bit_rot_that_keeps_the_mtime_is_never_output() {
    let ctx = TestContext::new();
    gen_recipe(&ctx);
    let build = |out: &str| {
        ctx.kiln()
            .args(["build", "r.toml", "-o", out, "--cache", "cache"])
            .output()
            .unwrap()
    };
    let first = build("out1");
    assert!(first.status.success(), "{}", stderr(&first));
    let digest = last_line(&String::from_utf8_lossy(&first.stdout));
    let layer = layer_blobs(&ctx.join("out1")).pop().unwrap();
    let cached = ctx
        .join("cache/blobs/sha256")
        .join(layer.file_name().unwrap());
    rot(&cached);

    let second = build("out2");
    if second.status.success() {
        assert_layout_intact(&ctx.join("out2"));
    } else {
        let err = stderr(&second);
        assert!(
            err.contains("corrupt") && err.contains(layer.file_name().unwrap().to_str().unwrap()),
            "{err}"
        );
        assert!(!ctx.join("out2").exists());
    }
    assert_layout_intact(&ctx.join("out1"));
    // The bad entry was quarantined; the next build makes the layer again.
    let third = build("out3");
    assert!(third.status.success(), "{}", stderr(&third));
    assert_eq!(last_line(&String::from_utf8_lossy(&third.stdout)), digest);
    assert_layout_intact(&ctx.join("out3"));

    // `kiln copy` of the output and of an oci-archive made from it re-verify too.
    rot(&layer_blobs(&ctx.join("out3")).pop().unwrap());
    let out = run_err(ctx.kiln().args([
        "copy",
        "oci:out3",
        "oci-archive:copied.tar",
        "--cache",
        "cache",
    ]));
    assert!(stderr(&out).contains("digest mismatch"), "{}", stderr(&out));
    assert!(!ctx.join("copied.tar").exists());
}

/// `kiln cache verify` finds and quarantines a corrupted entry (exit 1); `kiln cache gc
/// --keep-days 0` empties the cache, and a following build still works.
#[test]
fn cache_verify_quarantines_and_gc_trims() {
    let ctx = TestContext::new();
    gen_recipe(&ctx);
    let digest = last_line(&run_ok(
        ctx.kiln()
            .args(["build", "r.toml", "-o", "out", "--cache", "cache"]),
    ));
    let clean = run_ok(
        ctx.kiln()
            .args(["cache", "verify", "--cache", "cache", "--json"]),
    );
    let report: serde_json::Value = serde_json::from_str(&clean).unwrap();
    assert!(report["checked"].as_u64().unwrap() >= 1, "{clean}");
    assert_eq!(report["quarantined"].as_array().unwrap().len(), 0);

    let layer = layer_blobs(&ctx.join("out")).pop().unwrap();
    let name = layer.file_name().unwrap().to_str().unwrap().to_string();
    rot(&ctx.join("cache/blobs/sha256").join(&name));
    let out = ctx
        .kiln()
        .args(["cache", "verify", "--cache", "cache"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&name) && text.contains("1 corrupt"), "{text}");
    assert!(ctx.join("cache/quarantine").join(&name).exists());
    assert!(!ctx.join("cache/blobs/sha256").join(&name).exists());
    run_ok(ctx.kiln().args(["cache", "verify", "--cache", "cache"]));
    // The next build makes the layer again.
    let repaired = last_line(&run_ok(
        ctx.kiln()
            .args(["build", "r.toml", "-o", "out1", "--cache", "cache"]),
    ));
    assert_eq!(repaired, digest);

    let gc = run_ok(ctx.kiln().args([
        "cache",
        "gc",
        "--keep-days",
        "0",
        "--cache",
        "cache",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&gc).unwrap();
    assert!(report["removed_blobs"].as_u64().unwrap() >= 1, "{gc}");
    assert!(files_under(&ctx.join("cache/blobs")).is_empty());
    assert_eq!(record_count(&ctx.join("cache"), "layers"), 0);
    assert!(files_under(&ctx.join("cache/quarantine")).is_empty());
    let again = last_line(&run_ok(
        ctx.kiln()
            .args(["build", "r.toml", "-o", "out2", "--cache", "cache"]),
    ));
    assert_eq!(again, digest);
    // A long window keeps what was just used.
    let gc = run_ok(ctx.kiln().args([
        "cache",
        "gc",
        "--keep-days",
        "30",
        "--cache",
        "cache",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&gc).unwrap();
    assert_eq!(report["removed_blobs"].as_u64(), Some(0), "{gc}");
}

fn scratch_entries(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache.join("scratch"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

fn staging_entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".kiln-out-")
        })
        .collect()
}

/// Starts a build whose `run` step sleeps, and waits until the step runs.
fn start_slow_build(ctx: &TestContext, base: &str) -> std::process::Child {
    ctx.write(
        "slow.toml",
        format!(
            "[image]\nname = \"slow\"\nepoch = 1700000000\n[base]\nref = \"oci:base-oci@{base}\"\n\
             [[layer]]\n[[layer.step]]\nrun = \"sleep 30\"\n"
        ),
    );
    let mut child = ctx
        .kiln()
        .args(["build", "slow.toml", "-o", "out/slow", "--cache", "cache"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // The step runs once its rootfs exists in the build's scratch directory.
    loop {
        let running = scratch_entries(&ctx.join("cache")).iter().any(|d| {
            std::fs::read_dir(d)
                .map(|e| {
                    e.flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with("kiln-rootfs-"))
                })
                .unwrap_or(false)
        });
        if running {
            std::thread::sleep(std::time::Duration::from_millis(500));
            return child;
        }
        if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the step never started");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// SECURITY.md 40: SIGTERM or SIGINT during a step leaves no scratch or staging directory; after
/// `kill -9`, the next kiln removes what the killed one left.
#[test]
fn signals_and_kill_9_leave_no_scratch_or_staging_directory() {
    let ctx = TestContext::new();
    let base = busybox_image(&ctx, "bb", "base", "base-oci");
    std::fs::create_dir_all(ctx.join("out")).unwrap();
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut child = start_slow_build(&ctx, &base);
        let started = std::time::Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        assert!(started.elapsed().as_secs() < 20, "stopped promptly");
        assert!(!status.success());
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status).map_or(status.code(), |_| None),
            Some(128 + signal),
            "exit status for signal {signal}"
        );
        assert_eq!(
            scratch_entries(&ctx.join("cache")),
            Vec::<PathBuf>::new(),
            "signal {signal}"
        );
        assert_eq!(staging_entries(&ctx.join("out")), Vec::<PathBuf>::new());
    }

    let mut child = start_slow_build(&ctx, &base);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !scratch_entries(&ctx.join("cache")).is_empty(),
        "kill -9 leaves scratch behind"
    );
    // A staging directory left beside an output by a kiln that was killed (its process is gone).
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let stale = ctx.join(format!("out/.kiln-out-{pid}.1-abcdef"));
    std::fs::create_dir_all(stale.join("out/blobs")).unwrap();

    // The next kiln to open the cache, and to stage beside `out/`, removes them.
    ctx.write(
        "quick.toml",
        "[image]\nname = \"q\"\n[[layer]]\n[[layer.step]]\nwrite = \"/f\"\ncontent = \"x\"\n",
    );
    run_ok(
        ctx.kiln()
            .args(["build", "quick.toml", "-o", "out/quick", "--cache", "cache"]),
    );
    assert_eq!(scratch_entries(&ctx.join("cache")), Vec::<PathBuf>::new());
    assert_eq!(staging_entries(&ctx.join("out")), Vec::<PathBuf>::new());
}

/// A base layer in the cache that rotted with its mtime kept is hashed before a `run` step reads
/// it: the step never runs on it, no layer built from it is cached, and the next build (which
/// imports the base again) gives the genuine result.
#[test]
fn bit_rot_in_a_cached_base_layer_never_feeds_a_run_step() {
    let ctx = TestContext::new();
    let base = busybox_image(&ctx, "bb", "genuine", "base-oci");
    let base_ref = format!("oci:base-oci@{base}");
    ctx.write(
        "first.toml",
        format!(
            "[image]\nname = \"first\"\nepoch = 1700000000\n[base]\nref = \"{base_ref}\"\n\
             [[layer]]\n[[layer.step]]\nrun = \"echo a > /a\"\n"
        ),
    );
    run_ok(
        ctx.kiln()
            .args(["build", "first.toml", "-o", "out1", "--cache", "cache"]),
    );
    let base_layer = layer_blobs(&ctx.join("base-oci")).remove(0);
    let cached = ctx
        .join("cache/blobs/sha256")
        .join(base_layer.file_name().unwrap());
    rot(&cached);
    let records = record_count(&ctx.join("cache"), "layers");

    recipe_reading_motd(&ctx, "second", &base_ref);
    let out = run_err(
        ctx.kiln()
            .args(["build", "second.toml", "-o", "out2", "--cache", "cache"]),
    );
    let err = stderr(&out);
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(record_count(&ctx.join("cache"), "layers"), records);
    run_ok(
        ctx.kiln()
            .args(["build", "second.toml", "-o", "out2", "--cache", "cache"]),
    );
    assert_eq!(seen(&ctx.join("out2")), "genuine");
}
