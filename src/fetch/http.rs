//! HTTP(S) downloads with kiln's own redirect policy.
//!
//! ureq follows redirects itself, but it would follow an https URL to plain http, which lets
//! anyone on the path serve an unpinned `kiln lock` whatever they like. So redirects are off in
//! the agent and followed here: at most `MAX_REDIRECTS`, never from https to anything else, only
//! to http(s). Compression is off too (the `gzip` feature of ureq is disabled and the request
//! asks for `identity`): a content-addressed fetch must hash the bytes the server stores, not a
//! transparently decoded variant.

use std::time::Duration;

use url::Url;

use super::error::{FetchError, Result};

/// Redirects followed before giving up (SECURITY.md 20).
pub const MAX_REDIRECTS: u32 = 10;

/// A response ready to stream: the body reader and the length the server announced.
pub(crate) struct Download {
    pub body: Box<dyn std::io::Read + Send>,
    pub content_length: Option<u64>,
}

/// GETs `url`, following redirects under kiln's policy. `input` names the input in errors.
pub(crate) fn get(url: &Url, input: &str) -> Result<Download> {
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(120))
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut current = url.clone();
    let mut hops = 0;
    loop {
        let response = match agent
            .get(current.as_str())
            .set("Accept-Encoding", "identity")
            .call()
        {
            Ok(r) => r,
            Err(ureq::Error::Status(status, _)) => {
                return Err(FetchError::Http {
                    input: input.to_string(),
                    url: current.to_string(),
                    status,
                })
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(FetchError::Connect {
                    input: input.to_string(),
                    url: current.to_string(),
                    source: Box::new(t),
                })
            }
        };
        let status = response.status();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let location = response.header("location").unwrap_or("").to_string();
            let next = current
                .join(&location)
                .map_err(|_| FetchError::BadRedirect {
                    input: input.to_string(),
                    url: current.to_string(),
                    location: location.clone(),
                })?;
            check_redirect(&current, &next, input)?;
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(FetchError::TooManyRedirects {
                    input: input.to_string(),
                    url: url.to_string(),
                    limit: MAX_REDIRECTS,
                });
            }
            current = next;
            continue;
        }
        if status != 200 {
            // 1xx/204/206/3xx-without-redirect: not a full body we can pin.
            return Err(FetchError::Http {
                input: input.to_string(),
                url: current.to_string(),
                status,
            });
        }
        let content_length = response
            .header("content-length")
            .and_then(|v| v.trim().parse().ok());
        return Ok(Download {
            body: response.into_reader(),
            content_length,
        });
    }
}

/// The redirect policy: only to http(s), and never from https down to http.
pub(crate) fn check_redirect(from: &Url, to: &Url, input: &str) -> Result<()> {
    match (from.scheme(), to.scheme()) {
        ("https", "https") | ("http", "http") | ("http", "https") => Ok(()),
        ("https", "http") => Err(FetchError::Downgrade {
            input: input.to_string(),
            from: from.to_string(),
            to: to.to_string(),
        }),
        _ => Err(FetchError::BadRedirect {
            input: input.to_string(),
            url: from.to_string(),
            location: to.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_policy() {
        let cases = [
            ("https://a/x", "https://b/y", true),
            ("http://a/x", "http://b/y", true),
            ("http://a/x", "https://a/x", true),
            ("https://a/x", "http://a/x", false),
            ("https://a/x", "file:///etc/passwd", false),
            ("http://a/x", "file:///etc/passwd", false),
            ("http://a/x", "ftp://a/x", false),
        ];
        for (from, to, ok) in cases {
            let res = check_redirect(&from.parse().unwrap(), &to.parse().unwrap(), "in");
            assert_eq!(res.is_ok(), ok, "{from} -> {to}: {res:?}");
        }
        let err = check_redirect(
            &"https://a/x".parse().unwrap(),
            &"http://a/x".parse().unwrap(),
            "in",
        )
        .unwrap_err();
        assert!(matches!(err, FetchError::Downgrade { .. }), "{err:?}");
        assert!(err.to_string().contains("https://a/x") && err.to_string().contains("http://a/x"));
    }
}
