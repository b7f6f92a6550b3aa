//! Debian package sets: repositories verified from their signed `InRelease` down to each
//! `.deb`, dependency resolution, the `RECIPE.lock` file and the dpkg records of an image.

pub mod control;
pub mod packages;
pub mod relation;
pub mod release;
pub mod resolve;
pub mod version;
