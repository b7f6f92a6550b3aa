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
#[path = "../../src/testing/http_server.rs"]
mod http_server;
mod https;
mod interop;
mod limits;
mod matching;
/// The hostile-whiteout case table of the unit tests.
#[allow(dead_code)]
#[path = "../../src/layer/member_cases.rs"]
mod member_cases;
mod plan;
mod promote;
mod registry;
#[path = "../../src/testing/registry.rs"]
mod registry_support;
mod remote_cache;
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
#[path = "../../src/testing/tls.rs"]
mod tls_support;
mod trust;
mod update;
mod validate;
mod whiteout_rules;
