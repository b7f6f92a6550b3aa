//! In-place pin rewriting for `kiln lock`.
//!
//! A recipe is a reviewed, commented file; re-serializing it would reorder keys and drop
//! formatting. These functions parse with `toml_edit` only to learn the byte spans of the keys
//! and values involved, then splice the new text in, so every other byte stays as it was: a
//! lock diff is exactly the pin that changed.

use std::ops::Range;

use toml_edit::{Document, Item, TableLike};

use super::span::LineIndex;
use crate::digest::Sha256Digest;
use crate::reference::ImageRef;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    #[error("failed to parse the recipe at {line}:{column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("no input `{input}` in the recipe; known inputs: {}", if known.is_empty() { "(none)".to_string() } else { known.join(", ") })]
    UnknownInput { input: String, known: Vec<String> },
    #[error("[inputs.{input}] has neither `url` nor `path` to pin")]
    NoSource { input: String },
    #[error("the recipe has no [base] ref to pin")]
    NoBase,
    #[error("failed to rewrite `{key}` in place: this layout of the recipe is not supported; set it by hand")]
    Misplaced { key: String },
    #[error("cannot pin [base] to `{reference}`: it has no `@sha256:` digest")]
    UnpinnedReference { reference: String },
}

fn parse(text: &str) -> Result<Document<&str>, LockError> {
    Document::parse(text).map_err(|e| {
        let span = LineIndex::new(text).span(e.span().map_or(0, |r| r.start));
        LockError::Syntax {
            line: span.line,
            column: span.column,
            message: e.message().trim().lines().collect::<Vec<_>>().join(": "),
        }
    })
}

/// A TOML basic string holding `s`.
fn quote(s: &str) -> String {
    toml_edit::Value::from(s).to_string()
}

fn splice(text: &str, range: Range<usize>, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..range.start]);
    out.push_str(with);
    out.push_str(&text[range.end..]);
    out
}

/// Sets `sha256 = "<hex>"` in `[inputs.<input>]`: replaces the value when the key exists,
/// otherwise inserts a line right after `url` (or `path`) with the same indentation and
/// line ending (inside an inline table: `, sha256 = "…"` right after the value).
pub fn pin_input_sha256(text: &str, input: &str, sha: &Sha256Digest) -> Result<String, LockError> {
    let hex = sha.hex();
    pin_input_key(text, input, "sha256", &quote(&hex), &["url", "path"], |v| {
        v.as_str() == Some(hex.as_str())
    })
}

/// Replaces the `url` of `[inputs.<input>]` (what `kiln update` does before pinning the new
/// release's `sha256` and `size`), keeping every other byte of `text`.
pub fn pin_input_url(text: &str, input: &str, url: &str) -> Result<String, LockError> {
    pin_input_key(text, input, "url", &quote(url), &["url"], |v| {
        v.as_str() == Some(url)
    })
}

/// Sets `size` of `[inputs.<input>]` to `size` (replacing it, or inserting it after the
/// input's `sha256`, else its `url`), keeping every other byte of `text`.
pub fn pin_input_size(text: &str, input: &str, size: u64) -> Result<String, LockError> {
    let value = i64::try_from(size).map_err(|_| LockError::Misplaced {
        key: format!("inputs.{input}.size"),
    })?;
    pin_input_key(
        text,
        input,
        "size",
        &size.to_string(),
        &["sha256", "url", "path"],
        |v| v.as_integer() == Some(value),
    )
}

/// Sets `key` of `[inputs.<input>]` to the TOML `value`, inserted after the first of
/// `anchors` the table has when the key is missing; `placed` checks the result.
fn pin_input_key(
    text: &str,
    input: &str,
    key: &str,
    value: &str,
    anchors: &[&str],
    placed: impl Fn(&Item) -> bool,
) -> Result<String, LockError> {
    let doc = parse(text)?;
    let inputs = doc.get("inputs").and_then(Item::as_table_like);
    let Some(item) = inputs.and_then(|t| t.get(input)) else {
        let known = inputs
            .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
            .unwrap_or_default();
        return Err(LockError::UnknownInput {
            input: input.to_string(),
            known,
        });
    };
    let out = insert_or_replace(text, inputs, input, item, key, value, anchors)?;
    // Guard against a layout the splice misread: the pin must land in this input's table.
    if placed(&parse(&out)?["inputs"][input][key]) {
        Ok(out)
    } else {
        Err(LockError::Misplaced {
            key: format!("inputs.{input}.{key}"),
        })
    }
}

fn insert_or_replace(
    text: &str,
    inputs: Option<&dyn TableLike>,
    input: &str,
    item: &Item,
    key: &str,
    value: &str,
    anchors: &[&str],
) -> Result<String, LockError> {
    let table = item.as_table_like().ok_or_else(|| LockError::NoSource {
        input: input.to_string(),
    })?;
    if let Some(range) = table.get(key).and_then(Item::span) {
        return Ok(splice(text, range, value));
    }
    let anchor = anchors.iter().find(|k| table.contains_key(k));
    let anchor = anchor.ok_or_else(|| LockError::NoSource {
        input: input.to_string(),
    })?;
    let (key_range, value_range) = spans(table, anchor).ok_or_else(|| LockError::NoSource {
        input: input.to_string(),
    })?;

    if let Some(inline) = item.as_inline_table() {
        // `a = { url = … }` takes `, sha256 = …`; `inputs = { a.url = … }` takes `, a.sha256 = …`.
        let input_key = inputs.and_then(|t| t.key(input)).and_then(|k| k.span());
        let prefix = match input_key {
            Some(k) if inline.is_dotted() && k.start < key_range.start => {
                &text[k.start..key_range.start]
            }
            _ => "",
        };
        let at = value_range.end;
        return Ok(splice(text, at..at, &format!(", {prefix}{key} = {value}")));
    }
    // Same indentation and dotted prefix as the anchor key: `  url` → `  sha256`,
    // `busybox.url` → `busybox.sha256`.
    let line_start = text[..key_range.start].rfind('\n').map_or(0, |i| i + 1);
    let prefix = &text[line_start..key_range.start];
    let line = format!("{prefix}{key} = {value}");
    Ok(match text[value_range.end..].find('\n') {
        Some(i) => {
            let newline_at = value_range.end + i;
            let eol = if text[..newline_at].ends_with('\r') {
                "\r\n"
            } else {
                "\n"
            };
            splice(
                text,
                newline_at + 1..newline_at + 1,
                &format!("{line}{eol}"),
            )
        }
        None => format!("{text}\n{line}"),
    })
}

fn spans(table: &dyn TableLike, key: &str) -> Option<(Range<usize>, Range<usize>)> {
    let key_range = table.key(key)?.span()?;
    let value_range = table.get(key)?.span()?;
    Some((key_range, value_range))
}

/// Replaces the value of `[base] ref` with `new_ref`, which must be pinned.
pub fn pin_base_ref(text: &str, new_ref: &ImageRef) -> Result<String, LockError> {
    if !new_ref.is_pinned() {
        return Err(LockError::UnpinnedReference {
            reference: new_ref.to_string(),
        });
    }
    let new_ref = new_ref.to_string();
    let doc = parse(text)?;
    let range = doc
        .get("base")
        .and_then(Item::as_table_like)
        .and_then(|t| t.get("ref"))
        .and_then(Item::span)
        .ok_or(LockError::NoBase)?;
    let out = splice(text, range, &quote(&new_ref));
    match parse(&out)?["base"]["ref"].as_str() {
        Some(r) if r == new_ref => Ok(out),
        _ => Err(LockError::Misplaced {
            key: "base.ref".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Recipe;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn sha() -> Sha256Digest {
        Sha256Digest::from_hex(HEX).unwrap()
    }

    const COMMENTED: &str = r#"# hello: the smallest useful image
[image]
name    = "hello"   # aligned on purpose
epoch = 1700000000

[inputs.busybox]   # upstream static build
    url = "https://example.org/busybox-1.36.tar.gz"   # mirror: none
    # a comment between keys stays where it is

[inputs.site]
path = 'site'

[[layer]]
[[layer.step]]
extract = "busybox"
"#;

    /// `text` with `line` inserted as line number `at` (1-based).
    fn with_line(text: &str, at: usize, line: &str) -> String {
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        let owned = format!("{line}\n");
        lines.insert(at - 1, &owned);
        lines.concat()
    }

    #[test]
    fn inserting_a_pin_changes_nothing_but_one_line() {
        let out = pin_input_sha256(COMMENTED, "busybox", &sha()).unwrap();
        assert_eq!(
            out,
            with_line(COMMENTED, 8, &format!("    sha256 = \"{HEX}\""))
        );
        let recipe = Recipe::parse(&out, "r.toml", ".").unwrap();
        assert_eq!(recipe.inputs["busybox"].sha256(), Some(&sha()));
        assert!(recipe.unpinned_inputs().is_empty());
    }

    #[test]
    fn size_goes_after_the_sha256_and_is_replaced_in_place() {
        let pinned = pin_input_sha256(COMMENTED, "busybox", &sha()).unwrap();
        let sized = pin_input_size(&pinned, "busybox", 1234).unwrap();
        assert_eq!(sized, with_line(&pinned, 9, "    size = 1234"));
        let recipe = Recipe::parse(&sized, "r.toml", ".").unwrap();
        assert!(matches!(
            recipe.inputs["busybox"].source,
            crate::recipe::InputSource::Url {
                size: Some(1234),
                ..
            }
        ));
        let resized = pin_input_size(&sized, "busybox", 99).unwrap();
        assert_eq!(resized, sized.replace("size = 1234", "size = 99"));
        // Inline tables take it too.
        let inline = "[inputs]\na = { url = \"https://e/a\", sha256 = \"00\" }\n";
        assert_eq!(
            pin_input_size(inline, "a", 7).unwrap(),
            "[inputs]\na = { url = \"https://e/a\", sha256 = \"00\", size = 7 }\n"
        );
    }

    #[test]
    fn pinning_twice_replaces_the_value_in_place() {
        let once = pin_input_sha256(COMMENTED, "busybox", &sha()).unwrap();
        let other = Sha256Digest::of(b"other");
        let twice = pin_input_sha256(&once, "busybox", &other).unwrap();
        assert_eq!(twice, once.replace(HEX, &other.hex()));
        assert_eq!(pin_input_sha256(&twice, "busybox", &other).unwrap(), twice);
        // An existing pin in another form, with a comment after it.
        let text = "[inputs.a]\nsha256 = 'sha256:00' # old\nurl = \"https://e/a\"\n";
        let out = pin_input_sha256(text, "a", &sha()).unwrap();
        assert_eq!(
            out,
            format!("[inputs.a]\nsha256 = \"{HEX}\" # old\nurl = \"https://e/a\"\n")
        );
    }

    #[test]
    fn layouts_other_than_a_plain_table() {
        let cases: &[(&str, &str, String)] = &[
            // CRLF line endings are kept.
            (
                "[inputs.a]\r\nurl = \"https://e/a\"\r\n[inputs.b]\r\npath = \"b\"\r\n",
                "a",
                format!("[inputs.a]\r\nurl = \"https://e/a\"\r\nsha256 = \"{HEX}\"\r\n[inputs.b]\r\npath = \"b\"\r\n"),
            ),
            // No newline at the end of the file.
            ("[inputs.a]\nurl = \"https://e/a\"", "a", format!("[inputs.a]\nurl = \"https://e/a\"\nsha256 = \"{HEX}\"")),
            // Inline table.
            (
                "[inputs]\na = { url = \"https://e/a\" }  # x\n",
                "a",
                format!("[inputs]\na = {{ url = \"https://e/a\", sha256 = \"{HEX}\" }}  # x\n"),
            ),
            // Dotted keys keep their prefix.
            (
                "[inputs]\na.url = \"https://e/a\"\nb.path = \"b\"\n",
                "a",
                format!("[inputs]\na.url = \"https://e/a\"\na.sha256 = \"{HEX}\"\nb.path = \"b\"\n"),
            ),
            // Dotted keys inside an inline table.
            (
                "inputs = { a.url = \"https://e/a\" }\n",
                "a",
                format!("inputs = {{ a.url = \"https://e/a\", a.sha256 = \"{HEX}\" }}\n"),
            ),
            // A path input is pinned after `path`.
            ("[inputs.s]\npath = \"site\"\n", "s", format!("[inputs.s]\npath = \"site\"\nsha256 = \"{HEX}\"\n")),
        ];
        for (text, input, want) in cases {
            let got = pin_input_sha256(text, input, &sha()).unwrap();
            assert_eq!(&got, want, "{text:?}");
            toml_edit::Document::parse(got.as_str()).unwrap();
        }
    }

    #[test]
    fn pin_input_refusals() {
        let err = pin_input_sha256(COMMENTED, "busybx", &sha()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no input `busybx` in the recipe; known inputs: busybox, site"
        );
        let err = pin_input_sha256("[image]\n", "a", &sha()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no input `a` in the recipe; known inputs: (none)"
        );
        let err = pin_input_sha256("[inputs.a]\n", "a", &sha()).unwrap_err();
        assert_eq!(err, LockError::NoSource { input: "a".into() });
        let err = pin_input_sha256("[inputs.a\n", "a", &sha()).unwrap_err();
        assert!(
            matches!(
                err,
                LockError::Syntax {
                    line: 1,
                    column: 10,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn pinning_the_base_keeps_the_rest() {
        let text = "[image]\nname = \"x\"\n\n[base]  # debian\nref = 'docker://reg.example/debian:12'   # resolved by kiln lock\n";
        let new_ref = format!("docker://reg.example/debian:12@sha256:{HEX}");
        let out = pin_base_ref(text, &new_ref.parse().unwrap()).unwrap();
        assert_eq!(
            out,
            text.replace(
                "'docker://reg.example/debian:12'",
                &format!("\"{new_ref}\"")
            )
        );
        let recipe = Recipe::parse(&out, "r.toml", ".").unwrap();
        assert_eq!(recipe.base.unwrap().digest, Some(sha()));

        assert_eq!(
            pin_base_ref(text, &"docker://reg.example/debian:12".parse().unwrap()).unwrap_err(),
            LockError::UnpinnedReference {
                reference: "docker://reg.example/debian:12".into()
            }
        );
        assert_eq!(
            pin_base_ref("[image]\nname = \"x\"\n", &new_ref.parse().unwrap()).unwrap_err(),
            LockError::NoBase
        );
    }

    #[test]
    fn quoting_survives_odd_references() {
        let text = "[base]\nref = \"oci:x\"\n";
        let new_ref = format!("oci:/tmp/a \"q\"\\b@sha256:{HEX}");
        let out = pin_base_ref(text, &new_ref.parse().unwrap()).unwrap();
        let doc = toml_edit::Document::parse(out.as_str()).unwrap();
        assert_eq!(doc["base"]["ref"].as_str(), Some(new_ref.as_str()));
    }
}
