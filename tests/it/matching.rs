//! Rebuilding another builder's image: a `podman build --timestamp 0` image of a Containerfile
//! of `FROM scratch` and `COPY`, reproduced by a kiln recipe that says what podman chose (Go's
//! tar header style, the history entries, the manifest annotations).

use serde_json::Value;

use crate::support::*;

/// A tree with what makes tar writers differ: a directory `lib` beside `lib.so` and `lib-a`
/// (walk order against bytewise order), a name over 100 bytes that ustar can split and one it
/// cannot, a non-ASCII name, a hard link pair, a long symlink target.
fn write_tree(ctx: &TestContext, dir: &str) {
    let long_dir = format!("{dir}/{}/{}", "d".repeat(60), "e".repeat(60));
    for (rel, body) in [
        ("etc/motd".to_string(), "hello\n".to_string()),
        ("lib/x".into(), "x\n".into()),
        ("lib/sub/s".into(), "s\n".into()),
        ("lib.so".into(), "so\n".into()),
        ("lib-a".into(), "a\n".into()),
        ("café.txt".into(), "u\n".into()),
        ("zz-first".into(), "linked\n".into()),
        (format!("srv/{}.txt", "a".repeat(120)), "long\n".into()),
    ] {
        ctx.write(format!("{dir}/{rel}"), body);
    }
    ctx.write(format!("{long_dir}/file.txt"), "split\n");
    std::fs::hard_link(
        ctx.join(format!("{dir}/zz-first")),
        ctx.join(format!("{dir}/aa-second")),
    )
    .unwrap();
    std::os::unix::fs::symlink("t".repeat(120), ctx.join(format!("{dir}/longlink"))).unwrap();
}

/// The recipe of the same image: `tar = "go"` (unless `tar` is empty), and podman's history
/// entries and manifest annotations, copied from its config and manifest.
fn recipe(tar: &str, history: &Value, annotations: &Value) -> String {
    let annotations: Vec<String> = annotations
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k:?} = {v}"))
        .collect();
    let mut entries = String::new();
    for h in history.as_array().unwrap() {
        entries.push_str("[[image.history]]\n");
        for (json, key) in [("created_by", "created-by"), ("comment", "comment")] {
            if let Some(v) = h.get(json) {
                entries.push_str(&format!("{key} = {v}\n"));
            }
        }
        if h.get("empty_layer").is_some() {
            entries.push_str(&format!("empty-layer = {}\n", h["empty_layer"]));
        }
    }
    format!(
        r#"[image]
name = "rebuilt"
epoch = 0
annotations = {{ {} }}
{entries}
[inputs.tree]
path = "ctx/tree"
[[layer]]
{tar}
[[layer.step]]
copy = "tree"
dest = "/"
[config]
cmd = ["/bin/sh"]
env = {{ PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }}
labels = {{ "io.buildah.version" = "1.28.2" }}
"#,
        annotations.join(", ")
    )
}

/// `kiln rebuild recipe.toml --against UPSTREAM --accept same-layers`: its exit status and
/// its JSON report.
fn rebuild(ctx: &TestContext, upstream: &str) -> (std::process::ExitStatus, Value) {
    let out = ctx
        .kiln()
        .args(["rebuild", "recipe.toml", "--against", upstream])
        .args(["--accept", "same-layers", "--report", "report.json"])
        .output()
        .unwrap();
    let report = std::fs::read(ctx.join("report.json"))
        .unwrap_or_else(|e| panic!("no report ({e}): {}", stderr(&out)));
    (out.status, serde_json::from_slice(&report).unwrap())
}

/// The podman image compares `same-layers` with kiln's rebuild: the same tar bytes (diff_id),
/// the same runtime config and history; only the gzip stream differs (podman compresses with
/// klauspost/pgzip, whose bytes kiln does not reproduce). Without `tar = "go"` the layers
/// differ.
#[test]
fn podman_copy_image_rebuilds_to_same_layers() {
    let ctx = TestContext::new();
    write_tree(&ctx, "ctx/tree");
    ctx.write(
        "ctx/Containerfile",
        "FROM scratch\nCOPY tree/ /\nCMD [\"/bin/sh\"]\n",
    );
    run_ok(
        podman(&ctx)
            .args([
                "build",
                "--timestamp",
                "0",
                "-t",
                "localhost/upstream:latest",
            ])
            .arg(ctx.join("ctx")),
    );
    let upstream = format!("oci:{}:upstream", ctx.join("upstream").display());
    run_ok(podman(&ctx).args(["push", "localhost/upstream:latest", &upstream]));
    let inspect: Value = serde_json::from_str(&run_ok(
        tool("skopeo").args(["inspect", "--raw", &upstream]),
    ))
    .unwrap();
    let config: Value = serde_json::from_str(&run_ok(
        tool("skopeo").args(["inspect", "--config", "--raw", &upstream]),
    ))
    .unwrap();
    let history = &config["history"];
    assert_eq!(history.as_array().unwrap().len(), 2, "{config}");

    ctx.write(
        "recipe.toml",
        recipe("tar = \"go\"", history, &inspect["annotations"]),
    );
    let (status, report) = rebuild(&ctx, &upstream);
    assert!(status.success(), "{report:#}");
    assert_eq!(report["verdict"], "same-layers", "{report:#}");
    let classes: Vec<&str> = report["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["compression"], "{report:#}");
    assert_eq!(
        report["a"]["layers"][0]["diffId"], report["b"]["layers"][0]["diffId"],
        "the same tar bytes"
    );

    // kiln's own tar style: the same files, other tar bytes.
    ctx.write("recipe.toml", recipe("", history, &inspect["annotations"]));
    let (status, report) = rebuild(&ctx, &upstream);
    assert_eq!(status.code(), Some(1), "{report:#}");
    assert_eq!(report["verdict"], "equivalent", "{report:#}");
}
