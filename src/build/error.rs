use std::path::PathBuf;

use crate::digest::Sha256Digest;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "{}: inputs without sha256: {}\nhint: run `kiln lock {}` to pin them",
        recipe.display(), inputs.join(", "), recipe.display()
    )]
    Unpinned {
        recipe: PathBuf,
        inputs: Vec<String>,
    },
    #[error("base image `{reference}` is not pinned\nhint: add @sha256:… or run `kiln lock`")]
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
    #[error("input `{input}` ({}): digest mismatch: expected {expected}, got {actual}", path.display())]
    InputMismatch {
        input: String,
        path: PathBuf,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error("input `{input}`: failed to read {}", path.display())]
    InputRead {
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
    #[error("failed to write layer {index}")]
    LayerWrite {
        index: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Ref(#[from] crate::image::RefError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(
        "the recipe has `run` steps and builds {platform}, which this {host} machine cannot \
         run: no binfmt_misc emulator is registered for it\nhint: register one (e.g. the \
         qemu-user-static package) or drop the `run` steps"
    )]
    NoEmulator { platform: String, host: String },
    #[error(transparent)]
    Lockfile(#[from] crate::deb::lockfile::LockfileError),
}
