//! The one test HTTP/1.1 server, for url-input (`fetch`) and registry tests alike: a
//! deliberately scriptable (and lying) server where every request goes to a closure that
//! decides the answer, including answers no honest server would give (wrong bytes, lying
//! lengths, dropped connections, endless redirects, bodies that never end). It records every
//! request so tests can check what the client sent where (e.g. no credentials after a
//! cross-host redirect). With `tls()` it speaks https with a throw-away self-signed
//! certificate, with `tls_with()` with a certificate the test made (see `testing::tls`).
//!
//! One server for the unit tests (as `crate::testing::http_server`) and the integration tests
//! (`tests/it/main.rs` includes this file by path as `http_server`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Test-only self-signed certificate for `localhost`/127.0.0.1 (never trusted by anything).
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUMn+0mSbD8iw7TIOFs643c5br+GgwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNzAxNDYwOVoYDzIxMjYxMTAz
MDE0NjA5WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATaU9U+/JhinXfGPyhEAhr2Msx63EnlmDicCBBU2MJKdlQRK4gjwV5M
7VBEpnIBtAmdf1eyvDWq8Z66XDujtWs6o28wbTAdBgNVHQ4EFgQUdGJYKB/c9YEW
rTb1Sy0KJft3/5gwHwYDVR0jBBgwFoAUdGJYKB/c9YEWrTb1Sy0KJft3/5gwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDSAAwRQIhAMZVhtf4ES8IwjfnjEhIEjBy8ANv3J7fG0qukcbqeM45AiAw
eIvXqQ1krUlKvszFp1FEMH5s+bo7yooaoeoP9H6VzQ==
-----END CERTIFICATE-----
";
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgvceeiZRc/yNsSgca
ylt1lVWVvpSehh9iKnKtGG6Hm7yhRANCAATaU9U+/JhinXfGPyhEAhr2Msx63Enl
mDicCBBU2MJKdlQRK4gjwV5M7VBEpnIBtAmdf1eyvDWq8Z66XDujtWs6
-----END PRIVATE KEY-----
";

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    /// Path and query, e.g. `/v2/a/blobs/uploads/?mount=…`.
    pub target: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What the server answers.
pub enum Reply {
    /// A response; `Content-Length` is added from `body` unless `headers` already has one.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// `Content-Length: len` and `len` copies of `byte`, streamed (a huge body without memory).
    Repeat {
        status: u16,
        headers: Vec<(String, String)>,
        byte: u8,
        len: u64,
    },
    /// These exact bytes, then the connection is closed (for truncated or malformed answers).
    Raw(Vec<u8>),
    /// Whatever the closure writes (an answer that never ends, or comes slowly), then the
    /// connection is closed.
    Stream(Box<Writer>),
}

impl Reply {
    pub fn ok(body: &[u8], headers: &[(&str, &str)]) -> Self {
        Self::status(200, body, headers)
    }
    pub fn status(status: u16, body: &[u8], headers: &[(&str, &str)]) -> Self {
        Reply::Full {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        }
    }
    pub fn redirect(location: &str) -> Self {
        Self::status(307, b"", &[("Location", location)])
    }
    pub fn not_found() -> Self {
        Self::status(404, br#"{"errors":[{"code":"NOT_FOUND"}]}"#, &[])
    }
    /// `body` under a `Content-Length` of `declared` (a lie unless it is `body`'s length), then
    /// the connection is closed.
    pub fn declaring(status: u16, body: &[u8], declared: u64) -> Self {
        let mut out = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(body);
        Reply::Raw(out)
    }
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

/// What [`Reply::Stream`] runs on the connection.
pub type Writer = dyn FnOnce(&mut dyn Write) + Send;

pub struct Server {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Req>>>,
    tls: bool,
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

impl Server {
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(None, handler)
    }

    /// https with the built-in self-signed certificate (trusted by nothing).
    pub fn tls(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(
            Some(server_tls_config(TEST_CERT.as_bytes(), TEST_KEY.as_bytes())),
            handler,
        )
    }

    /// https with the certificate chain and key in these PEM files.
    pub fn tls_with(
        cert: &Path,
        key: &Path,
        handler: impl Fn(&Req) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let (cert, key) = (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap());
        Self::start_with(Some(server_tls_config(&cert, &key)), handler)
    }

    fn start_with(
        tls_config: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Req) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let tls = tls_config.is_some();
        let log = requests.clone();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = stopped.clone();
        // The accept loop lives as long as the test process (or until `stop`); each test
        // binds its own port.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break; // the listener closes: connections are refused from now on
                }
                let Ok(stream) = stream else { continue };
                let (handler, log, tls_config) = (handler.clone(), log.clone(), tls_config.clone());
                std::thread::spawn(move || match tls_config {
                    Some(cfg) => {
                        let conn = rustls::ServerConnection::new(cfg).unwrap();
                        let _ = serve(rustls::StreamOwned::new(conn, stream), &*handler, &log);
                    }
                    None => {
                        let _ = serve(stream, &*handler, &log);
                    }
                });
            }
        });
        Server {
            addr,
            requests,
            tls,
            stopped,
        }
    }

    /// Stops accepting connections and closes the port: later connections are refused, as
    /// when a server is down.
    pub fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag and drops the listener.
        let _ = std::net::TcpStream::connect(self.addr);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::net::TcpStream::connect(self.addr).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not stop"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http(s)://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests arrived so far.
    pub fn hits(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

fn server_tls_config(cert_pem: &[u8], key_pem: &[u8]) -> Arc<rustls::ServerConfig> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    Arc::new(cfg)
}

/// Serves requests on one connection until the client closes it or asks for a TLS handshake
/// on a plain server (first byte 0x16), which is simply dropped.
fn serve<S: Read + Write>(
    stream: S,
    handler: &Handler,
    log: &Mutex<Vec<Req>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        if reader.fill_buf()?.first().is_none_or(|b| *b == 0x16) {
            return Ok(());
        }
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return Ok(());
        };
        let (method, target) = (method.to_string(), target.to_string());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                let mut chunk = vec![0u8; n + 2];
                reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = get("content-length").and_then(|l| l.parse::<usize>().ok()) {
            body.resize(n, 0);
            reader.read_exact(&mut body)?;
        }
        let req = Req {
            method,
            target,
            headers,
            body,
        };
        log.lock().unwrap().push(req.clone());
        let head = req.method == "HEAD";
        let stream = reader.get_mut();
        match handler(&req) {
            Reply::Full {
                status,
                mut headers,
                body,
            } => {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                {
                    headers.push(("Content-Length".into(), body.len().to_string()));
                }
                write_head(stream, status, &headers)?;
                if !head {
                    stream.write_all(&body)?;
                }
                stream.flush()?;
            }
            Reply::Repeat {
                status,
                mut headers,
                byte,
                len,
            } => {
                headers.push(("Content-Length".into(), len.to_string()));
                write_head(stream, status, &headers)?;
                let block = vec![byte; 64 << 10];
                let mut left = len;
                while left > 0 {
                    let n = left.min(block.len() as u64) as usize;
                    stream.write_all(&block[..n])?;
                    left -= n as u64;
                }
                stream.flush()?;
            }
            Reply::Raw(bytes) => {
                stream.write_all(&bytes)?;
                stream.flush()?;
                return Ok(());
            }
            Reply::Stream(write) => {
                write(stream);
                let _ = stream.flush();
                return Ok(());
            }
        }
    }
}

fn write_head(w: &mut dyn Write, status: u16, headers: &[(String, String)]) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} X\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())
}
