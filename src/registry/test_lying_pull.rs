//! SECURITY.md cases 16–20 on the pull side, against a registry that lies on purpose (see
//! `crate::testing::http_server`): each answer is refused with an error that says what was wrong, and a blob
//! that fails never reaches the (simulated) store.

use std::path::Path;

use base64::Engine as _;

use super::error::Result;
use super::*;
use crate::digest::Sha256Digest;
use crate::media::*;
use crate::platform::Platform;
use crate::testing::http_server::{Reply, Req, Server};

pub(super) const OCI_IMG: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

pub(super) fn client_with(tls_verify: bool, auth_files: AuthFiles) -> Client {
    Client::new(ClientOptions {
        tls_verify,
        auth_files,
        progress: None,
        chunk_size: 16 << 20,
    })
    .unwrap()
}

pub(super) fn client() -> Client {
    client_with(true, AuthFiles::none())
}

pub(super) fn repo(s: &Server) -> Repository {
    Repository::new(&s.host(), "test/app").unwrap()
}

/// What a cache does with `get_blob`: stream into a temp file, keep it only on success.
pub(super) fn fetch_into_store(
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

pub(super) fn store_entries(store: &Path) -> usize {
    fs_err::read_dir(store).unwrap().count()
}

pub(super) fn auth_file(dir: &Path, host: &str, user: &str, pass: &str) -> AuthFiles {
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
    for ct in [DOCKER_SCHEMA1[1], "application/json"] {
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
                limit: MAX_JSON_BLOB,
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

#[test]
fn case20_an_upload_location_on_plain_http_elsewhere_is_refused() {
    let s = Server::start(|r: &Req| match r.method.as_str() {
        "HEAD" => Reply::not_found(),
        _ => Reply::status(202, b"", &[("Location", "http://uploads.example/u/1")]),
    });
    let d = Sha256Digest::of(b"x");
    let err = client()
        .put_blob(&repo(&s), &d, 1, &mut &b"x"[..])
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::PlainHttpRefused { ref host } if host == "uploads.example"),
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
