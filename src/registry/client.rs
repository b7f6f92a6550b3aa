//! Reading from a registry: manifests (verified), tags, and blobs streamed through a hasher
//! into the caller's writer.
//!
//! `get_blob` never stores anything itself: the caller passes the temp writer of its cache and
//! discards it when an error comes back, so an unverified byte never becomes a cache entry.

use std::io::{Read, Write};

use serde::Deserialize;

use super::auth::AuthFiles;
use super::error::{RegistryError, Result};
use super::http::{expect_status, read_limited, Body, Http};
use super::manifest::{verify_manifest, PulledManifest, Received};
use crate::digest::{Hasher, Sha256Digest};
use crate::media::{ALL_MANIFEST_TYPES, MAX_JSON_BLOB};
use crate::reference::{valid_manifest_ref, Repository};

/// Which way a blob moves, for progress reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Download,
    Upload,
}

/// Receives progress of blob transfers (possibly from several threads at once). The library
/// never prints; the CLI implements this with progress bars or plain lines.
pub trait Progress {
    fn started(&self, digest: &Sha256Digest, total: Option<u64>, direction: Direction);
    fn advanced(&self, digest: &Sha256Digest, bytes: u64);
    /// The transfer ended (`ok` false: refused or failed).
    fn finished(&self, digest: &Sha256Digest, ok: bool);
}

/// How a [`Client`] behaves.
pub struct ClientOptions {
    /// `false` (`--tls-verify=false`) accepts any certificate and allows plain http to any
    /// host; loopback registries may use plain http either way.
    pub tls_verify: bool,
    /// Where credentials are looked up, in order.
    pub auth_files: AuthFiles,
    pub progress: Option<Box<dyn Progress + Send + Sync>>,
    /// Blobs larger than this are uploaded in PATCH chunks of this size; smaller ones in one PUT.
    pub chunk_size: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            tls_verify: true,
            auth_files: AuthFiles::from_env(),
            progress: None,
            chunk_size: 16 << 20,
        }
    }
}

/// A distribution-spec client. `Sync`: share one between transfer threads.
pub struct Client {
    pub(crate) http: Http,
    pub(crate) progress: Option<Box<dyn Progress + Send + Sync>>,
    pub(crate) chunk_size: u64,
}

pub(crate) fn pull_scope(repo: &Repository) -> Vec<String> {
    vec![format!("repository:{}:pull", repo.name())]
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Self> {
        Ok(Self {
            http: Http::new(opts.tls_verify, opts.auth_files)?,
            progress: opts.progress,
            chunk_size: opts.chunk_size.max(1),
        })
    }

    pub(crate) fn progress(&self) -> Option<&(dyn Progress + Send + Sync)> {
        self.progress.as_deref()
    }

    /// Fetches a manifest by tag or `sha256:` digest and verifies it (see [`super::manifest`]).
    /// The returned digest is always computed from the bytes; a pull by digest must match it.
    pub(crate) fn get_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        accept: &[&str],
    ) -> Result<PulledManifest> {
        if !valid_manifest_ref(reference) {
            return Err(RegistryError::InvalidManifestRef {
                repository: repo.to_string(),
                input: reference.into(),
            });
        }
        let expected = reference.parse::<Sha256Digest>().ok();
        let url = self.http.repo_url(repo, &format!("manifests/{reference}"));
        let accept_header = if accept.is_empty() {
            ALL_MANIFEST_TYPES
        } else {
            accept
        }
        .join(", ");
        let resp = self.http.send(
            "GET",
            repo,
            &url,
            &[("Accept", &accept_header)],
            &pull_scope(repo),
            Body::Empty,
        )?;
        let resp = expect_status("GET", &url, resp, &[200])?;
        let content_type = resp.header("Content-Type").map(str::to_string);
        let digest_header = resp.header("Docker-Content-Digest").map(str::to_string);
        let bytes = read_limited(resp, MAX_JSON_BLOB, "manifest", &url)?;
        let rx = Received {
            reference,
            url: &url,
            content_type: content_type.as_deref(),
            digest_header: digest_header.as_deref(),
        };
        let (media_type, digest) = verify_manifest(&rx, &bytes, expected.as_ref(), accept)?;
        Ok(PulledManifest {
            media_type,
            bytes,
            digest,
        })
    }

    /// The digest a tag points at, computed from the manifest bytes (never taken from a header).
    pub(crate) fn resolve_tag(&self, repo: &Repository, tag: &str) -> Result<Sha256Digest> {
        Ok(self.get_manifest(repo, tag, ALL_MANIFEST_TYPES)?.digest)
    }

    /// Streams blob `digest` into `sink`, hashing as it goes; returns its size. With
    /// `size_hint`, a body of any other length is refused as soon as that is known. On any
    /// error the caller must discard what `sink` received.
    pub(crate) fn get_blob(
        &self,
        repo: &Repository,
        digest: &Sha256Digest,
        size_hint: Option<u64>,
        sink: &mut dyn Write,
    ) -> Result<u64> {
        if let Some(p) = self.progress() {
            p.started(digest, size_hint, Direction::Download);
        }
        let result = self.get_blob_inner(repo, digest, size_hint, sink);
        if let Some(p) = self.progress() {
            p.finished(digest, result.is_ok());
        }
        result
    }

    fn get_blob_inner(
        &self,
        repo: &Repository,
        digest: &Sha256Digest,
        size_hint: Option<u64>,
        sink: &mut dyn Write,
    ) -> Result<u64> {
        let url = self.http.repo_url(repo, &format!("blobs/{digest}"));
        // Identity encoding: the bytes hashed are the blob's bytes, and Content-Length is theirs.
        let headers = [("Accept-Encoding", "identity")];
        let resp = self
            .http
            .send("GET", repo, &url, &headers, &pull_scope(repo), Body::Empty)?;
        let resp = expect_status("GET", &url, resp, &[200])?;
        let announced = resp
            .header("Content-Length")
            .and_then(|l| l.trim().parse::<u64>().ok());
        if let (Some(a), Some(want)) = (announced, size_hint) {
            if a != want {
                return Err(RegistryError::SizeMismatch {
                    digest: *digest,
                    url,
                    expected: want,
                    actual: a,
                });
            }
        }
        let mut body = resp.into_reader();
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RegistryError::Body { url, source: e }),
            };
            hasher.update(&buf[..n]);
            if let Some(want) = size_hint {
                if hasher.len() > want {
                    return Err(RegistryError::SizeMismatch {
                        digest: *digest,
                        url,
                        expected: want,
                        actual: hasher.len(),
                    });
                }
            }
            sink.write_all(&buf[..n]).map_err(|e| RegistryError::Sink {
                digest: *digest,
                url: url.clone(),
                source: e,
            })?;
            if let Some(p) = self.progress() {
                p.advanced(digest, n as u64);
            }
        }
        let size = hasher.len();
        if let Some(want) = size_hint {
            if size != want {
                return Err(RegistryError::SizeMismatch {
                    digest: *digest,
                    url,
                    expected: want,
                    actual: size,
                });
            }
        }
        let actual = hasher.finish();
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                what: "blob",
                url,
                expected: *digest,
                actual,
            });
        }
        sink.flush().map_err(|e| RegistryError::Sink {
            digest: *digest,
            url,
            source: e,
        })?;
        Ok(size)
    }

    /// Whether the repository has blob `digest` (HEAD).
    pub(crate) fn blob_exists(&self, repo: &Repository, digest: &Sha256Digest) -> Result<bool> {
        let url = self.http.repo_url(repo, &format!("blobs/{digest}"));
        let resp = self
            .http
            .send("HEAD", repo, &url, &[], &pull_scope(repo), Body::Empty)?;
        match resp.status() {
            200 => Ok(true),
            404 => Ok(false),
            _ => expect_status("HEAD", &url, resp, &[200]).map(|_| true),
        }
    }

    /// All tags of the repository, sorted, following `Link: <…>; rel="next"` pages.
    pub(crate) fn list_tags(&self, repo: &Repository) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let mut url = self.http.repo_url(repo, "tags/list");
        let mut tags = Vec::new();
        for _ in 0..1000 {
            let resp = self
                .http
                .send("GET", repo, &url, &[], &pull_scope(repo), Body::Empty)?;
            let resp = expect_status("GET", &url, resp, &[200])?;
            let next = resp
                .header("Link")
                .and_then(next_link)
                .map(|l| resolve(&url, &l));
            let body = read_limited(resp, MAX_JSON_BLOB, "tag list", &url)?;
            let page: TagList =
                serde_json::from_slice(&body).map_err(|e| RegistryError::InvalidJson {
                    what: "tag list",
                    reference: repo.to_string(),
                    url: url.clone(),
                    source: e,
                })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(Some(n)) => url = n,
                _ => break,
            }
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }
}

/// The target of `<url>; rel="next"` in a Link header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

fn resolve(base: &str, link: &str) -> Option<String> {
    url::Url::parse(base)
        .ok()?
        .join(link)
        .ok()
        .map(|u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_headers() {
        for (h, want) in [
            (
                r#"</v2/a/tags/list?last=b&n=2>; rel="next""#,
                Some("/v2/a/tags/list?last=b&n=2"),
            ),
            (r#"<http://x/p>; rel=next"#, Some("http://x/p")),
            (r#"</p>; rel="prev""#, None),
            ("garbage", None),
        ] {
            assert_eq!(next_link(h).as_deref(), want, "{h}");
        }
    }
}
