//! One HTTP exchange with a registry, through kiln's one client ([`crate::http`]): scheme
//! choice, authentication and redirects.
//!
//! Redirects are followed here, hop by hop, under the shared policy ([`Redirects`]: no
//! https→http, at most [`MAX_REDIRECTS`] hops), because credentials go only to the registry's
//! own host ([`same_origin`]: a blob redirect to a CDN or another host gets none), and plain
//! http only to loopback hosts unless `--tls-verify=false`. Authentication answers a `401` once:
//! `Basic` with the auth-file credentials, or `Bearer` by fetching a token from the challenge's
//! realm (with those credentials when there are any), and remembers the scheme so later
//! requests — uploads with a streaming body in particular — authenticate up front.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;

use serde::Deserialize;
use url::Url;

use super::auth::{AuthFiles, Challenge, Credentials};
use super::error::{RegistryError, Result};
use super::reference::Repository;
pub(crate) use crate::http::Body;
use crate::http::{
    is_loopback, is_redirect, same_origin, Agent, HttpError, RedirectRefused, Redirects, Response,
    TlsVerify,
};

pub use crate::http::MAX_REDIRECTS;
/// Error bodies are only quoted, never trusted: keep a short prefix.
const ERROR_BODY_LIMIT: u64 = 2048;

#[derive(Default)]
struct HostState {
    scheme: Option<&'static str>,
    challenge: Option<Challenge>,
    credentials: Option<Option<Credentials>>,
    tokens: BTreeMap<String, String>,
}

pub(crate) struct Http {
    agent: Agent,
    tls_verify: bool,
    auth_files: AuthFiles,
    hosts: Mutex<BTreeMap<String, HostState>>,
}

impl Http {
    pub(crate) fn new(tls_verify: bool, auth_files: AuthFiles) -> Result<Self> {
        let agent = Agent::new(if tls_verify {
            TlsVerify::Roots
        } else {
            TlsVerify::Off
        })?;
        Ok(Self {
            agent,
            tls_verify,
            auth_files,
            hosts: Mutex::new(BTreeMap::new()),
        })
    }

    fn plain_http_allowed(&self, host: &str) -> bool {
        !self.tls_verify || is_loopback(host)
    }

    fn with_host<T>(&self, host: &str, f: impl FnOnce(&mut HostState) -> T) -> T {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        f(hosts.entry(host.to_string()).or_default())
    }

    /// `https` unless the host may use plain http and does not answer TLS.
    fn scheme(&self, host: &str) -> &'static str {
        if let Some(s) = self.with_host(host, |h| h.scheme) {
            return s;
        }
        let bare =
            host.rsplit_once(':').map_or(
                host,
                |(h, p)| if p.parse::<u16>().is_ok() { h } else { host },
            );
        let scheme = if !self.plain_http_allowed(bare) {
            "https"
        } else {
            // A server that speaks TLS with a certificate kiln does not trust is an https
            // server: its requests fail with that reason rather than fall back to http.
            let probe = format!("https://{host}/v2/");
            match self.agent.send("GET", &probe, &[], Body::Empty) {
                Ok(_) | Err(HttpError::UntrustedCertificate { .. }) => "https",
                Err(_) => "http",
            }
        };
        self.with_host(host, |h| h.scheme = Some(scheme));
        scheme
    }

    /// `{scheme}://{host}/v2/{repo}/{suffix}`.
    pub(crate) fn repo_url(&self, repo: &Repository, suffix: &str) -> String {
        let host = repo.api_host();
        format!("{}://{host}/v2/{}/{suffix}", self.scheme(host), repo.name())
    }

    fn credentials(&self, repo: &Repository) -> Result<Option<Credentials>> {
        let host = repo.api_host();
        if let Some(c) = self.with_host(host, |h| h.credentials.clone()) {
            return Ok(c);
        }
        let c = self.auth_files.lookup(repo.registry(), repo.name())?;
        self.with_host(host, |h| h.credentials = Some(c.clone()));
        Ok(c)
    }

    /// The Authorization header to send to the registry host, from what earlier answers taught.
    fn auth_header(
        &self,
        repo: &Repository,
        scopes: &[String],
        url: &str,
    ) -> Result<Option<String>> {
        let host = repo.api_host();
        let key = scopes.join(" ");
        let (challenge, token) =
            self.with_host(host, |h| (h.challenge.clone(), h.tokens.get(&key).cloned()));
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic { .. }) => Ok(self.credentials(repo)?.map(|c| c.basic_header())),
            Some(Challenge::Bearer { .. }) if token.is_some() => {
                Ok(token.map(|t| format!("Bearer {t}")))
            }
            Some(bearer @ Challenge::Bearer { .. }) => {
                let token = self.fetch_token(repo, &bearer, scopes, url)?;
                self.with_host(host, |h| h.tokens.insert(key, token.clone()));
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn fetch_token(
        &self,
        repo: &Repository,
        challenge: &Challenge,
        scopes: &[String],
        url: &str,
    ) -> Result<String> {
        let Challenge::Bearer { realm, service, .. } = challenge else {
            unreachable!("fetch_token is only called for Bearer challenges")
        };
        let terr = |reason: String| RegistryError::Token {
            realm: realm.clone(),
            reason,
        };
        let mut token_url = Url::parse(realm).map_err(|_| terr("the realm is not a URL".into()))?;
        let realm_host = token_url.host_str().unwrap_or("").to_string();
        match token_url.scheme() {
            "https" => {}
            "http" if self.plain_http_allowed(&realm_host) => {}
            _ => return Err(RegistryError::PlainHttpRefused { host: realm_host }),
        }
        {
            let mut q = token_url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let basic = self.credentials(repo)?.map(|c| c.basic_header());
        let headers: Vec<(&str, &str)> = basic.iter().map(|h| ("Authorization", &**h)).collect();
        let resp = self
            .agent
            .send("GET", token_url.as_str(), &headers, Body::Empty)
            .map_err(|e| RegistryError::Transport {
                method: "GET",
                url: token_url.to_string(),
                source: Box::new(e),
            })?;
        match resp.status() {
            200..=299 => {}
            401 | 403 => {
                return Err(RegistryError::Unauthorized {
                    host: repo.registry().to_string(),
                    url: url.to_string(),
                    reason: self.unauthorized_reason(repo)?,
                })
            }
            code => return Err(terr(format!("it answered {code}"))),
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = read_limited(resp, 1 << 20, "token response", token_url.as_str())?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| terr(format!("invalid JSON: {e}")))?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| terr("no token in the answer".into()))
    }

    fn unauthorized_reason(&self, repo: &Repository) -> Result<String> {
        Ok(match self.credentials(repo)? {
            Some(c) => format!("the registry refused the credentials of user `{}` from the auth file", c.username),
            None => format!(
                "no credentials for {} in any auth file ({}); log in with `podman login` or set REGISTRY_AUTH_FILE",
                repo.registry(),
                self.auth_files.0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// Sends one request, following redirects and answering one authentication challenge.
    /// Every status, error statuses included, comes back as a response for the caller to judge.
    pub(crate) fn send(
        &self,
        method: &'static str,
        repo: &Repository,
        url: &str,
        headers: &[(&str, &str)],
        scopes: &[String],
        mut body: Body<'_>,
    ) -> Result<Response> {
        let registry_host = repo.api_host().to_string();
        let mut url = Url::parse(url).map_err(|_| RegistryError::InvalidLocation {
            url: url.to_string(),
            location: url.to_string(),
        })?;
        // URLs the registry hands out (upload Locations, next-page links) obey the same rules
        // as redirects: no plain http where it is not allowed, no step down from https.
        self.check_scheme(&url)?;
        if url.scheme() == "http" && self.scheme(&registry_host) == "https" {
            return Err(RegistryError::RedirectDowngrade {
                from: format!("https://{registry_host}/"),
                to: url.to_string(),
            });
        }
        // The challenge may name a scope the caller did not (the registry knows best).
        let mut scopes = scopes.to_vec();
        let mut redirects = Redirects::new();
        let mut challenged = false;
        let mut body_sent = false;
        loop {
            let url_s = url.to_string();
            let same_host = same_origin(&url, &registry_host);
            let auth = match same_host {
                true => self.auth_header(repo, &scopes, &url_s)?,
                false => None,
            };
            let mut all_headers = headers.to_vec();
            if let Some(h) = &auth {
                all_headers.push(("Authorization", h));
            }
            let hop_body = match &mut body {
                Body::Empty => Body::Empty,
                Body::Bytes(b) => Body::Bytes(b),
                Body::Reader(r, len) => {
                    if body_sent {
                        return Err(RegistryError::RedirectWithBody { method, url: url_s });
                    }
                    body_sent = true;
                    Body::Reader(&mut **r, *len)
                }
            };
            let resp = self
                .agent
                .send(method, &url_s, &all_headers, hop_body)
                .map_err(|e| RegistryError::Transport {
                    method,
                    url: url_s.clone(),
                    source: Box::new(e),
                })?;
            let status = resp.status();
            if is_redirect(status) {
                let next = redirects
                    .follow(&url, resp.header("Location"))
                    .map_err(|refused| match refused {
                        RedirectRefused::Downgrade { to } => RegistryError::RedirectDowngrade {
                            from: url_s.clone(),
                            to: to.to_string(),
                        },
                        RedirectRefused::Invalid { location } => RegistryError::InvalidLocation {
                            url: url_s.clone(),
                            location,
                        },
                        RedirectRefused::Scheme { to } => RegistryError::InvalidLocation {
                            url: url_s.clone(),
                            location: to.to_string(),
                        },
                        RedirectRefused::TooMany => RegistryError::TooManyRedirects {
                            url: url_s.clone(),
                            max: MAX_REDIRECTS,
                        },
                    })?;
                self.check_scheme(&next)?;
                url = next;
                continue;
            }
            if status == 401 && same_host {
                if challenged || body_sent {
                    return Err(RegistryError::Unauthorized {
                        host: repo.registry().to_string(),
                        url: url_s,
                        reason: self.unauthorized_reason(repo)?,
                    });
                }
                challenged = true;
                let header = resp.header("WWW-Authenticate").unwrap_or("").to_string();
                let challenge =
                    Challenge::parse(&header).ok_or_else(|| RegistryError::InvalidChallenge {
                        url: url_s.clone(),
                        header: header.clone(),
                    })?;
                if matches!(challenge, Challenge::Basic { .. }) && self.credentials(repo)?.is_none()
                {
                    return Err(RegistryError::Unauthorized {
                        host: repo.registry().to_string(),
                        url: url_s,
                        reason: self.unauthorized_reason(repo)?,
                    });
                }
                if let Challenge::Bearer {
                    scope: Some(wanted),
                    ..
                } = &challenge
                {
                    for s in wanted.split(' ').filter(|s| !s.is_empty()) {
                        if !scopes.iter().any(|have| have == s) {
                            scopes.push(s.to_string());
                        }
                    }
                }
                // A new challenge invalidates cached tokens (they may have expired).
                self.with_host(&registry_host, |h| {
                    h.challenge = Some(challenge);
                    h.tokens.clear();
                });
                continue;
            }
            return Ok(resp);
        }
    }

    fn check_scheme(&self, url: &Url) -> Result<()> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.plain_http_allowed(url.host_str().unwrap_or("")) => Ok(()),
            _ => Err(RegistryError::PlainHttpRefused {
                host: url.host_str().unwrap_or("").to_string(),
            }),
        }
    }
}

/// Reads a whole body of at most `limit` bytes; a bigger one (announced or actual) is refused
/// without reading it all.
pub(crate) fn read_limited(
    resp: Response,
    limit: u64,
    what: &'static str,
    url: &str,
) -> Result<Vec<u8>> {
    if let Some(len) = resp.content_length() {
        if len > limit {
            return Err(RegistryError::TooLarge {
                what,
                url: url.to_string(),
                limit,
            });
        }
    }
    let mut buf = Vec::new();
    resp.into_reader()
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| RegistryError::Body {
            url: url.to_string(),
            source: e,
        })?;
    if buf.len() as u64 > limit {
        return Err(RegistryError::TooLarge {
            what,
            url: url.to_string(),
            limit,
        });
    }
    Ok(buf)
}

/// Turns a response whose status is not one of `ok` into a `Status` error quoting its body.
pub(crate) fn expect_status(
    method: &'static str,
    url: &str,
    resp: Response,
    ok: &[u16],
) -> Result<Response> {
    if ok.contains(&resp.status()) {
        return Ok(resp);
    }
    let status = resp.status();
    let mut text = String::new();
    let _ = resp
        .into_reader()
        .take(ERROR_BODY_LIMIT)
        .read_to_string(&mut text);
    Err(RegistryError::Status {
        method,
        url: url.to_string(),
        status,
        body: text.trim().to_string(),
    })
}
