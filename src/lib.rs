//! kiln: hermetic, reproducible container-image rebuilds from declarative TOML recipes.
//!
//! A build is a pipeline of pure stages with I/O at the edges:
//! recipe → `BuildPlan` → layers → image → layout / archive / registry, with a provenance
//! attestation derived from the plan and its results. The library never prints and never exits;
//! `cli` and `main.rs` do (`cli` is the binary's, not API: its only public item is `cli::main`).
//! Every other module is crate-private except the five holding what the integration tests
//! (`tests/it`) and `examples/compress_layer.rs` use, at the paths they use: `build::rfc3339`,
//! `deb::version::Version`, `layer::compress`, `registry::{Client, ClientOptions, AuthFiles,
//! Repository}` and `remote_cache::{push, LayerToPush, CacheRecord}` (with `CacheError`);
//! inside those five everything else is `pub(crate)`. [`Sha256Digest`] is re-exported here.

// The docs are for kiln's maintainers (`cargo doc --document-private-items`): the few public
// modules may link to their crate-private neighbours.
#![allow(rustdoc::private_intra_doc_links)]

pub(crate) mod attest;
pub mod build;
#[doc(hidden)]
pub mod cli;
pub mod deb;
pub(crate) mod diff;
pub(crate) mod digest;
pub(crate) mod fetch;
pub(crate) mod hint;
pub(crate) mod http;
pub(crate) mod image;
pub mod layer;
pub(crate) mod lock;
pub(crate) mod media;
pub(crate) mod platform;
pub(crate) mod policy;
pub(crate) mod rebuild;
pub(crate) mod recipe;
pub(crate) mod reference;
pub mod registry;
pub mod remote_cache;
pub(crate) mod scan;
pub(crate) mod store;
pub(crate) mod update;

#[cfg(test)]
pub(crate) mod testing;

pub use digest::Sha256Digest;
