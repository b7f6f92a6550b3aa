//! Debian version numbers, ordered exactly as `dpkg --compare-versions` orders them
//! (deb-version(7)): `[epoch:]upstream[-revision]`, compared epoch first (numerically), then
//! upstream, then revision, each with dpkg's `verrevcmp`: alternating non-digit runs (compared
//! character by character, `~` before everything, even the end; letters before other
//! characters) and digit runs (compared numerically).

use std::cmp::Ordering;
use std::fmt;

/// A parsed Debian version. `Ord` is dpkg's order; `Eq` is "compares equal" (so `1.0` and
/// `0:1.0` are equal, as for dpkg).
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    epoch: u64,
    upstream: (usize, usize),
    revision: (usize, usize),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("version `{0}` is empty")]
    Empty(String),
    #[error("version `{0}` has a bad epoch: it must be a number")]
    BadEpoch(String),
    #[error("version `{0}` has an empty upstream part")]
    EmptyUpstream(String),
    #[error("version `{0}` has an empty revision")]
    EmptyRevision(String),
    #[error("version `{0}` contains `{1}`, which deb-version(7) does not allow")]
    BadCharacter(String, char),
}

impl Version {
    /// Parses like dpkg's `parseversion`: surrounding blanks are trimmed, an epoch must be a
    /// number, characters are limited to what deb-version(7) allows.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let text = s.trim().to_string();
        if text.is_empty() {
            return Err(VersionError::Empty(s.to_string()));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".+-~:".contains(*c)))
        {
            return Err(VersionError::BadCharacter(text, c));
        }
        let (epoch, rest_start) = match text.find(':') {
            Some(i) => {
                let e = &text[..i];
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(VersionError::BadEpoch(text));
                }
                let epoch = e
                    .parse()
                    .map_err(|_| VersionError::BadEpoch(text.clone()))?;
                (epoch, i + 1)
            }
            None => (0, 0),
        };
        let rest = &text[rest_start..];
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => {
                if i + 1 == rest.len() {
                    return Err(VersionError::EmptyRevision(text));
                }
                (
                    (rest_start, rest_start + i),
                    (rest_start + i + 1, text.len()),
                )
            }
            None => ((rest_start, text.len()), (text.len(), text.len())),
        };
        if upstream.0 == upstream.1 {
            return Err(VersionError::EmptyUpstream(text));
        }
        Ok(Version {
            text,
            epoch,
            upstream,
            revision,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    #[cfg(test)]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn upstream(&self) -> &str {
        &self.text[self.upstream.0..self.upstream.1]
    }

    /// Empty when the version has no `-revision`.
    pub(crate) fn revision(&self) -> &str {
        &self.text[self.revision.0..self.revision.1]
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream(), other.upstream()))
            .then_with(|| verrevcmp(self.revision(), other.revision()))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// dpkg's `order()`: `~` sorts before everything (even the end of the string), letters
/// before non-letters.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0;
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == 0 {
                first_diff = i32::from(a[i]) - i32::from(b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn orders_like_deb_version_7() {
        let table = [
            ("1.0", "1.0", Ordering::Equal),
            ("0:1.0", "1.0", Ordering::Equal),
            ("1.0~rc1", "1.0", Ordering::Less),
            ("1.0~~", "1.0~", Ordering::Less),
            ("1.0", "1.0+b1", Ordering::Less),
            ("1.0-1", "1.0-1+deb12u1", Ordering::Less),
            ("1:0.1", "2.0", Ordering::Greater),
            ("1.10", "1.9", Ordering::Greater),
            ("1.0a", "1.0", Ordering::Greater),
            ("1.0a", "1.0+", Ordering::Less),
            ("1.001", "1.1", Ordering::Equal),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Ordering::Less),
            ("1.0-1", "1.0-1~bpo1", Ordering::Greater),
            ("7.88.1-10+deb12u5", "7.88.1-10", Ordering::Greater),
        ];
        for (a, b, want) in table {
            assert_eq!(v(a).cmp(&v(b)), want, "{a} vs {b}");
            assert_eq!(v(b).cmp(&v(a)), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn splits_epoch_upstream_revision() {
        let x = v("2:1.2-3-4");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (2, "1.2-3", "4"));
        let y = v("1.2");
        assert_eq!((y.epoch(), y.upstream(), y.revision()), (0, "1.2", ""));
    }

    #[test]
    fn refuses_what_dpkg_refuses() {
        for bad in ["", "a:1.0", ":1.0", "1.0-", "1:", "1.0 2", "1.0_1"] {
            assert!(Version::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// The same order as the real `dpkg --compare-versions`, on every pair of a varied set.
    #[test]
    fn agrees_with_dpkg_compare_versions() {
        let versions = [
            "0",
            "1",
            "1.0",
            "1.0-1",
            "1.0-1+b1",
            "1.0-1~bpo12+1",
            "1.0~rc1",
            "1.0~rc1-1",
            "1.0~",
            "1.0~~",
            "1.0a",
            "1.0+",
            "1.0+dfsg",
            "1.0.1",
            "1.00",
            "1.001",
            "1.10",
            "1.9",
            "2:0.1",
            "1:1.0",
            "0:1.0",
            "1.0-0",
            "2.36-9+deb12u4",
            "2.36-9+deb12u10",
            "3.0.11-1~deb12u2",
            "3.0.15-1~deb12u1",
            "1.35.0-4+b3",
            "2024a-0+deb12u1",
            "20230311",
            "1.2.3-4-5",
            "a1",
            "9.9z",
            "1.0-a",
            "1.0-A",
            "1.0-+",
            "1.0-.",
            "10",
            "9",
            "1~",
            "1~a",
        ];
        let mut mismatches = Vec::new();
        for a in versions {
            for b in versions {
                let dpkg = |op: &str| {
                    std::process::Command::new("dpkg")
                        .args(["--compare-versions", a, op, b])
                        .status()
                        .expect("dpkg must be installed")
                        .success()
                };
                let want = if dpkg("lt") {
                    Ordering::Less
                } else if dpkg("eq") {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                };
                if v(a).cmp(&v(b)) != want {
                    mismatches.push(format!("{a} vs {b}: dpkg says {want:?}"));
                }
            }
        }
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }
}
