//! Positions in a recipe file.
//!
//! The TOML parser reports byte offsets; people read `file:line:column`. Every error a recipe can
//! produce carries a [`Location`], so that the message points at the exact key or value to fix.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A 1-based line and column (the column counts characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    pub line: usize,
    pub column: usize,
}

impl Span {
    pub fn new(line: usize, column: usize) -> Self {
        Self { line, column }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A [`Span`] in a named file; displays as `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, span: Span) -> Self {
        Self {
            file: file.into(),
            line: span.line,
            column: span.column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Turns byte offsets of one text into [`Span`]s.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset at which each line starts.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, starts }
    }

    /// The span of byte `offset` (clamped to the text, rounded down to a char boundary).
    pub(crate) fn span(&self, offset: usize) -> Span {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        Span::new(line, column)
    }

    /// The span where `range` starts.
    pub(crate) fn start(&self, range: &Range<usize>) -> Span {
        self.span(range.start)
    }
}

/// A [`Location`] for `span` in `file`.
pub(crate) fn locate(file: &Path, span: Span) -> Location {
    Location::new(file, span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_one_based_lines_and_char_columns() {
        let text = "ab\n\nçd = 1\nlast";
        let idx = LineIndex::new(text);
        let cases = [
            (0, (1, 1)),
            (1, (1, 2)),
            (2, (1, 3)),
            (3, (2, 1)),
            (4, (3, 1)),
            (6, (3, 2)), // after the two-byte `ç`
            (5, (3, 1)), // inside `ç`: rounded down
            (text.len(), (4, 5)),
            (text.len() + 10, (4, 5)),
        ];
        for (offset, (line, column)) in cases {
            assert_eq!(idx.span(offset), Span::new(line, column), "offset {offset}");
        }
    }

    #[test]
    fn location_displays_as_file_line_column() {
        let loc = Location::new("recipe.toml", Span::new(12, 3));
        assert_eq!(loc.to_string(), "recipe.toml:12:3");
    }
}

/// Where the values of a table's keys are written, for messages about a value that only a
/// later stage can judge (the build checks `[config] user` against the image). Not part of
/// what a recipe means: any two compare equal, and they are never serialized.
#[derive(Debug, Clone, Default)]
pub struct ValueSpans(pub std::collections::BTreeMap<String, Span>);

impl ValueSpans {
    pub fn get(&self, key: &str) -> Option<Span> {
        self.0.get(key).copied()
    }
}

impl PartialEq for ValueSpans {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ValueSpans {}
