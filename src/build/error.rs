use std::path::PathBuf;

use crate::digest::Sha256Digest;
use crate::recipe::Location;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `at` is the first unpinned input's table.
    #[error(
        "{at}: inputs without sha256: {}",
        inputs.join(", ")
    )]
    Unpinned {
        at: Location,
        recipe: PathBuf,
        inputs: Vec<String>,
    },
    #[error("base image `{reference}` is not pinned")]
    BaseNotPinned { reference: String },
    #[error("base image `{reference}` is {base}, but the recipe builds {recipe}")]
    PlatformMismatch {
        reference: String,
        base: String,
        recipe: String,
    },
    #[error("base image `{reference}` is invalid: {reason}")]
    BadBase { reference: String, reason: String },
    #[error("base image `{reference}` has an invalid diff_id `{diff_id}`")]
    BadBaseDiffId { reference: String, diff_id: String },
    #[error("{at}: input `{input}` ({}): digest mismatch: expected {expected}, got {actual}", path.display())]
    InputMismatch {
        /// Boxed to keep `BuildError` small.
        at: Box<Location>,
        input: String,
        path: PathBuf,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error("{at}: input `{input}`: failed to read {}", path.display())]
    InputRead {
        at: Location,
        input: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: step `{step}` failed")]
    Step {
        location: String,
        step: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{location}: {message}")]
    StepInvalid { location: String, message: String },
    #[error("{location}: `[config] user = {user:?}`: {reason}, so no runtime can start the image as that user")]
    UnknownUser {
        location: String,
        user: String,
        reason: String,
    },
    #[error("{location}: this `{step}` step makes `{program}` (the [config] {key}) mode {mode}, which no runtime can execute")]
    NotExecutable {
        location: String,
        step: &'static str,
        key: &'static str,
        program: String,
        mode: String,
    },
    /// `number` counts the recipe's `[[layer]]` tables from 1; `input` is the input whose
    /// bytes were being written, when the failure is about one.
    #[error(
        "{at}: failed to write layer {number} of the recipe{}",
        input.as_ref().map(|i| format!(" (input `{i}`)")).unwrap_or_default()
    )]
    LayerWrite {
        at: Location,
        number: usize,
        input: Option<String>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Ref(#[from] crate::reference::ReferenceError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{at}: failed to fetch input `{input}`")]
    InputFetch {
        at: Location,
        input: String,
        #[source]
        source: Box<crate::fetch::FetchError>,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(
        "the recipe has `run` steps and builds {platform}, which this {host} machine cannot \
         run: no binfmt_misc emulator is registered for it"
    )]
    NoEmulator { platform: String, host: String },
    #[error(transparent)]
    Lockfile(#[from] crate::deb::lockfile::LockfileError),
}

impl BuildError {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Unpinned { recipe, .. } => {
                Some(format!("run `kiln lock {}` to pin them", recipe.display()))
            }
            Self::BaseNotPinned { .. } => Some("add @sha256:… or run `kiln lock`".to_string()),
            Self::UnknownUser { .. } => Some(
                "use a numeric uid[:gid] (always accepted), or add the user to the image's \
                 /etc/passwd (and the group to /etc/group)"
                    .to_string(),
            ),
            Self::NotExecutable { .. } => Some("add mode = \"0755\" to the step".to_string()),
            Self::NoEmulator { .. } => Some(
                "register one (e.g. the qemu-user-static package) or drop the `run` steps"
                    .to_string(),
            ),
            Self::Image(e) => e.hint(),
            Self::Store(e) => e.hint(),
            Self::Lockfile(e) => e.hint(),
            _ => None,
        }
    }
}
