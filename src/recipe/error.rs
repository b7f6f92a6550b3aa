//! `RecipeError`: everything that can be wrong with a recipe, each with the `file:line:column`
//! it is about and the key, table or input involved, so the message says what to fix and where.

use std::path::PathBuf;

use super::span::Location;
use super::types::Compression;
use super::values::ValueError;
use crate::reference::ReferenceError;

fn list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return "(none)".to_string();
    }
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("failed to read recipe {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: recipe is not valid UTF-8")]
    NotUtf8 { at: Location },
    /// `unquoted_mode`: the line is a `mode = 644` that TOML refused (a leading zero).
    #[error("{at}: invalid TOML: {message}")]
    Syntax {
        at: Location,
        message: String,
        unquoted_mode: bool,
    },
    #[error(
        "{at}: unknown key `{key}` in {table}; expected one of: {}",
        list(expected)
    )]
    UnknownKey {
        at: Location,
        key: String,
        table: String,
        expected: Vec<&'static str>,
    },
    #[error("{at}: `{key}` in {table} must be {expected}, found {found}")]
    WrongType {
        at: Location,
        key: String,
        table: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{at}: {table} is missing `{key}`")]
    MissingKey {
        at: Location,
        key: &'static str,
        table: String,
    },
    #[error(
        "{at}: [[layer.step]] has no kind; expected exactly one of: {}",
        list(expected)
    )]
    NoStepKind {
        at: Location,
        expected: Vec<&'static str>,
    },
    #[error("{at}: [[layer.step]] has both `{first}` and `{second}`; a step does exactly one thing, split it into two steps")]
    TwoStepKinds {
        at: Location,
        first: &'static str,
        second: &'static str,
    },
    #[error(
        "{at}: `{key}` does not apply to a `{kind}` step; `{kind}` takes: {}",
        list(allowed)
    )]
    KeyNotForKind {
        at: Location,
        key: &'static str,
        kind: &'static str,
        allowed: Vec<&'static str>,
    },
    #[error(
        "{at}: `{kind}` refers to unknown input `{input}`; known inputs: {}",
        list(known)
    )]
    UnknownInput {
        at: Location,
        kind: &'static str,
        input: String,
        known: Vec<String>,
    },
    #[error("{at}: [inputs.{input}] has both `url` and `path`; give exactly one")]
    BothUrlAndPath { at: Location, input: String },
    #[error("{at}: [inputs.{input}] has neither `url` nor `path`; give exactly one")]
    NoSource { at: Location, input: String },
    #[error("{at}: invalid `{key}` in [repositories.{repository}]: {reason}")]
    InvalidRepository {
        at: Location,
        repository: String,
        key: &'static str,
        reason: &'static str,
    },
    #[error(
        "{at}: `packages` needs a repository: {}",
        match (known.is_empty(), name.is_empty()) {
            (true, _) => "the recipe has no [repositories.NAME]".to_string(),
            (false, true) => format!("name one of {} with `from`", list(known)),
            (false, false) => format!("`{name}` is not one of {}", list(known)),
        }
    )]
    UnknownRepository {
        at: Location,
        name: String,
        known: Vec<String>,
    },
    #[error(
        "{at}: `platforms` must list distinct platforms such as [\"linux/amd64\", \"linux/arm64\"], \
         and replaces `platform` (give one of the two)"
    )]
    Platforms { at: Location },
    #[error("{at}: `{name}` is not a Debian package name (lowercase letters, digits, `+-.`)")]
    InvalidPackageName { at: Location, name: String },
    #[error("{at}: invalid `{key}` in {table}: {reason}")]
    InvalidValue {
        at: Location,
        key: String,
        table: String,
        reason: ValueError,
    },
    #[error(
        "{at}: invalid sha256 `{value}` for input `{input}`: expected 64 lowercase hex digits"
    )]
    InvalidSha256 {
        at: Location,
        input: String,
        value: String,
    },
    #[error("{at}: invalid url `{url}` for input `{input}`: expected http://, https:// or file:// without spaces")]
    InvalidUrl {
        at: Location,
        input: String,
        url: String,
    },
    #[error("{at}: invalid path `{path}` for input `{input}`: it must be relative to the recipe's directory")]
    InvalidInputPath {
        at: Location,
        input: String,
        path: String,
    },
    #[error("{at}: invalid [base] ref `{reference}`: {}", reason.problem)]
    InvalidBaseRef {
        at: Location,
        reference: String,
        reason: ReferenceError,
    },
    #[error("{at}: [base] ref `{reference}` is not pinned")]
    UnpinnedBase { at: Location, reference: String },
    #[error(
        "{at}: empty [[layer]] (layer {index}); every layer needs at least one [[layer.step]]"
    )]
    EmptyLayer { at: Location, index: usize },
    #[error("{at}: invalid `size = {value}` for input `{input}`: a `url` input's size is a byte count >= 0 (`kiln lock` writes it); a `path` input has none")]
    InvalidSize {
        at: Location,
        input: String,
        value: i64,
    },
    #[error("{at}: `epoch` must be >= 0, found {value}")]
    NegativeEpoch { at: Location, value: i64 },
    #[error("{at}: unknown compression `{value}`; expected one of: gzip, zstd")]
    UnknownCompression { at: Location, value: String },
    #[error("{at}: compression-level {level} is out of range for {}: expected {} to {}", compression.name(), compression.levels().start(), compression.levels().end())]
    CompressionLevel {
        at: Location,
        compression: Compression,
        level: i64,
    },
    #[error("{at}: unknown tar style `{value}`; expected one of: kiln, go, go-bytewise")]
    UnknownTarStyle { at: Location, value: String },
    #[error("{at}: unknown `generate` value `{value}`; expected one of: ca-certificates")]
    UnknownGenerated { at: Location, value: String },
    #[error("{at}: [image] history has {entries} entries for layers but the recipe has {layers} [[layer]]; give one entry per layer, and `empty-layer = true` to the others")]
    HistoryLayerCount {
        at: Location,
        entries: usize,
        layers: usize,
    },
    #[error("{at}: `run` needs a non-empty command")]
    EmptyCommand { at: Location },
    #[error("{at}: a `{kind}` step cannot apply to `/`")]
    RootPath { at: Location, kind: &'static str },
    #[error("{at}: `{key}` in {table} must not be empty")]
    Empty {
        at: Location,
        key: String,
        table: String,
    },
    #[error("{at}: `{key}` in {table} contains a NUL byte")]
    Nul {
        at: Location,
        key: String,
        table: String,
    },
    #[error("{at}: invalid environment variable name `{name}` in {table}: it must be non-empty and contain no `=`")]
    InvalidEnvName {
        at: Location,
        name: String,
        table: String,
    },
    #[error("{at}: invalid `update` of [inputs.{input}]: {reason}")]
    InvalidUpdate {
        at: Location,
        input: String,
        reason: String,
    },
    #[error("{at}: invalid exposed port `{value}`: expected PORT[/tcp|/udp|/sctp] with PORT in 1..=65535")]
    InvalidPort { at: Location, value: String },
}

impl RecipeError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Syntax {
                unquoted_mode: true,
                ..
            } => Some("write modes as quoted octal strings, such as mode = \"0644\"".to_string()),
            Self::InvalidValue { reason, .. } => reason.hint(),
            Self::UnpinnedBase { .. } => Some(
                "append `@sha256:<manifest digest>` or run `kiln lock` to resolve it".to_string(),
            ),
            _ => None,
        }
    }

    /// Where in the recipe the error is, when it is about a place in it.
    #[cfg(test)]
    pub fn location(&self) -> Option<&Location> {
        use RecipeError::*;
        match self {
            Read { .. } => None,
            NotUtf8 { at }
            | Syntax { at, .. }
            | UnknownKey { at, .. }
            | WrongType { at, .. }
            | MissingKey { at, .. }
            | NoStepKind { at, .. }
            | TwoStepKinds { at, .. }
            | KeyNotForKind { at, .. }
            | UnknownInput { at, .. }
            | BothUrlAndPath { at, .. }
            | NoSource { at, .. }
            | InvalidValue { at, .. }
            | InvalidSha256 { at, .. }
            | InvalidUrl { at, .. }
            | InvalidInputPath { at, .. }
            | InvalidBaseRef { at, .. }
            | UnpinnedBase { at, .. }
            | EmptyLayer { at, .. }
            | NegativeEpoch { at, .. }
            | InvalidSize { at, .. }
            | UnknownCompression { at, .. }
            | CompressionLevel { at, .. }
            | UnknownTarStyle { at, .. }
            | UnknownGenerated { at, .. }
            | HistoryLayerCount { at, .. }
            | EmptyCommand { at }
            | RootPath { at, .. }
            | Empty { at, .. }
            | Nul { at, .. }
            | InvalidEnvName { at, .. }
            | InvalidPort { at, .. }
            | InvalidUpdate { at, .. }
            | InvalidRepository { at, .. }
            | UnknownRepository { at, .. }
            | InvalidPackageName { at, .. }
            | Platforms { at } => Some(at),
        }
    }
}
