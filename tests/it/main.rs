//! Integration tests: they drive the real `kiln` binary in temporary directories, and read its
//! output with real tools kiln did not write.

mod build;
mod check;
mod corpus;
mod deb;
mod diff;
mod errors;
mod examples;
mod hostile_tar;
mod interop;
mod limits;
mod matching;
mod promote;
mod registry;
#[path = "../../src/testing/registry.rs"]
mod registry_support;
mod report;
mod run;
mod scan;
mod scan_attest;
mod sign;
mod support;
/// The raw tar builder of the unit tests: hostile bytes no well-behaved writer produces.
#[allow(dead_code)]
#[path = "../../src/layer/testtar.rs"]
mod testtar;
mod trust;
mod validate;
