//! Writing to a registry: blobs (skipped when present, mounted when another repository of the
//! same registry has them, else uploaded in one PUT or in PATCH chunks) and manifests.
//!
//! Every answer is checked against what kiln computed locally: a `Docker-Content-Digest` that
//! differs from the local digest is a hard error (SECURITY.md 21), and the bytes read from the
//! local reader are hashed on the way out so a changed local file is caught too.

use std::io::{self, Read};

use url::Url;

use super::client::{pull_scope, Client, Direction};
use super::error::{RegistryError, Result};
use super::http::{expect_status, Body};
use crate::digest::{Hasher, Sha256Digest};
use crate::media::MAX_JSON_BLOB;
use crate::reference::{valid_manifest_ref, Repository};

/// What `put_blob` had to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobPush {
    /// The repository already had the blob; nothing was sent.
    Existed,
    Uploaded,
}

fn push_scope(repo: &Repository) -> Vec<String> {
    vec![format!("repository:{}:pull,push", repo.name())]
}

/// Yields exactly `remaining` bytes of `inner` (an early end is an error, so the registry never
/// waits for bytes that will not come), hashing them and reporting progress.
struct Outgoing<'a> {
    inner: &'a mut dyn Read,
    remaining: u64,
    hasher: Hasher,
    client: &'a Client,
    digest: Sha256Digest,
    /// The first local read failure, kept because ureq reports it as a transport error.
    local_error: Option<io::Error>,
}

impl Read for Outgoing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                let e = || {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the local blob is shorter than its size",
                    )
                };
                self.local_error.get_or_insert_with(e);
                return Err(e());
            }
            Ok(n) => n,
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.local_error.get_or_insert(copy);
                return Err(e);
            }
        };
        self.remaining -= n as u64;
        self.hasher.update(&buf[..n]);
        if let Some(p) = self.client.progress() {
            p.advanced(&self.digest, n as u64);
        }
        Ok(n)
    }
}

fn with_digest(location: &str, digest: &Sha256Digest) -> String {
    match Url::parse(location) {
        Ok(mut u) => {
            u.query_pairs_mut()
                .append_pair("digest", &digest.to_string());
            u.to_string()
        }
        Err(_) => location.to_string(),
    }
}

impl Client {
    /// Starts an upload session (or a mount): the status, the absolute Location and the
    /// `Docker-Content-Digest` the registry returned, if any.
    fn start_upload(
        &self,
        repo: &Repository,
        query: &str,
        scopes: &[String],
    ) -> Result<(u16, String, Option<String>)> {
        let url = self.http.repo_url(repo, &format!("blobs/uploads/{query}"));
        let resp = self
            .http
            .send("POST", repo, &url, &[], scopes, Body::Empty)?;
        let resp = expect_status("POST", &url, resp, &[201, 202])?;
        let location = resp.header("Location").unwrap_or("").to_string();
        let absolute = Url::parse(&url)
            .and_then(|u| u.join(&location))
            .map_err(|_| RegistryError::InvalidLocation {
                url: url.clone(),
                location: location.clone(),
            })?;
        let returned = resp.header("Docker-Content-Digest").map(str::to_string);
        Ok((resp.status(), absolute.to_string(), returned))
    }

    /// Uploads blob `digest` of `size` bytes from `reader`, unless the repository has it.
    pub(crate) fn put_blob(
        &self,
        repo: &Repository,
        digest: &Sha256Digest,
        size: u64,
        reader: &mut dyn Read,
    ) -> Result<BlobPush> {
        if self.blob_exists(repo, digest)? {
            return Ok(BlobPush::Existed);
        }
        if let Some(p) = self.progress() {
            p.started(digest, Some(size), Direction::Upload);
        }
        let result = self.upload(repo, digest, size, reader);
        if let Some(p) = self.progress() {
            p.finished(digest, result.is_ok());
        }
        result.map(|()| BlobPush::Uploaded)
    }

    fn upload(
        &self,
        repo: &Repository,
        digest: &Sha256Digest,
        size: u64,
        reader: &mut dyn Read,
    ) -> Result<()> {
        let scopes = push_scope(repo);
        let (_, mut location, _) = self.start_upload(repo, "", &scopes)?;
        let mut out = Outgoing {
            inner: reader,
            remaining: size,
            hasher: Hasher::new(),
            client: self,
            digest: *digest,
            local_error: None,
        };
        let octet = ("Content-Type", "application/octet-stream");
        let read_err = |e| RegistryError::ReadLocal {
            repository: repo.to_string(),
            digest: *digest,
            source: e,
        };
        let resp = if size <= self.chunk_size {
            let url = with_digest(&location, digest);
            let sent = self.http.send(
                "PUT",
                repo,
                &url,
                &[octet],
                &scopes,
                Body::Reader(&mut out, size),
            );
            // A local read error surfaces as a transport error; report the local cause.
            if let Some(e) = out.local_error.take() {
                return Err(read_err(e));
            }
            let sent = sent?;
            check_local(repo, digest, &out)?;
            (url, sent)
        } else {
            let mut offset = 0u64;
            let mut chunk = Vec::with_capacity(usize::try_from(self.chunk_size).unwrap_or(1 << 20));
            while offset < size {
                let len = self.chunk_size.min(size - offset);
                chunk.clear();
                (&mut out)
                    .take(len)
                    .read_to_end(&mut chunk)
                    .map_err(read_err)?;
                // The agent adds the chunk's Content-Length.
                let range = format!("{}-{}", offset, offset + len - 1);
                let headers = [octet, ("Content-Range", range.as_str())];
                let resp = self.http.send(
                    "PATCH",
                    repo,
                    &location,
                    &headers,
                    &scopes,
                    Body::Bytes(&chunk),
                )?;
                let resp = expect_status("PATCH", &location, resp, &[202])?;
                let next = resp.header("Location").unwrap_or("").to_string();
                location = Url::parse(&location)
                    .and_then(|u| u.join(&next))
                    .map_err(|_| RegistryError::InvalidLocation {
                        url: location.clone(),
                        location: next.clone(),
                    })?
                    .to_string();
                offset += len;
            }
            check_local(repo, digest, &out)?;
            let url = with_digest(&location, digest);
            let sent = self
                .http
                .send("PUT", repo, &url, &[], &scopes, Body::Empty)?;
            (url, sent)
        };
        let (url, resp) = resp;
        let resp = expect_status("PUT", &url, resp, &[201])?;
        check_returned(repo, "blob", digest, resp.header("Docker-Content-Digest"))
    }

    /// Mounts blob `digest` from `from` into `to` when both live in the same registry; `false`
    /// when the registry declined (then nothing was changed and the caller uploads instead).
    pub(crate) fn mount_blob(
        &self,
        from: &Repository,
        to: &Repository,
        digest: &Sha256Digest,
    ) -> Result<bool> {
        if from.registry() != to.registry() {
            return Ok(false);
        }
        let mut scopes = push_scope(to);
        scopes.extend(pull_scope(from));
        let query = format!("?mount={digest}&from={}", from.name());
        let (status, location, returned) = self.start_upload(to, &query, &scopes)?;
        if status == 201 {
            check_returned(to, "mounted blob", digest, returned.as_deref())?;
            return Ok(true);
        }
        // 202: the registry opened an ordinary upload instead; close it (best effort).
        let _ = self
            .http
            .send("DELETE", to, &location, &[], &scopes, Body::Empty);
        Ok(false)
    }

    /// Pushes a manifest under a tag or its digest; returns the digest, after checking that
    /// the registry stored the same one.
    pub(crate) fn put_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Sha256Digest> {
        if !valid_manifest_ref(reference) {
            return Err(RegistryError::InvalidManifestRef {
                repository: repo.to_string(),
                input: reference.into(),
            });
        }
        let local = Sha256Digest::of(bytes);
        if let Ok(named) = reference.parse::<Sha256Digest>() {
            if named != local {
                return Err(RegistryError::LocalDigestMismatch {
                    repository: repo.to_string(),
                    expected: named,
                    actual: local,
                    size: bytes.len() as u64,
                });
            }
        }
        if bytes.len() as u64 > MAX_JSON_BLOB {
            return Err(RegistryError::TooLarge {
                what: "manifest",
                url: repo.to_string(),
                limit: MAX_JSON_BLOB,
            });
        }
        let url = self.http.repo_url(repo, &format!("manifests/{reference}"));
        let resp = self.http.send(
            "PUT",
            repo,
            &url,
            &[("Content-Type", media_type)],
            &push_scope(repo),
            Body::Bytes(bytes),
        )?;
        let resp = expect_status("PUT", &url, resp, &[201])?;
        check_returned(
            repo,
            "manifest",
            &local,
            resp.header("Docker-Content-Digest"),
        )?;
        Ok(local)
    }
}

fn check_local(repo: &Repository, digest: &Sha256Digest, out: &Outgoing<'_>) -> Result<()> {
    let actual = out.hasher.clone().finish();
    if actual != *digest {
        return Err(RegistryError::LocalDigestMismatch {
            repository: repo.to_string(),
            expected: *digest,
            actual,
            size: out.hasher.len(),
        });
    }
    Ok(())
}

/// A registry that names a different digest than the local one stored something else.
fn check_returned(
    repo: &Repository,
    what: &'static str,
    local: &Sha256Digest,
    returned: Option<&str>,
) -> Result<()> {
    match returned.map(str::trim) {
        None => Ok(()),
        Some(r) if r.parse::<Sha256Digest>().ok().as_ref() == Some(local) => Ok(()),
        Some(r) => Err(RegistryError::PushDigestMismatch {
            repository: repo.to_string(),
            what,
            local: *local,
            returned: r.to_string(),
        }),
    }
}
