//! Fetch tests against real sockets: the shared test server that can lie
//! (`testing::http_server`), mirrors,
//! offline mode, and concurrent fetchers in threads and in separate processes.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::http::MAX_REDIRECTS;
use crate::store::process_tests::{
    child_command, child_mode, in_own_mount_namespace, wait_for_file, Tmpfs,
};
use crate::testing::http_server::{Reply, Server};

const CONTENT: &[u8] = b"a pinned input, as the upstream server stores it\n";

fn digest() -> Sha256Digest {
    Sha256Digest::of(CONTENT)
}

fn serve_content() -> Server {
    Server::start(|_| Reply::ok(CONTENT, &[]))
}

/// A fetcher that does not retry, so every failure shows in the first answer.
fn fetcher(dir: &Path) -> Fetcher {
    let mut f = Fetcher::new(Store::open(&dir.join("cache")).unwrap());
    f.retries = 0;
    f
}

fn dir_is_empty(path: &Path) -> bool {
    std::fs::read_dir(path).unwrap().next().is_none()
}

/// No entry besides the ones listed, and no temp file.
fn assert_store_holds(f: &Fetcher, digests: &[Sha256Digest]) {
    let root = f.store.root();
    let mut names: Vec<_> = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut want: Vec<_> = digests.iter().map(|d| d.hex()).collect();
    want.sort();
    assert_eq!(names, want);
    assert!(dir_is_empty(&root.join("tmp")), "temp files left behind");
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Progress for Arc<Recorder> {
    fn started(&self, what: &str, total: Option<u64>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("started {what} {total:?}"));
    }
    fn advanced(&self, bytes: u64) {
        self.0.lock().unwrap().push(format!("advanced {bytes}"));
    }
    fn finished(&self, what: &str) {
        self.0.lock().unwrap().push(format!("finished {what}"));
    }
}

#[test]
fn good_fetch_stores_a_verified_entry_and_reports_progress() {
    let server = serve_content();
    let dir = tempfile::tempdir().unwrap();
    let mut f = fetcher(dir.path());
    let recorder = Arc::new(Recorder::default());
    f.progress = Some(Box::new(recorder.clone()));

    let path = f
        .fetch(&server.url("/in.tar.gz"), &digest(), "busybox")
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), CONTENT);
    assert_eq!(path, f.store.path_unverified(&digest()));
    assert_store_holds(&f, &[digest()]);
    let events = recorder.0.lock().unwrap().clone();
    let total = CONTENT.len();
    assert_eq!(
        events,
        [
            format!("started busybox Some({total})"),
            format!("advanced {total}"),
            "finished busybox".to_string()
        ]
    );

    // The second fetch is served from the store.
    f.fetch(&server.url("/in.tar.gz"), &digest(), "busybox")
        .unwrap();
    assert_eq!(server.hits(), 1);
}

#[test]
fn hash_mismatch_names_both_digests_and_stores_nothing() {
    let server = Server::start(|_| Reply::ok(b"tampered content", &[]));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let url = server.url("/in");
    let err = f.fetch(&url, &digest(), "busybox").unwrap_err();
    let actual = Sha256Digest::of(b"tampered content");
    match &err {
        FetchError::DigestMismatch {
            input,
            url: u,
            expected,
            actual: a,
        } => {
            assert_eq!(
                (input.as_str(), u, expected, a),
                ("busybox", &url, &digest(), &actual)
            );
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    for part in ["busybox", &url, &digest().to_string(), &actual.to_string()] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
    assert_store_holds(&f, &[]);
}

#[test]
fn body_shorter_than_content_length_is_refused() {
    let server = Server::start(|_| Reply::declaring(200, &CONTENT[..10], CONTENT.len() as u64));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let err = f
        .fetch(&server.url("/in"), &digest(), "busybox")
        .unwrap_err();
    match err {
        FetchError::LengthMismatch {
            declared, received, ..
        } => {
            assert_eq!((declared, received), (CONTENT.len() as u64, 10));
        }
        other => panic!("{other:?}"),
    }
    assert_store_holds(&f, &[]);
    // Unpinned resolution refuses it as well.
    let err = f.resolve(&server.url("/in"), "busybox").unwrap_err();
    assert!(matches!(err, FetchError::LengthMismatch { .. }), "{err:?}");
    assert_store_holds(&f, &[]);
}

#[test]
fn body_longer_than_content_length_is_refused() {
    // The server announces fewer bytes than the file has: only the announced prefix is the
    // body, and it does not match the pin.
    let server = Server::start(|_| Reply::declaring(200, CONTENT, CONTENT.len() as u64 - 5));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let err = f
        .fetch(&server.url("/in"), &digest(), "busybox")
        .unwrap_err();
    match &err {
        FetchError::DigestMismatch { actual, .. } => {
            assert_eq!(*actual, Sha256Digest::of(&CONTENT[..CONTENT.len() - 5]));
        }
        other => panic!("{other:?}"),
    }
    assert_store_holds(&f, &[]);
}

/// A chunked answer holding one chunk of `CONTENT`'s length: `body` of it, and the end of the
/// body if `complete`.
fn chunked(body: &[u8], complete: bool) -> Reply {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        CONTENT.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    if complete {
        out.extend_from_slice(b"\r\n0\r\n\r\n");
    }
    Reply::Raw(out)
}

#[test]
fn connection_dropped_early_is_refused() {
    // A plain close before the announced body; a chunked body cut off mid-chunk.
    let headers_only = Server::start(|_| Reply::declaring(200, b"", 1000));
    let chunked = Server::start(|_| chunked(&CONTENT[..20], false));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let err = f
        .fetch(&headers_only.url("/in"), &digest(), "busybox")
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::LengthMismatch {
                declared: 1000,
                received: 0,
                ..
            }
        ),
        "{err:?}"
    );
    // A chunked body without its last chunk is refused as such, pinned or not.
    for err in [
        f.fetch(&chunked.url("/in"), &digest(), "busybox")
            .unwrap_err(),
        f.resolve(&chunked.url("/in"), "busybox").unwrap_err(),
    ] {
        assert!(
            matches!(err, FetchError::CutShort { received: 20, .. }),
            "{err:?}"
        );
        assert!(err.is_transient(), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("busybox"), "{message}");
        assert!(message.contains(&chunked.url("/in")), "{message}");
    }
    assert_store_holds(&f, &[]);
}

/// A close-delimited answer (no Content-Length, not chunked): `body`, then the connection
/// closes, which is also how a broken connection looks.
fn close_delimited(body: &[u8]) -> Reply {
    let mut out = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
    out.extend_from_slice(body);
    Reply::Raw(out)
}

#[test]
fn unsized_body_is_downloaded_twice_when_resolving() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Every other response is cut off, at a different point each time; without a length or
    // a chunked framing the cut cannot be seen, only the change between two downloads.
    let n = Arc::new(AtomicUsize::new(0));
    let server = Server::start(move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        if i % 2 == 0 {
            close_delimited(&CONTENT[..10 + i])
        } else {
            close_delimited(CONTENT)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let err = f.resolve(&server.url("/in"), "busybox").unwrap_err();
    match &err {
        FetchError::Unstable { first, second, .. } => {
            assert_eq!(*first, Sha256Digest::of(&CONTENT[..10]));
            assert_eq!(*second, digest());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.hits(), 2);
    assert_store_holds(&f, &[]);

    // A stable chunked body resolves (two requests).
    let stable = Server::start(|_| chunked(CONTENT, true));
    assert_eq!(f.resolve(&stable.url("/in"), "busybox").unwrap(), digest());
    assert_eq!(stable.hits(), 2);
    assert_store_holds(&f, &[digest()]);
}

#[test]
fn http_error_status_is_reported() {
    let server = Server::start(|_| Reply::status(404, b"no", &[]));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let err = f
        .fetch(&server.url("/missing"), &digest(), "busybox")
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Http { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("/missing"));
    assert_store_holds(&f, &[]);
}

#[test]
fn redirects_are_followed_up_to_the_limit() {
    // /r/N redirects to /r/N-1; /r/0 serves the content.
    let server = Server::start(|r| {
        let n: u32 = r.path().trim_start_matches("/r/").parse().unwrap();
        if n == 0 {
            Reply::ok(CONTENT, &[])
        } else {
            Reply::status(302, b"", &[("Location", &format!("/r/{}", n - 1))])
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let path = f
        .fetch(&server.url(&format!("/r/{MAX_REDIRECTS}")), &digest(), "in")
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), CONTENT);
    let err = f
        .resolve(&server.url(&format!("/r/{}", MAX_REDIRECTS + 1)), "in")
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooManyRedirects { limit: 10, .. }),
        "{err:?}"
    );
}

#[test]
fn redirect_to_file_url_is_refused() {
    let server = Server::start(|_| Reply::status(302, b"", &[("Location", "file:///etc/passwd")]));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let err = f.resolve(&server.url("/x"), "in").unwrap_err();
    assert!(matches!(err, FetchError::BadRedirect { .. }), "{err:?}");
}

#[test]
fn mirror_hit_needs_no_network() {
    let dir = tempfile::tempdir().unwrap();
    let hex = digest().hex();
    for name in [
        hex.clone(),
        format!("sha256:{hex}"),
        format!("sha256-{hex}"),
    ] {
        let mirror = dir.path().join(format!("mirror-{}", &name[..8]));
        std::fs::create_dir(&mirror).unwrap();
        std::fs::write(mirror.join(&name), CONTENT).unwrap();
        let mut f =
            Fetcher::new(Store::open(&dir.path().join(format!("c-{}", &name[..8]))).unwrap());
        f.offline = true;
        f.mirrors = vec![dir.path().join("no-such-mirror"), mirror];
        // The URL points at a port nobody listens on: any network use would fail.
        let path = f
            .fetch("http://127.0.0.1:9/in", &digest(), "busybox")
            .unwrap();
        assert_eq!(std::fs::read(path).unwrap(), CONTENT, "{name}");
        assert_store_holds(&f, &[digest()]);
    }
}

#[test]
fn corrupt_mirror_file_falls_back_to_network_or_fails_clearly() {
    let server = serve_content();
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    std::fs::create_dir(&mirror).unwrap();
    std::fs::write(mirror.join(digest().hex()), b"rotten mirror copy").unwrap();

    let mut f = fetcher(dir.path());
    f.mirrors = vec![mirror.clone()];
    f.offline = true;
    let err = f
        .fetch(&server.url("/in"), &digest(), "busybox")
        .unwrap_err();
    match &err {
        FetchError::MirrorMismatch { path, actual, .. } => {
            assert_eq!(path, &mirror.join(digest().hex()));
            assert_eq!(*actual, Sha256Digest::of(b"rotten mirror copy"));
        }
        other => panic!("{other:?}"),
    }
    assert_store_holds(&f, &[]);

    f.offline = false;
    f.fetch(&server.url("/in"), &digest(), "busybox").unwrap();
    assert_eq!(server.hits(), 1);
    assert_store_holds(&f, &[digest()]);
}

#[test]
fn offline_miss_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fetcher(dir.path());
    f.offline = true;
    let url = "https://example.org/busybox.tar.gz";
    let err = f.fetch(url, &digest(), "busybox").unwrap_err();
    assert!(matches!(err, FetchError::Offline { .. }), "{err:?}");
    let msg = format!("{err}\nhint: {}", err.hint().unwrap());
    for part in [
        "`busybox`",
        url,
        &digest().to_string(),
        "--offline)\nhint: run `kiln fetch`",
        "--mirror",
    ] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
    let err = f.resolve(url, "busybox").unwrap_err();
    assert!(matches!(err, FetchError::ResolveOffline { .. }), "{err:?}");
}

#[test]
fn corrupt_cache_entry_is_refetched() {
    use std::os::unix::fs::PermissionsExt;
    let server = serve_content();
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let path = f.fetch(&server.url("/in"), &digest(), "busybox").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&path, b"bit rot").unwrap();
    let path = f.fetch(&server.url("/in"), &digest(), "busybox").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), CONTENT);
    assert_eq!(server.hits(), 2);
}

#[test]
fn resolve_pins_an_unpinned_url() {
    let server = serve_content();
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    assert_eq!(f.resolve(&server.url("/in"), "busybox").unwrap(), digest());
    assert!(f.store.open_verified(&digest()).unwrap().is_some());
}

#[test]
fn file_urls_are_hashed_like_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("input.bin");
    std::fs::write(&src, CONTENT).unwrap();
    let url = url::Url::from_file_path(&src).unwrap().to_string();
    let mut f = fetcher(dir.path());
    f.offline = true; // file:// is not network
    assert_eq!(
        std::fs::read(f.fetch(&url, &digest(), "local").unwrap()).unwrap(),
        CONTENT
    );
    let wrong = Sha256Digest::of(b"something else");
    let err = f.fetch(&url, &wrong, "local").unwrap_err();
    assert!(matches!(err, FetchError::DigestMismatch { .. }), "{err:?}");
    let err = f
        .fetch("file:///no/such/file", &wrong, "local")
        .unwrap_err();
    assert!(matches!(err, FetchError::File { .. }) && err.to_string().contains("local"));
    let err = f.fetch("ftp://example.org/x", &wrong, "local").unwrap_err();
    assert!(matches!(err, FetchError::UnsupportedUrl { .. }), "{err:?}");
    assert_store_holds(&f, &[digest()]);
}

/// A server that answers slowly, so concurrent fetchers really overlap.
fn slow_server() -> Server {
    Server::start(|_| {
        std::thread::sleep(Duration::from_millis(300));
        Reply::ok(CONTENT, &[])
    })
}

/// SECURITY.md 32, threads: eight fetchers of one digest, one download, all get the entry.
#[test]
fn concurrent_threads_download_once() {
    let server = slow_server();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cache")).unwrap();
    let url = server.url("/in");
    let paths: Vec<PathBuf> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let f = Fetcher::new(store.clone());
                let url = url.clone();
                scope.spawn(move || f.fetch(&url, &digest(), "shared").unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(server.hits(), 1);
    for p in paths {
        assert_eq!(std::fs::read(p).unwrap(), CONTENT);
    }
    assert!(dir_is_empty(&store.root().join("tmp")));
}

const ROOT_ENV: &str = "KILN_TEST_FETCH_ROOT";
const URL_ENV: &str = "KILN_TEST_FETCH_URL";
const OUT_ENV: &str = "KILN_TEST_FETCH_OUT";

/// The entry point of child processes (a no-op in a normal test run).
#[test]
fn child_process_entry() {
    let Some(mode) = child_mode() else { return };
    let root = PathBuf::from(std::env::var_os(ROOT_ENV).unwrap());
    match mode.as_str() {
        "fetch" => {
            let f = Fetcher::new(Store::open(&root).unwrap());
            let url = std::env::var(URL_ENV).unwrap();
            let path = f.fetch(&url, &digest(), "shared").unwrap();
            let out = std::env::var_os(OUT_ENV).unwrap();
            std::fs::write(out, path.to_str().unwrap()).unwrap();
        }
        "hold-lock" => {
            let store = Store::open(&root).unwrap();
            let _lock = store.lock(&digest()).unwrap();
            std::fs::write(std::env::var_os(OUT_ENV).unwrap(), b"").unwrap();
            std::thread::sleep(Duration::from_secs(3600));
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn spawn_child(mode: &str, root: &Path, url: &str, out: &Path) -> std::process::Child {
    child_command("fetch::tests::child_process_entry", mode)
        .env(ROOT_ENV, root)
        .env(URL_ENV, url)
        .env(OUT_ENV, out)
        .spawn()
        .unwrap()
}

/// SECURITY.md 32, processes: six processes fetch one digest at once; the server sees one
/// request and every process gets the verified entry.
#[test]
fn concurrent_processes_download_once() {
    let server = slow_server();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    Store::open(&root).unwrap();
    let url = server.url("/in");
    let children: Vec<_> = (0..6)
        .map(|i| {
            let out = dir.path().join(format!("out{i}"));
            (spawn_child("fetch", &root, &url, &out), out)
        })
        .collect();
    for (mut child, out) in children {
        assert!(child.wait().unwrap().success());
        let path = std::fs::read_to_string(out).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), CONTENT);
    }
    assert_eq!(server.hits(), 1);
    assert!(dir_is_empty(&root.join("tmp")));
}

/// SECURITY.md 32: a fetcher waits while a live process holds the digest lock, and proceeds
/// as soon as that process is killed with SIGKILL.
#[test]
fn lock_held_by_killed_process_does_not_block_fetch() {
    let server = serve_content();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let store = Store::open(&root).unwrap();
    let ready = dir.path().join("ready");
    let mut holder = spawn_child("hold-lock", &root, "", &ready);
    wait_for_file(&ready, &mut holder);

    let (tx, rx) = std::sync::mpsc::channel();
    let url = server.url("/in");
    let f = Fetcher::new(store);
    std::thread::spawn(move || {
        tx.send(
            f.fetch(&url, &digest(), "shared")
                .map_err(|e| e.to_string()),
        )
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "fetch ignored the lock"
    );
    assert_eq!(server.hits(), 0);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let path = rx.recv_timeout(Duration::from_secs(60)).unwrap().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), CONTENT);
    assert_eq!(server.hits(), 1);
}

/// SECURITY.md 34 during a download: the cache's disk fills up; the error names the input and
/// the temp file, nothing is left in tmp/, the existing entry still verifies. The tmpfs is
/// mounted in a child with its own user and mount namespaces, so the test runs as any user.
#[test]
fn disk_full_during_download_is_a_clear_error() {
    let test = "fetch::tests::disk_full_during_download_is_a_clear_error";
    if !in_own_mount_namespace(test) {
        return;
    }
    let big = vec![0x5a_u8; 2 << 20];
    let big_digest = Sha256Digest::of(&big);
    let server = Server::start(move |_| Reply::ok(&big, &[]));
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _tmpfs = Tmpfs::mount_for(test, &mnt, "1m");
    let f = Fetcher::new(Store::open(&mnt.join("cache")).unwrap());
    let small = f.store.insert_reader(None, "small", CONTENT).unwrap().0;

    let err = f
        .fetch(&server.url("/big"), &big_digest, "rootfs")
        .unwrap_err();
    match &err {
        FetchError::Store { input, source } => {
            assert_eq!(input, "rootfs");
            assert!(matches!(**source, StoreError::NoSpace { .. }), "{source:?}");
        }
        other => panic!("{other:?}"),
    }
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        chain.contains("rootfs") && chain.contains("no space left"),
        "{chain}"
    );
    assert!(
        chain.contains(&f.store.root().join("tmp").display().to_string()),
        "{chain}"
    );
    assert_store_holds(&f, &[small]);
    assert!(f.store.open_verified(&small).unwrap().is_some());
}

#[test]
fn transient_failures_are_retried_and_reverified() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // First a 503, then a body cut short, then the real thing.
    let n = Arc::new(AtomicUsize::new(0));
    let server = Server::start(move |_| match n.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::status(503, b"", &[]),
        1 => Reply::declaring(200, &CONTENT[..5], CONTENT.len() as u64),
        _ => Reply::ok(CONTENT, &[]),
    });
    let dir = tempfile::tempdir().unwrap();
    let mut f = fetcher(dir.path());
    f.retries = DEFAULT_RETRIES;
    let path = f.fetch(&server.url("/in"), &digest(), "busybox").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), CONTENT);
    assert_eq!(server.hits(), 3);
    assert_store_holds(&f, &[digest()]);

    // A wrong digest is not retried; a 404 neither.
    let wrong = Server::start(|r| match r.path() {
        "/404" => Reply::status(404, b"", &[]),
        _ => Reply::ok(b"wrong", &[]),
    });
    let other = Sha256Digest::of(b"other");
    assert!(f.fetch(&wrong.url("/x"), &other, "in").is_err());
    assert!(f.fetch(&wrong.url("/404"), &other, "in").is_err());
    assert_eq!(wrong.hits(), 2);
}

#[test]
fn downloads_stop_at_the_pinned_size_or_the_cap() {
    // A body that never ends (close-delimited, no Content-Length).
    let endless = Server::start(|_| {
        Reply::Stream(Box::new(|s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            while s.write_all(&[0u8; 4096]).is_ok() {}
        }))
    });
    let dir = tempfile::tempdir().unwrap();
    let mut f = fetcher(dir.path());
    f.max_download_size = 100_000;
    let err = f
        .fetch_sized(&endless.url("/in"), &digest(), Some(5000), "big")
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                limit: SizeLimit::Pinned(5000),
                announced: None,
                ..
            }
        ),
        "{err:?}"
    );
    let err = f.fetch(&endless.url("/in"), &digest(), "big").unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                limit: SizeLimit::Cap(100_000),
                ..
            }
        ),
        "{err:?}"
    );
    let err = f.resolve(&endless.url("/in"), "big").unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err:?}");
    assert_store_holds(&f, &[]);

    // A Content-Length above the limit is refused before the body.
    let huge = Server::start(|_| Reply::declaring(200, CONTENT, 1 << 40));
    let err = f.resolve(&huge.url("/in"), "big").unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { announced: Some(n), .. } if n == 1 << 40),
        "{err:?}"
    );
    assert_store_holds(&f, &[]);

    // Exactly the pinned size is fine, and resolving reports the size to pin.
    let server = serve_content();
    let size = CONTENT.len() as u64;
    f.fetch_sized(&server.url("/in"), &digest(), Some(size), "in")
        .unwrap();
    assert_eq!(
        f.resolve_sized(&server.url("/in"), "in").unwrap(),
        (digest(), size)
    );
}

#[test]
fn file_inputs_must_be_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let fifo = dir.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    for (url, kind) in [
        ("file:///dev/zero".to_string(), "character device"),
        (format!("file://{}", fifo.display()), "fifo"),
        (format!("file://{}", dir.path().display()), "directory"),
    ] {
        let err = f.resolve(&url, "in").unwrap_err();
        assert!(
            matches!(&err, FetchError::NotRegularFile { kind: k, .. } if *k == kind),
            "{url}: {err:?}"
        );
    }
    // A mirror entry that is a FIFO is skipped, not waited on.
    std::fs::create_dir(dir.path().join("mirror")).unwrap();
    std::os::unix::fs::symlink(&fifo, dir.path().join("mirror").join(digest().hex())).unwrap();
    let mut f = fetcher(dir.path());
    f.mirrors = vec![dir.path().join("mirror")];
    f.offline = true;
    let err = f
        .fetch("https://example.invalid/in", &digest(), "in")
        .unwrap_err();
    assert!(matches!(err, FetchError::Offline { .. }), "{err:?}");
}
