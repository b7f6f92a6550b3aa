//! Real-kernel tests of kiln-sandbox over a busybox rootfs.
//!
//! They pass as root and as an unprivileged user (see `run-unprivileged.sh`); the few
//! expectations that depend on the id mapping ask [`common::mapping`] which one applies.

mod common;
mod isolation;
mod lifecycle;
mod limits;
mod rootfs;
