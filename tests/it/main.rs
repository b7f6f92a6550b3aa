//! Integration tests: they drive the real `kiln` binary in temporary directories, and read its
//! output with real tools kiln did not write.

mod build;
mod deb;
mod diff;
mod errors;
mod registry;
#[path = "../../src/testing/registry.rs"]
mod registry_support;
mod run;
mod scan;
mod sign;
mod support;
