//! Newtypes for the recipe values that have rules: file modes, owners, platforms, paths inside
//! the image, and OCI reference names.
//!
//! Each is valid by construction ("parse, don't validate"): it is built only through `FromStr`,
//! keeps a canonical text form, and serializes through that form, so that the build plan and
//! the provenance never see a value the parser would have refused.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::platform::Platform;
use crate::platform::PlatformError;

/// Why a recipe value was refused. The caller adds which key and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(
        "`{0}` is not an octal mode: expected 3 or 4 octal digits such as \"0644\" or \"1777\""
    )]
    Mode(String),
    #[error("`{0}` is not an owner: expected numeric \"uid:gid\" such as \"0:0\"")]
    Owner(String),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("`{0}` is not an absolute path")]
    RelativePath(String),
    #[error("`{0}` contains `..`; paths inside the image must not climb")]
    DotDot(String),
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
    #[error("`{0}` is not a valid OCI reference name: expected components of [A-Za-z0-9] joined by one of `-._:@+` or `--`, separated by `/`")]
    RefName(String),
    #[error("`{0}` is not a valid input name: expected a letter or digit followed by letters, digits, `.`, `_` or `-`")]
    InputName(String),
}

impl ValueError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Platform(e) => e.hint(),
            _ => None,
        }
    }
}

/// Unix permission bits including setuid, setgid and sticky (at most `0o7777`).
///
/// Written in a recipe as a quoted octal string (`"0644"`, `"1777"`): TOML integers are decimal,
/// and `644` would silently mean `0o1204`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mode(u32);

impl Mode {
    /// The default mode of a `write` step.
    pub const FILE: Mode = Mode(0o644);
    /// The default mode of a `mkdir` step and of directories created implicitly.
    pub const DIR: Mode = Mode(0o755);

    /// `bits` must be at most `0o7777`.
    pub fn from_bits(bits: u32) -> Option<Self> {
        (bits <= 0o7777).then_some(Self(bits))
    }

    pub fn bits(self) -> u32 {
        self.0
    }
}

impl FromStr for Mode {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let ok = (3..=4).contains(&s.len()) && s.bytes().all(|b| (b'0'..=b'7').contains(&b));
        if !ok {
            return Err(ValueError::Mode(s.to_string()));
        }
        u32::from_str_radix(s, 8)
            .ok()
            .and_then(Self::from_bits)
            .ok_or_else(|| ValueError::Mode(s.to_string()))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// Numeric owner of an entry. Names would need the image's `/etc/passwd`, which a build must
/// not depend on.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

impl FromStr for Owner {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::Owner(s.to_string());
        let (uid, gid) = s.split_once(':').ok_or_else(bad)?;
        let num = |t: &str| {
            if t.is_empty() || t.len() > 10 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse::<u32>().ok()
        };
        Ok(Owner {
            uid: num(uid).ok_or_else(bad)?,
            gid: num(gid).ok_or_else(bad)?,
        })
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// An absolute path inside the image, normalized: no `.` components, no repeated or trailing
/// slashes (except the root `/` itself), no `..`, no NUL.
///
/// Parsing normalizes `/srv//www/./` to `/srv/www`; it refuses `..` rather than resolving it,
/// because what `..` means depends on symlinks that only exist at build time.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImagePath(String);

impl ImagePath {
    pub fn root() -> Self {
        Self("/".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The components after the root, e.g. `["srv", "www"]` for `/srv/www`.
    #[cfg(test)]
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }
}

impl FromStr for ImagePath {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.contains('\0') {
            return Err(ValueError::Nul(s.to_string()));
        }
        if !s.starts_with('/') {
            return Err(ValueError::RelativePath(s.to_string()));
        }
        let mut out = String::with_capacity(s.len());
        for c in s.split('/').filter(|c| !c.is_empty() && *c != ".") {
            if c == ".." {
                return Err(ValueError::DotDot(s.to_string()));
            }
            out.push('/');
            out.push_str(c);
        }
        if out.is_empty() {
            out.push('/');
        }
        Ok(Self(out))
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name valid as `org.opencontainers.image.ref.name` (OCI image-layout), e.g. `hello`,
/// `library/debian:12`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefName(String);

impl RefName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RefName {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        if !crate::reference::is_ref_name(s) {
            return Err(ValueError::RefName(s.to_string()));
        }
        Ok(Self(s.to_string()))
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the name of an `[inputs.NAME]` table: it appears in cache paths, provenance and
/// messages, so it stays a plain identifier.
pub(crate) fn check_input_name(name: &str) -> Result<(), ValueError> {
    let b = name.as_bytes();
    let ok = b.first().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
    ok.then_some(())
        .ok_or_else(|| ValueError::InputName(name.to_string()))
}

/// Serde through the canonical string form for every newtype above.
macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($t), self.to_string())
            }
        }
    )*};
}
serde_via_str!(Mode, Owner, ImagePath, RefName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        let cases: &[(&str, Option<u32>)] = &[
            ("0644", Some(0o644)),
            ("644", Some(0o644)),
            ("1777", Some(0o1777)),
            ("7777", Some(0o7777)),
            ("0000", Some(0)),
            ("0o644", None),
            ("0648", None),
            ("17777", None),
            ("64", None),
            ("", None),
            ("-644", None),
        ];
        for (text, want) in cases {
            let got = text.parse::<Mode>().ok().map(Mode::bits);
            assert_eq!(got, *want, "{text:?}");
        }
        assert_eq!("644".parse::<Mode>().unwrap().to_string(), "0644");
        assert_eq!(serde_json::to_string(&Mode::DIR).unwrap(), "\"0755\"");
    }

    #[test]
    fn owners() {
        let cases: &[(&str, Option<(u32, u32)>)] = &[
            ("0:0", Some((0, 0))),
            ("65532:65532", Some((65532, 65532))),
            ("4294967295:1", Some((u32::MAX, 1))),
            ("4294967296:1", None),
            ("root:root", None),
            ("0", None),
            ("0:", None),
            (":0", None),
            ("+1:0", None),
            ("0:0:0", None),
        ];
        for (text, want) in cases {
            let got = text.parse::<Owner>().ok().map(|o| (o.uid, o.gid));
            assert_eq!(got, *want, "{text:?}");
        }
    }

    #[test]
    fn image_paths() {
        let cases: &[(&str, Result<&str, ()>)] = &[
            ("/", Ok("/")),
            ("//", Ok("/")),
            ("/.", Ok("/")),
            ("/srv/www", Ok("/srv/www")),
            ("/srv//www/./", Ok("/srv/www")),
            ("/a/.b/c..d", Ok("/a/.b/c..d")),
            ("srv/www", Err(())),
            ("", Err(())),
            ("./x", Err(())),
            ("/a/../b", Err(())),
            ("/a\0b", Err(())),
        ];
        for (text, want) in cases {
            let got = text
                .parse::<ImagePath>()
                .map(|p| p.to_string())
                .map_err(|_| ());
            assert_eq!(got.as_deref(), want.as_deref().map_err(|_| &()), "{text:?}");
        }
        let p: ImagePath = "/srv/www".parse().unwrap();
        assert_eq!(p.components().collect::<Vec<_>>(), ["srv", "www"]);
    }

    #[test]
    fn ref_names() {
        for good in [
            "hello",
            "a",
            "library/debian:12",
            "x--y",
            "v1.0+build",
            "a@b",
            "A_b.c-d",
        ] {
            assert!(good.parse::<RefName>().is_ok(), "{good:?}");
        }
        for bad in [
            "", "-a", "a-", "a//b", "/a", "a/", "a..b", "a---b", "a b", "a_", "é",
        ] {
            assert!(bad.parse::<RefName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn input_names() {
        for good in ["busybox", "site", "a.b_c-1", "9"] {
            assert!(check_input_name(good).is_ok(), "{good:?}");
        }
        for bad in ["", ".x", "-x", "a/b", "a b", "ü"] {
            assert!(check_input_name(bad).is_err(), "{bad:?}");
        }
    }
}
