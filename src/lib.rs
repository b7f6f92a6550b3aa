//! kiln: hermetic, reproducible container-image rebuilds from declarative TOML recipes.
//!
//! A build is a pipeline of pure stages with I/O at the edges:
//! recipe → `BuildPlan` → layers → image → layout / archive / registry, with a provenance
//! attestation derived from the plan and its results. The library never prints and never exits;
//! `cli` and `main.rs` do (`cli` is the binary's, not API: its only public item is `cli::main`).

pub mod attest;
pub mod build;
#[doc(hidden)]
pub mod cli;
pub mod deb;
pub mod diff;
pub mod digest;
pub mod fetch;
pub mod hint;
pub mod http;
pub mod image;
pub mod layer;
pub mod lock;
pub mod media;
pub mod platform;
pub mod policy;
pub mod rebuild;
pub mod recipe;
pub mod reference;
pub mod registry;
pub mod remote_cache;
pub mod scan;
pub mod store;
pub mod update;

#[cfg(test)]
pub(crate) mod testing;

pub use digest::Sha256Digest;
