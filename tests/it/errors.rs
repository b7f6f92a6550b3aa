//! Bad input gets a clear error that names the file, line, input or digest, and changes nothing:
//! no half-written output where a good one was, no cache entry for wrong bytes.

use std::path::Path;

use crate::support::*;

const GOOD: &str = r#"[image]
name = "e"
[[layer]]
[[layer.step]]
write = "/hello"
content = "hi\n"
"#;

/// Every file under `dir`, with its contents' digest, to prove nothing changed.
fn snapshot(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for line in listing(dir) {
        let rel = line.split(' ').next().unwrap().to_string();
        let p = dir.join(&rel);
        let digest = if p.is_file() {
            kiln::Sha256Digest::of(&std::fs::read(&p).unwrap()).hex()
        } else {
            String::new()
        };
        out.push(format!("{line} {digest}"));
    }
    out
}

fn cache_blobs(ctx: &TestContext) -> Vec<String> {
    snapshot(&ctx.join("xdg-cache/kiln/blobs"))
}

#[test]
fn unknown_key_names_file_line_and_column() {
    let ctx = TestContext::new();
    ctx.write(
        "r.toml",
        GOOD.replace(
            "content = \"hi\\n\"",
            "content = \"hi\\n\"\nmoed = \"0644\"",
        ),
    );
    let out = run_err(ctx.kiln().args(["build", "r.toml"]));
    let err = stderr(&out);
    assert!(err.contains("r.toml:7:1"), "{err}");
    assert!(err.contains("moed"), "{err}");
    assert!(!ctx.join("out").exists(), "no output for a bad recipe");
}

#[test]
fn missing_input_file_is_named() {
    let ctx = TestContext::new();
    ctx.write("r.toml", format!("{GOOD}[inputs.site]\npath = \"nope\"\n"));
    let err = stderr(&run_err(ctx.kiln().args(["build", "r.toml"])));
    assert!(err.contains("site") && err.contains("nope"), "{err}");
}

#[test]
fn hash_mismatch_shows_expected_and_actual_and_stores_nothing() {
    let ctx = TestContext::new();
    let data = ctx.write("blob.bin", "the real bytes\n");
    let actual = kiln::Sha256Digest::of(b"the real bytes\n");
    let wrong = kiln::Sha256Digest::of(b"other bytes");
    ctx.write(
        "r.toml",
        format!(
            "{GOOD}[inputs.x]\nurl = \"file://{}\"\nsha256 = \"{}\"\n[[layer]]\n[[layer.step]]\ncopy = \"x\"\ndest = \"/x\"\n",
            data.display(),
            wrong.hex()
        ),
    );
    let err = stderr(&run_err(ctx.kiln().args(["build", "r.toml"])));
    assert!(err.contains(&wrong.hex()), "expected digest shown: {err}");
    assert!(err.contains(&actual.hex()), "actual digest shown: {err}");
    let blobs = cache_blobs(&ctx);
    assert!(
        !blobs.iter().any(|b| b.contains(&actual.hex())),
        "wrong bytes never enter the store: {blobs:?}"
    );
    assert!(!ctx.join("out").exists());
    let tmp = ctx.join("xdg-cache/kiln/tmp");
    if tmp.exists() {
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "temp files cleaned: {left:?}");
    }
}

#[test]
fn path_input_with_wrong_sha256_is_refused() {
    let ctx = TestContext::new();
    ctx.write("site/a", "a");
    ctx.write(
        "r.toml",
        format!(
            "{GOOD}[inputs.site]\npath = \"site\"\nsha256 = \"{}\"\n",
            "0".repeat(64)
        ),
    );
    let err = stderr(&run_err(ctx.kiln().args(["build", "r.toml"])));
    assert!(
        err.contains("site") && err.contains(&"0".repeat(64)),
        "{err}"
    );
}

#[test]
fn unpinned_url_is_refused_with_a_hint_to_lock() {
    let ctx = TestContext::new();
    let data = ctx.write("blob.bin", "bytes");
    ctx.write(
        "r.toml",
        format!("{GOOD}[inputs.x]\nurl = \"file://{}\"\n", data.display()),
    );
    let err = stderr(&run_err(ctx.kiln().args(["build", "r.toml"])));
    assert!(err.contains("inputs without sha256: x"), "{err}");
    // The hint is data (`BuildError::hint`), printed once as its own last line.
    assert_eq!(
        err.lines().last(),
        Some("hint: run `kiln lock r.toml` to pin them"),
        "{err}"
    );
    assert_eq!(err.matches("hint:").count(), 1, "{err}");
    assert!(cache_blobs(&ctx).is_empty(), "build resolved nothing");
}

#[test]
fn lock_pins_inputs_and_keeps_comments() {
    let ctx = TestContext::new();
    let data = ctx.write("blob.bin", "bytes");
    let text = format!(
        "# my recipe\n{GOOD}\n# the input\n[inputs.x]   # keep me\nurl = \"file://{}\"\n",
        data.display()
    );
    ctx.write("r.toml", &text);
    run_ok(ctx.kiln().args(["lock", "r.toml"]));
    let locked = std::fs::read_to_string(ctx.join("r.toml")).unwrap();
    let digest = kiln::Sha256Digest::of(b"bytes").hex();
    assert!(
        locked.contains(&format!("sha256 = \"{digest}\"")),
        "{locked}"
    );
    assert!(
        locked.contains("# my recipe")
            && locked.contains("# keep me")
            && locked.contains("# the input"),
        "{locked}"
    );
    run_ok(ctx.kiln().args(["build", "r.toml", "--offline"]));
}

fn archive_recipe(ctx: &TestContext, archive: &str) {
    let digest = kiln::Sha256Digest::of(&std::fs::read(ctx.join(archive)).unwrap()).hex();
    ctx.write(
        "r.toml",
        format!("{GOOD}[inputs.a]\npath = \"{archive}\"\nsha256 = \"{digest}\"\n[[layer]]\n[[layer.step]]\nextract = \"a\"\ndest = \"/\"\n"),
    );
}

#[test]
fn corrupt_and_truncated_archives_fail_and_keep_the_previous_output() {
    let ctx = TestContext::new();
    // A good build first: its output must survive the failed ones.
    ctx.write("r.toml", GOOD);
    run_ok(ctx.kiln().args(["build", "r.toml", "-o", "img"]));
    let before = snapshot(&ctx.join("img"));

    let mut tar_gz = Vec::new();
    {
        let src = ctx.join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("big"), vec![b'x'; 200_000]).unwrap();
        run_ok(std::process::Command::new("sh").arg("-c").arg(format!(
            "tar -C {} -cf - big | gzip -n > {}",
            src.display(),
            ctx.join("good.tar.gz").display()
        )));
        tar_gz.extend(std::fs::read(ctx.join("good.tar.gz")).unwrap());
    }
    let truncated = &tar_gz[..tar_gz.len() / 2];
    std::fs::write(ctx.join("truncated.tar.gz"), truncated).unwrap();
    let mut corrupt = tar_gz.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    std::fs::write(ctx.join("corrupt.tar.gz"), &corrupt).unwrap();
    std::fs::write(
        ctx.join("garbage.tar"),
        b"this is not a tar archive at all, not even close".repeat(20),
    )
    .unwrap();

    for bad in ["truncated.tar.gz", "corrupt.tar.gz", "garbage.tar"] {
        archive_recipe(&ctx, bad);
        let err = stderr(&run_err(ctx.kiln().args(["build", "r.toml", "-o", "img"])));
        assert!(
            err.contains("r.toml:"),
            "{bad}: names the recipe line: {err}"
        );
        assert!(err.contains("extract"), "{bad}: names the step: {err}");
        assert_eq!(
            snapshot(&ctx.join("img")),
            before,
            "{bad}: the previous output is untouched"
        );
        let strays: Vec<_> = std::fs::read_dir(ctx.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".kiln-out-"))
            .collect();
        assert!(
            strays.is_empty(),
            "{bad}: no staging left behind: {strays:?}"
        );
    }
}

#[test]
fn a_name_that_is_not_utf8_inside_a_copied_directory_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let ctx = TestContext::new();
    ctx.write("tree/sub/ok", "ok");
    let bad = ctx
        .join("tree/sub")
        .join(std::ffi::OsStr::from_bytes(b"bad\xff"));
    std::fs::write(&bad, "x").unwrap();
    ctx.write(
        "r.toml",
        format!(
            "{GOOD}[inputs.tree]\npath = \"tree\"\n\n\
             [[layer]]\n[[layer.step]]\ncopy = \"tree\"\ndest = \"/data\"\n"
        ),
    );
    let err = stderr(&run_err(ctx.kiln().args(["build", "r.toml", "-o", "img"])));
    assert!(err.contains("r.toml:7:1"), "names the input: {err}");
    assert!(
        err.contains("tree/sub/bad") && err.contains("not valid UTF-8"),
        "names the path: {err}"
    );
    assert!(!ctx.join("img").exists(), "no output");
    let blobs = cache_blobs(&ctx);
    assert!(
        blobs.iter().all(|l| !l.starts_with("sha256/")),
        "no blob stored: {blobs:?}"
    );
}
