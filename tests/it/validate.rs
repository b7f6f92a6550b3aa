//! Recipes that build an image no runtime can use are refused, and likely mistakes are warned
//! about, at the recipe line they come from: an unknown platform, a `[config] user` the image's
//! /etc/passwd lacks, an entrypoint copied without its execute bit, a `remove` of nothing.

use crate::report::line_of;
use crate::support::*;

fn build(ctx: &TestContext, recipe: &std::path::Path) -> std::process::Command {
    let mut cmd = ctx.kiln();
    cmd.arg("build").arg(recipe).arg("-o").arg(ctx.join("img"));
    cmd
}

#[test]
fn an_unknown_platform_is_refused_with_the_valid_names() {
    let ctx = TestContext::new();
    let recipe = ctx.write(
        "recipe.toml",
        "[image]\nname = \"x\"\nplatform = \"linux/amd46\"\n",
    );
    let out = run_err(ctx.kiln().arg("build").arg(&recipe));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:3:12: invalid `platform` in [image]: `linux/amd46` names an unknown \
             architecture `amd46`\n",
            recipe.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: OCI platforms use Go's GOARCH names: 386, amd64, arm, arm64, "),
        "{err}"
    );
    assert!(!ctx.join("out").exists());
}

#[test]
fn a_config_user_missing_from_the_images_passwd_is_refused_and_numeric_ids_are_fine() {
    let ctx = TestContext::new();
    let rest = |user: &str| {
        format!(
            "[[layer]]\n[[layer.step]]\nmkdir = \"/etc\"\n[[layer.step]]\nwrite = \"/etc/passwd\"\n\
             content = \"root:x:0:0:root:/root:/bin/sh\\nnonroot:x:65532:65532::/home:/bin/sh\\n\"\n\
             [[layer.step]]\nwrite = \"/etc/group\"\ncontent = \"root:x:0:\\n\"\n\
             [config]\nuser = \"{user}\"\n"
        )
    };
    let recipe = busybox_recipe(&ctx, "r", &rest("ghost"));
    let out = run_err(&mut build(&ctx, &recipe));
    let line = line_of(&recipe, "user = \"ghost\"");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:{line}:8: `[config] user = \"ghost\"`: the image's /etc/passwd has no entry \
             `ghost`, so no runtime can start the image as that user\n",
            recipe.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: use a numeric uid[:gid] (always accepted), or add the user"),
        "{err}"
    );
    assert!(!ctx.join("img").exists(), "nothing is written");

    // A group name is checked against /etc/group.
    let recipe = busybox_recipe(&ctx, "g", &rest("nonroot:wheel"));
    let err = stderr(&run_err(&mut build(&ctx, &recipe)));
    assert!(
        err.contains("the image's /etc/group has no entry `wheel`"),
        "{err}"
    );

    for ok in ["nonroot", "nonroot:root", "65532:65532", "1000"] {
        let recipe = busybox_recipe(&ctx, &format!("ok-{}", ok.replace(':', "-")), &rest(ok));
        let out = build(&ctx, &recipe).output().unwrap();
        assert!(out.status.success(), "{ok}: {}", stderr(&out));
    }

    // Without any /etc/passwd, only numeric ids can work.
    let recipe = busybox_recipe(&ctx, "none", "[config]\nuser = \"app\"\n");
    let err = stderr(&run_err(&mut build(&ctx, &recipe)));
    assert!(
        err.contains("`[config] user = \"app\"`: the image has no /etc/passwd to find `app` in"),
        "{err}"
    );
    let recipe = busybox_recipe(&ctx, "numeric", "[config]\nuser = \"65532:65532\"\n");
    let out = build(&ctx, &recipe).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_passwd_that_a_later_layer_removes_or_replaces_is_the_one_checked() {
    let ctx = TestContext::new();
    let recipe = busybox_recipe(
        &ctx,
        "r",
        "[[layer.step]]\nmkdir = \"/etc\"\n[[layer.step]]\nwrite = \"/etc/passwd\"\n\
         content = \"app:x:1:1::/:/bin/sh\\n\"\n\
         [[layer]]\n[[layer.step]]\nremove = \"/etc/passwd\"\n\
         [config]\nuser = \"app\"\n",
    );
    let err = stderr(&run_err(&mut build(&ctx, &recipe)));
    assert!(err.contains("the image has no /etc/passwd"), "{err}");

    // A FIFO at /etc/passwd is never opened: the user cannot be checked, which is a warning.
    let recipe = busybox_recipe(
        &ctx,
        "fifo",
        "[[layer]]\n[[layer.step]]\nmkdir = \"/etc\"\n[[layer.step]]\n\
         run = [\"/bin/busybox\", \"mkfifo\", \"/etc/passwd\"]\n[config]\nuser = \"app\"\n",
    );
    let out = build(&ctx, &recipe).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let line = line_of(&recipe, "user = \"app\"");
    assert!(
        stderr(&out).contains(&format!(
            "warning: {}:{line}:8: could not check `[config] user = \"app\"`: /etc/passwd is \
             not a regular file (Fifo)\n",
            recipe.display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_entrypoint_copied_without_its_execute_bit_is_refused_with_a_mode_hint() {
    let ctx = TestContext::new();
    let with_mode = |mode: &str| {
        format!(
            "[inputs.app]\npath = \"app.sh\"\n[[layer]]\n[[layer.step]]\ncopy = \"app\"\n\
             dest = \"/app\"\n{mode}[config]\nentrypoint = [\"/app\"]\n"
        )
    };
    let recipe = busybox_recipe(&ctx, "r", &with_mode(""));
    let script = ctx.write("r/app.sh", "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let err = stderr(&run_err(&mut build(&ctx, &recipe)));
    let line = line_of(&recipe, "copy = \"app\"") - 1;
    assert!(
        err.contains(&format!(
            "{}:{line}:1: this `copy` step makes `/app` (the [config] entrypoint) mode 0644, \
             which no runtime can execute\n",
            recipe.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: add mode = \"0755\" to the step\n"),
        "{err}"
    );

    // With the mode, or an executable file on disk, the image builds and runs.
    let recipe = busybox_recipe(&ctx, "m", &with_mode("mode = \"0755\"\n"));
    std::fs::copy(&script, ctx.join("m/app.sh")).unwrap();
    let out = build(&ctx, &recipe).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let run = run_ok(
        podman(&ctx)
            .args(["run", "--rm", "--network=none"])
            .arg(format!("oci:{}:bb", ctx.join("img").display())),
    );
    assert_eq!(run, "hi\n");
}

#[test]
fn removing_what_no_lower_layer_has_warns_and_removing_what_one_has_does_not() {
    let ctx = TestContext::new();
    let recipe = busybox_recipe(
        &ctx,
        "r",
        "[[layer]]\n[[layer.step]]\nremove = \"/tmp\"\n[[layer.step]]\nremove = \"/bin/sh\"\n\
         [[layer.step]]\nremove = \"/var/cache/apt\"\n[[layer.step]]\nwrite = \"/new\"\n\
         content = \"x\"\n[[layer.step]]\nremove = \"/new\"\n",
    );
    let out = build(&ctx, &recipe).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let line = line_of(&recipe, "remove = \"/var/cache/apt\"") - 1;
    assert!(
        err.contains(&format!(
            "warning: {}:{line}:1: `remove = \"/var/cache/apt\"` removes nothing: no layer below \
             this one has `/var/cache/apt`, so the layer only records a whiteout\n",
            recipe.display()
        )),
        "{err}"
    );
    assert_eq!(err.matches("warning:").count(), 1, "only that one:\n{err}");
}

/// Regression: the recipe's own reference check accepted `docker://reg.example/a..b`, which the
/// registry grammar refuses, so the recipe validated and the build failed later with no line.
/// One parser now decides for the recipe, `build`, `lock` and `fetch`: each refuses at the
/// `[base] ref` line, names the offending part, and writes nothing.
#[test]
fn a_base_reference_the_registry_grammar_refuses_fails_at_its_recipe_line() {
    let pin = "@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    for (bad, part) in [
        (
            format!("docker://reg.example/a..b{pin}"),
            "the path component `a..b` is not lowercase [a-z0-9] runs joined by `.`, `_`, `__` or `-`",
        ),
        (
            format!("docker://reg.example/app:.v1{pin}"),
            "the tag `.v1` is not 1 to 128 characters of [A-Za-z0-9_.-] starting with a letter, \
             a digit or `_`",
        ),
        (
            format!("docker://reg.example:99999/app{pin}"),
            "the registry `reg.example:99999` is not HOST or HOST:PORT",
        ),
        (
            format!("docker-archive:base.tar{pin}"),
            "a docker-archive: tarball has no manifest digest to pin; use oci: or oci-archive:",
        ),
    ] {
        let ctx = TestContext::new();
        let text = format!(
            "[image]\nname = \"x\"\n\n[base]\nref = \"{bad}\"\n\n[[layer]]\n[[layer.step]]\n\
             mkdir = \"/d\"\n"
        );
        let recipe = ctx.write("recipe.toml", &text);
        let want = format!(
            "{}:5:7: invalid [base] ref `{bad}`: {part}\n",
            recipe.display()
        );
        for command in ["build", "lock", "fetch"] {
            let out = run_err(ctx.kiln().arg(command).arg(&recipe));
            let err = stderr(&out);
            assert!(err.contains(&want), "{command} {bad}:\n{err}");
            let names: Vec<_> = std::fs::read_dir(ctx.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["recipe.toml"], "{command} {bad}: wrote something");
            assert_eq!(std::fs::read_to_string(&recipe).unwrap(), text);
        }
    }
}
