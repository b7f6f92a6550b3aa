//! `run` steps: programs run in the build sandbox over a busybox base image built by kiln, and
//! what they change becomes a layer. The same tests run as root and, through
//! `tests/run-unprivileged.sh`, as an unprivileged user (rootless kiln, with a single-id and
//! a subordinate id mapping). podman runs the images only in the root run: rootless podman
//! needs a login session this harness does not create.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// The `kiln` binary: `KILN_TEST_BIN` when the unprivileged harness copied it somewhere the
/// test user can reach, else the one cargo built.
fn kiln(ctx: &TestContext) -> Command {
    let bin = std::env::var_os("KILN_TEST_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kiln")), PathBuf::from);
    let mut cmd = Command::new(bin);
    cmd.current_dir(ctx.path())
        .env("XDG_CACHE_HOME", ctx.join("xdg-cache"))
        .env("HOME", ctx.join("home"))
        .env_remove("KILN_PASSWORD")
        .env_remove("COSIGN_PASSWORD");
    cmd
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The id mapping this kiln's steps get: identity as root, else what `--id-mapping` (from
/// `KILN_ID_MAPPING`) resolves to.
fn mapping() -> kiln_sandbox::IdMapping {
    use kiln_sandbox::{IdMap, IdMapping};
    let requested = match std::env::var("KILN_ID_MAPPING").as_deref() {
        Ok("single") => IdMapping::Single,
        Ok("subordinate") => IdMapping::Subordinate,
        _ => IdMapping::Auto,
    };
    IdMap::resolve(requested).unwrap().mapping()
}

/// Builds a busybox image (`/bin/busybox`, `/bin/sh`, `/tmp`, `/etc/motd`, `/data/old`, a
/// setgid `/var/mail` owned 0:8, `/home/nr/f` owned 65532) into `bb-oci`; returns its digest.
fn busybox_base(ctx: &TestContext) -> String {
    busybox_recipe(
        ctx,
        "bb",
        r#"[[layer.step]]
mkdir = "/etc"
[[layer.step]]
write = "/etc/motd"
content = "base motd\n"
[[layer.step]]
mkdir = "/data"
[[layer.step]]
write = "/data/old"
content = "old\n"
[[layer.step]]
mkdir = "/var"
[[layer.step]]
mkdir = "/var/mail"
mode = "2775"
owner = "0:8"
[[layer.step]]
mkdir = "/home"
[[layer.step]]
mkdir = "/home/nr"
owner = "65532:65532"
[[layer.step]]
write = "/home/nr/f"
content = "mine\n"
mode = "0600"
owner = "65532:65532"
"#,
    );
    last_line(&run_ok(kiln(ctx).args([
        "build",
        "bb/recipe.toml",
        "-o",
        "bb-oci",
    ])))
}

/// A recipe on the busybox base with `layers` appended.
fn recipe_on(ctx: &TestContext, name: &str, base: &str, layers: &str) -> PathBuf {
    recipe_on_layout(ctx, name, "bb-oci", base, layers)
}

fn recipe_on_layout(
    ctx: &TestContext,
    name: &str,
    layout: &str,
    base: &str,
    layers: &str,
) -> PathBuf {
    ctx.write(
        format!("{name}.toml"),
        format!(
            "[image]\nname = \"{name}\"\nepoch = 1700000000\n[base]\nref = \"oci:{layout}@{base}\"\n{layers}"
        ),
    )
}

/// The path of the last layer blob of the image in OCI layout `layout`.
fn last_layer(layout: &Path) -> PathBuf {
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    };
    let blob = |d: &serde_json::Value| {
        layout
            .join("blobs/sha256")
            .join(d.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let index = read(layout.join("index.json"));
    let manifest = read(blob(&index["manifests"][0]["digest"]));
    let layers = manifest["layers"].as_array().unwrap();
    blob(&layers.last().unwrap()["digest"])
}

/// `mode owner path[ -> target]` lines of a gzip layer, read by GNU tar.
fn tar_listing(layer: &Path) -> Vec<String> {
    let out = run_ok(
        tool("tar")
            .args(["-tvzf"])
            .arg(layer)
            .args(["--numeric-owner"]),
    );
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // mode owner size date time path [-> target]
            format!("{} {} {}", f[0], f[1], f[5..].join(" "))
        })
        .collect()
}

fn tar_file(layer: &Path, path: &str) -> String {
    run_ok(tool("tar").arg("-xzOf").arg(layer).arg(path))
}

fn scratch_is_empty(ctx: &TestContext) {
    let scratch = ctx.join("xdg-cache/kiln/scratch");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "scratch directories left behind: {left:?}");
}

const RUN_LAYER: &str = r#"
[[layer]]
[[layer.step]]
run = ["/bin/busybox", "--install", "-s", "/bin"]
[[layer.step]]
run = "echo hi > /hello"
[[layer.step]]
run = "rm /etc/motd && rm -rf /data && mkdir /data && echo new > /data/new"
[[layer.step]]
run = "echo \"$FOO $(pwd) $HOME $TZ $LANG $SOURCE_DATE_EPOCH $(hostname) $(umask)\" > /env-check; echo to-stdout; echo to-stderr >&2"
workdir = "/tmp"
[layer.step.env]
FOO = "bar"
[config]
cmd = ["/bin/sh", "-c", "test ! -e /etc/motd && cat /hello /data/new && ls /data"]
"#;

#[test]
fn run_steps_build_reproducibly_and_run_under_podman() {
    let ctx = TestContext::new();
    let base = busybox_base(&ctx);
    recipe_on(&ctx, "runner", &base, RUN_LAYER);
    let out = kiln(&ctx)
        .args(["build", "runner.toml", "-o", "out1"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let digest = last_line(&String::from_utf8(out.stdout).unwrap());
    assert!(
        err.contains("runner.toml:8:1") && err.contains("/bin/busybox --install -s /bin"),
        "the step is announced with its recipe line: {err}"
    );
    assert!(
        err.contains("  | to-stdout") && err.contains("  ! to-stderr"),
        "the step's output is streamed: {err}"
    );
    scratch_is_empty(&ctx);

    let layer = last_layer(&ctx.join("out1"));
    let listing = tar_listing(&layer);
    for want in [
        "-rw-r--r-- 0/0 hello",
        "-rw-r--r-- 0/0 etc/.wh.motd",
        "-rw-r--r-- 0/0 data/.wh..wh..opq",
        "-rw-r--r-- 0/0 data/new",
        "lrwxrwxrwx 0/0 bin/ls -> /bin/busybox",
    ] {
        assert!(
            listing.iter().any(|l| l == want),
            "{want:?} in {listing:#?}"
        );
    }
    assert!(
        !listing.iter().any(|l| l.ends_with("data/old")),
        "{listing:#?}"
    );
    assert_eq!(tar_file(&layer, "hello"), "hi\n");
    assert_eq!(
        tar_file(&layer, "env-check"),
        "bar /tmp /root UTC C.UTF-8 1700000000 kiln 0022\n"
    );

    // A rebuild from a fresh cache (no layer cache) gives the same image.
    let again = last_line(&run_ok(
        kiln(&ctx)
            .env("XDG_CACHE_HOME", ctx.join("xdg-cache-2"))
            .args(["build", "runner.toml", "-o", "out2"]),
    ));
    assert_eq!(digest, again, "run steps are reproducible");

    if is_root() {
        let ran = run_ok(
            podman(&ctx)
                .args(["run", "--rm", "--network=none"])
                .arg(format!("oci:{}:runner", ctx.join("out1").display())),
        );
        assert_eq!(ran, "hi\nnew\nnew\n");
    } else {
        eprintln!("podman part runs only as root (rootless podman needs a login session)");
    }
}

#[test]
fn step_writes_never_reach_the_host() {
    let ctx = TestContext::new();
    let base = busybox_base(&ctx);
    let marker = format!("/kiln-run-escape-{}", std::process::id());
    assert!(!Path::new(&marker).exists());
    recipe_on(
        &ctx,
        "escape",
        &base,
        &format!(
            "[[layer]]\n[[layer.step]]\nrun = \"echo hi > /hello; echo x > {marker}; \
             echo x > {host}/written-by-step 2>/dev/null; ln -s /etc/shadow /shadow\"\n",
            host = ctx.path().display()
        ),
    );
    run_ok(kiln(&ctx).args(["build", "escape.toml", "-o", "out"]));
    assert!(!Path::new(&marker).exists(), "{marker} reached the host");
    assert!(!ctx.join("written-by-step").exists());
    let listing = tar_listing(&last_layer(&ctx.join("out")));
    assert!(
        listing
            .iter()
            .any(|l| l == "lrwxrwxrwx 0/0 shadow -> /etc/shadow"),
        "a symlink to a host path is recorded, not followed: {listing:#?}"
    );
    assert!(listing.iter().any(|l| l.ends_with(&marker[1..])));
    scratch_is_empty(&ctx);
}

#[test]
fn chown_in_a_step_is_recorded_or_refused_clearly() {
    let ctx = TestContext::new();
    let base = busybox_base(&ctx);
    recipe_on(
        &ctx,
        "owned",
        &base,
        "[[layer]]\n[[layer.step]]\nrun = \"mkdir /srv && echo x > /srv/f && \
         chown 65532:65532 /srv/f && chmod 4755 /srv/f\"\n",
    );
    let mut cmd = kiln(&ctx);
    cmd.args(["build", "owned.toml", "-o", "out"]);
    if mapping() == kiln_sandbox::IdMapping::Single {
        let out = run_err(&mut cmd);
        let err = stderr(&out);
        assert!(
            err.contains("owned.toml:7:1")
                && err.contains("single-id mapping")
                && err.contains("/etc/subuid"),
            "{err}"
        );
        assert!(!ctx.join("out").exists());
    } else {
        run_ok(&mut cmd);
        let listing = tar_listing(&last_layer(&ctx.join("out")));
        assert!(
            listing.iter().any(|l| l == "-rwsr-xr-x 65532/65532 srv/f"),
            "the owner set in the step (and the setuid bit) is in the layer: {listing:#?}"
        );
    }
    scratch_is_empty(&ctx);
}

#[test]
fn failing_step_fails_the_build_and_leaves_nothing() {
    let ctx = TestContext::new();
    let base = busybox_base(&ctx);
    let recipe = recipe_on(
        &ctx,
        "fails",
        &base,
        "[[layer]]\n[[layer.step]]\nrun = \"echo partial > /partial\"\n\
         [[layer.step]]\nrun = \"echo doomed-step >&2; exit 3\"\n",
    );
    let text = std::fs::read_to_string(&recipe).unwrap();
    // The step's position is its `[[layer.step]]` header, the line above its `run`.
    let line = text.lines().position(|l| l.contains("doomed")).unwrap();
    let out = run_err(kiln(&ctx).args(["build", "fails.toml", "-o", "out"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&format!("fails.toml:{line}:1")), "{err}");
    assert!(err.contains("exit status 3"), "{err}");
    assert!(
        err.contains("echo doomed-step >&2; exit 3"),
        "the argv: {err}"
    );
    let tail = err.split("the end of its stderr").nth(1).unwrap_or("");
    assert!(tail.contains("doomed-step"), "the stderr tail: {err}");
    assert!(!ctx.join("out").exists(), "no output for a failed build");
    scratch_is_empty(&ctx);
}

#[test]
fn step_over_its_time_limit_is_killed() {
    let ctx = TestContext::new();
    let base = busybox_base(&ctx);
    recipe_on(
        &ctx,
        "slow",
        &base,
        "[[layer]]\n[[layer.step]]\nrun = \"sleep 60\"\n",
    );
    let started = std::time::Instant::now();
    let out = run_err(kiln(&ctx).args(["build", "slow.toml", "-o", "out", "--step-timeout", "1"]));
    assert!(started.elapsed().as_secs() < 30, "killed at its limit");
    let err = stderr(&out);
    assert!(
        err.contains("time limit of 1s") && err.contains("slow.toml:7:1"),
        "{err}"
    );
    assert!(!ctx.join("out").exists());
    scratch_is_empty(&ctx);
}

#[test]
fn later_layers_see_earlier_run_output_and_cache_keys_follow_the_base() {
    let ctx = TestContext::new();
    let base = busybox_base(&ctx);
    let layers = "[[layer]]\n[[layer.step]]\nrun = \"echo one > /one\"\n\
                  [[layer]]\n[[layer.step]]\nrun = \"cat /one /etc/motd > /two\"\n";
    recipe_on(&ctx, "two", &base, layers);
    run_ok(kiln(&ctx).args(["build", "two.toml", "-o", "out"]));
    assert_eq!(
        tar_file(&last_layer(&ctx.join("out")), "two"),
        "one\nbase motd\n"
    );

    // Another base under the same steps: the layer cache must not hand back the old layer.
    let motd = ctx.join("bb/recipe.toml");
    let text = std::fs::read_to_string(&motd).unwrap();
    std::fs::write(&motd, text.replace("base motd", "other motd")).unwrap();
    let other = last_line(&run_ok(kiln(&ctx).args([
        "build",
        "bb/recipe.toml",
        "-o",
        "bb-oci-other",
    ])));
    assert_ne!(other, base);
    recipe_on_layout(&ctx, "two", "bb-oci-other", &other, layers);
    let out = kiln(&ctx)
        .args(["build", "two.toml", "-o", "out-other"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("cached"), "{}", stderr(&out));
    assert_eq!(
        tar_file(&last_layer(&ctx.join("out-other")), "two"),
        "one\nother motd\n"
    );
}

#[test]
fn copied_up_files_keep_the_images_metadata() {
    let ctx = TestContext::new();
    let base = busybox_base(&ctx);
    recipe_on(
        &ctx,
        "copyup",
        &base,
        "[[layer]]\n[[layer.step]]\nrun = \"echo more >> /home/nr/f && echo m > /var/mail/new\"\n",
    );
    run_ok(kiln(&ctx).args(["build", "copyup.toml", "-o", "out"]));
    let layer = last_layer(&ctx.join("out"));
    let listing = tar_listing(&layer);
    for want in [
        // Written into, so copied up: the setgid bit the extractor strips on the host, and
        // (rootless with a single id) owners the host copy could not have, are the image's.
        "drwxrwsr-x 0/8 var/mail/",
        "-rw-r--r-- 0/0 var/mail/new",
        "drwxr-xr-x 65532/65532 home/nr/",
        "-rw------- 65532/65532 home/nr/f",
    ] {
        assert!(
            listing.iter().any(|l| l == want),
            "{want:?} in {listing:#?}"
        );
    }
    assert_eq!(tar_file(&layer, "home/nr/f"), "mine\nmore\n");
    scratch_is_empty(&ctx);
}

#[test]
fn step_runs_as_the_named_user() {
    let ctx = TestContext::new();
    let base = busybox_base(&ctx);
    recipe_on(
        &ctx,
        "user",
        &base,
        "[[layer]]\n[[layer.step]]\nwrite = \"/etc/passwd\"\n\
         content = \"root:x:0:0::/root:/bin/sh\\nnr:x:65532:65533::/home/nr:/bin/sh\\n\"\n\
         [[layer.step]]\nrun = \"echo $(id -u):$(id -g) $HOME > /tmp/who\"\nuser = \"nr\"\n",
    );
    let mut cmd = kiln(&ctx);
    cmd.args(["build", "user.toml", "-o", "out"]);
    if mapping() == kiln_sandbox::IdMapping::Single {
        let err = stderr(&run_err(&mut cmd));
        assert!(
            err.contains("uid 65532") && err.contains("/etc/subuid"),
            "{err}"
        );
    } else {
        run_ok(&mut cmd);
        let layer = last_layer(&ctx.join("out"));
        assert_eq!(tar_file(&layer, "tmp/who"), "65532:65533 /\n");
        let listing = tar_listing(&layer);
        assert!(
            listing
                .iter()
                .any(|l| l == "-rw-r--r-- 65532/65533 tmp/who"),
            "{listing:#?}"
        );
    }
    scratch_is_empty(&ctx);
}

/// A copied directory stays on the host until the layer is written (issue 7); a `run` step in
/// the same layer sees it, and its changes below it land in the layer.
#[test]
fn a_step_edits_a_directory_copied_in_the_same_layer() {
    let ctx = TestContext::new();
    let base = busybox_base(&ctx);
    ctx.write("app/sub/a", "alpha\n");
    ctx.write("app/sub/b", "beta\n");
    ctx.write("app/gone", "bye\n");
    ctx.write("app/h1", "linked\n");
    std::fs::hard_link(ctx.join("app/h1"), ctx.join("app/h2")).unwrap();
    recipe_on(
        &ctx,
        "copyrun",
        &base,
        r#"[inputs.app]
path = "app"

[[layer]]
[[layer.step]]
copy = "app"
dest = "/app"
[[layer.step]]
run = "cat /app/sub/a /app/h2 > /app/seen && echo changed > /app/sub/b && rm /app/gone && ln /app/sub/a /app/sub/a-link"
"#,
    );
    run_ok(kiln(&ctx).args(["build", "copyrun.toml", "-o", "out"]));
    let layer = last_layer(&ctx.join("out"));
    let listing = tar_listing(&layer);
    for want in [
        "drwxr-xr-x 0/0 app/",
        "-rw-r--r-- 0/0 app/h1",
        "hrw-r--r-- 0/0 app/h2 link to app/h1",
        "-rw-r--r-- 0/0 app/seen",
        "-rw-r--r-- 0/0 app/sub/a",
        "hrw-r--r-- 0/0 app/sub/a-link link to app/sub/a",
        "-rw-r--r-- 0/0 app/sub/b",
    ] {
        assert!(
            listing.iter().any(|l| l == want),
            "{want:?} in {listing:#?}"
        );
    }
    assert!(
        !listing.iter().any(|l| l.ends_with(" app/gone")),
        "{listing:#?}"
    );
    assert_eq!(tar_file(&layer, "app/seen"), "alpha\nlinked\n");
    assert_eq!(tar_file(&layer, "app/sub/b"), "changed\n");
    assert_eq!(tar_file(&layer, "app/sub/a"), "alpha\n");
    scratch_is_empty(&ctx);
}

mod limits;
