//! The archive corpus: real archives that other tools wrote (the data part of Debian packages
//! as apt downloads them, crates from cargo's cache, PyPI sdists), each extracted by `kiln
//! build` into a layer, unpacked by umoci, and compared with GNU tar's extraction of the same
//! archive: names, types, modes, owners, link targets, contents and hardlink groups (not
//! mtimes: kiln clamps them to the epoch). `scripts/setup.sh` downloads the corpus into
//! `tests/corpus/`; a missing corpus fails the test.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::support::{run_ok, tool, TestContext};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

/// The files of `dir` whose names end with one of `suffixes`, sorted.
fn archives(dir: &str, suffixes: &[&str]) -> Vec<PathBuf> {
    let dir = Path::new(CORPUS).join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "the archive corpus is missing ({}: {e}): run scripts/setup.sh",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| suffixes.iter().any(|s| p.to_string_lossy().ends_with(s)))
        .collect();
    out.sort();
    out
}

/// What the comparison looks at for one path.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    owner: (u32, u32),
    /// A symlink's target, or the sha256 of a file's contents.
    data: String,
}

/// Every path below `root` (not `root` itself) and the hardlink groups (paths sharing an inode,
/// each sorted, as a sorted list).
fn snapshot(root: &Path) -> (BTreeMap<String, Node>, Vec<Vec<String>>) {
    fn walk(
        root: &Path,
        dir: &Path,
        nodes: &mut BTreeMap<String, Node>,
        inodes: &mut BTreeMap<u64, Vec<String>>,
    ) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = md.file_type();
            let (kind, data) = if ft.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                ("symlink", target.to_string_lossy().into_owned())
            } else if ft.is_dir() {
                walk(root, &path, nodes, inodes);
                ("dir", String::new())
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    inodes.entry(md.ino()).or_default().push(rel.clone());
                }
                let bytes = std::fs::read(&path).unwrap();
                ("file", hex::encode(Sha256::digest(&bytes)))
            } else {
                ("other", String::new())
            };
            let node = Node {
                kind,
                mode: md.mode() & 0o7777,
                owner: (md.uid(), md.gid()),
                data,
            };
            nodes.insert(rel, node);
        }
    }
    let mut nodes = BTreeMap::new();
    let mut inodes = BTreeMap::new();
    walk(root, root, &mut nodes, &mut inodes);
    let mut groups: Vec<Vec<String>> = inodes
        .into_values()
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    (nodes, groups)
}

/// What a corpus run compared.
#[derive(Default)]
struct Counts {
    entries: usize,
    symlinks: usize,
    setid: usize,
    hardlink_groups: usize,
}

/// Extracts `archive` with kiln (through umoci) and with GNU tar under `dir`; returns what was
/// compared, or what differs.
fn compare_one(ctx: &TestContext, dir: &Path, archive: &Path) -> Result<Counts, String> {
    let file_name = archive.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(archive, dir.join(&file_name)).unwrap();
    let recipe = dir.join("recipe.toml");
    std::fs::write(
        &recipe,
        format!(
            "[image]\nname = \"corpus\"\n[inputs.archive]\npath = {file_name:?}\n\
             [[layer]]\n[[layer.step]]\nextract = \"archive\"\ndest = \"/\"\n"
        ),
    )
    .unwrap();
    let out = ctx
        .kiln()
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(dir.join("img"))
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "kiln build failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let bundle = dir.join("bundle");
    run_ok(
        tool("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:corpus", dir.join("img").display()))
            .arg(&bundle),
    );

    let reference = dir.join("gnu");
    std::fs::create_dir_all(&reference).unwrap();
    let tar = format!(
        "tar -x --numeric-owner --same-permissions -C '{}'",
        reference.display()
    );
    let script = if file_name.ends_with(".deb") {
        crate::support::require_tool("dpkg-deb");
        format!("dpkg-deb --fsys-tarfile '{}' | {tar}", archive.display())
    } else {
        format!("{tar} -z -f '{}'", archive.display())
    };
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("umask 022; {script}")),
    );

    let (kiln_nodes, kiln_links) = snapshot(&bundle.join("rootfs"));
    let (gnu_nodes, gnu_links) = snapshot(&reference);
    let mut diffs = Vec::new();
    for (path, gnu) in &gnu_nodes {
        match kiln_nodes.get(path) {
            None => diffs.push(format!("{path}: missing from kiln's layer")),
            Some(k) if k != gnu => diffs.push(format!("{path}: kiln {k:?}, GNU tar {gnu:?}")),
            Some(_) => {}
        }
    }
    for path in kiln_nodes.keys().filter(|p| !gnu_nodes.contains_key(*p)) {
        diffs.push(format!("{path}: only in kiln's layer"));
    }
    if kiln_links != gnu_links {
        diffs.push(format!(
            "hardlink groups: kiln {kiln_links:?}, GNU tar {gnu_links:?}"
        ));
    }
    std::fs::remove_dir_all(dir).unwrap();
    if diffs.is_empty() {
        let nodes = gnu_nodes.values();
        Ok(Counts {
            entries: gnu_nodes.len(),
            symlinks: nodes.clone().filter(|n| n.kind == "symlink").count(),
            setid: nodes
                .filter(|n| n.kind == "file" && n.mode & 0o6000 != 0)
                .count(),
            hardlink_groups: gnu_links.len(),
        })
    } else {
        let n = diffs.len();
        diffs.truncate(10);
        Err(format!("{n} differences:\n    {}", diffs.join("\n    ")))
    }
}

#[test]
fn kiln_extracts_real_debs_crates_and_sdists_exactly_as_gnu_tar_does() {
    let debs = archives("debs", &[".deb"]);
    let sources = archives("src", &[".crate", ".tar.gz"]);
    assert!(
        debs.len() >= 30 && sources.len() >= 10,
        "the archive corpus is incomplete ({} .deb, {} source tarballs in {CORPUS}): run \
         scripts/setup.sh",
        debs.len(),
        sources.len()
    );
    let ctx = TestContext::new();
    let all: Vec<&PathBuf> = debs.iter().chain(&sources).collect();
    // Two workers: kiln, umoci and tar each use about one core.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(archive) = all.get(i) else { break };
                let result = compare_one(&ctx, &ctx.join(format!("a{i}")), archive);
                results.lock().unwrap().push((i, result));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let mut total = Counts::default();
    let mut failures = Vec::new();
    for (i, result) in results {
        match result {
            Ok(n) => {
                total.entries += n.entries;
                total.symlinks += n.symlinks;
                total.setid += n.setid;
                total.hardlink_groups += n.hardlink_groups;
            }
            Err(why) => failures.push(format!(
                "{}: {why}",
                all[i].file_name().unwrap().to_string_lossy()
            )),
        }
    }
    eprintln!(
        "corpus: {} archives ({} .deb, {} source tarballs), {} entries compared ({} symlinks, \
         {} setuid/setgid files, {} hardlink groups), {} disagreements",
        debs.len() + sources.len(),
        debs.len(),
        sources.len(),
        total.entries,
        total.symlinks,
        total.setid,
        total.hardlink_groups,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "kiln's extraction differs from GNU tar's for {} archives:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The corpus exercises what it is for.
    assert!(
        total.entries > 10_000,
        "only {} entries compared",
        total.entries
    );
    assert!(total.symlinks > 1000 && total.setid >= 5 && total.hardlink_groups >= 3);
}
