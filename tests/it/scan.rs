//! `kiln scan`: an image built from `write` steps (dpkg records, os-release; no network) is
//! matched against OSV records written here, one per outcome, and the gate's exit codes are
//! asserted.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::{run_ok, stderr, TestContext};

fn write_step(path: &str, content: &str) -> String {
    format!("[[layer.step]]\nwrite = \"{path}\"\ncontent = '''\n{content}'''\n")
}

fn stanza(name: &str, version: &str, source: Option<&str>) -> String {
    let mut s = format!(
        "Package: {name}\nStatus: install ok installed\nVersion: {version}\nArchitecture: amd64\n"
    );
    if let Some(src) = source {
        s.push_str(&format!("Source: {src}\n"));
    }
    s
}

/// Two layers: the second upgrades libc6 and removes `oldpkg` (a whiteout).
pub fn build_dpkg_image(ctx: &TestContext) -> String {
    let d = "/var/lib/dpkg/status.d";
    ctx.write("pkgs/notes.txt", "notes\n");
    let mut recipe = String::from(
        "[image]\nname = \"pkgs\"\nepoch = 1700000000\n\n[inputs.notes]\npath = \"notes.txt\"\n\n\
         [[layer]]\n[[layer.step]]\ncopy = \"notes\"\ndest = \"/usr/share/doc/notes.txt\"\n",
    );
    recipe += &write_step(
        "/etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
    );
    for (name, version, source) in [
        (
            "libssl3",
            "3.0.11-1~deb12u2+b1",
            Some("openssl (3.0.11-1~deb12u2)"),
        ),
        ("zlib1g", "1:1.2.13.dfsg-1", Some("zlib")),
        ("bash", "5.2.15-2+b2", Some("bash (5.2.15-2)")),
        ("tar", "1.34+dfsg-1.2", None),
        ("libc6", "2.36-9+deb12u1", Some("glibc")),
        ("oldpkg", "1.0-1", None),
    ] {
        recipe += &write_step(&format!("{d}/{name}"), &stanza(name, version, source));
    }
    recipe += "\n[[layer]]\n";
    recipe += &write_step(
        &format!("{d}/libc6"),
        &stanza("libc6", "2.36-9+deb12u4", Some("glibc")),
    );
    recipe += &format!("[[layer.step]]\nremove = \"{d}/oldpkg\"\n");
    ctx.write("pkgs/recipe.toml", recipe);
    run_ok(
        ctx.kiln()
            .args(["build", "pkgs/recipe.toml", "-o", "out/pkgs"]),
    );
    "oci:out/pkgs:pkgs".to_string()
}

pub(crate) fn record(dir: &Path, file: &str, value: Value) {
    std::fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
    std::fs::write(dir.join(file), serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

fn eco_range(events: Value) -> Value {
    json!([{"type": "ECOSYSTEM", "events": events}])
}

fn affected(name: &str, extra: Value) -> Value {
    let mut a = json!({"package": {"ecosystem": "Debian:12", "name": name}});
    a.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    a
}

/// One record per outcome; returns the directory.
pub(crate) fn write_db(ctx: &TestContext) -> PathBuf {
    let db = ctx.join("osv");
    let critical =
        json!([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]);
    // Fixed, keyed by the source name of libssl3; the installed source version is below it.
    record(
        &db,
        "DSA-1-1.json",
        json!({
            "id": "DSA-1-1", "aliases": ["CVE-2024-0001"], "severity": critical,
            "affected": [affected("openssl", json!({"ranges": eco_range(json!([{"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}]))}))],
        }),
    );
    // The binary name is not what Debian records key on: no finding.
    record(
        &db,
        "binary-name.json",
        json!({
            "id": "BIN-1", "severity": critical,
            "affected": [affected("libssl3", json!({"ranges": eco_range(json!([{"introduced": "0"}]))}))],
        }),
    );
    // Another release's record: no finding.
    record(
        &db,
        "debian11.json",
        json!({
            "id": "DEB11-1",
            "affected": [{"package": {"ecosystem": "Debian:11", "name": "openssl"},
                          "ranges": eco_range(json!([{"introduced": "0"}]))}],
        }),
    );
    // Unfixed: no `fixed` event; Debian's urgency gives the severity.
    record(
        &db,
        "nested/DEBIAN-CVE-2024-0002.json",
        json!({
            "id": "DEBIAN-CVE-2024-0002", "aliases": ["CVE-2024-0002"],
            "affected": [affected("bash", json!({"ranges": eco_range(json!([{"introduced": "0"}])),
                                                 "ecosystem_specific": {"urgency": "low"}}))],
        }),
    );
    // last_affected below the installed version: no finding.
    record(
        &db,
        "last-affected.json",
        json!({
            "id": "LAST-1", "severity": critical,
            "affected": [affected("bash", json!({"ranges": eco_range(json!([{"introduced": "0"}, {"last_affected": "5.2.15-1"}]))}))],
        }),
    );
    // Withdrawn: no finding.
    record(
        &db,
        "withdrawn.json",
        json!({
            "id": "WD-1", "withdrawn": "2024-01-01T00:00:00Z", "severity": critical,
            "affected": [affected("tar", json!({"ranges": eco_range(json!([{"introduced": "0"}]))}))],
        }),
    );
    // Introduced after the installed version: no finding.
    record(
        &db,
        "introduced-later.json",
        json!({
            "id": "LATER-1", "severity": critical,
            "affected": [affected("tar", json!({"ranges": eco_range(json!([{"introduced": "1.35"}, {"fixed": "1.35+dfsg-2"}]))}))],
        }),
    );
    // Epoch: 1:1.2.13.dfsg-1 < 1:1.2.13.dfsg-2, a medium CVSS score.
    record(
        &db,
        "epoch.json",
        json!({
            "id": "ZLIB-1",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N"}],
            "affected": [affected("zlib", json!({"ranges": eco_range(json!([{"introduced": "0"}, {"fixed": "1:1.2.13.dfsg-2"}]))}))],
        }),
    );
    // Without the epoch, 1.3 is below 1:1.2.13: no finding.
    record(
        &db,
        "epoch-less.json",
        json!({
            "id": "ZLIB-2", "severity": critical,
            "affected": [affected("zlib", json!({"ranges": eco_range(json!([{"introduced": "0"}, {"fixed": "1.3"}]))}))],
        }),
    );
    // `versions` lists: the lower layer's libc6 is listed (no finding: the upper layer
    // upgraded it), the upper layer's one is (a high finding).
    record(
        &db,
        "versions-old.json",
        json!({
            "id": "GLIBC-OLD", "severity": critical,
            "affected": [affected("glibc", json!({"versions": ["2.36-9+deb12u1"]}))],
        }),
    );
    record(
        &db,
        "versions-new.json",
        json!({
            "id": "GLIBC-NEW", "database_specific": {"severity": "HIGH"},
            "affected": [affected("glibc", json!({"versions": ["2.36-9+deb12u3", "2.36-9+deb12u4"]}))],
        }),
    );
    // A package the upper layer removed: no finding.
    record(
        &db,
        "removed.json",
        json!({
            "id": "OLD-1", "severity": critical,
            "affected": [affected("oldpkg", json!({"ranges": eco_range(json!([{"introduced": "0"}]))}))],
        }),
    );
    // Malformed: named and skipped.
    std::fs::write(
        db.join("broken.json"),
        "{\"id\": \"BROKEN\", \"affected\": [",
    )
    .unwrap();
    // A 1 GB record (sparse): refused by the size cap, named.
    let big = std::fs::File::create(db.join("huge.json")).unwrap();
    big.set_len(1 << 30).unwrap();
    db
}

fn scan_json(ctx: &TestContext, args: &[&str]) -> (Value, i32, String) {
    let out = ctx
        .kiln()
        .arg("scan")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    assert!(code == 0 || code == 1, "exit {code}: {}", stderr(&out));
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        code,
        stderr(&out),
    )
}

fn outcome(report: &Value) -> Vec<(String, String, String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["package"].as_str().unwrap().to_string(),
                f["fixedVersion"].as_str().unwrap_or("no fix").to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn scan_matches_each_outcome_and_gates() {
    let ctx = TestContext::new();
    let image = build_dpkg_image(&ctx);
    let db = write_db(&ctx);
    let db = db.to_str().unwrap();
    let (report, code, err) = scan_json(&ctx, &[&image, "--db", db]);
    assert_eq!(code, 0, "no --fail-on: exit 0");
    let s = |x: &str| x.to_string();
    assert_eq!(
        outcome(&report),
        vec![
            (s("DEBIAN-CVE-2024-0002"), s("bash"), s("no fix"), s("low")),
            (s("GLIBC-NEW"), s("libc6"), s("no fix"), s("high")),
            (
                s("DSA-1-1"),
                s("libssl3"),
                s("3.0.13-1~deb12u1"),
                s("critical")
            ),
            (s("ZLIB-1"), s("zlib1g"), s("1:1.2.13.dfsg-2"), s("medium")),
        ]
    );
    let ssl = &report["findings"][2];
    assert_eq!(ssl["source"], "openssl");
    assert_eq!(ssl["installedVersion"], "3.0.11-1~deb12u2+b1");
    assert_eq!(ssl["aliases"], json!(["CVE-2024-0001"]));
    assert_eq!(ssl["score"], "9.8");
    assert_eq!(ssl["location"], "/var/lib/dpkg/status.d/libssl3");
    assert_eq!(
        report["packages"], 5,
        "oldpkg was removed by the upper layer"
    );
    assert_eq!(report["ecosystem"], "Debian:12");
    assert_eq!(report["database"]["withdrawn"], 1);
    assert_eq!(
        report["summary"],
        json!({"critical": 1, "high": 1, "medium": 1, "low": 1, "unknown": 0, "unevaluated": 0})
    );
    for named in ["broken.json", "huge.json"] {
        assert!(err.contains(&format!("warning: {named}")), "{named}: {err}");
    }
    assert_eq!(report["warnings"].as_array().unwrap().len(), 2);

    // The gate.
    for (level, want) in [("critical", 1), ("high", 1), ("low", 1)] {
        let (r, code, _) = scan_json(&ctx, &[&image, "--db", db, "--fail-on", level]);
        assert_eq!(code, want, "--fail-on {level}");
        assert_eq!(r["passed"], want == 0);
    }

    // --ignore by alias lets the critical one pass; high still fails.
    ctx.write(
        "ignore.toml",
        "[[ignore]]\nid = \"CVE-2024-0001\"\nreason = \"not reachable\"\nexpires = \"2999-12-31\"\n",
    );
    let (r, code, _) = scan_json(
        &ctx,
        &[
            &image,
            "--db",
            db,
            "--fail-on",
            "critical",
            "--ignore",
            "ignore.toml",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(r["ignored"][0]["finding"]["id"], "DSA-1-1");
    assert_eq!(r["ignored"][0]["entry"]["reason"], "not reachable");
    let (_, code, _) = scan_json(
        &ctx,
        &[
            &image,
            "--db",
            db,
            "--fail-on",
            "high",
            "--ignore",
            "ignore.toml",
        ],
    );
    assert_eq!(code, 1);

    // An expired entry is refused, exit 2; so is an entry without a reason.
    ctx.write(
        "expired.toml",
        "[[ignore]]\nid = \"DSA-1-1\"\nreason = \"later\"\nexpires = \"2020-01-31\"\n",
    );
    let out = ctx
        .kiln()
        .args(["scan", &image, "--db", db, "--ignore", "expired.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("expired on 2020-01-31"),
        "{}",
        stderr(&out)
    );
    ctx.write(
        "noreason.toml",
        "[[ignore]]\nid = \"DSA-1-1\"\nexpires = \"2999-01-31\"\n",
    );
    let out = ctx
        .kiln()
        .args(["scan", &image, "--db", db, "--ignore", "noreason.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("reason"), "{}", stderr(&out));

    // Text output: one line per finding and the summary.
    let out = ctx
        .kiln()
        .args(["scan", &image, "--db", db])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("critical    libssl3 3.0.11-1~deb12u2+b1 (source openssl) fixed: 3.0.13-1~deb12u1  DSA-1-1 (CVE-2024-0001)"), "{text}");
    assert!(
        text.contains("4 findings (critical 1, high 1, medium 1, low 1, unknown 0, unevaluated 0)"),
        "{text}"
    );

    // SARIF 2.1.0.
    let out = ctx
        .kiln()
        .args(["scan", &image, "--db", db, "--sarif"])
        .output()
        .unwrap();
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(
        sarif["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert!(results
        .iter()
        .any(|r| r["ruleId"] == "DSA-1-1" && r["level"] == "error"));

    // The same records in a zip, as osv.dev publishes them.
    let zip = ctx.join("all.zip");
    std::fs::remove_file(ctx.join("osv/huge.json")).unwrap();
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import shutil,sys; shutil.make_archive(sys.argv[1], 'zip', sys.argv[2])",
        ])
        .arg(ctx.join("all"))
        .arg(ctx.join("osv"))
        .status()
        .unwrap();
    assert!(status.success());
    let (from_zip, _, _) = scan_json(&ctx, &[&image, "--db", zip.to_str().unwrap()]);
    assert_eq!(outcome(&from_zip), outcome(&report));
}

#[test]
fn records_kiln_cannot_evaluate_fail_the_gate() {
    let ctx = TestContext::new();
    let image = build_dpkg_image(&ctx);
    let db = ctx.join("hostile");
    record(
        &db,
        "git.json",
        json!({
            "id": "GIT-1",
            "affected": [affected("zlib", json!({"ranges": [{"type": "GIT", "repo": "x", "events": [{"introduced": "abc"}]}]}))],
        }),
    );
    record(
        &db,
        "badversion.json",
        json!({
            "id": "BAD-1",
            "affected": [affected("bash", json!({"ranges": eco_range(json!([{"introduced": "0"}, {"fixed": "5.3_1"}]))}))],
        }),
    );
    let (report, code, err) = scan_json(
        &ctx,
        &[
            &image,
            "--db",
            db.to_str().unwrap(),
            "--fail-on",
            "critical",
        ],
    );
    assert_eq!(code, 1, "never a silent pass");
    assert_eq!(report["summary"]["unevaluated"], 2);
    assert!(
        err.contains("git.json: GIT-1 cannot be evaluated for zlib1g: range type `GIT`"),
        "{err}"
    );
    assert!(
        err.contains("badversion.json: BAD-1 cannot be evaluated for bash"),
        "{err}"
    );
    assert!(err.contains("5.3_1"), "{err}");
}

#[test]
fn a_lock_is_scanned_before_building() {
    let ctx = TestContext::new();
    let zero = "0".repeat(64);
    ctx.write(
        "app.lock",
        format!(
            "version = 1\n\n[repositories.debian]\nurl = \"http://deb.debian.org/debian\"\n\
             suite = \"bookworm\"\ncomponents = [\"main\"]\nkeyring-sha256 = \"sha256:{zero}\"\n\n\
             [repositories.debian.release.amd64]\ninrelease-sha256 = \"sha256:{zero}\"\n\
             date = \"Sat, 09 Nov 2024 10:00:00 UTC\"\nsigned-by = \"ABCD\"\n\n\
             [[set]]\nrepository = \"debian\"\narchitecture = \"amd64\"\nrequested = [\"libssl3\"]\n\n\
             [[set.package]]\nname = \"libssl3\"\nversion = \"3.0.11-1~deb12u2\"\narchitecture = \"amd64\"\n\
             source = \"openssl\"\nsource-version = \"3.0.11-1~deb12u2\"\n\
             filename = \"pool/main/o/openssl/libssl3_3.0.11-1~deb12u2_amd64.deb\"\nsize = 1\n\
             sha256 = \"sha256:{zero}\"\n"
        ),
    );
    let db = ctx.join("osv");
    record(
        &db,
        "DSA-1-1.json",
        json!({
            "id": "DSA-1-1",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [affected("openssl", json!({"ranges": eco_range(json!([{"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}]))}))],
        }),
    );
    let (report, code, _) = scan_json(
        &ctx,
        &[
            "app.lock",
            "--db",
            db.to_str().unwrap(),
            "--fail-on",
            "high",
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(report["ecosystem"], "Debian:12");
    assert_eq!(report["findings"][0]["package"], "libssl3");
    assert_eq!(report["findings"][0]["location"], "app.lock");
}

/// kiln's Debian version order (which `kiln scan` compares with) against the real
/// `dpkg --compare-versions`, on 10,200 pairs from the real `Packages` index of the mirror apt
/// uses: entries adjacent in the index, deterministic pseudo-random pairs, and each version
/// beside its own `~`, `+b1` and epoch neighbours.
#[test]
fn version_order_equals_dpkg_on_real_packages_index() {
    use kiln::deb::version::Version;
    use std::cmp::Ordering;
    let ctx = TestContext::new();
    let (url, suite) = crate::deb::apt_debian_source();
    let xz = ctx.join("Packages.xz");
    run_ok(
        crate::support::tool("/usr/lib/apt/apt-helper")
            .arg("download-file")
            .arg(format!("{url}/dists/{suite}/main/binary-amd64/Packages.xz"))
            .arg(&xz),
    );
    let text = run_ok(crate::support::tool("xz").arg("-dc").arg(&xz));
    let versions: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Version: "))
        .collect();
    assert!(versions.len() > 50_000, "{}", versions.len());
    let mut pairs: Vec<(String, String)> = Vec::new();
    let step = versions.len() / 3_400;
    for i in (0..versions.len() - 1).step_by(step).take(3_400) {
        pairs.push((versions[i].into(), versions[i + 1].into()));
    }
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as usize % n
    };
    for _ in 0..3_400 {
        let (a, b) = (next(versions.len()), next(versions.len()));
        pairs.push((versions[a].into(), versions[b].into()));
    }
    for i in 0..3_400 {
        let v = versions[next(versions.len())];
        let neighbour = match i % 4 {
            0 => format!("{v}~1"),
            1 => format!("{v}+b1"),
            2 if v.contains(':') => v.split_once(':').unwrap().1.to_string(),
            2 => format!("1:{v}"),
            _ => versions[next(versions.len())].to_string(),
        };
        pairs.push((v.into(), neighbour));
    }
    assert!(pairs.len() >= 10_000);
    let dpkg = |a: &str, op: &str, b: &str| {
        std::process::Command::new("dpkg")
            .args(["--compare-versions", a, op, b])
            .status()
            .expect("dpkg must be installed")
            .success()
    };
    let chunks: Vec<Vec<(String, String)>> = pairs
        .chunks(pairs.len() / 4 + 1)
        .map(|c| c.to_vec())
        .collect();
    let mismatches: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    let mut bad = Vec::new();
                    for (a, b) in chunk {
                        let want = if dpkg(a, "lt", b) {
                            Ordering::Less
                        } else if dpkg(a, "eq", b) {
                            Ordering::Equal
                        } else {
                            Ordering::Greater
                        };
                        let got = Version::parse(a).unwrap().cmp(&Version::parse(b).unwrap());
                        if got != want {
                            bad.push(format!("{a} vs {b}: dpkg says {want:?}, kiln {got:?}"));
                        }
                    }
                    bad
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

pub(crate) fn venv_python() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    assert!(
        path.exists(),
        "this test needs the verifier virtualenv at {} (scripts/setup.sh installs \
         tests/verifiers/requirements.txt: spdx-tools, cyclonedx-python-lib)",
        path.display()
    );
    path
}

/// Both SBOM formats list every dpkg package with its purl, pass the formats' own validators
/// (`pyspdxtools`, cyclonedx-python-lib's strict JSON validator), carry the recipe's inputs
/// from the provenance, and are the same bytes twice.
#[test]
fn sbom_spdx_and_cyclonedx_validate_and_are_deterministic() {
    let ctx = TestContext::new();
    let image = build_dpkg_image(&ctx);
    let venv = venv_python();
    let bin = venv.parent().unwrap();

    run_ok(
        ctx.kiln()
            .args(["sbom", &image, "--format", "spdx-json", "-o", "a.spdx.json"]),
    );
    run_ok(
        ctx.kiln()
            .args(["sbom", &image, "--format", "spdx-json", "-o", "b.spdx.json"]),
    );
    let a = std::fs::read(ctx.join("a.spdx.json")).unwrap();
    assert_eq!(a, std::fs::read(ctx.join("b.spdx.json")).unwrap());
    run_ok(
        std::process::Command::new(bin.join("pyspdxtools"))
            .arg("-i")
            .arg(ctx.join("a.spdx.json")),
    );
    let spdx: Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    assert_eq!(spdx["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    let purls: Vec<&str> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["externalRefs"][0]["referenceLocator"].as_str())
        .filter(|p| p.starts_with("pkg:deb/"))
        .collect();
    assert_eq!(
        purls,
        vec![
            "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12",
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12",
            "pkg:deb/debian/libssl3@3.0.11-1~deb12u2%2Bb1?arch=amd64&distro=debian-12",
            "pkg:deb/debian/tar@1.34%2Bdfsg-1.2?arch=amd64&distro=debian-12",
            "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12",
        ]
    );
    let inspect = run_ok(ctx.kiln().args(["inspect", &image, "--json"]));
    assert!(
        inspect.contains("slsa.dev/provenance"),
        "the built image carries its provenance"
    );

    run_ok(ctx.kiln().args([
        "sbom",
        &image,
        "--format",
        "cyclonedx-json",
        "-o",
        "a.cdx.json",
    ]));
    run_ok(ctx.kiln().args([
        "sbom",
        &image,
        "--format",
        "cyclonedx-json",
        "-o",
        "b.cdx.json",
    ]));
    let c = std::fs::read(ctx.join("a.cdx.json")).unwrap();
    assert_eq!(c, std::fs::read(ctx.join("b.cdx.json")).unwrap());
    let check = "import sys\n\
        from cyclonedx.schema import SchemaVersion\n\
        from cyclonedx.validation.json import JsonStrictValidator\n\
        e = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
        sys.exit(f'invalid: {e}' if e else 0)\n";
    run_ok(
        std::process::Command::new(&venv)
            .args(["-c", check])
            .arg(ctx.join("a.cdx.json")),
    );
    let cdx: Value = serde_json::from_slice(&c).unwrap();
    assert_eq!(cdx["specVersion"], "1.5");
    let names: Vec<(&str, &str)> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| (c["name"].as_str().unwrap(), c["version"].as_str().unwrap()))
        .collect();
    assert_eq!(names.len(), 5);
    assert!(names.contains(&("libssl3", "3.0.11-1~deb12u2+b1")));
}

/// The Debian end-to-end image (the packages issue's set, from the mirror apt uses, verified
/// with Debian's keyring): `kiln sbom` lists exactly the (name, version) pairs syft reports,
/// and the image and its lock scan alike.
#[test]
fn debian_image_sbom_equals_syft_and_scans_like_its_lock() {
    let ctx = TestContext::new();
    let (url, suite) = crate::deb::apt_debian_source();
    let r = ctx.write(
        "r.toml",
        format!(
            "[image]\nname = \"distroless\"\nplatform = \"linux/amd64\"\n\n\
             [repositories.debian]\nurl = \"{url}\"\nsuite = \"{suite}\"\ncomponents = [\"main\"]\n\
             keyring = \"/usr/share/keyrings/debian-archive-keyring.gpg\"\n\n\
             [[layer]]\n[[layer.step]]\npackages = [\"base-files\", \"netbase\", \"tzdata\", \
             \"ca-certificates\", \"busybox-static\", \"libc6\", \"libssl3\"]\n"
        ),
    );
    run_ok(ctx.kiln().arg("lock").arg(&r));
    run_ok(ctx.kiln().arg("build").arg(&r).args(["-o", "out"]));
    let image = "oci:out:distroless";
    run_ok(ctx.kiln().args(["copy", image, "docker-archive:img.tar"]));
    let want = crate::deb::syft_debs(&ctx.join("img.tar"));
    let cdx: Value = serde_json::from_str(&run_ok(ctx.kiln().args([
        "sbom",
        image,
        "--format",
        "cyclonedx-json",
    ])))
    .unwrap();
    let mut seen: Vec<String> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| {
            format!(
                "{}={}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap()
            )
        })
        .collect();
    seen.sort();
    let hashed = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library" && c["hashes"][0]["content"].is_string())
        .count();
    assert_eq!(
        hashed,
        seen.len(),
        "every package has its .deb sha256 from the provenance"
    );
    assert!(want.len() >= 10, "{want:?}");
    assert_eq!(seen, want, "kiln sbom lists what syft lists");

    // One record per installed source package, unfixed: every package is found, from the
    // image and from the lock alike.
    let db = ctx.join("osv");
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(ctx.join("r.lock")).unwrap()).unwrap();
    for p in lock["set"][0]["package"].as_array().unwrap() {
        let source = p["source"].as_str().unwrap();
        record(
            &db,
            &format!("{source}.json"),
            json!({
                "id": format!("TEST-{source}"),
                "affected": [affected(source, json!({"ranges": eco_range(json!([{"introduced": "0"}]))}))],
            }),
        );
    }
    let (from_image, _, _) = scan_json(&ctx, &[image, "--db", db.to_str().unwrap()]);
    let (from_lock, _, _) = scan_json(&ctx, &["r.lock", "--db", db.to_str().unwrap()]);
    let pairs = |r: &Value| -> Vec<String> {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                format!(
                    "{}={}",
                    f["package"].as_str().unwrap(),
                    f["installedVersion"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(pairs(&from_image), want);
    assert_eq!(pairs(&from_lock), want);
}
