//! Debian package sets: repositories verified from their signed `InRelease` down to each
//! `.deb`, dependency resolution, the `RECIPE.lock` file and the dpkg records of an image.

pub(crate) mod control;
pub(crate) mod generate;
pub(crate) mod install;
pub(crate) mod lock;
pub(crate) mod lockfile;
pub(crate) mod packages;
pub(crate) mod relation;
pub(crate) mod release;
pub(crate) mod repo;
pub(crate) mod resolve;
pub mod version;

use crate::recipe::Platform;

/// The Debian architecture of an OCI platform (`linux/arm/v7` → `armhf`).
pub(crate) fn debian_arch(platform: &Platform) -> Option<&'static str> {
    Some(match (platform.architecture(), platform.variant()) {
        ("amd64", _) => "amd64",
        ("arm64", _) => "arm64",
        ("arm", Some("v7") | None) => "armhf",
        ("arm", Some("v6" | "v5")) => "armel",
        ("386", _) => "i386",
        ("ppc64le", _) => "ppc64el",
        ("s390x", _) => "s390x",
        ("riscv64", _) => "riscv64",
        ("mips64le", _) => "mips64el",
        ("loong64", _) => "loong64",
        _ => return None,
    })
}
