//! Recipe text → [`Recipe`]: every section checked, every refusal with `file:line:column`.
//!
//! The parser walks a `toml_edit` document by hand instead of deriving serde structs: the
//! recipe rules (exactly one kind per step, inputs referred to by name, pins, paths) need the
//! position of the exact key or value at fault, and messages that list what would be accepted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml_edit::Document;

use super::error::RecipeError;
use super::span::ValueSpans;
use super::span::{LineIndex, Span};
use super::steps::parse_layers;
use super::table::{as_table_array, Cx, Tbl};
use super::types::{
    Base, Compression, ConfigSection, HistoryEntry, ImageSection, Input, InputSource, Recipe,
};
use super::values::{check_input_name, ImagePath, Platform, RefName};
use crate::digest::Sha256Digest;
use crate::reference::ImageRef;

const ROOT_KEYS: &[&str] = &["image", "base", "inputs", "repositories", "layer", "config"];
const IMAGE_KEYS: &[&str] = &[
    "name",
    "epoch",
    "platform",
    "platforms",
    "compression",
    "compression-level",
    "history",
    "annotations",
];
const HISTORY_KEYS: &[&str] = &["created-by", "comment", "author", "empty-layer"];
const BASE_KEYS: &[&str] = &["ref"];
const INPUT_KEYS: &[&str] = &["url", "path", "sha256", "size", "update"];
const CONFIG_KEYS: &[&str] = &[
    "entrypoint",
    "cmd",
    "env",
    "workdir",
    "user",
    "exposed-ports",
    "labels",
    "stop-signal",
];

/// Whether `[base] ref` must carry `@sha256:` (always, except for `kiln lock`, which pins it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BasePin {
    Required,
    Optional,
}

pub(crate) fn parse(
    text: &str,
    file: &Path,
    dir: &Path,
    base_pin: BasePin,
) -> Result<Recipe, RecipeError> {
    let cx = Cx {
        file,
        lines: LineIndex::new(text),
    };
    let doc = Document::parse(text).map_err(|e| {
        let span = cx.span(e.span(), Span::new(1, 1));
        RecipeError::Syntax {
            at: cx.loc(span),
            message: e.message().trim().lines().collect::<Vec<_>>().join(": "),
            unquoted_mode: unquoted_mode(text.lines().nth(span.line - 1).unwrap_or_default()),
        }
    })?;
    let root = Tbl {
        cx: &cx,
        name: "the top level",
        t: doc.as_table(),
        span: Span::new(1, 1),
    };
    root.check_keys(ROOT_KEYS)?;

    let image = parse_image(&root)?;
    let base = match root.table("base", "[base]")? {
        Some(t) => Some(parse_base(&t, base_pin)?),
        None => None,
    };
    let inputs = parse_inputs(&root, dir)?;
    let repositories = super::repositories::parse_repositories(&root, dir)?;
    let layers = parse_layers(&root, &inputs, &repositories)?;
    if let Some(history) = &image.history {
        let entries = history.iter().filter(|h| !h.empty_layer).count();
        if entries != layers.len() {
            let t = root.table("image", "[image]")?.expect("parsed above");
            return Err(RecipeError::HistoryLayerCount {
                at: t.at_value("history"),
                entries,
                layers: layers.len(),
            });
        }
    }
    let config = match root.table("config", "[config]")? {
        Some(t) => parse_config(&t)?,
        None => ConfigSection::default(),
    };
    Ok(Recipe {
        file: file.to_path_buf(),
        dir: dir.to_path_buf(),
        sha256: Sha256Digest::of(text.as_bytes()),
        image,
        base,
        inputs,
        repositories,
        layers,
        config,
    })
}

/// `mode = 0644`: TOML refuses the leading zero, and the fix is not obvious from its message.
fn unquoted_mode(line: &str) -> bool {
    let rest = line.trim_start().strip_prefix("mode").map(str::trim_start);
    rest.and_then(|r| r.strip_prefix('='))
        .is_some_and(|r| r.trim_start().starts_with(|c: char| c.is_ascii_digit()))
}

fn parse_image(root: &Tbl<'_>) -> Result<ImageSection, RecipeError> {
    let t = root
        .table("image", "[image]")?
        .ok_or_else(|| root.missing("image"))?;
    t.check_keys(IMAGE_KEYS)?;
    let name: RefName = t.parsed("name")?.ok_or_else(|| t.missing("name"))?;
    let epoch = t.integer("epoch")?.unwrap_or(0);
    if epoch < 0 {
        return Err(RecipeError::NegativeEpoch {
            at: t.at_value("epoch"),
            value: epoch,
        });
    }
    let mut platform: Platform = t.parsed("platform")?.unwrap_or_else(Platform::host);
    let mut platforms = vec![platform.clone()];
    if let Some(list) = t.strings("platforms")? {
        let parsed = list
            .iter()
            .map(|p| p.parse::<Platform>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| RecipeError::InvalidValue {
                at: t.at_value("platforms"),
                key: "platforms".to_string(),
                table: "[image]".to_string(),
                reason: reason.into(),
            })?;
        let mut unique = parsed.clone();
        unique.sort();
        unique.dedup();
        if parsed.is_empty() || unique.len() != parsed.len() || t.get("platform").is_some() {
            return Err(RecipeError::Platforms {
                at: t.at_value("platforms"),
            });
        }
        platform = parsed[0].clone();
        platforms = parsed;
    }
    let compression = match t.string("compression")? {
        None | Some("gzip") => Compression::Gzip,
        Some("zstd") => Compression::Zstd,
        Some(other) => {
            return Err(RecipeError::UnknownCompression {
                at: t.at_value("compression"),
                value: other.to_string(),
            })
        }
    };
    let compression_level = match t.integer("compression-level")? {
        None => None,
        Some(level) => match i32::try_from(level) {
            Ok(l) if compression.levels().contains(&l) => Some(l),
            _ => {
                let at = t.at_value("compression-level");
                return Err(RecipeError::CompressionLevel {
                    at,
                    compression,
                    level,
                });
            }
        },
    };
    let history = match t.get("history") {
        None => None,
        Some(item) => {
            let tables = as_table_array(item)
                .ok_or_else(|| t.wrong_type("history", "an array of tables ([[image.history]])"))?;
            let entries = tables
                .into_iter()
                .map(|(h, range)| {
                    let h = Tbl {
                        cx: t.cx,
                        name: "[[image.history]]",
                        t: h,
                        span: t.cx.span(range, t.key_span("history")),
                    };
                    h.check_keys(HISTORY_KEYS)?;
                    Ok(HistoryEntry {
                        created_by: h.string("created-by")?.map(str::to_string),
                        comment: h.string("comment")?.map(str::to_string),
                        author: h.string("author")?.map(str::to_string),
                        empty_layer: h.boolean("empty-layer")?.unwrap_or(false),
                    })
                })
                .collect::<Result<Vec<_>, RecipeError>>()?;
            Some(entries)
        }
    };
    Ok(ImageSection {
        name,
        epoch,
        platform,
        platforms,
        compression,
        compression_level,
        history,
        annotations: t.string_map("annotations", "[image.annotations]", false)?,
    })
}

fn parse_base(t: &Tbl<'_>, base_pin: BasePin) -> Result<Base, RecipeError> {
    t.check_keys(BASE_KEYS)?;
    let reference = t.required_string("ref")?;
    let at = t.at_value("ref");
    let parsed: ImageRef = reference
        .parse()
        .map_err(|reason| RecipeError::InvalidBaseRef {
            at: at.clone(),
            reference: reference.to_string(),
            reason,
        })?;
    let digest = parsed.digest().copied();
    if digest.is_none() && base_pin == BasePin::Required {
        return Err(RecipeError::UnpinnedBase {
            at,
            reference: reference.to_string(),
        });
    }
    Ok(Base {
        reference: parsed,
        digest,
        span: t.span,
    })
}

fn parse_inputs(root: &Tbl<'_>, dir: &Path) -> Result<BTreeMap<String, Input>, RecipeError> {
    let mut inputs = BTreeMap::new();
    let Some(all) = root.table("inputs", "[inputs]")? else {
        return Ok(inputs);
    };
    for name in all.keys() {
        check_input_name(name).map_err(|reason| RecipeError::InvalidValue {
            at: all.at_key(name),
            key: name.to_string(),
            table: "[inputs]".to_string(),
            reason,
        })?;
        let label = format!("[inputs.{name}]");
        let t = all.table(name, &label)?.expect("key listed by the table");
        inputs.insert(name.to_string(), parse_input(&t, name, dir)?);
    }
    Ok(inputs)
}

fn parse_input(t: &Tbl<'_>, name: &str, dir: &Path) -> Result<Input, RecipeError> {
    t.check_keys(INPUT_KEYS)?;
    let url = t.string("url")?;
    let path = t.string("path")?;
    let sha256 = match t.string("sha256")? {
        None => None,
        Some(s) => {
            let digest = s.strip_prefix("sha256:").unwrap_or(s);
            Some(
                Sha256Digest::from_hex(digest).map_err(|_| RecipeError::InvalidSha256 {
                    at: t.at_value("sha256"),
                    input: name.to_string(),
                    value: s.to_string(),
                })?,
            )
        }
    };
    let size = match t.integer("size")? {
        Some(n) if n < 0 || path.is_some() => {
            return Err(RecipeError::InvalidSize {
                at: t.at_value("size"),
                input: name.to_string(),
                value: n,
            })
        }
        n => n.map(|n| n as u64),
    };
    let source = match (url, path) {
        (Some(_), Some(_)) => {
            // Point at whichever of the two comes second.
            let key = if t.key_span("path") > t.key_span("url") {
                "path"
            } else {
                "url"
            };
            return Err(RecipeError::BothUrlAndPath {
                at: t.at_key(key),
                input: name.to_string(),
            });
        }
        (None, None) => {
            return Err(RecipeError::NoSource {
                at: t.at(),
                input: name.to_string(),
            })
        }
        (Some(url), None) => {
            if !url_ok(url) {
                let (at, input, url) = (t.at_value("url"), name.to_string(), url.to_string());
                return Err(RecipeError::InvalidUrl { at, input, url });
            }
            InputSource::Url {
                url: url.to_string(),
                sha256,
                size,
            }
        }
        (None, Some(path)) => {
            if path.is_empty() || path.contains('\0') || Path::new(path).is_absolute() {
                let (at, input, path) = (t.at_value("path"), name.to_string(), path.to_string());
                return Err(RecipeError::InvalidInputPath { at, input, path });
            }
            InputSource::Path {
                path: PathBuf::from(path),
                resolved: dir.join(path),
                sha256,
            }
        }
    };
    let update = super::update::parse_update(t, name, url)?;
    Ok(Input {
        name: name.to_string(),
        source,
        span: t.span,
        update,
    })
}

pub(crate) fn url_ok(url: &str) -> bool {
    let rest = ["https://", "http://", "file://"]
        .iter()
        .find_map(|p| url.strip_prefix(p));
    rest.is_some_and(|r| !r.is_empty()) && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn parse_config(t: &Tbl<'_>) -> Result<ConfigSection, RecipeError> {
    t.check_keys(CONFIG_KEYS)?;
    let workdir: Option<ImagePath> = t.parsed("workdir")?;
    let mut exposed_ports = Vec::new();
    for (i, port) in t
        .strings("exposed-ports")?
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let normalized = normalize_port(&port).ok_or_else(|| {
            let array = t.get("exposed-ports").and_then(|item| item.as_array());
            let range = array.and_then(|a| a.get(i)).and_then(|v| v.span());
            RecipeError::InvalidPort {
                at: t.cx.loc(t.cx.span(range, t.value_span("exposed-ports"))),
                value: port,
            }
        })?;
        exposed_ports.push(normalized);
    }
    exposed_ports.sort();
    exposed_ports.dedup();
    Ok(ConfigSection {
        entrypoint: t.strings("entrypoint")?,
        cmd: t.strings("cmd")?,
        env: t.string_map("env", "[config.env]", true)?,
        workdir,
        user: t.text("user")?,
        exposed_ports,
        labels: t.string_map("labels", "[config.labels]", false)?,
        stop_signal: t.text("stop-signal")?,
        at: ValueSpans(
            ["user", "entrypoint", "cmd"]
                .into_iter()
                .filter(|k| t.get(k).is_some())
                .map(|k| (k.to_string(), t.value_span(k)))
                .collect(),
        ),
    })
}

/// `8080` → `8080/tcp`; `53/udp` stays; anything else is refused.
fn normalize_port(port: &str) -> Option<String> {
    let (number, proto) = port.split_once('/').unwrap_or((port, "tcp"));
    if number.is_empty()
        || !number.bytes().all(|b| b.is_ascii_digit())
        || !["tcp", "udp", "sctp"].contains(&proto)
    {
        return None;
    }
    let n = number.parse::<u16>().ok().filter(|&n| n > 0)?;
    Some(format!("{n}/{proto}"))
}
