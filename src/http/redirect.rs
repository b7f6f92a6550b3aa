//! The redirect policy (SECURITY.md 20), the same for url inputs and registries: only to
//! http(s), never from https down to plain http (anyone on the path could then serve an
//! unpinned `kiln lock` whatever they like), at most [`MAX_REDIRECTS`] hops. Where credentials
//! may go after a hop is [`super::same_origin`]'s business.

use url::Url;

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: u32 = 10;

/// Why a redirect is not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectRefused {
    /// No `Location`, or one that is not a URL.
    Invalid { location: String },
    /// To a scheme other than http(s) (`file://`, `ftp://`).
    Scheme { to: Url },
    /// From https to plain http.
    Downgrade { to: Url },
    /// More than [`MAX_REDIRECTS`] hops.
    TooMany,
}

/// Counts the hops of one request's redirect chain.
#[derive(Debug, Default)]
pub struct Redirects {
    hops: u32,
}

impl Redirects {
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the answer to `from` with `location` leads, if kiln may follow it.
    pub fn follow(&mut self, from: &Url, location: Option<&str>) -> Result<Url, RedirectRefused> {
        let invalid = || RedirectRefused::Invalid {
            location: location.unwrap_or("").to_string(),
        };
        let to = from
            .join(location.ok_or_else(invalid)?)
            .map_err(|_| invalid())?;
        match (from.scheme(), to.scheme()) {
            ("https", "https") | ("http", "http") | ("http", "https") => {}
            ("https", "http") => return Err(RedirectRefused::Downgrade { to }),
            _ => return Err(RedirectRefused::Scheme { to }),
        }
        self.hops += 1;
        if self.hops > MAX_REDIRECTS {
            return Err(RedirectRefused::TooMany);
        }
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_never_down_from_https() {
        let cases = [
            ("https://a/x", Some("https://b/y"), true),
            ("http://a/x", Some("http://b/y"), true),
            ("http://a/x", Some("https://a/x"), true),
            ("https://a/x", Some("/relative"), true),
            ("https://a/x", Some("http://a/x"), false),
            ("https://a/x", Some("file:///etc/passwd"), false),
            ("http://a/x", Some("file:///etc/passwd"), false),
            ("http://a/x", Some("ftp://a/x"), false),
            ("http://a/x", None, false),
        ];
        for (from, location, ok) in cases {
            let res = Redirects::new().follow(&from.parse().unwrap(), location);
            assert_eq!(res.is_ok(), ok, "{from} -> {location:?}: {res:?}");
        }
        let err = Redirects::new()
            .follow(&"https://a/x".parse().unwrap(), Some("http://a/x"))
            .unwrap_err();
        assert!(matches!(err, RedirectRefused::Downgrade { .. }), "{err:?}");
    }

    #[test]
    fn at_most_ten_hops() {
        let from: Url = "https://a/x".parse().unwrap();
        let mut chain = Redirects::new();
        for _ in 0..MAX_REDIRECTS {
            chain.follow(&from, Some("/y")).unwrap();
        }
        assert_eq!(
            chain.follow(&from, Some("/y")),
            Err(RedirectRefused::TooMany)
        );
    }
}
