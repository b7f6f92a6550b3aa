//! SECURITY.md cases 16–21 against a registry that lies on purpose (see `test_server`): each
//! answer is refused with an error that says what was wrong, and a blob that fails never
//! reaches the (simulated) store.

use std::path::Path;

use base64::Engine as _;

use super::test_server::{Reply, Req, Server};
use super::*;
use crate::digest::Sha256Digest;

const OCI_IMG: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn client_with(tls_verify: bool, auth_files: AuthFiles) -> Client {
    Client::new(ClientOptions {
        tls_verify,
        auth_files,
        progress: None,
        chunk_size: 16 << 20,
    })
    .unwrap()
}

fn client() -> Client {
    client_with(true, AuthFiles::none())
}

fn repo(s: &Server) -> Repository {
    Repository::new(&s.host(), "test/app").unwrap()
}

/// What a cache does with `get_blob`: stream into a temp file, keep it only on success.
fn fetch_into_store(
    c: &Client,
    s: &Server,
    d: &Sha256Digest,
    size: Option<u64>,
    store: &Path,
) -> Result<u64> {
    let mut tmp = tempfile::NamedTempFile::new_in(store).unwrap();
    let n = c.get_blob(&repo(s), d, size, tmp.as_file_mut())?;
    tmp.persist(store.join(d.hex())).unwrap();
    Ok(n)
}

fn store_entries(store: &Path) -> usize {
    fs_err::read_dir(store).unwrap().count()
}

fn auth_file(dir: &Path, host: &str, user: &str, pass: &str) -> AuthFiles {
    let path = dir.join("auth.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    fs_err::write(
        &path,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    AuthFiles(vec![path])
}

#[test]
fn case16_pull_by_digest_refuses_another_manifest_even_with_a_matching_header() {
    let wanted = Sha256Digest::of(b"the manifest that was pinned");
    let header = wanted.to_string();
    let s = Server::start(move |_| {
        Reply::ok(
            OCI_IMG.as_bytes(),
            &[
                ("Content-Type", OCI_MANIFEST),
                ("Docker-Content-Digest", &header),
            ],
        )
    });
    let err = client()
        .get_manifest(&repo(&s), &wanted.to_string(), ALL_MANIFEST_TYPES)
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { expected, .. } if expected == wanted),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&Sha256Digest::of(OCI_IMG.as_bytes()).to_string()),
        "{err}"
    );
    // A tag pull whose header names other bytes than the body is refused as well.
    let err = client()
        .get_manifest(&repo(&s), "latest", ALL_MANIFEST_TYPES)
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
}

#[test]
fn case17_altered_short_long_and_dropped_blobs_are_refused_and_not_stored() {
    let blob: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let d = Sha256Digest::of(&blob);
    let n = blob.len() as u64;
    let mut changed = blob.clone();
    changed[5000] ^= 1;
    let mut appended = blob.clone();
    appended.push(0);
    let missing = blob[..blob.len() - 1].to_vec();
    let head =
        |len: usize| format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes();
    let raw = |len: usize, body: &[u8]| [head(len), body.to_vec()].concat();
    // (name, reply, size hint, expected error text)
    let cases: Vec<(&str, Vec<u8>, Option<u64>, &str)> = vec![
        (
            "one byte changed",
            raw(blob.len(), &changed),
            Some(n),
            "has digest",
        ),
        (
            "one byte changed, no size",
            raw(blob.len(), &changed),
            None,
            "has digest",
        ),
        (
            "one byte appended",
            raw(appended.len(), &appended),
            Some(n),
            "bytes, expected",
        ),
        (
            "one byte appended, no size",
            raw(appended.len(), &appended),
            None,
            "has digest",
        ),
        (
            "one byte missing",
            raw(missing.len(), &missing),
            Some(n),
            "bytes, expected",
        ),
        (
            "one byte missing, no size",
            raw(missing.len(), &missing),
            None,
            "has digest",
        ),
        (
            "Content-Length too small",
            raw(blob.len() - 10, &blob),
            None,
            "has digest",
        ),
        (
            "Content-Length too large",
            raw(blob.len() + 10, &blob),
            None,
            "failed to read the response body",
        ),
        (
            "connection dropped",
            raw(blob.len(), &blob[..4096]),
            None,
            "failed to read the response body",
        ),
        (
            "connection dropped, sized",
            raw(blob.len(), &blob[..4096]),
            Some(n),
            "failed to read the response body",
        ),
    ];
    for (name, reply, size, want) in cases {
        let s = Server::start(move |_| Reply::Raw(reply.clone()));
        let store = tempfile::tempdir().unwrap();
        let err = fetch_into_store(&client(), &s, &d, size, store.path()).unwrap_err();
        let chain = format!("{err} / {:?}", std::error::Error::source(&err));
        assert!(err.to_string().contains(want), "{name}: {chain}");
        assert!(
            err.to_string().contains(&d.to_string()) || err.to_string().contains(&s.host()),
            "{name}: {err}"
        );
        assert_eq!(store_entries(store.path()), 0, "{name}: nothing stored");
    }
    // The honest answer is accepted and stored.
    let good = raw(blob.len(), &blob);
    let s = Server::start(move |_| Reply::Raw(good.clone()));
    let store = tempfile::tempdir().unwrap();
    assert_eq!(
        fetch_into_store(&client(), &s, &d, Some(n), store.path()).unwrap(),
        n
    );
    assert_eq!(fs_err::read(store.path().join(d.hex())).unwrap(), blob);
}

#[test]
fn case19_media_type_disagreeing_with_content_type_is_refused() {
    let s = Server::start(|_| Reply::ok(OCI_IMG.as_bytes(), &[("Content-Type", DOCKER_MANIFEST)]));
    let err = client()
        .get_manifest(&repo(&s), "latest", ALL_MANIFEST_TYPES)
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::MediaTypeMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(DOCKER_MANIFEST), "{err}");
}

#[test]
fn case19_docker_schema1_is_refused() {
    let s1 =
        br#"{"schemaVersion":1,"name":"test/app","tag":"latest","fsLayers":[],"signatures":[]}"#;
    for ct in [
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/json",
    ] {
        let s = Server::start(move |_| Reply::ok(s1, &[("Content-Type", ct)]));
        let err = client()
            .get_manifest(&repo(&s), "latest", ALL_MANIFEST_TYPES)
            .unwrap_err();
        assert!(matches!(err, RegistryError::Schema1 { .. }), "{ct}: {err}");
    }
}

#[test]
fn case19_a_100_mb_manifest_is_refused_without_reading_it() {
    let s = Server::start(|_| Reply::Repeat {
        status: 200,
        headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
        byte: b' ',
        len: 100 << 20,
    });
    let err = client()
        .get_manifest(&repo(&s), "latest", ALL_MANIFEST_TYPES)
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::TooLarge {
                limit: MAX_MANIFEST_BYTES,
                ..
            }
        ),
        "{err}"
    );
    // Without a Content-Length the body is read only up to the cap.
    let body = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_vec(),
        vec![b' '; 5 << 20],
    ]
    .concat();
    let s = Server::start(move |_| Reply::Raw(body.clone()));
    let err = client()
        .get_manifest(&repo(&s), "latest", ALL_MANIFEST_TYPES)
        .unwrap_err();
    assert!(matches!(err, RegistryError::TooLarge { .. }), "{err}");
}

fn index_listing(child: &Sha256Digest, child_type: &str) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{child_type}","digest":"{child}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
    )
}

#[test]
fn case19_an_index_that_refers_to_itself_is_refused() {
    let platform: Platform = "linux/amd64".parse().unwrap();
    // The index names a child digest and then serves itself for it: no bytes can contain their
    // own digest, so the child's digest check refuses the loop.
    let claimed = Sha256Digest::of(b"child");
    let index = index_listing(&claimed, OCI_MANIFEST);
    let s = Server::start(move |_| Reply::ok(index.as_bytes(), &[("Content-Type", OCI_INDEX)]));
    let err = client()
        .pull_for_platform(&repo(&s), "loop", &platform)
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { expected, .. } if expected == claimed),
        "{err}"
    );
    // An index whose platform entry is (honestly) another index is not followed.
    let inner = index_listing(&Sha256Digest::of(b"x"), OCI_MANIFEST);
    let inner_digest = Sha256Digest::of(inner.as_bytes());
    let outer = index_listing(&inner_digest, OCI_MANIFEST);
    let s = Server::start(move |r: &Req| {
        let body = if r.path().ends_with(&inner_digest.to_string()) {
            inner.clone()
        } else {
            outer.clone()
        };
        Reply::ok(body.as_bytes(), &[("Content-Type", OCI_INDEX)])
    });
    let err = client()
        .pull_for_platform(&repo(&s), "nested", &platform)
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NestedIndex { child, .. } if child == inner_digest),
        "{err}"
    );
}

#[test]
fn case20_redirect_to_another_host_carries_no_credentials() {
    let blob = b"layer bytes".to_vec();
    let d = Sha256Digest::of(&blob);
    let other = Server::start(move |_| Reply::ok(&blob, &[]));
    let target = format!("http://localhost:{}/storage/blob", other.addr.port());
    let reg = Server::start(move |r: &Req| match r.header("authorization") {
        None => Reply::status(401, b"", &[("WWW-Authenticate", "Basic realm=\"kiln\"")]),
        Some(_) => Reply::redirect(&target),
    });
    let dir = tempfile::tempdir().unwrap();
    let c = client_with(true, auth_file(dir.path(), &reg.host(), "alice", "secret"));
    let mut sink = Vec::new();
    c.get_blob(&repo(&reg), &d, None, &mut sink).unwrap();
    assert_eq!(sink, b"layer bytes");
    let sent_to_registry = reg.requests();
    assert!(sent_to_registry
        .iter()
        .any(|r| r.header("authorization").is_some()));
    let sent_elsewhere = other.requests();
    assert_eq!(sent_elsewhere.len(), 1);
    assert_eq!(
        sent_elsewhere[0].header("authorization"),
        None,
        "credentials leaked to another host"
    );
}

#[test]
fn case20_https_to_http_downgrade_is_refused() {
    let plain = Server::start(|_| Reply::ok(b"x", &[]));
    let target = format!("http://127.0.0.1:{}/blob", plain.addr.port());
    let d = Sha256Digest::of(b"x");
    let secure = Server::tls(move |r: &Req| {
        if r.path() == "/v2/" {
            Reply::ok(b"{}", &[])
        } else {
            Reply::redirect(&target)
        }
    });
    let err = client_with(false, AuthFiles::none())
        .get_blob(&repo(&secure), &d, None, &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::RedirectDowngrade { .. }),
        "{err}"
    );
    assert!(plain.requests().is_empty(), "the http target was contacted");
    // The same server without the redirect works over https when verification is off ...
    let blob_server = Server::tls(|_| Reply::ok(b"x", &[]));
    let mut sink = Vec::new();
    client_with(false, AuthFiles::none())
        .get_blob(&repo(&blob_server), &d, Some(1), &mut sink)
        .unwrap();
    assert_eq!(sink, b"x");
    // ... and is refused with verification on (a self-signed certificate).
    assert!(client()
        .get_blob(&repo(&blob_server), &d, Some(1), &mut Vec::new())
        .is_err());
}

#[test]
fn case20_plain_http_redirect_to_a_non_loopback_host_is_refused() {
    let s = Server::start(|_| Reply::redirect("http://registry.example/blob"));
    let err = client()
        .get_blob(&repo(&s), &Sha256Digest::of(b""), None, &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::PlainHttpRefused { ref host } if host == "registry.example"),
        "{err}"
    );
}

fn hop_server(hops: u32) -> Server {
    Server::start(move |r: &Req| {
        let n: u32 = r
            .target
            .split("hop=")
            .nth(1)
            .and_then(|h| h.parse().ok())
            .unwrap_or(0);
        if n < hops {
            Reply::redirect(&format!("{}?hop={}", r.path(), n + 1))
        } else {
            Reply::ok(b"x", &[])
        }
    })
}

#[test]
fn case20_more_than_ten_redirects_are_refused() {
    let d = Sha256Digest::of(b"x");
    let ten = hop_server(10);
    client()
        .get_blob(&repo(&ten), &d, Some(1), &mut Vec::new())
        .unwrap();
    let eleven = hop_server(11);
    let err = client()
        .get_blob(&repo(&eleven), &d, Some(1), &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::TooManyRedirects { max: 10, .. }),
        "{err}"
    );
    assert_eq!(eleven.requests().len(), 11, "no request after the cap");
}

#[test]
fn case21_a_push_whose_returned_digest_differs_is_a_hard_error() {
    let lie = Sha256Digest::of(b"something else").to_string();
    let s = Server::start(move |r: &Req| match (r.method.as_str(), r.path()) {
        ("HEAD", _) => Reply::not_found(),
        ("POST", _) => Reply::status(202, b"", &[("Location", "/v2/test/app/blobs/uploads/1")]),
        ("PUT", _) => Reply::status(201, b"", &[("Docker-Content-Digest", &lie)]),
        _ => Reply::not_found(),
    });
    let err = client()
        .put_manifest(&repo(&s), "v1", OCI_MANIFEST, OCI_IMG.as_bytes())
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::PushDigestMismatch {
                what: "manifest",
                ..
            }
        ),
        "{err}"
    );
    let blob = b"blob";
    let d = Sha256Digest::of(blob);
    let err = client()
        .put_blob(&repo(&s), &d, 4, &mut &blob[..])
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::PushDigestMismatch { what: "blob", .. }),
        "{err}"
    );
    let put = s
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path().ends_with("/uploads/1"))
        .unwrap();
    assert_eq!(put.body, blob);
    assert!(
        put.target.contains(&format!("digest=sha256%3A{}", d.hex())),
        "{}",
        put.target
    );
}

#[test]
fn push_refuses_local_bytes_that_do_not_match_their_digest() {
    let s = Server::start(|r: &Req| match r.method.as_str() {
        "HEAD" => Reply::not_found(),
        "POST" => Reply::status(202, b"", &[("Location", "/v2/test/app/blobs/uploads/1")]),
        _ => Reply::status(400, b"DIGEST_INVALID", &[]),
    });
    let d = Sha256Digest::of(b"good");
    let err = client()
        .put_blob(&repo(&s), &d, 4, &mut &b"evil"[..])
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::LocalDigestMismatch { .. }),
        "{err}"
    );
    let err = client()
        .put_blob(&repo(&s), &d, 4, &mut &b"go"[..])
        .unwrap_err();
    assert!(matches!(err, RegistryError::ReadLocal { .. }), "{err}");
    let err = client()
        .put_manifest(&repo(&s), &d.to_string(), OCI_MANIFEST, OCI_IMG.as_bytes())
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::LocalDigestMismatch { .. }),
        "{err}"
    );
}

#[test]
fn large_blobs_are_uploaded_in_patch_chunks() {
    let s = Server::start(|r: &Req| match r.method.as_str() {
        "HEAD" => Reply::not_found(),
        "POST" => Reply::status(
            202,
            b"",
            &[("Location", "/v2/test/app/blobs/uploads/u?_state=0")],
        ),
        "PATCH" => {
            let next = format!("/v2/test/app/blobs/uploads/u?_state={}", r.body.len());
            Reply::status(202, b"", &[("Location", &next)])
        }
        _ => Reply::status(201, b"", &[]),
    });
    let c = Client::new(ClientOptions {
        tls_verify: true,
        auth_files: AuthFiles::none(),
        progress: None,
        chunk_size: 4,
    })
    .unwrap();
    let blob = b"0123456789";
    let d = Sha256Digest::of(blob);
    assert_eq!(
        c.put_blob(&repo(&s), &d, 10, &mut &blob[..]).unwrap(),
        BlobPush::Uploaded
    );
    let reqs = s.requests();
    let patches: Vec<(String, Vec<u8>)> = reqs
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| {
            (
                r.header("content-range").unwrap().to_string(),
                r.body.clone(),
            )
        })
        .collect();
    assert_eq!(
        patches,
        vec![
            ("0-3".into(), b"0123".to_vec()),
            ("4-7".into(), b"4567".to_vec()),
            ("8-9".into(), b"89".to_vec())
        ]
    );
    let put = reqs.iter().find(|r| r.method == "PUT").unwrap();
    assert!(put.body.is_empty());
    assert!(
        put.target
            .starts_with("/v2/test/app/blobs/uploads/u?_state=2&digest=sha256%3A"),
        "{}",
        put.target
    );
}

#[test]
fn existing_blobs_are_not_uploaded_again() {
    let s = Server::start(|r: &Req| {
        if r.method == "HEAD" {
            Reply::ok(b"", &[])
        } else {
            Reply::not_found()
        }
    });
    let d = Sha256Digest::of(b"x");
    assert_eq!(
        client().put_blob(&repo(&s), &d, 1, &mut &b"x"[..]).unwrap(),
        BlobPush::Existed
    );
    assert!(s.requests().iter().all(|r| r.method == "HEAD"));
}

#[test]
fn bearer_challenge_fetches_a_token_with_the_auth_file_credentials() {
    let expected_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bob:pw")
    );
    let realm_holder = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let realm = realm_holder.clone();
    let s = Server::start(move |r: &Req| {
        if r.path() == "/token" {
            return if r.header("authorization") == Some(expected_basic.as_str()) {
                Reply::ok(br#"{"token":"t0k"}"#, &[])
            } else {
                Reply::status(401, b"", &[])
            };
        }
        if r.header("authorization") == Some("Bearer t0k") {
            return Reply::ok(OCI_IMG.as_bytes(), &[("Content-Type", OCI_MANIFEST)]);
        }
        let challenge = format!(
            "Bearer realm=\"{}\",service=\"test-registry\",scope=\"repository:test/app:pull\"",
            realm.lock().unwrap()
        );
        Reply::status(401, b"", &[("WWW-Authenticate", &challenge)])
    });
    *realm_holder.lock().unwrap() = format!("http://{}/token", s.host());
    let dir = tempfile::tempdir().unwrap();
    let c = client_with(true, auth_file(dir.path(), &s.host(), "bob", "pw"));
    let m = c
        .get_manifest(&repo(&s), "latest", ALL_MANIFEST_TYPES)
        .unwrap();
    assert_eq!(m.digest, Sha256Digest::of(OCI_IMG.as_bytes()));
    // The token is reused: a second pull sends no new token request.
    c.get_manifest(&repo(&s), "latest", ALL_MANIFEST_TYPES)
        .unwrap();
    let token_requests: Vec<Req> = s
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/token")
        .collect();
    assert_eq!(token_requests.len(), 1);
    assert!(
        token_requests[0].target.contains("service=test-registry"),
        "{}",
        token_requests[0].target
    );
    assert!(
        token_requests[0]
            .target
            .contains("scope=repository%3Atest%2Fapp%3Apull"),
        "{}",
        token_requests[0].target
    );
    // Wrong credentials: a clear error naming the user.
    let bad = client_with(true, auth_file(dir.path(), &s.host(), "bob", "wrong"));
    let err = bad
        .get_manifest(&repo(&s), "latest", ALL_MANIFEST_TYPES)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refused the credentials of user `bob`"),
        "{err}"
    );
}

#[test]
fn basic_challenge_without_credentials_fails_clearly() {
    let s =
        Server::start(|_| Reply::status(401, b"", &[("WWW-Authenticate", "Basic realm=\"r\"")]));
    let err = client_with(true, AuthFiles(vec!["/nonexistent/auth.json".into()]))
        .get_manifest(&repo(&s), "latest", ALL_MANIFEST_TYPES)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no credentials for 127.0.0.1") && text.contains("/nonexistent/auth.json"),
        "{text}"
    );
}

#[test]
fn progress_reports_every_byte() {
    use std::sync::atomic::{AtomicU64, Ordering};
    #[derive(Default)]
    struct Count(AtomicU64, AtomicU64);
    impl Progress for std::sync::Arc<Count> {
        fn started(&self, _: &Sha256Digest, _: Option<u64>, _: Direction) {}
        fn advanced(&self, _: &Sha256Digest, n: u64) {
            self.0.fetch_add(n, Ordering::SeqCst);
        }
        fn finished(&self, _: &Sha256Digest, ok: bool) {
            assert!(ok);
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    let blob = vec![7u8; 300_000];
    let d = Sha256Digest::of(&blob);
    let b2 = blob.clone();
    let s = Server::start(move |_| Reply::ok(&b2, &[]));
    let count = std::sync::Arc::new(Count::default());
    let c = Client::new(ClientOptions {
        tls_verify: true,
        auth_files: AuthFiles::none(),
        progress: Some(Box::new(count.clone())),
        chunk_size: 1 << 20,
    })
    .unwrap();
    let digests = vec![d; 3];
    let sizes = run_parallel(digests, 3, |d| {
        c.get_blob(&repo(&s), &d, Some(300_000), &mut std::io::sink())
    })
    .unwrap();
    assert_eq!(sizes, vec![300_000; 3]);
    assert_eq!(count.0.load(Ordering::SeqCst), 900_000);
    assert_eq!(count.1.load(Ordering::SeqCst), 3);
}
