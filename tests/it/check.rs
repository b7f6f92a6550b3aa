//! `kiln build --check`: two builds from scratch without the layer cache, compared by kiln's
//! diff engine, so that a warm cache cannot hide a step whose output changes from run to run.

use crate::support::*;

#[test]
fn check_fails_naming_the_file_a_nondeterministic_run_step_writes() {
    let ctx = TestContext::new();
    let recipe = busybox_recipe(
        &ctx,
        "r",
        "[[layer]]\n[[layer.step]]\nmkdir = \"/etc\"\n[[layer.step]]\n\
         run = \"echo stable > /etc/stable; /bin/busybox date +%N > /etc/stamp; \
         /bin/busybox head -c 16 /dev/urandom >> /etc/stamp\"\n",
    );
    // A warm layer cache must not hide it: build once normally first.
    run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&recipe)
            .arg("-o")
            .arg(ctx.join("img")),
    );
    let out = ctx
        .kiln()
        .args(["build", "--check"])
        .arg(&recipe)
        .arg("-o")
        .arg(ctx.join("checked"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", stderr(&out));
    assert!(
        stdout.starts_with("not reproducible: two builds from scratch gave sha256:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("etc/stamp"),
        "the report names the file:\n{stdout}"
    );
    assert!(!stdout.contains("etc/stable"), "{stdout}");
    assert_eq!(
        stderr(&out)
            .lines()
            .filter(|l| l.starts_with("run "))
            .count(),
        2,
        "the step ran in both builds:\n{}",
        stderr(&out)
    );
    assert!(
        !ctx.join("checked").exists(),
        "nothing is written when the check fails"
    );

    // For machines: the same verdict as one JSON event, with the full diff report.
    let out = ctx
        .kiln()
        .args(["build", "--check", "--json"])
        .arg(&recipe)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "check");
    assert_eq!(last["reproducible"], false);
    assert_eq!(last["report"]["verdict"], "different");
    assert!(last["report"].to_string().contains("etc/stamp"), "{last}");
}

#[test]
fn check_passes_a_deterministic_recipe_and_prints_its_digest() {
    let ctx = TestContext::new();
    let recipe = busybox_recipe(
        &ctx,
        "r",
        "[[layer]]\n[[layer.step]]\nrun = \"echo hello > /tmp/hello; /bin/busybox ls /bin > /tmp/bin\"\n",
    );
    let out = ctx
        .kiln()
        .args(["build", "--check"])
        .arg(&recipe)
        .arg("-o")
        .arg(ctx.join("img"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let digest = last_line(&String::from_utf8_lossy(&out.stdout));
    assert!(
        stderr(&out).contains(&format!(
            "reproducible: two builds from scratch gave {digest}\n"
        )),
        "{}",
        stderr(&out)
    );
    // The checked image is written, and a plain build of the recipe gives the same digest.
    let again = last_line(&run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&recipe)
            .arg("-o")
            .arg(ctx.join("img2")),
    ));
    assert_eq!(again, digest);
    let inspect = run_ok(
        tool("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:bb", ctx.join("img").display())),
    );
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"], digest);
}
