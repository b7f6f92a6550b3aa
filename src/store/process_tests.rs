//! Tests that need real processes: SIGKILL mid-write, locks of killed holders, umask 000 and a
//! file-size limit (which are process-wide, so they must not leak into other tests), and a
//! full disk on a real tmpfs.
//!
//! A child is this test binary run again with `--exact <entry test>` and `KILN_TEST_CHILD`
//! selecting what it does; the entry test does nothing when that variable is absent.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

const CHILD_ENV: &str = "KILN_TEST_CHILD";
const ROOT_ENV: &str = "KILN_TEST_CHILD_ROOT";

/// A command running the test `test` of this binary as a child with `mode`.
pub(crate) fn child_command(test: &str, mode: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

/// The mode this process was started with, if it is a child.
pub(crate) fn child_mode() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Runs the test `test` (its full path) again in a child process that is root of its own user
/// and mount namespaces (`unshare --user --map-root-user --mount`), where mounting a tmpfs
/// needs no privilege and the mount vanishes with the child. Returns `true` in that child (go
/// on with the test) and `false` in the caller, once the child passed.
pub(crate) fn in_own_mount_namespace(test: &str) -> bool {
    if child_mode().as_deref() == Some("mount-namespace") {
        return true;
    }
    let status = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "mount-namespace")
        .status()
        .unwrap_or_else(|e| panic!("{test} needs `unshare` (util-linux): {e}"));
    assert!(
        status.success(),
        "{test} failed in its own mount namespace: {status}"
    );
    false
}

/// Waits until `path` exists (the child's "I am in position" signal) or the child died.
pub(crate) fn wait_for_file(path: &Path, child: &mut Child) {
    let start = Instant::now();
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "child exited with {status} before creating {}",
                path.display()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {path:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn touch(path: &Path) {
    std::fs::write(path, b"").unwrap();
}

/// The entry point of child processes (a no-op in a normal test run).
#[test]
fn child_process_entry() {
    let Some(mode) = child_mode() else { return };
    let root = PathBuf::from(std::env::var_os(ROOT_ENV).unwrap());
    let signal = root.with_extension("ready");
    match mode.as_str() {
        "write-forever" => {
            let store = Store::open(&root).unwrap();
            let mut w = store.writer().unwrap();
            w.write_all(&vec![7u8; 1 << 20]).unwrap();
            touch(&signal);
            std::thread::sleep(Duration::from_secs(3600));
        }
        "lock-forever" => {
            let store = Store::open(&root).unwrap();
            let _lock = store.lock(&Sha256Digest::of(b"contended")).unwrap();
            touch(&signal);
            std::thread::sleep(Duration::from_secs(3600));
        }
        "insert-loop" => {
            let store = Store::open(&root).unwrap();
            touch(&signal);
            for i in 0u64.. {
                let content = format!("entry {i} ").repeat(10_000);
                store
                    .insert_reader(None, "loop", content.as_bytes())
                    .unwrap();
            }
        }
        "umask-000" => {
            rustix::process::umask(rustix::fs::Mode::empty());
            let store = Store::open(&root).unwrap();
            store.insert_reader(None, "x", &b"private"[..]).unwrap();
            let mut w = store.writer().unwrap();
            w.write_all(b"pending").unwrap();
            let temp_mode = std::fs::metadata(w.temp_path())
                .unwrap()
                .permissions()
                .mode();
            std::fs::write(
                root.with_extension("tempmode"),
                format!("{:o}", temp_mode & 0o7777),
            )
            .unwrap();
            w.commit(None).unwrap();
            // A corrupt entry makes the store create quarantine/.
            let (d, _) = store
                .insert_reader(None, "y", &b"to be damaged"[..])
                .unwrap();
            let entry = store.path_unverified(&d);
            std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o644)).unwrap();
            std::fs::write(&entry, b"damaged").unwrap();
            store.open_verified(&d).unwrap_err();
        }
        "fsize-limit" => {
            // SAFETY: ignoring SIGXFSZ makes an over-limit write return EFBIG instead of
            // killing the process; no other thread depends on that signal's disposition.
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            let limit = libc::rlimit {
                rlim_cur: 64 * 1024,
                rlim_max: 64 * 1024,
            };
            // SAFETY: plain syscall with a valid pointer.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) }, 0);
            let store = Store::open(&root).unwrap();
            let err = store
                .insert_reader(None, "big input", &vec![1u8; 1 << 20][..])
                .unwrap_err();
            std::fs::write(root.with_extension("error"), format!("{err:?}\n{err}")).unwrap();
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn spawn(mode: &str, root: &Path) -> Child {
    child_command("store::process_tests::child_process_entry", mode)
        .env(ROOT_ENV, root)
        .spawn()
        .unwrap()
}

fn all_entries_verify(store: &Store) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(store.blobs_dir()).unwrap() {
        let name = entry.unwrap().file_name();
        let d = Sha256Digest::from_hex(name.to_str().unwrap()).unwrap();
        assert!(store.open_verified(&d).unwrap().is_some(), "torn entry {d}");
        n += 1;
    }
    n
}

/// SECURITY.md 31: SIGKILL in the middle of a write leaves no entry, only a temp file that the
/// next `Store::open` removes; the next write of the same content succeeds.
#[test]
fn sigkill_mid_write_leaves_no_entry_and_next_run_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let mut child = spawn("write-forever", &root);
    wait_for_file(&root.with_extension("ready"), &mut child);
    kill(&mut child);

    let content = vec![7u8; 1 << 20];
    let d = Sha256Digest::of(&content);
    let leftovers: Vec<_> = std::fs::read_dir(root.join("tmp")).unwrap().collect();
    assert_eq!(
        leftovers.len(),
        1,
        "the killed writer's temp file is still there"
    );
    assert!(std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .next()
        .is_none());

    let store = Store::open(&root).unwrap();
    assert!(
        std::fs::read_dir(store.tmp_dir()).unwrap().next().is_none(),
        "cleaned on open"
    );
    assert_eq!(store.open_verified(&d).unwrap(), None);
    store.insert_reader(Some(&d), "x", &content[..]).unwrap();
    assert!(store.open_verified(&d).unwrap().is_some());
}

/// SECURITY.md 31, "at any point": a child inserts entries in a loop and is killed after
/// varying delays; every entry that became visible verifies, and reopening cleans up.
#[test]
fn sigkill_at_random_points_never_exposes_a_torn_entry() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    for (round, delay_ms) in [0u64, 3, 17, 41, 90].into_iter().enumerate() {
        let signal = root.with_extension("ready");
        let _ = std::fs::remove_file(&signal);
        let mut child = spawn("insert-loop", &root);
        wait_for_file(&signal, &mut child);
        std::thread::sleep(Duration::from_millis(delay_ms));
        kill(&mut child);
        let store = Store::open(&root).unwrap();
        all_entries_verify(&store);
        assert!(
            std::fs::read_dir(store.tmp_dir()).unwrap().next().is_none(),
            "round {round}: temp files of the killed writer were not cleaned"
        );
    }
}

/// SECURITY.md 32: a digest lock held by a process killed with SIGKILL is released by the
/// kernel, so the next locker gets it at once instead of waiting forever.
#[test]
fn lock_of_killed_process_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let mut child = spawn("lock-forever", &root);
    wait_for_file(&root.with_extension("ready"), &mut child);
    let store = Store::open(&root).unwrap();
    let d = Sha256Digest::of(b"contended");
    assert!(
        store.try_lock(&d).unwrap().is_none(),
        "the live child holds the lock"
    );
    kill(&mut child);
    let start = Instant::now();
    let lock = store.lock(&d).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(lock.digest(), &d);
}

/// SECURITY.md 35: with umask 000 the root is 0700, entries 0444 and temp files 0600.
#[test]
fn umask_000_keeps_cache_private_and_entries_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new/cache");
    let status = spawn("umask-000", &root).wait().unwrap();
    assert!(status.success());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&root), 0o700);
    for sub in ["blobs", "blobs/sha256", "tmp", "locks", "quarantine"] {
        assert_eq!(
            mode(&root.join(sub)) & 0o077,
            0,
            "{sub} is reachable by others"
        );
    }
    let temp_mode = std::fs::read_to_string(root.with_extension("tempmode")).unwrap();
    assert_eq!(temp_mode, "600");
    let mut n = 0;
    for entry in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
        assert_eq!(mode(&entry.unwrap().path()), 0o444);
        n += 1;
    }
    assert_eq!(n, 2);
    for entry in std::fs::read_dir(root.join("locks")).unwrap() {
        assert_eq!(mode(&entry.unwrap().path()) & 0o022, 0);
    }
}

/// SECURITY.md 34 without root: a file-size limit makes the kernel fail the write mid-stream
/// (EFBIG); the error names the temp file, the temp file is gone, earlier entries are intact.
#[test]
fn failing_write_cleans_temp_and_keeps_existing_entries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let store = Store::open(&root).unwrap();
    let (old, _) = store
        .insert_reader(None, "old", &b"an older entry"[..])
        .unwrap();
    let status = spawn("fsize-limit", &root).wait().unwrap();
    assert!(status.success());
    let err = std::fs::read_to_string(root.with_extension("error")).unwrap();
    assert!(err.starts_with("Write {"), "{err}");
    assert!(
        err.contains(&store.tmp_dir().display().to_string()),
        "{err}"
    );
    assert!(std::fs::read_dir(store.tmp_dir()).unwrap().next().is_none());
    assert_eq!(all_entries_verify(&store), 1);
    assert!(store.open_verified(&old).unwrap().is_some());
}

/// A tmpfs mounted for one test, unmounted (lazily) when dropped.
pub(crate) struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `at`, or fails the test. Call it in the child of
    /// [`in_own_mount_namespace`], where mounting needs no privilege.
    pub(crate) fn mount_for(test: &str, at: &Path, size: &str) -> Tmpfs {
        Tmpfs::mount(at, size).unwrap_or_else(|e| panic!("{test}: cannot mount a tmpfs: {e}"))
    }

    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("failed to run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// SECURITY.md 34 for real: a 1 MiB tmpfs fills up during a write. The tmpfs is mounted in a
/// child with its own user and mount namespaces, so the test runs as any user.
#[test]
fn disk_full_on_tmpfs_is_a_clear_error() {
    let test = "store::process_tests::disk_full_on_tmpfs_is_a_clear_error";
    if !in_own_mount_namespace(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _tmpfs = Tmpfs::mount_for(test, &mnt, "1m");
    let store = Store::open(&mnt.join("cache")).unwrap();
    let (old, _) = store
        .insert_reader(None, "old", &vec![3u8; 100 * 1024][..])
        .unwrap();

    let err = store
        .insert_reader(None, "huge", &vec![9u8; 4 << 20][..])
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSpace { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("no space left") && msg.contains(&store.tmp_dir().display().to_string()));
    assert!(std::fs::read_dir(store.tmp_dir()).unwrap().next().is_none());

    // Through io::Write (the tar → compressor → writer path) as well.
    let mut w = store.writer().unwrap();
    let io_err = w.write_all(&vec![9u8; 4 << 20]).unwrap_err();
    assert_eq!(io_err.kind(), std::io::ErrorKind::StorageFull);
    assert!(io_err.to_string().contains("no space left"), "{io_err}");
    drop(w);
    assert!(std::fs::read_dir(store.tmp_dir()).unwrap().next().is_none());

    assert_eq!(all_entries_verify(&store), 1);
    assert!(store.open_verified(&old).unwrap().is_some());
    // Space is back once the failed write is gone: a small entry still fits.
    store.insert_reader(None, "small", &b"fits"[..]).unwrap();
}
