//! kiln: hermetic, reproducible container-image rebuilds from declarative TOML recipes.
//!
//! A build is a pipeline of pure stages with I/O at the edges:
//! recipe → `BuildPlan` → layers → image → layout / archive / registry, with a provenance
//! attestation derived from the plan and its results. The library never prints and never exits;
//! `cli` and `main.rs` do (`cli` is the binary's, not API: its only public item is `cli::main`).
//! Modules are crate-private unless the binary or the integration tests (`tests/it`) use them
//! (`Sha256Digest`, `build::rfc3339`, `deb::version`, `layer::compress`); `diff`, `fetch`,
//! `http`, `image`, `reference` and `registry` are still public while issue 17 reshapes them.

pub(crate) mod attest;
pub mod build;
#[doc(hidden)]
pub mod cli;
pub mod deb;
pub mod diff;
pub mod digest;
pub mod fetch;
pub(crate) mod hint;
pub mod http;
pub mod image;
pub mod layer;
pub(crate) mod lock;
pub(crate) mod media;
pub(crate) mod platform;
pub(crate) mod policy;
pub(crate) mod rebuild;
pub(crate) mod recipe;
pub mod reference;
pub mod registry;
pub mod remote_cache;
pub(crate) mod scan;
pub(crate) mod store;
pub(crate) mod update;

#[cfg(test)]
pub(crate) mod testing;

pub use digest::Sha256Digest;
