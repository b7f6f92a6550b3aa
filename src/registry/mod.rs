//! The `docker://HOST[:PORT]/REPO[:TAG][@sha256:…]` transport: a distribution-spec client for
//! reading and writing manifests, indexes and blobs.
//!
//! # Why a hand-written protocol over ureq, not `oci-client`
//! `oci-client` is async (tokio + reqwest + hyper): a large dependency tree that takes minutes
//! to compile on the project's 2-core machines, and kiln would still have to wrap it to get
//! what matters here. The distribution API kiln uses is a dozen plain HTTP requests; the hard
//! part is refusing what a lying registry sends, and that is easiest to guarantee when every
//! byte passes through code we control: manifests capped and hashed before parsing, blobs
//! hashed while they stream into the caller's writer, redirects followed by hand (credentials
//! stay on the registry host, no https→http, at most 10 hops), and every digest the registry
//! returns on push compared with the local one. The HTTP itself is kiln's one blocking client
//! ([`crate::http`], shared with url inputs: same trust, same redirect policy); parallel
//! transfers use a few std threads ([`run_parallel`]).
//!
//! The library never prints: progress goes to a caller-supplied [`Progress`].

mod auth;
mod client;
mod error;
mod http;
mod manifest;
mod parallel;
mod referrers;
mod upload;

#[cfg(test)]
mod test_distribution;
#[cfg(test)]
mod test_lying_pull;
#[cfg(test)]
mod test_lying_push;

pub use auth::AuthFiles;
pub use client::{Client, ClientOptions};
pub(crate) use client::{Direction, Progress};
pub(crate) use error::RegistryError;
pub(crate) use manifest::{index_images, select_platform, IndexEntry, PulledManifest};
pub(crate) use parallel::{run_parallel, DEFAULT_PARALLELISM};
// `super::reference::…` in the submodules is the crate's one reference parser.
use crate::reference;

pub use crate::reference::Repository;
pub(crate) use crate::reference::{Reference, ReferenceError};
pub(crate) use upload::BlobPush;
