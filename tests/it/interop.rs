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
