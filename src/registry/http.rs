//! One HTTP exchange with a registry: scheme choice, authentication and redirects, done by hand.
//!
//! ureq's own redirect handling is switched off because a registry client must decide per hop:
//! credentials go only to the registry's own host (a blob redirect to a CDN or another host
//! gets none), https→http downgrades are refused, and the chain is capped at
//! [`MAX_REDIRECTS`]. Authentication answers a `401` once: `Basic` with the auth-file
//! credentials, or `Bearer` by fetching a token from the challenge's realm (with those
//! credentials when there are any), and remembers the scheme so later requests — uploads with a
//! streaming body in particular — authenticate up front.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::auth::{AuthFiles, Challenge, Credentials};
use super::error::{RegistryError, Result};
use super::reference::Repository;

pub const MAX_REDIRECTS: usize = 10;
/// Error bodies are only quoted, never trusted: keep a short prefix.
const ERROR_BODY_LIMIT: u64 = 2048;

/// What a request sends.
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A stream of exactly this many bytes; it can be sent once only.
    Reader(&'a mut dyn Read, u64),
}

#[derive(Default)]
struct HostState {
    scheme: Option<&'static str>,
    challenge: Option<Challenge>,
    credentials: Option<Option<Credentials>>,
    tokens: BTreeMap<String, String>,
}

pub(crate) struct Http {
    agent: ureq::Agent,
    tls_verify: bool,
    auth_files: AuthFiles,
    hosts: Mutex<BTreeMap<String, HostState>>,
}

/// Loopback hosts may speak plain http (a local test or cache registry).
pub(crate) fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url` points at the registry's own host and port (`reg.example:443` and
/// `https://reg.example/` are the same place). Only there do credentials go.
fn is_registry_host(url: &Url, registry_host: &str) -> bool {
    match Url::parse(&format!("{}://{registry_host}/", url.scheme())) {
        Ok(reg) => {
            reg.host_str() == url.host_str()
                && reg.port_or_known_default() == url.port_or_known_default()
        }
        Err(_) => false,
    }
}

impl Http {
    pub(crate) fn new(tls_verify: bool, auth_files: AuthFiles) -> Result<Self> {
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .tls_config(super::tls::client_config(tls_verify)?)
            .build();
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
            match self.agent.get(&format!("https://{host}/v2/")).call() {
                Ok(_) | Err(ureq::Error::Status(..)) => "https",
                Err(ureq::Error::Transport(_)) => "http",
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
        let mut req = self.agent.get(token_url.as_str());
        if let Some(c) = self.credentials(repo)? {
            req = req.set("Authorization", &c.basic_header());
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(401 | 403, _)) => {
                return Err(RegistryError::Unauthorized {
                    host: repo.registry().to_string(),
                    url: url.to_string(),
                    reason: self.unauthorized_reason(repo)?,
                })
            }
            Err(ureq::Error::Status(code, _)) => return Err(terr(format!("it answered {code}"))),
            Err(ureq::Error::Transport(t)) => {
                return Err(RegistryError::Transport {
                    method: "GET",
                    url: token_url.to_string(),
                    source: Box::new(t),
                })
            }
        };
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
    ) -> Result<ureq::Response> {
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
        let mut redirects = 0;
        let mut challenged = false;
        let mut body_sent = false;
        loop {
            let url_s = url.to_string();
            let same_host = is_registry_host(&url, &registry_host);
            let mut req = self.agent.request(method, &url_s);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if same_host {
                if let Some(h) = self.auth_header(repo, &scopes, &url_s)? {
                    req = req.set("Authorization", &h);
                }
            }
            let result = match &mut body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::Reader(r, len) => {
                    if body_sent {
                        return Err(RegistryError::RedirectWithBody { method, url: url_s });
                    }
                    body_sent = true;
                    req.set("Content-Length", &len.to_string()).send(r)
                }
            };
            let resp = match result {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    return Err(RegistryError::Transport {
                        method,
                        url: url_s,
                        source: Box::new(t),
                    })
                }
            };
            let status = resp.status();
            if (300..400).contains(&status) && status != 304 {
                let Some(location) = resp.header("Location") else {
                    return Ok(resp);
                };
                let next = url
                    .join(location)
                    .map_err(|_| RegistryError::InvalidLocation {
                        url: url_s.clone(),
                        location: location.to_string(),
                    })?;
                if url.scheme() == "https" && next.scheme() != "https" {
                    return Err(RegistryError::RedirectDowngrade {
                        from: url_s,
                        to: next.to_string(),
                    });
                }
                self.check_scheme(&next)?;
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(RegistryError::TooManyRedirects {
                        url: url_s,
                        max: MAX_REDIRECTS,
                    });
                }
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
    resp: ureq::Response,
    limit: u64,
    what: &'static str,
    url: &str,
) -> Result<Vec<u8>> {
    if let Some(len) = resp
        .header("Content-Length")
        .and_then(|l| l.trim().parse::<u64>().ok())
    {
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
    resp: ureq::Response,
    ok: &[u16],
) -> Result<ureq::Response> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_stay_on_the_registry_host() {
        for (url, host, want) in [
            ("https://reg.example/v2/", "reg.example", true),
            ("https://reg.example/v2/", "reg.example:443", true),
            ("https://reg.example:5000/v2/", "reg.example:5000", true),
            ("http://127.0.0.1:5000/x", "127.0.0.1:5000", true),
            ("http://127.0.0.1:5001/x", "127.0.0.1:5000", false),
            ("http://localhost:5000/x", "127.0.0.1:5000", false),
            ("https://cdn.example/blob", "reg.example", false),
            ("https://reg.example.evil/v2/", "reg.example", false),
            ("http://[::1]:5000/v2/", "[::1]:5000", true),
        ] {
            assert_eq!(
                is_registry_host(&Url::parse(url).unwrap(), host),
                want,
                "{url} vs {host}"
            );
        }
    }

    #[test]
    fn loopback_hosts() {
        for (h, want) in [
            ("localhost", true),
            ("127.0.0.1", true),
            ("127.1.2.3", true),
            ("[::1]", true),
            ("::1", true),
            ("10.0.0.1", false),
            ("localhost.example", false),
            ("reg.example", false),
        ] {
            assert_eq!(is_loopback(h), want, "{h}");
        }
    }
}
