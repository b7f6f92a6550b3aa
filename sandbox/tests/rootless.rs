//! `enter_user_namespace`, the rootless kiln flow: kiln becomes root of its own user
//! namespace, runs a step that chowns files to 65532 (mode 0600, in a 0700 directory), then
//! reads them with their container owner and deletes them — which a plain unprivileged
//! process could not do with a subordinate mapping.
//!
//! As root it checks the same flow with the identity mapping. `run-unprivileged.sh` runs it as
//! `kilntest` with a single-id and a subordinate mapping.

#[allow(dead_code)]
#[path = "it/common.rs"]
mod common;

use std::os::unix::fs::MetadataExt;

use kiln_sandbox::{IdMapping, SandboxError};

fn main() {
    let requested = common::requested_mapping();
    let map = kiln_sandbox::enter_user_namespace(requested).expect("enter a user namespace");
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "root inside kiln's user namespace"
    );

    let ctx = common::Ctx::new();
    let dir = ctx.path().to_owned();
    let mut spec = ctx.spec(
        "mkdir /home && echo secret > /home/f && chmod 600 /home/f && chmod 700 /home && \
         chown 65532:65532 /home/f /home",
    );
    // Nested in kiln's namespace: root there, so the identity mapping of what exists.
    spec.id_mapping = IdMapping::Auto;
    let result = kiln_sandbox::run(&spec);
    match map.mapping() {
        IdMapping::Single => {
            // Only one id exists all the way down: the chown is refused, loudly.
            assert!(
                matches!(result, Err(SandboxError::StepFailed { .. })),
                "{result:?}"
            );
        }
        _ => {
            let outcome = result.unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(outcome.id_map.mapping(), IdMapping::Identity);
            let meta = fs_err::metadata(ctx.upper.join("home/f")).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid(), meta.mode() & 0o777),
                (65532, 65532, 0o600)
            );
            assert_eq!(
                fs_err::read_to_string(ctx.upper.join("home/f")).unwrap(),
                "secret\n"
            );
        }
    }
    drop(ctx);
    assert!(!dir.exists(), "kiln could not delete the step's outputs");
    println!("rootless: ok ({} mapping for kiln)", map.mapping());
}
