//! Recipe v1: schema, parsing with spans, validation, in-place pin rewriting.
//!
//! A recipe is the only thing a build engineer writes, so every mistake in it must come back as
//! `file:line:column` plus what would have been accepted. Parsing produces a [`Recipe`] whose
//! values are all valid by construction (see `values`), which the build turns into a plan and the
//! provenance records. `kiln lock` rewrites the text itself (see [`pin_input_sha256`],
//! [`pin_base_ref`]) so that comments and layout survive.

mod error;
mod lock;
mod parse;
mod repositories;
mod span;
mod steps;
mod table;
mod types;
mod update;
mod values;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::RecipeError;
pub use lock::{pin_base_ref, pin_input_sha256, pin_input_size, pin_input_url, LockError};
pub use repositories::{Generated, Repository};
pub use span::{Location, Span};
pub use types::{
    Compression, ConfigSection, HistoryEntry, Input, InputSource, Layer, Recipe, Step, StepKind,
    TarStyle,
};
pub use update::{compare_versions, UpdateRule};
pub use values::{ImagePath, Platform};

use parse::BasePin;

impl Recipe {
    /// Reads and parses the recipe at `path`; `path` inputs are relative to its directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Recipe, RecipeError> {
        let path = path.as_ref();
        let bytes = fs_err::read(path).map_err(|source| RecipeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let span = span::LineIndex::new(&String::from_utf8_lossy(&bytes[..e.valid_up_to()]))
                .span(usize::MAX);
            RecipeError::NotUtf8 {
                at: Location::new(path, span),
            }
        })?;
        Recipe::parse(text, path, recipe_dir(path))
    }

    /// Parses recipe `text`; `file` names it in errors, `dir` is where `path` inputs live.
    pub fn parse(
        text: &str,
        file: impl AsRef<Path>,
        dir: impl AsRef<Path>,
    ) -> Result<Recipe, RecipeError> {
        parse::parse(text, file.as_ref(), dir.as_ref(), BasePin::Required)
    }

    /// Like [`Recipe::parse`], but accepts a `[base] ref` without `@sha256:` (its
    /// [`Base::digest`] is then `None`): what `kiln lock` reads before pinning it.
    pub fn parse_unpinned(
        text: &str,
        file: impl AsRef<Path>,
        dir: impl AsRef<Path>,
    ) -> Result<Recipe, RecipeError> {
        parse::parse(text, file.as_ref(), dir.as_ref(), BasePin::Optional)
    }

    /// `url` inputs without a `sha256`, by name. `kiln build` refuses to run while any exist.
    pub fn unpinned_inputs(&self) -> Vec<&Input> {
        self.inputs
            .values()
            .filter(|i| matches!(i.source, InputSource::Url { sha256: None, .. }))
            .collect()
    }

    /// `span` of this recipe as `file:line:column`.
    pub fn location(&self, span: Span) -> Location {
        Location::new(&self.file, span)
    }
}

/// The directory of `path`, `.` for a bare file name.
pub(crate) fn recipe_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
