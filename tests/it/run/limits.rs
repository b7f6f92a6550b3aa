//! Limits on what a `run` step can do to the machine (issue 11): no file inside the image root
//! can block kiln, and a step's processes, memory and written bytes are capped. These run as
//! root and, through `tests/run-unprivileged.sh`, rootless: each limit is enforced both ways
//! (by a cgroup where kiln can create one, else by an rlimit) and the error names the way.

use std::time::{Duration, Instant};

use super::*;

/// Runs `cmd` and kills it if it is still running after `limit`: a hang fails the test
/// instead of blocking the suite.
fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}

#[test]
fn fifo_passwd_fails_a_named_user_step_at_once() {
    let ctx = TestContext::new();
    let base = busybox_base(&ctx);
    std::fs::create_dir_all(ctx.join("fifo/etc")).unwrap();
    run_ok(tool("mkfifo").arg(ctx.join("fifo/etc/passwd")));
    run_ok(
        tool("tar")
            .arg("-C")
            .arg(ctx.join("fifo"))
            .args(["-cf", "fifo.tar", "etc/passwd"])
            .current_dir(ctx.path()),
    );
    recipe_on(
        &ctx,
        "fifo",
        &base,
        "[inputs.fifo]\npath = \"fifo.tar\"\n[[layer]]\n[[layer.step]]\nextract = \"fifo\"\n\
         dest = \"/\"\n[[layer.step]]\nrun = \"true\"\nuser = \"nr\"\n",
    );
    let out = output_within(
        kiln(&ctx).args(["build", "fifo.toml", "-o", "out"]),
        Duration::from_secs(120),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("/etc/passwd") && err.contains("fifo, not a regular file"),
        "{err}"
    );
    assert!(err.contains("fifo.toml:12:1"), "{err}");
    assert!(!ctx.join("out").exists());
    scratch_is_empty(&ctx);
}

/// A layer that fails while it is written names its number among the recipe's layers, its
/// position, and the input whose bytes failed (it used to print the recipe line as the layer
/// number, and no input).
#[test]
fn layer_write_error_names_the_layer_and_the_input() {
    use std::io::{BufRead, BufReader, Write};
    let ctx = TestContext::new();
    let base = busybox_base(&ctx);
    let data = ctx.write("data.bin", "sixteen bytes..\n");
    let text = recipe_on(
        &ctx,
        "grow",
        &base,
        "[inputs.data]\npath = \"data.bin\"\n\
         [[layer]]\n[[layer.step]]\nwrite = \"/first\"\ncontent = \"1\"\n\
         [[layer]]\n[[layer.step]]\ncopy = \"data\"\ndest = \"/data.bin\"\n\
         [[layer.step]]\nrun = \"echo $((6*7))-ready; sleep 5\"\n",
    );
    let text = std::fs::read_to_string(text).unwrap();
    let second = text.match_indices("[[layer]]").nth(1).unwrap().0;
    let line = text[..second].lines().count() + 1;
    let mut child = kiln(&ctx)
        .args(["build", "grow.toml", "-o", "out"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap());
    // The input grows while the step runs: after it was copied in, before the layer is written.
    while lines.read_line(&mut err).unwrap() > 0 {
        if err.contains("42-ready") {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&data)
                .unwrap();
            f.write_all(b"more\n").unwrap();
            break;
        }
    }
    assert!(err.contains("42-ready"), "{err}");
    std::io::Read::read_to_string(lines.get_mut(), &mut err).unwrap();
    assert!(!child.wait().unwrap().success(), "{err}");
    assert!(
        err.contains(&format!(
            "grow.toml:{line}:1: failed to write layer 2 of the recipe (input `data`)"
        )),
        "{err}"
    );
    assert!(err.contains("expected 16 bytes"), "{err}");
    assert!(!ctx.join("out").exists());
}

/// Builds `name.toml` (one `run` step on the busybox base) with `flags`; returns its stderr
/// and the step's position.
fn limited_step(script: &str, name: &str, flags: &[&str]) -> (String, String) {
    let ctx = TestContext::new();
    let base = busybox_base(&ctx);
    let recipe = recipe_on(
        &ctx,
        name,
        &base,
        &format!("[[layer]]\n[[layer.step]]\nrun = {script:?}\n"),
    );
    let text = std::fs::read_to_string(recipe).unwrap();
    let line = text.lines().position(|l| l == "[[layer.step]]").unwrap() + 1;
    let out = output_within(
        kiln(&ctx)
            .args(["build", &format!("{name}.toml"), "-o", "out"])
            .args(flags),
        Duration::from_secs(240),
    );
    assert!(!out.status.success());
    assert!(!ctx.join("out").exists());
    scratch_is_empty(&ctx);
    (stderr(&out), format!("{name}.toml:{line}:1"))
}

/// As root kiln makes a cgroup for the step (this host has cgroup v1 pids and memory
/// hierarchies) and says the limit was hit; rootless no cgroup is writable and the failure
/// names the rlimit the step ran under. Both name the option to raise.
fn assert_limited(err: &str, at: &str, amount: &str, rlimit: &str, flag: &str) {
    assert!(err.contains(at), "{err}");
    if is_root() {
        assert!(
            err.contains(&format!("was stopped at its limit of {amount} (cgroup v"))
                && err.contains(&format!("hint: raise {flag}")),
            "{err}"
        );
    } else {
        assert!(
            err.contains(&format!("{amount} ({rlimit}) from {flag}")),
            "{err}"
        );
    }
}

#[test]
fn fork_bomb_step_is_stopped_at_step_pids_max() {
    let (err, at) = limited_step(
        "i=0; while [ $i -lt 10000 ]; do sleep 60 & i=$((i+1)); done; wait",
        "fork",
        &["--step-pids-max", "48"],
    );
    assert_limited(&err, &at, "48 processes", "RLIMIT_NPROC", "--step-pids-max");
}

#[test]
fn memory_hog_step_is_stopped_at_step_memory_max() {
    let (err, at) = limited_step(
        "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo ${#x}",
        "hog",
        &["--step-memory-max", "48M"],
    );
    assert_limited(
        &err,
        &at,
        "50331648 bytes of memory",
        "RLIMIT_DATA",
        "--step-memory-max",
    );
}

#[test]
fn writing_step_is_stopped_at_step_write_max() {
    // One file: no file grows past the limit (RLIMIT_FSIZE).
    let (err, at) = limited_step(
        "head -c 2000000000 /dev/zero > /big",
        "big",
        &["--step-write-max", "1M"],
    );
    assert!(err.contains(&at), "{err}");
    assert!(
        err.contains("was stopped at its limit of 1048576 written bytes (RLIMIT_FSIZE)")
            && err.contains("hint: raise --step-write-max"),
        "{err}"
    );
    // Many files, each under the limit: their sum is what counts.
    let (err, _) = limited_step(
        "i=0; while [ $i -lt 4000 ]; do head -c 500000 /dev/zero > /f$i; i=$((i+1)); done",
        "many",
        &["--step-write-max", "1M"],
    );
    assert!(
        err.contains(
            "was stopped at its limit of 1048576 written bytes (the size of the upper directory)"
        ),
        "{err}"
    );
}
