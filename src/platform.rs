//! `Platform`: an OCI platform, `os/arch[/variant]`, valid by construction.
//!
//! One type for the recipe's `[image] platform`, the `--platform` of the commands that read
//! images, and the entry picked from an index, so all of them accept the same names and match
//! them the same way. OCI takes Go's names (`GOOS`, `GOARCH`); kiln does not rename aliases
//! (`aarch64` is refused with the list of valid names, not read as `arm64`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("`{0}` is not a platform: expected os/arch[/variant] in lowercase, such as \"linux/amd64\" or \"linux/arm/v7\"")]
    Invalid(String),
    #[error("`{0}` names an unknown operating system `{os}`", os = part(.0, 0))]
    UnknownOs(String),
    #[error("`{0}` names an unknown architecture `{arch}`", arch = part(.0, 1))]
    UnknownArch(String),
}

impl PlatformError {
    /// The names OCI accepts, for an unknown one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Invalid(_) => None,
            Self::UnknownOs(_) => Some(format!(
                "OCI platforms use Go's GOOS names: {}",
                KNOWN_OS.join(", ")
            )),
            Self::UnknownArch(_) => Some(format!(
                "OCI platforms use Go's GOARCH names: {}",
                KNOWN_ARCH.join(", ")
            )),
        }
    }
}

/// `os/arch[/variant]`, kept in its canonical text form, with Go's architecture names as OCI
/// uses them (`amd64`, `arm64`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform(String);

impl Platform {
    /// `linux/<this machine's architecture>`, the default platform.
    pub fn host() -> Self {
        Self(format!("linux/{}", host_goarch()))
    }

    pub fn os(&self) -> &str {
        self.parts().0
    }

    pub fn architecture(&self) -> &str {
        self.parts().1
    }

    pub fn variant(&self) -> Option<&str> {
        self.parts().2
    }

    /// Whether an index entry for `os`/`architecture`/`variant` serves this platform, and how
    /// closely. A platform without a variant takes any variant (an index says `linux/arm64/v8`
    /// for plain `linux/arm64`); an entry without a variant stands for its architecture's
    /// default one, as containerd normalizes it (`linux/arm64` is `linux/arm64/v8`). An entry's
    /// `os.version` and `os.features` are not compared: a kiln platform does not name them.
    pub fn fit(&self, os: &str, architecture: &str, variant: Option<&str>) -> Option<Fit> {
        if self.os() != os || self.architecture() != architecture {
            return None;
        }
        match (self.variant(), variant) {
            (want, have) if want == have => Some(Fit::Exact),
            (None, Some(_)) => Some(Fit::Compatible),
            (Some(want), None) if default_variant(architecture) == Some(want) => {
                Some(Fit::Compatible)
            }
            _ => None,
        }
    }

    /// Whether an index entry serves this platform at all (see [`Platform::fit`]).
    pub fn is_served_by(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        self.fit(os, architecture, variant).is_some()
    }

    fn parts(&self) -> (&str, &str, Option<&str>) {
        let mut it = self.0.split('/');
        let os = it.next().unwrap_or_default();
        let arch = it.next().unwrap_or_default();
        (os, arch, it.next())
    }
}

/// How an index entry serves a platform; an index's exact entry wins over an earlier
/// compatible one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fit {
    /// The same os, architecture and variant.
    Exact,
    /// Served through a missing variant (see [`Platform::fit`]).
    Compatible,
}

impl Fit {
    /// The entry that serves best, `fit` saying how each one does: the first exact one, else
    /// the first compatible one.
    pub fn best<T>(
        entries: impl IntoIterator<Item = T>,
        fit: impl Fn(&T) -> Option<Fit>,
    ) -> Option<T> {
        entries
            .into_iter()
            .filter_map(|e| Some((fit(&e)?, e)))
            .min_by_key(|(f, _)| *f)
            .map(|(_, e)| e)
    }
}

/// The variant an index entry without one stands for (containerd's `platforms.Normalize`).
fn default_variant(architecture: &str) -> Option<&'static str> {
    match architecture {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        "amd64" => Some("v1"),
        _ => None,
    }
}

/// The operating systems an OCI platform may name: Go's `GOOS` values (`go tool dist list`),
/// which the image spec adopts.
pub const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];

/// The architectures an OCI platform may name: Go's `GOARCH` values.
pub const KNOWN_ARCH: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

/// Component `n` of an `os/arch[/variant]` string (for messages).
fn part(platform: &str, n: usize) -> &str {
    platform.split('/').nth(n).unwrap_or_default()
}

/// Maps Rust's `target_arch` to the GOARCH names OCI platforms use.
fn host_goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other, // arm, s390x, riscv64, mips64 share their names
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        let part_ok = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(part_ok) {
            return Err(PlatformError::Invalid(s.to_string()));
        }
        if !KNOWN_OS.contains(&parts[0]) {
            return Err(PlatformError::UnknownOs(s.to_string()));
        }
        if !KNOWN_ARCH.contains(&parts[1]) {
            return Err(PlatformError::UnknownArch(s.to_string()));
        }
        Ok(Self(s.to_string()))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Platform({:?})", self.0)
    }
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        for good in [
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v7",
            "linux/arm64/v8",
            "windows/amd64",
        ] {
            let p: Platform = good.parse().unwrap();
            assert_eq!(p.to_string(), good);
        }
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "Linux/amd64",
            "linux/arm/v7/x",
            "linux amd64",
            "linux/am d64",
            "linux/aarch64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
        }
        let err = "linux/amd46".parse::<Platform>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`linux/amd46` names an unknown architecture `amd46`"
        );
        let hint = err.hint().unwrap();
        assert!(
            hint.starts_with("OCI platforms use Go's GOARCH names: 386, amd64, arm, arm64,"),
            "{hint}"
        );
        let err = "lunix/amd64".parse::<Platform>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`lunix/amd64` names an unknown operating system `lunix`"
        );
        let hint = err.hint().unwrap();
        assert!(
            hint.starts_with("OCI platforms use Go's GOOS names: aix,") && hint.contains(" linux,"),
            "{hint}"
        );
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(
            (p.os(), p.architecture(), p.variant()),
            ("linux", "arm", Some("v7"))
        );
        let host = Platform::host();
        assert_eq!(host.os(), "linux");
        assert!(!["x86_64", "aarch64"].contains(&host.architecture()));
    }

    #[test]
    fn a_missing_variant_takes_any() {
        let arm64: Platform = "linux/arm64".parse().unwrap();
        let v8: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(arm64.is_served_by("linux", "arm64", Some("v8")));
        assert!(arm64.is_served_by("linux", "arm64", None));
        assert!(v8.is_served_by("linux", "arm64", Some("v8")));
        assert!(!v8.is_served_by("linux", "arm64", Some("v7")));
        assert!(!arm64.is_served_by("linux", "amd64", None));
    }

    /// An index entry without a variant stands for its architecture's default variant.
    #[test]
    fn an_entry_without_a_variant_is_the_default_variant() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        for (want, entry, fit) in [
            ("linux/arm64/v8", ("arm64", None), Some(Fit::Compatible)),
            ("linux/arm64/v9", ("arm64", None), None),
            ("linux/arm/v7", ("arm", None), Some(Fit::Compatible)),
            ("linux/arm/v6", ("arm", None), None),
            ("linux/amd64/v1", ("amd64", None), Some(Fit::Compatible)),
            ("linux/amd64/v2", ("amd64", None), None),
            ("linux/386/v1", ("386", None), None),
            ("linux/arm64", ("arm64", Some("v8")), Some(Fit::Compatible)),
            ("linux/arm64", ("arm64", None), Some(Fit::Exact)),
            ("linux/arm64/v8", ("arm64", Some("v8")), Some(Fit::Exact)),
            ("linux/arm/v7", ("arm", Some("v6")), None),
            ("windows/amd64", ("amd64", None), Some(Fit::Exact)),
        ] {
            let (arch, variant) = entry;
            let os = want.split('/').next().unwrap();
            assert_eq!(p(want).fit(os, arch, variant), fit, "{want} by {entry:?}");
        }
        assert_eq!(
            p("linux/arm64/v8").fit("windows", "arm64", Some("v8")),
            None
        );
    }

    /// The first exact entry wins over an earlier compatible one; among equals, the first.
    #[test]
    fn the_best_entry_is_exact_then_first() {
        let want: Platform = "linux/arm64".parse().unwrap();
        let entries = [("arm64", Some("v8")), ("arm64", None), ("arm64", None)];
        let fit = |e: &(usize, &(&str, Option<&str>))| want.fit("linux", e.1 .0, e.1 .1);
        assert_eq!(
            Fit::best(entries.iter().enumerate(), fit).map(|e| e.0),
            Some(1)
        );
        assert_eq!(
            Fit::best(entries.iter().enumerate().take(1), fit).map(|e| e.0),
            Some(0)
        );
        assert_eq!(Fit::best(entries.iter().enumerate().skip(3), fit), None);
    }
}
