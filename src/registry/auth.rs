//! Credentials the way podman, skopeo and docker users already configure them, and the
//! `WWW-Authenticate` challenges of the distribution token protocol.
//!
//! Search order (containers-auth.json(5), then docker): `$REGISTRY_AUTH_FILE`,
//! `${XDG_RUNTIME_DIR}/containers/auth.json`, `~/.docker/config.json`. The first file that has an
//! entry for the registry wins. Entries are `auths.{key}.auth` = base64 `user:password`, where
//! the key is `host[:port]`, `host[:port]/namespace…` (most specific wins) or a legacy URL like
//! `https://index.docker.io/v1/`. Credential helpers (`credHelpers`, `credsStore`) are not run:
//! kiln never executes programs named by a config file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::error::{RegistryError, Result};

/// A user name and password for one registry. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic …` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The auth files to search, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthFiles(pub(crate) Vec<PathBuf>);

impl AuthFiles {
    /// The default search order, from the environment.
    pub(crate) fn from_env() -> Self {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let mut files = Vec::new();
        if let Some(p) = var("REGISTRY_AUTH_FILE") {
            files.push(p);
        }
        if let Some(dir) = var("XDG_RUNTIME_DIR") {
            files.push(dir.join("containers/auth.json"));
        }
        if let Some(home) = var("HOME") {
            files.push(home.join(".docker/config.json"));
        }
        Self(files)
    }

    /// No credentials at all (anonymous only).
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// Credentials for `registry/repository` from the first file that has an entry. Missing
    /// files are skipped; unreadable or malformed ones are errors (a silent fallback to
    /// anonymous would hide the real problem).
    pub(crate) fn lookup(&self, registry: &str, repository: &str) -> Result<Option<Credentials>> {
        for path in &self.0 {
            let text = match fs_err::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(RegistryError::AuthFile {
                        path: path.clone(),
                        source: e,
                    })
                }
            };
            if let Some(c) = lookup_in(path, &text, registry, repository)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
}

fn normalize_key(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    // Legacy docker keys carry a `/v1/` or `/v2/` API path, which is not a namespace.
    let key = key.strip_suffix('/').unwrap_or(key);
    match key.strip_suffix("/v1").or_else(|| key.strip_suffix("/v2")) {
        Some(k) => k,
        None => key,
    }
}

fn lookup_in(
    path: &Path,
    text: &str,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>> {
    let file: AuthFile = serde_json::from_str(text).map_err(|e| RegistryError::AuthFileJson {
        path: path.to_path_buf(),
        source: e,
    })?;
    let hosts: Vec<&str> = if registry == "docker.io" {
        vec!["docker.io", "index.docker.io", "registry-1.docker.io"]
    } else {
        vec![registry]
    };
    let full = format!("{registry}/{repository}");
    let mut best: Option<(usize, &AuthEntry, &str)> = None;
    for (key, entry) in &file.auths {
        let norm = normalize_key(key);
        let (host, ns) = match norm.split_once('/') {
            Some((h, ns)) => (h, Some(ns)),
            None => (norm, None),
        };
        if !hosts.contains(&host) {
            continue;
        }
        let specificity = match ns {
            None => 0,
            Some(ns) => {
                let scoped = format!("{registry}/{ns}");
                if full == scoped || full.starts_with(&format!("{scoped}/")) {
                    scoped.len()
                } else {
                    continue;
                }
            }
        };
        if best.is_none_or(|(s, _, _)| specificity > s) {
            best = Some((specificity, entry, key));
        }
    }
    let Some((_, entry, key)) = best else {
        return Ok(None);
    };
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let bad = |reason| RegistryError::AuthFileEntry {
        path: path.to_path_buf(),
        host: key.to_string(),
        reason,
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad("`auth` is not valid base64"))?;
    let raw = String::from_utf8(raw).map_err(|_| bad("`auth` is not UTF-8"))?;
    let (username, password) = raw
        .split_once(':')
        .ok_or_else(|| bad("`auth` is not `user:password`"))?;
    Ok(Some(Credentials {
        username: username.to_string(),
        password: password.to_string(),
    }))
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses `Basic realm="x"` or `Bearer realm="…",service="…",scope="…"`; `None` for an
    /// unknown scheme or a Bearer challenge without a realm.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = header
            .split_once(char::is_whitespace)
            .unwrap_or((header, ""));
        let params = parse_params(rest)?;
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic {
                realm: params.get("realm").cloned(),
            }),
            "bearer" => Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            }),
            _ => None,
        }
    }
}

/// `k=v` or `k="quoted, \"v\""` pairs separated by commas; keys are lowercased.
fn parse_params(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return None;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let cases: Vec<(&str, Option<Challenge>)> = vec![
            ("Basic realm=\"kiln\"", Some(Challenge::Basic { realm: Some("kiln".into()) })),
            ("basic", Some(Challenge::Basic { realm: None })),
            (
                "Bearer realm=\"https://auth.example/token\",service=\"reg.example\",scope=\"repository:a/b:pull,push\"",
                Some(Challenge::Bearer {
                    realm: "https://auth.example/token".into(),
                    service: Some("reg.example".into()),
                    scope: Some("repository:a/b:pull,push".into()),
                }),
            ),
            (
                "Bearer realm=http://127.0.0.1:1/t, service=x",
                Some(Challenge::Bearer { realm: "http://127.0.0.1:1/t".into(), service: Some("x".into()), scope: None }),
            ),
            ("Bearer service=\"x\"", None),
            ("Negotiate abc", None),
            ("Bearer realm=\"unterminated", None),
        ];
        for (input, want) in cases {
            assert_eq!(Challenge::parse(input), want, "{input}");
        }
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn finds_credentials_by_host_namespace_and_legacy_url() {
        let text = format!(
            r#"{{"auths":{{
                "reg.example:5000":{{"auth":"{}"}},
                "reg.example:5000/team":{{"auth":"{}"}},
                "https://index.docker.io/v1/":{{"auth":"{}"}},
                "other.example":{{}}
            }}}}"#,
            b64("alice:pw:with:colons"),
            b64("team:tpw"),
            b64("hub:hpw"),
        );
        let p = Path::new("auth.json");
        let get = |reg, repo| lookup_in(p, &text, reg, repo).unwrap().map(|c| c.username);
        assert_eq!(get("reg.example:5000", "x/y"), Some("alice".into()));
        assert_eq!(get("reg.example:5000", "team/app"), Some("team".into()));
        assert_eq!(get("reg.example:5000", "teamx/app"), Some("alice".into()));
        assert_eq!(get("docker.io", "library/debian"), Some("hub".into()));
        assert_eq!(get("other.example", "a"), None);
        assert_eq!(get("reg.example", "a"), None);
        let c = lookup_in(p, &text, "reg.example:5000", "a")
            .unwrap()
            .unwrap();
        assert_eq!(c.password, "pw:with:colons");
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn malformed_auth_entries_are_errors_naming_the_file() {
        let p = Path::new("/x/auth.json");
        let err = lookup_in(
            p,
            r#"{"auths":{"r.example":{"auth":"%%%"}}}"#,
            "r.example",
            "a",
        )
        .unwrap_err();
        assert!(err.to_string().contains("/x/auth.json"), "{err}");
        let err = lookup_in(p, "{", "r.example", "a").unwrap_err();
        assert!(matches!(err, RegistryError::AuthFileJson { .. }));
        let nocolon = format!(
            r#"{{"auths":{{"r.example":{{"auth":"{}"}}}}}}"#,
            b64("nocolon")
        );
        assert!(lookup_in(p, &nocolon, "r.example", "a").is_err());
    }

    #[test]
    fn search_order_skips_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let second = dir.path().join("second.json");
        fs_err::write(
            &second,
            format!(r#"{{"auths":{{"h.example":{{"auth":"{}"}}}}}}"#, b64("u:p")),
        )
        .unwrap();
        let files = AuthFiles(vec![dir.path().join("missing.json"), second]);
        assert_eq!(
            files.lookup("h.example", "r").unwrap().unwrap().username,
            "u"
        );
        assert_eq!(AuthFiles::none().lookup("h.example", "r").unwrap(), None);
    }
}
