//! kiln's one HTTP client: url inputs (`fetch`, Debian repositories through it) and registries
//! (`registry`) go through the same agent, the same TLS trust and the same redirect and
//! credential policy, so a CA that works for one works for the other.
//!
//! - **One agent** ([`Agent`]): blocking ureq over rustls (ring), with kiln's timeouts and user
//!   agent. It sends exactly one request: redirects are never followed by ureq, because the
//!   caller must decide per hop; every status, errors included, comes back as a [`Response`].
//!   Compression is off (ureq's `gzip` feature is disabled): a content-addressed download must
//!   hash the bytes the server stores, not a transparently decoded variant.
//! - **One TLS configuration** ([`tls`]): the system's CA bundle, or the one `$SSL_CERT_FILE`
//!   names, plus every certificate in the directories of `$SSL_CERT_DIR` (what OpenSSL, curl,
//!   skopeo and podman read on the same machine), never a bundle compiled into kiln. Only
//!   registries accept `--tls-verify=false` (any certificate); url inputs always verify.
//! - **One redirect policy** ([`Redirects`]): at most [`MAX_REDIRECTS`] hops, only to http(s),
//!   never from https down to http (SECURITY.md 20).
//! - **One credential policy** ([`same_origin`]): an `Authorization` header goes only to the
//!   scheme-default-normalised host and port it was meant for; a redirect elsewhere (a CDN,
//!   another port) gets none.

mod error;
mod redirect;
pub mod tls;

use std::io::Read;
use std::net::IpAddr;
use std::time::Duration;

use url::Url;

pub use self::error::{HttpError, Result};
pub use self::redirect::{RedirectRefused, Redirects, MAX_REDIRECTS};

/// Whether TLS certificates are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVerify {
    /// Against the trusted roots ([`tls`]).
    Roots,
    /// Not at all: `--tls-verify=false`, the user accepts an unauthenticated server.
    Off,
}

/// What a request sends.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A stream of exactly this many bytes (sent with that `Content-Length`).
    Reader(&'a mut dyn Read, u64),
}

/// An HTTP agent; cheap to clone (connections are pooled and shared).
#[derive(Clone)]
pub struct Agent {
    inner: ureq::Agent,
}

impl Agent {
    pub fn new(verify: TlsVerify) -> Result<Self> {
        let inner = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls::client_config(verify)?)
            .build();
        Ok(Self { inner })
    }

    /// Sends one request and returns the response whatever its status; redirects are the
    /// caller's to follow (with [`Redirects`]).
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Response> {
        let mut req = self.inner.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = match body {
            Body::Empty => req.call(),
            Body::Bytes(b) => req.send_bytes(b),
            Body::Reader(r, len) => req.set("Content-Length", &len.to_string()).send(r),
        };
        match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => Ok(Response(r)),
            Err(ureq::Error::Transport(t)) => Err(HttpError::from_transport(url, t)),
        }
    }
}

/// A response: status, headers, and a body to stream.
pub struct Response(ureq::Response);

impl Response {
    pub fn status(&self) -> u16 {
        self.0.status()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0.header(name)
    }

    /// The `Content-Length` the server announced, if it is a number.
    pub fn content_length(&self) -> Option<u64> {
        self.header("Content-Length")
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn into_reader(self) -> Box<dyn Read + Send + Sync + 'static> {
        self.0.into_reader()
    }
}

/// Whether `status` asks to follow a `Location`.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Loopback hosts (a local test or cache registry) are the only ones a registry may reach over
/// plain http without `--tls-verify=false`.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url` points at `host` (`name[:port]`), the scheme's default port filled in on both
/// sides (`reg.example:443` and `https://reg.example/` are the same place). Credentials meant
/// for `host` are sent to `url` only when this holds.
pub fn same_origin(url: &Url, host: &str) -> bool {
    match Url::parse(&format!("{}://{host}/", url.scheme())) {
        Ok(own) => {
            own.host_str() == url.host_str()
                && own.port_or_known_default() == url.port_or_known_default()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_stay_on_their_own_host() {
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
                same_origin(&Url::parse(url).unwrap(), host),
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
