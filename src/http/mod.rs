//! kiln's one HTTP client: url inputs (`fetch`, Debian repositories through it) and registries
//! (`registry`) go through the same agent, the same TLS trust and the same redirect and
//! credential policy, so a CA that works for one works for the other.
//!
//! - **One agent** ([`Agent`]): blocking ureq 3 over rustls (ring), with kiln's timeouts and
//!   user agent. It sends exactly one request: redirects are never followed by ureq, because
//!   the caller must decide per hop; every status, errors included, comes back as a
//!   [`Response`]. Compression is off (ureq's `gzip` feature is disabled): a content-addressed
//!   download must hash the bytes the server stores, not a transparently decoded variant. No
//!   proxy variable is read (connections are direct), and every request body goes out with
//!   its `Content-Length` ([`Agent::send`]).
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
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .timeout_per_write(Some(Duration::from_secs(120)))
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            // ureq 3 would otherwise route through $HTTPS_PROXY/$ALL_PROXY; kiln connects
            // directly, as it did with ureq 2 (a proxy would also see registry credentials).
            .proxy(None)
            // ureq 2's bound on a response header line; ureq 3 bounds the whole head (64 KiB
            // by default).
            .max_response_header_size(100 * 1024)
            .tls_config(tls::ureq_config(verify)?)
            .build();
        Ok(Self {
            inner: config.new_agent(),
        })
    }

    /// Sends one request and returns the response whatever its status; redirects are the
    /// caller's to follow (with [`Redirects`]).
    ///
    /// The agent states the body's length itself (callers pass no `Content-Length`, which
    /// ureq 3 would refuse as a second one): every body, and the empty one of a POST, PUT or
    /// PATCH, goes out with `Content-Length`, never chunked. The distribution spec's chunk
    /// upload is a PATCH with `Content-Length` and `Content-Range` (the registry checks one
    /// against the other), and ureq 3 would chunk a body of unstated length.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Response> {
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let length = match &body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Reader(_, len) => *len,
        };
        if length > 0 || matches!(method, "POST" | "PUT" | "PATCH") {
            req = req.header("Content-Length", length);
        }
        match body {
            Body::Empty => self.run(url, req.body(ureq::SendBody::none())),
            Body::Bytes(mut b) => self.run(url, req.body(ureq::SendBody::from_reader(&mut b))),
            Body::Reader(r, _) => self.run(url, req.body(ureq::SendBody::from_reader(r))),
        }
    }

    fn run(
        &self,
        url: &str,
        request: std::result::Result<ureq::http::Request<ureq::SendBody<'_>>, ureq::http::Error>,
    ) -> Result<Response> {
        let request = request.map_err(|e| HttpError::Transport {
            url: url.to_string(),
            source: Box::new(e),
        })?;
        self.inner
            .run(request)
            .map(Response)
            .map_err(|e| HttpError::from_ureq(url, e))
    }
}

/// A response: status, headers, and a body to stream.
pub struct Response(ureq::http::Response<ureq::Body>);

impl Response {
    pub fn status(&self) -> u16 {
        self.0.status().as_u16()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Content-Length` the server announced, if it is a number.
    pub fn content_length(&self) -> Option<u64> {
        self.header("Content-Length")
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn into_reader(self) -> Box<dyn Read + Send + 'static> {
        Box::new(self.0.into_body().into_reader())
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
    use crate::testing::http_server::{Reply, Server};

    /// An https URL that reaches a plain-http server (a registry without TLS) failed with
    /// "received corrupt message of type InvalidContentType" and no hint.
    #[test]
    fn https_to_a_plain_http_server_says_so_with_a_hint() {
        // A real one: Go's server answers a TLS handshake with an http 400.
        let registry = crate::testing::registry::LocalRegistry::start(&[]);
        let agent = Agent::new(TlsVerify::Roots).unwrap();
        let url = format!("https://{}/v2/", registry.host);
        let err = match agent.send("GET", &url, &[], Body::Empty) {
            Err(e) => e,
            Ok(r) => panic!("answered {}", r.status()),
        };
        assert!(
            matches!(err, HttpError::PlainHttpServer { .. }),
            "{err}: {:?}",
            std::error::Error::source(&err).map(ToString::to_string)
        );
        assert!(err.to_string().contains(&url), "{err}");
        assert!(err.hint().unwrap().contains("--tls-verify=false"));
    }

    #[test]
    fn every_body_goes_out_with_its_length_never_chunked() {
        let server = Server::start(|_| Reply::ok(b"", &[]));
        let agent = Agent::new(TlsVerify::Roots).unwrap();
        let url = server.url("/x");
        let mut stream: &[u8] = b"streamed";
        for (method, body) in [
            ("GET", Body::Empty),
            ("DELETE", Body::Empty),
            ("POST", Body::Empty),
            ("PUT", Body::Bytes(b"bytes")),
            ("PATCH", Body::Reader(&mut stream, 8)),
        ] {
            assert_eq!(agent.send(method, &url, &[], body).unwrap().status(), 200);
        }
        let seen: Vec<_> = server
            .requests()
            .iter()
            .map(|r| {
                let header = |name| r.header(name).map(str::to_string);
                let body = String::from_utf8(r.body.clone()).unwrap();
                let framing = (header("content-length"), header("transfer-encoding"));
                (r.method.clone(), framing, body)
            })
            .collect();
        let sized = |n: &str| (Some(n.to_string()), None);
        assert_eq!(
            seen,
            [
                ("GET".into(), (None, None), String::new()),
                ("DELETE".into(), (None, None), String::new()),
                ("POST".into(), sized("0"), String::new()),
                ("PUT".into(), sized("5"), "bytes".into()),
                ("PATCH".into(), sized("8"), "streamed".into()),
            ]
        );
    }

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
