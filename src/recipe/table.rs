//! A typed, span-aware view over one TOML table, used by the recipe parser.
//!
//! `toml_edit` keeps the byte span of every key, value and table header of a parsed document;
//! this wrapper turns them into [`Location`]s and turns type mismatches, unknown keys and bad
//! values into [`RecipeError`]s that point at the key or value itself.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

use toml_edit::{Item, TableLike, Value};

use super::error::RecipeError;
use super::span::{locate, LineIndex, Location, Span};
use super::values::ValueError;

/// The document being parsed: where it came from and how to turn offsets into positions.
pub(crate) struct Cx<'a> {
    pub(crate) file: &'a Path,
    pub(crate) lines: LineIndex<'a>,
}

impl Cx<'_> {
    pub(crate) fn span(&self, range: Option<Range<usize>>, fallback: Span) -> Span {
        range.map(|r| self.lines.start(&r)).unwrap_or(fallback)
    }

    pub(crate) fn loc(&self, span: Span) -> Location {
        locate(self.file, span)
    }
}

/// One table of the recipe (a `[header]` table, an inline table or a dotted-key table).
#[derive(Clone, Copy)]
pub(crate) struct Tbl<'a> {
    pub(crate) cx: &'a Cx<'a>,
    /// How messages name it: `[image]`, `[[layer.step]]`, …
    pub(crate) name: &'a str,
    pub(crate) t: &'a dyn TableLike,
    /// Its header, or the key that introduced it when it has no header of its own.
    pub(crate) span: Span,
}

/// A table with the byte span of its header or braces (if it has one).
pub(crate) type SpannedTable<'a> = (&'a dyn TableLike, Option<Range<usize>>);

/// A table-like item with its span, if `item` is one.
pub(crate) fn as_table(item: &Item) -> Option<SpannedTable<'_>> {
    item.as_table_like().map(|t| (t, item.span()))
}

/// The elements of an array of tables (`[[x]]` or `x = [{…}, …]`), if `item` is one.
pub(crate) fn as_table_array(item: &Item) -> Option<Vec<SpannedTable<'_>>> {
    match item {
        Item::ArrayOfTables(a) => Some(a.iter().map(|t| (t as &dyn TableLike, t.span())).collect()),
        Item::Value(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_inline_table().map(|t| (t as &dyn TableLike, t.span())))
            .collect(),
        _ => None,
    }
}

impl<'a> Tbl<'a> {
    pub(crate) fn at(&self) -> Location {
        self.cx.loc(self.span)
    }

    pub(crate) fn key_span(&self, key: &str) -> Span {
        let range = self.t.key(key).and_then(|k| k.span());
        self.cx.span(range, self.span)
    }

    pub(crate) fn value_span(&self, key: &str) -> Span {
        let range = self.t.get(key).and_then(Item::span);
        self.cx.span(range, self.key_span(key))
    }

    pub(crate) fn at_key(&self, key: &str) -> Location {
        self.cx.loc(self.key_span(key))
    }

    pub(crate) fn at_value(&self, key: &str) -> Location {
        self.cx.loc(self.value_span(key))
    }

    /// Keys in document order.
    pub(crate) fn keys(&self) -> Vec<&'a str> {
        self.t.iter().map(|(k, _)| k).collect()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Item> {
        self.t.get(key)
    }

    /// Refuses the first key (in document order) that is not in `allowed`.
    pub(crate) fn check_keys(&self, allowed: &[&'static str]) -> Result<(), RecipeError> {
        match self.keys().into_iter().find(|k| !allowed.contains(k)) {
            Some(key) => Err(RecipeError::UnknownKey {
                at: self.at_key(key),
                key: key.to_string(),
                table: self.name.to_string(),
                expected: allowed.to_vec(),
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn wrong_type(&self, key: &str, expected: &'static str) -> RecipeError {
        let found = self.get(key).map_or("nothing", Item::type_name);
        RecipeError::WrongType {
            at: self.at_value(key),
            key: key.to_string(),
            table: self.name.to_string(),
            expected,
            found,
        }
    }

    pub(crate) fn missing(&self, key: &'static str) -> RecipeError {
        RecipeError::MissingKey {
            at: self.at(),
            key,
            table: self.name.to_string(),
        }
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<&'a str>, RecipeError> {
        match self.get(key) {
            None => Ok(None),
            Some(item) => item
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a string")),
        }
    }

    pub(crate) fn required_string(&self, key: &'static str) -> Result<&'a str, RecipeError> {
        self.string(key)?.ok_or_else(|| self.missing(key))
    }

    /// A string that must be non-empty and free of NUL bytes.
    pub(crate) fn text(&self, key: &str) -> Result<Option<String>, RecipeError> {
        let Some(s) = self.string(key)? else {
            return Ok(None);
        };
        self.check_text(key, s)?;
        Ok(Some(s.to_string()))
    }

    pub(crate) fn check_text(&self, key: &str, s: &str) -> Result<(), RecipeError> {
        let (at, key, table) = (self.at_value(key), key.to_string(), self.name.to_string());
        if s.is_empty() {
            return Err(RecipeError::Empty { at, key, table });
        }
        if s.contains('\0') {
            return Err(RecipeError::Nul { at, key, table });
        }
        Ok(())
    }

    pub(crate) fn integer(&self, key: &str) -> Result<Option<i64>, RecipeError> {
        match self.get(key) {
            None => Ok(None),
            Some(item) => item
                .as_integer()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "an integer")),
        }
    }

    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>, RecipeError> {
        match self.get(key) {
            None => Ok(None),
            Some(item) => item
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "true or false")),
        }
    }

    /// A string parsed into a newtype; a refusal points at the value.
    pub(crate) fn parsed<T: FromStr<Err: Into<ValueError>>>(
        &self,
        key: &str,
    ) -> Result<Option<T>, RecipeError> {
        // Modes are the one value people write unquoted (`mode = 644`); say how to write it.
        let expected = if key == "mode" {
            "a quoted octal string such as \"0644\""
        } else {
            "a string"
        };
        let Some(item) = self.get(key) else {
            return Ok(None);
        };
        let s = item
            .as_str()
            .ok_or_else(|| self.wrong_type(key, expected))?;
        s.parse::<T>()
            .map(Some)
            .map_err(|reason| RecipeError::InvalidValue {
                at: self.at_value(key),
                key: key.to_string(),
                table: self.name.to_string(),
                reason: reason.into(),
            })
    }

    /// An array of strings (NUL-free).
    pub(crate) fn strings(&self, key: &str) -> Result<Option<Vec<String>>, RecipeError> {
        let Some(item) = self.get(key) else {
            return Ok(None);
        };
        let expected = "an array of strings";
        let array = item
            .as_array()
            .ok_or_else(|| self.wrong_type(key, expected))?;
        let mut out = Vec::with_capacity(array.len());
        for v in array.iter() {
            let s = v.as_str().ok_or_else(|| RecipeError::WrongType {
                at: self.cx.loc(self.cx.span(v.span(), self.value_span(key))),
                key: key.to_string(),
                table: self.name.to_string(),
                expected,
                found: v.type_name(),
            })?;
            if s.contains('\0') {
                return Err(RecipeError::Nul {
                    at: self.cx.loc(self.cx.span(v.span(), self.value_span(key))),
                    key: key.to_string(),
                    table: self.name.to_string(),
                });
            }
            out.push(s.to_string());
        }
        Ok(Some(out))
    }

    /// A sub-table, viewed with `name` in messages.
    pub(crate) fn table(&self, key: &str, name: &'a str) -> Result<Option<Tbl<'a>>, RecipeError> {
        let Some(item) = self.get(key) else {
            return Ok(None);
        };
        let (t, range) = as_table(item).ok_or_else(|| self.wrong_type(key, "a table"))?;
        Ok(Some(Tbl {
            cx: self.cx,
            name,
            t,
            span: self.cx.span(range, self.key_span(key)),
        }))
    }

    /// A sub-table of strings (`env`, `labels`), sorted. With `env_names`, keys must be valid
    /// environment variable names.
    pub(crate) fn string_map(
        &self,
        key: &str,
        name: &'a str,
        env_names: bool,
    ) -> Result<BTreeMap<String, String>, RecipeError> {
        let Some(sub) = self.table(key, name)? else {
            return Ok(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        for k in sub.keys() {
            if env_names && (k.is_empty() || k.contains('=') || k.contains('\0')) {
                return Err(RecipeError::InvalidEnvName {
                    at: sub.at_key(k),
                    name: k.to_string(),
                    table: name.to_string(),
                });
            }
            if k.is_empty() {
                return Err(RecipeError::Empty {
                    at: sub.at_key(k),
                    key: k.to_string(),
                    table: name.to_string(),
                });
            }
            let v = sub.string(k)?.unwrap_or_default();
            if v.contains('\0') {
                return Err(RecipeError::Nul {
                    at: sub.at_value(k),
                    key: k.to_string(),
                    table: name.to_string(),
                });
            }
            out.insert(k.to_string(), v.to_string());
        }
        Ok(out)
    }
}
