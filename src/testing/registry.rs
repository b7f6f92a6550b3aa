//! A real CNCF distribution registry (Debian's `docker-registry`) for integration tests that
//! drive the `kiln` binary against `docker://127.0.0.1:PORT/…`: started on 127.0.0.1 and a free
//! port with its own storage directory, optionally with htpasswd (bcrypt) basic auth, and
//! killed when dropped. The binary missing fails the test, everywhere.
//!
//! One harness for the unit tests (as `crate::testing::registry`) and the integration tests
//! (`tests/it/main.rs` includes this file by path as `registry_support`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub struct LocalRegistry {
    child: Child,
    pub root: tempfile::TempDir,
    /// `127.0.0.1:PORT`, what goes after `docker://`.
    pub host: String,
    tls: bool,
}

impl LocalRegistry {
    /// Starts `docker-registry serve CONFIG`; `users` (name, password) turns on basic auth.
    pub fn start(users: &[(&str, &str)]) -> Self {
        Self::start_with(users, None, false)
    }

    /// [`LocalRegistry::start`] in distribution's read-only mode (`maintenance: readonly`):
    /// pulls work, every push is refused with 405.
    pub fn start_read_only() -> Self {
        Self::start_with(&[], None, true)
    }

    /// [`LocalRegistry::start`] speaking https only, with this certificate and key (PEM).
    pub fn start_tls(users: &[(&str, &str)], cert: &Path, key: &Path) -> Self {
        Self::start_with(users, Some((cert, key)), false)
    }

    fn start_with(users: &[(&str, &str)], tls: Option<(&Path, &Path)>, read_only: bool) -> Self {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install the Debian package docker-registry (scripts/setup.sh)"
        );
        let root = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let storage = root.path().join("storage");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: kiln-test\n",
            storage.display()
        );
        if read_only {
            config = config.replace(
                "  delete:\n",
                "  maintenance:\n    readonly:\n      enabled: true\n  delete:\n",
            );
        }
        if let Some((cert, key)) = tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if !users.is_empty() {
            let htpasswd = root.path().join("htpasswd");
            let lines: String = users
                .iter()
                .map(|(u, p)| format!("{u}:{}\n", bcrypt::hash(p, 5).unwrap()))
                .collect();
            fs_err::write(&htpasswd, lines).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = root.path().join("config.yml");
        fs_err::write(&config_path, config).unwrap();
        let log = fs_err::File::create(root.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.file().try_clone().unwrap())
            .stderr(log.into_parts().0)
            .spawn()
            .unwrap();
        let mut reg = LocalRegistry {
            child,
            root,
            host,
            tls: tls.is_some(),
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        let url = format!("http://{}/v2/", self.host);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // An https registry is ready when it accepts connections (its certificate is the
            // test's own, which this probe need not trust).
            let ready = if self.tls {
                std::net::TcpStream::connect(&self.host)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                match ureq::get(&url).call() {
                    Ok(_) | Err(ureq::Error::StatusCode(401)) => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            };
            match ready {
                Ok(()) => return,
                Err(_) if Instant::now() < deadline => {}
                Err(e) => panic!(
                    "registry at {} did not start: {e}\n{}",
                    self.host,
                    self.log()
                ),
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("registry exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The registry's own log (warnings and errors), for failure messages.
    pub fn log(&self) -> String {
        fs_err::read_to_string(self.root.path().join("registry.log")).unwrap_or_default()
    }

    /// `docker://127.0.0.1:PORT/{repo_and_tag}`.
    pub fn reference(&self, repo_and_tag: &str) -> String {
        format!("docker://{}/{repo_and_tag}", self.host)
    }

    /// Where distribution's filesystem driver keeps the bytes of blob `sha256:{hex}`.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.root.path().join(format!(
            "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }

    /// Writes a containers-auth.json with credentials for this registry into `dir`; point
    /// `REGISTRY_AUTH_FILE` at the returned path.
    pub fn write_auth_file(&self, dir: &Path, user: &str, password: &str) -> PathBuf {
        let path = dir.join("auth.json");
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        fs_err::write(
            &path,
            format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, self.host),
        )
        .unwrap();
        path
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn local_registry_starts_and_requires_auth_when_asked() {
    let open = LocalRegistry::start(&[]);
    assert_eq!(
        ureq::get(&format!("http://{}/v2/", open.host))
            .call()
            .unwrap()
            .status(),
        200
    );
    let locked = LocalRegistry::start(&[("u", "p")]);
    let url = format!("http://{}/v2/", locked.host);
    assert!(matches!(
        ureq::get(&url).call(),
        Err(ureq::Error::StatusCode(401))
    ));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("u:p")
    );
    assert_eq!(
        ureq::get(&url)
            .header("Authorization", &basic)
            .call()
            .unwrap()
            .status(),
        200
    );
}
