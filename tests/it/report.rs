//! What `kiln build` tells its user while it works: plain lines on stderr when stderr is not a
//! terminal (as here), JSON events on stdout with `--json`, "cached" for layers taken from the
//! layer cache, and warnings at the recipe line they are about.

use std::process::Output;

use crate::support::*;

/// A recipe with a directory input (several MiB), so that the layer really has work.
fn recipe(ctx: &TestContext) -> std::path::PathBuf {
    std::fs::create_dir_all(ctx.join("r/site/sub")).unwrap();
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(ctx.join("r/site/sub/big"), bytes).unwrap();
    std::fs::write(ctx.join("r/site/index.html"), "hello\n").unwrap();
    busybox_recipe(
        ctx,
        "r",
        "[inputs.site]\npath = \"site\"\n[[layer]]\n[[layer.step]]\ncopy = \"site\"\ndest = \"/srv\"\n\
         [[layer.step]]\nremove = \"/etc/nothing\"\n",
    )
}

fn build(ctx: &TestContext, recipe: &std::path::Path, extra: &[&str]) -> Output {
    let out = ctx
        .kiln()
        .arg("build")
        .arg(recipe)
        .arg("-o")
        .arg(ctx.join("img"))
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// The line number (1-based) of the first line of `recipe` that is exactly `text`.
pub fn line_of(recipe: &std::path::Path, text: &str) -> usize {
    let body = std::fs::read_to_string(recipe).unwrap();
    1 + body
        .lines()
        .position(|l| l == text)
        .unwrap_or_else(|| panic!("no line {text:?} in {body}"))
}

#[test]
fn json_events_name_inputs_layers_and_the_image_and_say_cached_on_a_warm_build() {
    let ctx = TestContext::new();
    let recipe = recipe(&ctx);
    let events = |out: &Output| -> Vec<serde_json::Value> {
        String::from_utf8(out.stdout.clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    };
    let cold = events(&build(&ctx, &recipe, &["--json"]));
    let kinds: Vec<&str> = cold.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["input", "input", "layer", "warning", "layer", "image"],
        "{cold:#?}"
    );
    assert_eq!(cold[0]["name"], "busybox");
    assert_eq!(cold[0]["cached"], false);
    let busybox = std::fs::read(ctx.join("r/busybox")).unwrap();
    assert_eq!(cold[0]["size"], busybox.len() as u64);
    assert_eq!(cold[1]["name"], "site");
    assert!(
        cold[1]["size"].as_u64().unwrap() > 3_000_000,
        "the tar's size"
    );
    assert!(cold[1]["sha256"].as_str().unwrap().starts_with("sha256:"));
    for (event, index) in [(&cold[2], 0), (&cold[4], 1)] {
        assert_eq!(event["index"], index);
        assert_eq!(event["cached"], false);
        assert!(event["entries"].as_u64().unwrap() >= 1);
        assert!(event["digest"].as_str().unwrap().starts_with("sha256:"));
        assert!(event["diff_id"].as_str().unwrap().starts_with("sha256:"));
    }
    let line = line_of(&recipe, "remove = \"/etc/nothing\"") - 1;
    assert_eq!(
        cold[3]["message"],
        format!(
            "{}:{line}:1: `remove = \"/etc/nothing\"` removes nothing: no layer below this one \
             has `/etc/nothing`, so the layer only records a whiteout",
            recipe.display()
        )
    );
    assert!(cold[3]["hint"]
        .as_str()
        .unwrap()
        .starts_with("check the path"));
    let image = &cold[5];
    assert_eq!(image["output"], ctx.join("img").display().to_string());
    assert_eq!(image["format"], "oci");
    // The digest is the one skopeo reads from the layout.
    let inspect = run_ok(
        tool("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:bb", ctx.join("img").display())),
    );
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"], image["digest"]);
    assert_eq!(v["Layers"][1], cold[4]["digest"]);

    let warm = events(&build(&ctx, &recipe, &["--json"]));
    let layers: Vec<_> = warm.iter().filter(|e| e["event"] == "layer").collect();
    assert_eq!(layers.len(), 2);
    for (warm, cold) in layers.iter().zip([&cold[2], &cold[4]]) {
        assert_eq!(warm["cached"], true);
        assert_eq!(warm["entries"], serde_json::Value::Null);
        assert_eq!(warm["digest"], cold["digest"]);
    }
    assert_eq!(warm[1]["cached"], true, "the directory's digest is reused");
    let warnings: Vec<_> = warm.iter().filter(|e| e["event"] == "warning").collect();
    assert_eq!(warnings, [&cold[3]], "a cached layer repeats its warning");
    assert_eq!(warm.last().unwrap()["digest"], image["digest"]);
}

#[test]
fn plain_lines_say_building_then_cached_and_the_digest_stays_last_on_stdout() {
    let ctx = TestContext::new();
    let recipe = recipe(&ctx);
    let cold = build(&ctx, &recipe, &[]);
    let text = stderr(&cold);
    assert!(text.contains("layer 1/2: building\n"), "{text}");
    assert!(text.contains(" entries)\n"), "{text}");
    assert!(text.contains("\nwarning: "), "{text}");
    assert!(
        text.contains("\nhint: check the path; drop the step if the base no longer ships it\n"),
        "{text}"
    );
    let digest = last_line(&String::from_utf8(cold.stdout.clone()).unwrap());
    assert!(digest.starts_with("sha256:"), "{digest}");

    let warm = build(&ctx, &recipe, &[]);
    let text = stderr(&warm);
    assert!(!text.contains("building"), "{text}");
    assert!(text.contains("layer 1/2: cached sha256:"), "{text}");
    assert!(text.contains("layer 2/2: cached sha256:"), "{text}");
    assert!(text.contains("input site: sha256:"), "{text}");
    assert_eq!(
        String::from_utf8(warm.stdout).unwrap(),
        format!("{digest}\n"),
        "stdout holds only the digest"
    );
}

#[test]
fn a_failed_json_build_ends_with_an_error_event() {
    let ctx = TestContext::new();
    let recipe = busybox_recipe(&ctx, "r", "[config]\nuser = \"ghost\"\n");
    let out = run_err(
        ctx.kiln()
            .args(["build", "--json"])
            .arg(&recipe)
            .arg("-o")
            .arg(ctx.join("img")),
    );
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "error");
    let message = last["message"].as_str().unwrap();
    assert!(message.starts_with("failed to build "), "{message}");
    assert!(message.contains("`[config] user = \"ghost\"`"), "{message}");
    // The hint is data: its own field, not part of the message.
    assert!(!message.contains("hint"), "{message}");
    assert!(
        last["hint"]
            .as_str()
            .is_some_and(|h| h.starts_with("use a numeric uid[:gid]")),
        "{last}"
    );
    assert!(
        stderr(&out).contains("error: failed to build"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn on_a_terminal_the_build_draws_bars_and_still_ends_with_the_digest() {
    let ctx = TestContext::new();
    let recipe = recipe(&ctx);
    // `script` gives kiln a pseudo-terminal for stdout and stderr alike.
    let command = format!(
        "{} build {} -o {}",
        env!("CARGO_BIN_EXE_kiln"),
        recipe.display(),
        ctx.join("img").display()
    );
    let out = run_ok(
        tool("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(ctx.path())
            .env("XDG_CACHE_HOME", ctx.join("xdg-cache"))
            .env("HOME", ctx.join("home")),
    );
    let text = out.replace('\r', "\n");
    assert!(text.contains("input site: sha256:"), "{text}");
    assert!(text.contains("layer 1/2: sha256:"), "{text}");
    assert!(text.contains("warning: "), "{text}");
    let digest = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap()
        .trim()
        .to_string();
    assert!(digest.starts_with("sha256:"), "{text}");
    let plain = last_line(&run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&recipe)
            .arg("-o")
            .arg(ctx.join("img2")),
    ));
    assert_eq!(digest, plain);
}
