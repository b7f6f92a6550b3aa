//! The parsed recipe: pure data, every value already validated.
//!
//! These types are what the build plan is made from and what the provenance records, so they
//! serialize with serde, use `BTreeMap` for every map, and keep the [`Span`] of each input, layer
//! and step so that later stages can still point at the recipe line a failure came from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::span::Span;
use super::values::{ImagePath, Mode, Owner, Platform, RefName};
use crate::digest::Sha256Digest;
pub use crate::layer::tar_style::TarStyle;
use crate::reference::ImageRef;

/// A parsed and validated recipe file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipe {
    /// The recipe file as given to [`Recipe::load`] (or the name given to [`Recipe::parse`]).
    pub file: PathBuf,
    /// The directory `path` inputs are relative to.
    pub dir: PathBuf,
    /// The sha256 of the recipe file's bytes.
    pub sha256: Sha256Digest,
    pub image: ImageSection,
    /// `None` means `FROM scratch`.
    pub base: Option<Base>,
    pub inputs: BTreeMap<String, Input>,
    /// `[repositories.NAME]`.
    pub repositories: BTreeMap<String, super::repositories::Repository>,
    /// In recipe order; each is exactly one image layer.
    pub layers: Vec<Layer>,
    pub config: ConfigSection,
}

/// `[image]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSection {
    /// Written as `org.opencontainers.image.ref.name` in the output layout.
    pub name: RefName,
    /// SOURCE_DATE_EPOCH for every timestamp kiln writes; default 0, never negative.
    pub epoch: i64,
    /// Default: `linux/<host arch>` ([`Platform::host`]); with `platforms`, the first of them.
    pub platform: Platform,
    /// `platforms`: one image per platform, written as an OCI image index. Never empty;
    /// `[platform]` when the recipe does not say `platforms`.
    pub platforms: Vec<Platform>,
    /// Layer compression; default gzip.
    pub compression: Compression,
    /// `compression-level`; `None` leaves the level to the layer writer's fixed default.
    /// Checked against the algorithm: gzip 0–9, zstd 1–22.
    pub compression_level: Option<i32>,
    /// `history`: the config history entries this recipe's layers add, replacing kiln's own
    /// (one per `[[layer]]`, plus any `empty-layer` ones), to match another builder's config.
    pub history: Option<Vec<HistoryEntry>>,
    /// `annotations`: written into the image manifest (after the base annotations kiln adds).
    pub annotations: BTreeMap<String, String>,
}

/// One `[image] history` entry; its `created` is always the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub created_by: Option<String>,
    pub comment: Option<String>,
    pub author: Option<String>,
    /// Describes no layer (a Dockerfile `CMD`, `ENV`, …).
    pub empty_layer: bool,
}

/// `[image] compression`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// The levels the encoder accepts.
    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Compression::Gzip => 0..=9,
            Compression::Zstd => 1..=22,
        }
    }
}

/// `[base]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// Parsed once, e.g. `docker://registry.example/library/debian@sha256:…`.
    pub reference: ImageRef,
    /// The `@sha256:` pin. Always `Some` in a recipe from [`Recipe::load`] or [`Recipe::parse`];
    /// may be `None` only through [`Recipe::parse_unpinned`] (what `kiln lock` reads).
    pub digest: Option<Sha256Digest>,
    pub span: Span,
}

/// `[inputs.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub name: String,
    pub source: InputSource,
    pub span: Span,
    /// `update`: how `kiln update` finds a newer release of a `url` input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<super::update::UpdateRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputSource {
    /// `url` (http, https or file); `sha256` is required to build and filled in by `kiln lock`.
    Url {
        url: String,
        sha256: Option<Sha256Digest>,
        /// `size`: the pinned byte count (`kiln lock` writes it beside `sha256`); a download
        /// stops there. Older recipes have none and stop at `--max-download-size`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// `path`, a file or directory relative to the recipe; `sha256` is checked when present (a
    /// directory's digest is that of its deterministic tar).
    Path {
        path: PathBuf,
        resolved: PathBuf,
        sha256: Option<Sha256Digest>,
    },
}

impl Input {
    /// The pinned digest, if any.
    pub fn sha256(&self) -> Option<&Sha256Digest> {
        match &self.source {
            InputSource::Url { sha256, .. } | InputSource::Path { sha256, .. } => sha256.as_ref(),
        }
    }
}

/// `[[layer]]`: one image layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Never empty.
    pub steps: Vec<Step>,
    /// `tar`: the header style the layer is written in; default kiln's own.
    pub tar: TarStyle,
    pub span: Span,
}

/// `[[layer.step]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub kind: StepKind,
    pub span: Span,
}

/// What a step does. Defaults are applied: `write` files are 0644, `mkdir` directories 0755,
/// owners 0:0, `extract` goes to `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Unpack an archive input (tar, tar.gz, tar.xz, tar.zst, tar.bz2, .deb data) under `dest`.
    Extract { input: String, dest: ImagePath },
    /// Place a file or directory input at `dest`; `mode`/`owner` override the input's when given.
    Copy {
        input: String,
        dest: ImagePath,
        mode: Option<Mode>,
        owner: Option<Owner>,
    },
    /// An inline file.
    Write {
        path: ImagePath,
        content: String,
        mode: Mode,
        owner: Owner,
    },
    Mkdir {
        path: ImagePath,
        mode: Mode,
        owner: Owner,
    },
    /// `target` is stored as written (relative targets allowed).
    Symlink {
        path: ImagePath,
        target: String,
        owner: Owner,
    },
    /// Deletes base content; becomes a whiteout.
    Remove { path: ImagePath },
    /// Installs Debian packages (their closure, as pinned in `RECIPE.lock`) from repository
    /// `from`: each `.deb`'s data unpacked, no maintainer scripts, a dpkg record per package.
    Packages {
        names: Vec<String>,
        from: String,
        /// `generate`: files the packages' maintainer scripts would make, sorted.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        generate: Vec<super::repositories::Generated>,
    },
    /// Runs in the sandbox over the rootfs so far. A string `run` becomes
    /// `["/bin/sh", "-c", string]`.
    Run {
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        workdir: Option<ImagePath>,
        user: Option<String>,
    },
}

impl StepKind {
    /// The recipe key that names this kind (`extract`, `copy`, …).
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Extract { .. } => "extract",
            StepKind::Copy { .. } => "copy",
            StepKind::Write { .. } => "write",
            StepKind::Mkdir { .. } => "mkdir",
            StepKind::Symlink { .. } => "symlink",
            StepKind::Remove { .. } => "remove",
            StepKind::Run { .. } => "run",
            StepKind::Packages { .. } => "packages",
        }
    }

    /// The input this step reads, if any.
    pub fn input(&self) -> Option<&str> {
        match self {
            StepKind::Extract { input, .. } | StepKind::Copy { input, .. } => Some(input),
            _ => None,
        }
    }
}

/// `[config]`: what goes into the OCI image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSection {
    pub entrypoint: Option<Vec<String>>,
    /// `Some(vec![])` (written `cmd = []`) is kept distinct from absent.
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<ImagePath>,
    pub user: Option<String>,
    /// `exposed-ports`, e.g. `8080/tcp`; sorted and deduplicated.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// `stop-signal`, e.g. `SIGTERM`.
    pub stop_signal: Option<String>,
    /// Where `user`, `entrypoint` and `cmd` are written.
    #[serde(skip)]
    pub at: super::span::ValueSpans,
}
