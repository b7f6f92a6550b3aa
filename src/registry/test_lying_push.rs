//! SECURITY.md case 21 and the push and authentication paths, against a scripted registry
//! (see `crate::testing::http_server`): digests the registry returns are checked, local bytes are hashed on the
//! way out, existing blobs are skipped, chunked uploads send the right ranges, and credentials
//! come from the auth file.

use base64::Engine as _;

use super::test_lying_pull::{auth_file, client, client_with, repo, OCI_IMG};
use super::*;
use crate::digest::Sha256Digest;
use crate::media::*;
use crate::testing::http_server::{Reply, Req, Server};

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
    // Every request with a body states its length: distribution refuses a chunked PATCH.
    for r in reqs.iter().filter(|r| r.method != "HEAD") {
        let length = r.body.len().to_string();
        assert_eq!(
            r.header("content-length"),
            Some(length.as_str()),
            "{}",
            r.method
        );
        assert_eq!(r.header("transfer-encoding"), None, "{}", r.method);
    }
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
