//! `kiln update` end to end: a signed Debian repository built at test time (the helpers of
//! [`crate::deb`]), a base image in a real local registry whose tag moves, OSV records written
//! here, and url inputs served over loopback HTTP. The update must change exactly the pins
//! that moved, build, compare and rescan, and a run with nothing new must touch nothing.

use std::path::Path;
use std::process::Output;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::deb::{build_deb, index_and_sign, make_repo, new_key, serve, Pkg};
use crate::registry_support::LocalRegistry;
use crate::support::*;

/// A "distribution" base: its os-release says Debian 12 (the OSV ecosystem of the scan).
fn push_base(ctx: &TestContext, reference: &str, motd: &str) -> String {
    ctx.write(
        "base/recipe.toml",
        format!(
            "[image]\nname = \"base\"\nepoch = 1700000000\nplatform = \"linux/amd64\"\n\
             [[layer]]\n[[layer.step]]\nwrite = \"/etc/os-release\"\n\
             content = \"ID=debian\\nVERSION_ID=\\\"12\\\"\\n\"\n\
             [[layer.step]]\nwrite = \"/etc/motd\"\ncontent = \"{motd}\\n\"\n"
        ),
    );
    last_line(&run_ok(ctx.kiln().args([
        "build",
        "base/recipe.toml",
        "-o",
        "base-oci",
        "--push",
        reference,
    ])))
}

fn osv(dir: &Path, file: &str, id: &str, alias: &str, fixed: &str) {
    let record = json!({
        "id": id,
        "aliases": [alias],
        "summary": format!("{alias} in openssl"),
        "affected": [{
            "package": {"ecosystem": "Debian:12", "name": "openssl"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
        }],
    });
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(file), serde_json::to_vec_pretty(&record).unwrap()).unwrap();
}

fn update(ctx: &TestContext, args: &[&str]) -> Output {
    ctx.kiln().arg("update").args(args).output().unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Bytes and mtime: "changes no file" means neither moved.
fn snapshot(path: &Path) -> (Vec<u8>, SystemTime) {
    let bytes = std::fs::read(path).unwrap();
    (bytes, std::fs::metadata(path).unwrap().modified().unwrap())
}

fn libssl3(version: &'static str) -> Pkg {
    Pkg("libssl3", version, "amd64", "Source: openssl\n")
}

#[test]
fn update_repins_a_moved_tag_and_package_rebuilds_and_reports_the_fixed_cve() {
    let reg = LocalRegistry::start(&[]);
    let ctx = TestContext::new();
    let base_tag = reg.reference("kiln/base:12");
    let base_v1 = push_base(&ctx, &base_tag, "v1");

    let home = new_key(&ctx, "update", "never", None);
    let repo = make_repo(&ctx, &home, |r| r);
    let pool = repo.root.join("pool/main");
    build_deb(&ctx, &pool, &libssl3("3.0.11-1"));
    index_and_sign(&repo.root, &home, |r| r, None);

    let recipe = ctx.write(
        "app.toml",
        format!(
            "[image]\nname = \"app\"\nepoch = 1700000000\nplatform = \"linux/amd64\"\n\n\
             [base]\n# the distribution base; kiln update follows its tag\n\
             ref = \"{base_tag}@{base_v1}\"\n\n\
             [repositories.test]\nurl = \"{}\"\nsuite = \"test\"\nkeyring = \"keyring.gpg\"\n\n\
             [[layer]]\n[[layer.step]]\npackages = [\"libssl3\", \"libbar\"]\n",
            repo.url
        ),
    );
    let lock = ctx.join("app.lock");
    run_ok(ctx.kiln().arg("lock").arg(&recipe));
    let old_recipe = std::fs::read_to_string(&recipe).unwrap();
    let old_lock = std::fs::read_to_string(&lock).unwrap();

    let db = ctx.join("osv");
    osv(
        &db,
        "DSA-5001-1.json",
        "DSA-5001-1",
        "CVE-2024-0727",
        "3.0.13-1",
    );
    osv(
        &db,
        "DSA-5002-1.json",
        "DSA-5002-1",
        "CVE-2024-9143",
        "3.0.15-1",
    );

    // Nothing new yet: exit 0, no file touched, no image built.
    let before = (snapshot(&recipe), snapshot(&lock));
    let out = update(&ctx, &["app.toml", "--db", "osv"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!((snapshot(&recipe), snapshot(&lock)), before);
    assert!(!ctx.join("out/app").exists());

    // The sources move on: openssl 3.0.13-1 fixes CVE-2024-0727, and the tag gets a new base.
    build_deb(&ctx, &pool, &libssl3("3.0.13-1"));
    index_and_sign(&repo.root, &home, |r| r, None);
    let base_v2 = push_base(&ctx, &base_tag, "v2");
    assert_ne!(base_v1, base_v2);

    run_ok(ctx.kiln().args(["key", "generate", "--out", "k"]));
    let pushed = reg.reference("kiln/app:latest");
    let out = update(
        &ctx,
        &[
            "app.toml",
            "--db",
            "osv",
            "--report",
            "report.md",
            "--json",
            "report.json",
            "--sign-key",
            "k.key",
            "--push",
            &pushed,
        ],
    );
    let log = stderr(&out);
    assert_eq!(code(&out), 1, "{log}");

    // The recipe: exactly the base digest changed, comment and layout kept.
    let new_recipe = std::fs::read_to_string(&recipe).unwrap();
    assert_eq!(new_recipe, old_recipe.replace(&base_v1, &base_v2), "{log}");
    // The lock: exactly libssl3's pin and the repository's release changed.
    let (old_v, mut new_v): (toml::Value, toml::Value) = (
        toml::from_str(&old_lock).unwrap(),
        toml::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap(),
    );
    let package = |v: &toml::Value| -> toml::Value {
        v["set"][0]["package"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some("libssl3"))
            .unwrap()
            .clone()
    };
    let (old_pkg, new_pkg) = (package(&old_v), package(&new_v));
    assert_eq!(old_pkg["version"].as_str(), Some("3.0.11-1"));
    assert_eq!(new_pkg["version"].as_str(), Some("3.0.13-1"));
    assert_eq!(new_pkg["source"].as_str(), Some("openssl"));
    assert_ne!(old_pkg["sha256"], new_pkg["sha256"]);
    let release = |v: &toml::Value| v["repositories"]["test"]["release"]["amd64"].clone();
    assert_ne!(release(&old_v), release(&new_v));
    // Put the two expected changes back: what remains must be the old lock, byte for value.
    new_v["repositories"]["test"]["release"]["amd64"] = release(&old_v);
    for p in new_v["set"][0]["package"].as_array_mut().unwrap() {
        if p["name"].as_str() == Some("libssl3") {
            *p = old_pkg.clone();
        }
    }
    assert_eq!(
        new_v, old_v,
        "the lock changed beyond libssl3 and the release"
    );

    // The report.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(ctx.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schema"], "https://kiln.build/update/v1");
    let r = &report["recipes"][0];
    assert_eq!(r["changed"], true);
    assert_eq!(
        r["packages"],
        json!([{"name": "libssl3", "architecture": "amd64", "old": "3.0.11-1",
                "new": "3.0.13-1", "source": "openssl"}])
    );
    assert_eq!(r["base"]["old"], base_v1.as_str());
    assert_eq!(r["base"]["new"], base_v2.as_str());
    assert_eq!(r["base"]["reference"], base_tag.as_str());
    assert_eq!(r["diff"]["verdict"], "different", "{r}");
    let classes: Vec<&str> = r["diff"]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["class"].as_str().unwrap())
        .collect();
    assert!(classes.contains(&"content"), "{classes:?}");
    let paths: Vec<&str> = r["diff"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    // The base's motd and the upgraded package's files (its dpkg record too).
    for want in ["/etc/motd", "/usr/share/libssl3/hello.txt"] {
        assert!(paths.contains(&want), "{want} not in {paths:?}");
    }
    let ids = |key: &str| -> Vec<(String, String)> {
        r["vulnerabilities"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["aliases"][0].as_str().unwrap().to_string(),
                    f["installedVersion"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        ids("fixed"),
        [("CVE-2024-0727".to_string(), "3.0.11-1".to_string())]
    );
    assert_eq!(
        ids("still-open"),
        [("CVE-2024-9143".to_string(), "3.0.13-1".to_string())]
    );
    assert!(ids("introduced").is_empty());

    // The new image is the one reported, and skopeo reads it.
    let after = r["digests"]["after"].as_str().unwrap();
    assert_ne!(r["digests"]["before"], r["digests"]["after"]);
    let inspected: Value = serde_json::from_str(&run_ok(
        tool("skopeo").args(["inspect", &format!("oci:{}", ctx.join("out/app").display())]),
    ))
    .unwrap();
    assert_eq!(inspected["Digest"], after);
    // Signed, pushed, and verifiable there.
    let verified = run_ok(ctx.kiln().args([
        "verify",
        &pushed,
        "--key",
        "k.pub",
        "--attestation",
        "slsaprovenance1",
    ]));
    assert!(
        verified.contains(&format!("signature {after}")),
        "{verified}"
    );
    // A plain build of the updated recipe gives the same image.
    let rebuilt = last_line(&run_ok(
        ctx.kiln().args(["build", "app.toml", "-o", "rebuilt"]),
    ));
    assert_eq!(rebuilt, after);

    // The pull-request body names the package change, the verdict and the CVE.
    let md = std::fs::read_to_string(ctx.join("report.md")).unwrap();
    for want in [
        "| libssl3:amd64 | 3.0.11-1 | 3.0.13-1 | openssl |",
        "Diff verdict: **different**",
        "Vulnerabilities: 1 fixed, 1 still open, 0 introduced",
        "| fixed | DSA-5001-1 (CVE-2024-0727) | libssl3 (openssl) | 3.0.11-1 | 3.0.13-1 |",
    ] {
        assert!(md.contains(want), "missing {want:?} in:\n{md}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("app.toml: updated the base image, 1 package; the image is different")
            && stdout.contains("fixes 1 vulnerability (DSA-5001-1 (CVE-2024-0727)), 1 still open"),
        "{stdout}"
    );

    // A second run with nothing new: exit 0, no file touched.
    let settled = (snapshot(&recipe), snapshot(&lock));
    let out = update(&ctx, &["app.toml", "--db", "osv", "--json", "again.json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!((snapshot(&recipe), snapshot(&lock)), settled);
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(ctx.join("again.json")).unwrap()).unwrap();
    assert_eq!(again["recipes"][0]["changed"], false);
    assert_eq!(again["recipes"][0]["conclusion"], "nothing to update");
}

/// A tar holding one file, as a release tarball.
fn release_tar(dir: &Path, version: &str) -> Vec<u8> {
    let src = dir.join(format!("src-{version}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("VERSION"), format!("{version}\n")).unwrap();
    let name = format!("foo-{version}.tar");
    run_ok(
        tool("tar")
            .arg("-C")
            .arg(&src)
            .args([
                "--sort=name",
                "--mtime=@0",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
            ])
            .arg("-cf")
            .arg(dir.join(&name))
            .arg("VERSION"),
    );
    std::fs::read(dir.join(&name)).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    kiln::Sha256Digest::of(bytes).hex()
}

/// How the recipe's `update` rule finds the releases.
#[derive(Clone, Copy)]
enum List {
    Checksums,
    Index,
}

/// Releases 1.9 and 1.10 of `foo` with their SHA256SUMS and an HTML index, and `notes.txt`,
/// served over loopback; a recipe at `rel` pinned to 1.9 with an `update` rule reading `list`,
/// and `notes` without one.
struct Releases {
    www: std::path::PathBuf,
    url: String,
    v1: Vec<u8>,
    v2: Vec<u8>,
}

fn releases(ctx: &TestContext, rel: &str, list: List) -> (Releases, std::path::PathBuf) {
    let www = ctx.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let v1 = release_tar(&www, "1.9");
    let v2 = release_tar(&www, "1.10");
    std::fs::write(
        www.join("SHA256SUMS"),
        format!(
            "{}  foo-1.9.tar\n{}  foo-1.10.tar\n",
            sha256(&v1),
            sha256(&v2)
        ),
    )
    .unwrap();
    std::fs::write(
        www.join("index.html"),
        "<html><body><a href=\"foo-1.9.tar\">foo-1.9.tar</a>\n\
         <a href=\"foo-1.10.tar\">foo-1.10.tar</a> <a href=\"SHA256SUMS\">SHA256SUMS</a></body></html>\n",
    )
    .unwrap();
    std::fs::write(www.join("notes.txt"), "pinned\n").unwrap();
    let url = serve(&www);
    let source = match list {
        List::Checksums => format!("checksums = \"{url}/SHA256SUMS\""),
        List::Index => format!("index = \"{url}/index.html\""),
    };
    let recipe = ctx.write(
        rel,
        format!(
            "[image]\nname = \"foo\"\nepoch = 1700000000\n\n\
             [inputs.foo]\n# the release tarball; kiln update follows SHA256SUMS\n\
             url = \"{url}/foo-1.9.tar\"\n\
             update = {{ url-template = \"{url}/foo-{{version}}.tar\", {source} }}\n\n\
             [inputs.notes]\nurl = \"{url}/notes.txt\"\n\n\
             [[layer]]\n[[layer.step]]\nextract = \"foo\"\ndest = \"/opt/foo\"\n\
             [[layer.step]]\ncopy = \"notes\"\ndest = \"/opt/notes.txt\"\n"
        ),
    );
    let r = Releases { www, url, v1, v2 };
    (r, recipe)
}

#[test]
fn update_moves_a_url_input_to_its_newest_release_and_puts_everything_back_on_failure() {
    let ctx = TestContext::new();
    let (Releases { www, url, v1, v2 }, recipe) = releases(&ctx, "foo.toml", List::Checksums);
    run_ok(ctx.kiln().arg("lock").arg(&recipe));
    let old = std::fs::read_to_string(&recipe).unwrap();
    assert!(old.contains(&sha256(&v1)), "{old}");

    let out = update(&ctx, &["foo.toml", "--json", "report.json"]);
    let log = stderr(&out);
    assert_eq!(code(&out), 1, "{log}");
    let new = std::fs::read_to_string(&recipe).unwrap();
    let expected = old
        .replace(
            &format!("{url}/foo-1.9.tar\""),
            &format!("{url}/foo-1.10.tar\""),
        )
        .replace(&sha256(&v1), &sha256(&v2))
        .replace(
            &format!("size = {}\n", v1.len()),
            &format!("size = {}\n", v2.len()),
        );
    assert_eq!(new, expected, "{log}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(ctx.join("report.json")).unwrap()).unwrap();
    let r = &report["recipes"][0];
    assert_eq!(r["inputs"][0]["name"], "foo");
    assert_eq!(r["inputs"][0]["old-version"], "1.9");
    assert_eq!(r["inputs"][0]["new-version"], "1.10");
    assert_eq!(
        r["inputs"][0]["new-sha256"],
        format!("sha256:{}", sha256(&v2))
    );
    assert_eq!(r["pinned-inputs"], json!(["notes"]));
    assert_eq!(r["diff"]["verdict"], "different");
    let conclusion = r["conclusion"].as_str().unwrap();
    assert!(
        conclusion.starts_with("updated 1 input; the image is different (content")
            && conclusion.ends_with("(1 input stays pinned without an `update` rule: notes)"),
        "{conclusion}"
    );
    // The image holds the new release.
    let bundle = ctx.join("bundle");
    run_ok(
        tool("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:foo", ctx.join("out/foo").display()))
            .arg(&bundle),
    );
    let version = std::fs::read_to_string(bundle.join("rootfs/opt/foo/VERSION")).unwrap();
    assert_eq!(version, "1.10\n");

    // A release whose bytes differ from what SHA256SUMS lists: refused, nothing written.
    let v3 = release_tar(&www, "1.11");
    std::fs::write(
        www.join("SHA256SUMS"),
        format!(
            "{}  foo-1.10.tar\n{}  foo-1.11.tar\n",
            sha256(&v2),
            sha256(&v1)
        ),
    )
    .unwrap();
    let settled = snapshot(&recipe);
    let out = update(&ctx, &["foo.toml"]);
    let log = stderr(&out);
    assert_eq!(code(&out), 2, "{log}");
    assert!(
        log.contains(&format!(
            "input `foo`: {url}/foo-1.11.tar has sha256:{}, but its checksums file lists sha256:{}",
            sha256(&v3),
            sha256(&v1)
        )),
        "{log}"
    );
    assert_eq!(snapshot(&recipe), settled);

    // A listed release that does not build (not an archive): the recipe is put back.
    let broken = b"not an archive\n";
    std::fs::write(www.join("foo-1.12.tar"), broken).unwrap();
    std::fs::write(
        www.join("SHA256SUMS"),
        format!("{}  foo-1.12.tar\n", sha256(broken)),
    )
    .unwrap();
    let out = update(&ctx, &["foo.toml"]);
    let log = stderr(&out);
    assert_eq!(code(&out), 2, "{log}");
    assert!(
        log.contains("failed to build the updated foo.toml; the recipe and its lock were put back"),
        "{log}"
    );
    assert_eq!(snapshot(&recipe).0, settled.0);
    assert!(!ctx.join("foo.lock").exists());
}

fn git(dir: &Path) -> std::process::Command {
    let mut cmd = tool("git");
    cmd.current_dir(dir).args([
        "-c",
        "user.name=kiln test",
        "-c",
        "user.email=test@kiln.invalid",
        "-c",
        "init.defaultBranch=main",
    ]);
    cmd
}

/// The scheduled-run script of `examples/update/` in a git checkout with a bare remote (the
/// recipe's releases listed by an HTML index page): the new pins land on the branch with the report as the commit body, and a run with nothing new
/// pushes nothing. The systemd units verify and the CI files are YAML.
#[test]
fn update_example_script_commits_the_new_pins_on_a_branch() {
    let ctx = TestContext::new();
    let work = ctx.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let (_releases, recipe) = releases(&ctx, "work/recipes/foo/recipe.toml", List::Index);
    run_ok(ctx.kiln().arg("lock").arg(&recipe));
    let remote = ctx.join("remote.git");
    run_ok(git(ctx.path()).args(["init", "-q", "--bare"]).arg(&remote));
    run_ok(git(&work).args(["init", "-q"]));
    run_ok(git(&work).args(["add", "recipes"]));
    run_ok(git(&work).args(["commit", "-q", "-m", "recipes"]));
    run_ok(git(&work).args(["remote", "add", "origin"]).arg(&remote));
    run_ok(git(&work).args(["push", "-q", "origin", "HEAD:main"]));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/update/kiln-update.sh");
    let kiln_dir = Path::new(env!("CARGO_BIN_EXE_kiln")).parent().unwrap();
    let run = || {
        tool("sh")
            .arg(&script)
            .current_dir(&work)
            .env(
                "PATH",
                format!("{}:{}", kiln_dir.display(), std::env::var("PATH").unwrap()),
            )
            .env("XDG_CACHE_HOME", ctx.join("xdg-cache"))
            .env("HOME", ctx.join("home"))
            .env("GIT_AUTHOR_NAME", "kiln test")
            .env("GIT_AUTHOR_EMAIL", "test@kiln.invalid")
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    assert!(stdout.contains("pushed kiln/update to origin"), "{stdout}");
    let files = run_ok(git(&remote).args(["diff", "--name-only", "main", "kiln/update"]));
    assert_eq!(files, "recipes/foo/recipe.toml\n");
    let message = run_ok(git(&remote).args(["log", "-1", "--format=%B", "kiln/update"]));
    assert!(
        message.starts_with("kiln update: new pins\n\n## kiln update\n")
            && message.contains("| `recipes/foo/recipe.toml` | foo | updated 1 input;")
            && message.contains("| foo | 1.9 | 1.10 |"),
        "{message}"
    );
    let pushed = run_ok(git(&remote).args(["rev-parse", "kiln/update"]));

    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    assert!(
        stdout.contains("kiln-update: nothing to update"),
        "{stdout}"
    );
    assert_eq!(
        run_ok(git(&remote).args(["rev-parse", "kiln/update"])),
        pushed
    );

    // The units, with the service pointed at this checkout, pass systemd's own checks.
    let units = ctx.join("units");
    std::fs::create_dir_all(&units).unwrap();
    let examples = script.parent().unwrap();
    let service = std::fs::read_to_string(examples.join("kiln-update.service"))
        .unwrap()
        .replace(
            "/srv/kiln/recipes-checkout/examples/update/kiln-update.sh",
            &script.display().to_string(),
        );
    std::fs::write(units.join("kiln-update.service"), service).unwrap();
    std::fs::copy(
        examples.join("kiln-update.timer"),
        units.join("kiln-update.timer"),
    )
    .unwrap();
    let verify = tool("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(units.join("kiln-update.timer"))
        .arg(units.join("kiln-update.service"))
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        stderr(&verify)
    );
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    run_ok(
        tool(&python.display().to_string())
            .args([
                "-c",
                "import sys, yaml\nfor f in sys.argv[1:]:\n    \
                 d = yaml.safe_load(open(f))\n    \
                 assert 'kiln-update.sh' in str(d), f",
            ])
            .arg(examples.join("github-workflow.yml"))
            .arg(examples.join("gitlab-ci.yml")),
    );
}

/// A multi-platform "distribution" base (an index over linux/amd64 and linux/arm64), pushed.
fn push_platforms_base(ctx: &TestContext, reference: &str, motd: &str) -> String {
    ctx.write(
        "base/multi.toml",
        format!(
            "[image]\nname = \"base\"\nepoch = 1700000000\n\
             platforms = [\"linux/amd64\", \"linux/arm64\"]\n\
             [[layer]]\n[[layer.step]]\nwrite = \"/etc/os-release\"\n\
             content = \"ID=debian\\nVERSION_ID=\\\"12\\\"\\n\"\n\
             [[layer.step]]\nwrite = \"/etc/motd\"\ncontent = \"{motd}\\n\"\n"
        ),
    );
    last_line(&run_ok(ctx.kiln().args([
        "build",
        "base/multi.toml",
        "-o",
        "base-multi",
        "--push",
        reference,
    ])))
}

/// A recipe with several platforms: the base index's tag and the package move for both
/// architectures; `kiln update` re-pins both, rebuilds the index, compares and rescans each
/// platform's image, reports per platform, signs and pushes the index (verified per platform).
#[test]
fn update_handles_a_recipe_with_several_platforms_per_platform() {
    let reg = LocalRegistry::start(&[]);
    let ctx = TestContext::new();
    let base_tag = reg.reference("kiln/multibase:12");
    let base_v1 = push_platforms_base(&ctx, &base_tag, "v1");

    let home = new_key(&ctx, "update", "never", None);
    let repo = make_repo(&ctx, &home, |r| r);
    let pool = repo.root.join("pool/main");
    let libssl3 = |version, arch| Pkg("libssl3", version, arch, "Source: openssl\n");
    for arch in ["amd64", "arm64"] {
        build_deb(&ctx, &pool, &libssl3("3.0.11-1", arch));
    }
    index_and_sign(&repo.root, &home, |r| r, None);
    let recipe = ctx.write(
        "app.toml",
        format!(
            "[image]\nname = \"app\"\nepoch = 1700000000\n\
             platforms = [\"linux/amd64\", \"linux/arm64\"]\n\n\
             [base]\nref = \"{base_tag}@{base_v1}\"\n\n\
             [repositories.test]\nurl = \"{}\"\nsuite = \"test\"\nkeyring = \"keyring.gpg\"\n\n\
             [[layer]]\n[[layer.step]]\npackages = [\"libssl3\", \"libbar\"]\n",
            repo.url
        ),
    );
    let lock = ctx.join("app.lock");
    run_ok(ctx.kiln().arg("lock").arg(&recipe));
    let db = ctx.join("osv");
    osv(
        &db,
        "DSA-5001-1.json",
        "DSA-5001-1",
        "CVE-2024-0727",
        "3.0.13-1",
    );

    // Nothing new yet: exit 0, no file touched.
    let before = (snapshot(&recipe), snapshot(&lock));
    let out = update(&ctx, &["app.toml", "--db", "osv"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!((snapshot(&recipe), snapshot(&lock)), before);

    // Both architectures get openssl 3.0.13-1, and the base's tag a new index.
    for arch in ["amd64", "arm64"] {
        build_deb(&ctx, &pool, &libssl3("3.0.13-1", arch));
    }
    index_and_sign(&repo.root, &home, |r| r, None);
    let base_v2 = push_platforms_base(&ctx, &base_tag, "v2");
    assert_ne!(base_v1, base_v2);
    run_ok(ctx.kiln().args(["key", "generate", "--out", "k"]));
    let pushed = reg.reference("kiln/app:latest");
    let out = update(
        &ctx,
        &[
            "app.toml",
            "--db",
            "osv",
            "--report",
            "report.md",
            "--json",
            "report.json",
            "--sign-key",
            "k.key",
            "--push",
            &pushed,
        ],
    );
    let log = stderr(&out);
    assert_eq!(code(&out), 1, "{log}");
    let new_recipe = std::fs::read_to_string(&recipe).unwrap();
    assert!(
        new_recipe.contains(&format!("{base_tag}@{base_v2}")),
        "{new_recipe}"
    );
    let new_lock: toml::Value = toml::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    let mut versions: Vec<(String, String)> = new_lock["set"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["package"].as_array().unwrap().iter())
        .filter(|p| p["name"].as_str() == Some("libssl3"))
        .map(|p| {
            let field = |k: &str| p[k].as_str().unwrap().to_string();
            (field("architecture"), field("version"))
        })
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        [
            ("amd64".to_string(), "3.0.13-1".to_string()),
            ("arm64".to_string(), "3.0.13-1".to_string())
        ]
    );

    // The report: the packages of both architectures, then each platform's images.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(ctx.join("report.json")).unwrap()).unwrap();
    let r = &report["recipes"][0];
    let archs: Vec<&str> = r["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"], "{r}");
    assert_eq!(r["base"]["new"], base_v2.as_str());
    assert!(r.get("diff").is_none_or(Value::is_null), "{r}");
    let index_after = r["digests"]["after"].as_str().unwrap();
    let index: Value = serde_json::from_str(&run_ok(tool("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}", ctx.join("out/app").display()),
    ])))
    .unwrap();
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    let platforms = r["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2, "{r}");
    for (i, (p, arch)) in platforms.iter().zip(["amd64", "arm64"]).enumerate() {
        assert_eq!(p["platform"], format!("linux/{arch}"));
        assert_eq!(
            p["digests"]["after"], index["manifests"][i]["digest"],
            "{p}"
        );
        assert_ne!(p["digests"]["before"], p["digests"]["after"]);
        assert_eq!(p["diff"]["verdict"], "different", "{p}");
        let paths: Vec<&str> = p["diff"]["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["path"].as_str().unwrap())
            .collect();
        for want in ["/etc/motd", "/usr/share/libssl3/hello.txt"] {
            assert!(paths.contains(&want), "{arch}: {want} not in {paths:?}");
        }
        let fixed = &p["vulnerabilities"]["fixed"];
        assert_eq!(fixed[0]["aliases"][0], "CVE-2024-0727", "{p}");
        assert_eq!(fixed[0]["architecture"], arch, "{p}");
        assert_eq!(p["vulnerabilities"]["introduced"], json!([]));
    }
    let md = std::fs::read_to_string(ctx.join("report.md")).unwrap();
    for want in [
        "| libssl3:amd64 | 3.0.11-1 | 3.0.13-1 | openssl |",
        "| libssl3:arm64 | 3.0.11-1 | 3.0.13-1 | openssl |",
        "#### linux/amd64\n\nImage: `",
        "#### linux/arm64\n\nImage: `",
        &format!(
            "Index: `{}` → `{index_after}`",
            r["digests"]["before"].as_str().unwrap()
        ),
    ] {
        assert!(md.contains(want), "missing {want:?} in:\n{md}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    for arch in ["amd64", "arm64"] {
        assert!(
            stdout.contains(&format!("; linux/{arch}: the image is different (content"))
                && stdout.contains("fixes 1 vulnerability (DSA-5001-1 (CVE-2024-0727))"),
            "{stdout}"
        );
    }

    // Signed and pushed as an index: each platform's image verifies there.
    let verified = run_ok(ctx.kiln().args([
        "verify",
        &pushed,
        "--key",
        "k.pub",
        "--attestation",
        "slsaprovenance1",
    ]));
    assert!(
        verified.contains(&format!(
            "verified {pushed} ({index_after}) and its images for linux/amd64, linux/arm64"
        )),
        "{verified}"
    );
    // A plain build of the updated recipe gives the same index.
    let rebuilt = last_line(&run_ok(
        ctx.kiln().args(["build", "app.toml", "-o", "rebuilt"]),
    ));
    assert_eq!(rebuilt, index_after);

    // Nothing new: exit 0, no file touched.
    let settled = (snapshot(&recipe), snapshot(&lock));
    let out = update(&ctx, &["app.toml", "--db", "osv"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!((snapshot(&recipe), snapshot(&lock)), settled);
}
