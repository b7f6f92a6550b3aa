//! `[[layer]]` and `[[layer.step]]`: each step has exactly one kind key (`extract`, `copy`, …)
//! plus the keys that kind takes.
//!
//! Checks run in the order a reader fixes things: unknown keys first, then the kind, then keys
//! that belong to another kind, then the values themselves.

use std::collections::BTreeMap;

use super::error::RecipeError;
use super::repositories::{is_package_name, Generated, Repository};
use super::table::{as_table_array, Tbl};
use super::types::{Input, Layer, Step, StepKind, TarStyle};
use super::values::{ImagePath, Mode, Owner};

/// Every step kind, in the order messages list them.
pub const STEP_KINDS: [&str; 8] = [
    "extract", "copy", "write", "mkdir", "symlink", "remove", "run", "packages",
];

const STEP_KEYS: &[&str] = &[
    "extract", "copy", "write", "mkdir", "symlink", "remove", "run", "dest", "mode", "owner",
    "content", "target", "env", "workdir", "user", "packages", "from", "generate",
];

/// The keys each kind takes besides its own.
fn options(kind: &str) -> &'static [&'static str] {
    match kind {
        "extract" => &["dest"],
        "copy" => &["dest", "mode", "owner"],
        "write" => &["content", "mode", "owner"],
        "mkdir" => &["mode", "owner"],
        "symlink" => &["target", "owner"],
        "run" => &["env", "workdir", "user"],
        "packages" => &["from", "generate"],
        _ => &[],
    }
}

pub(crate) fn parse_layers(
    root: &Tbl<'_>,
    inputs: &BTreeMap<String, Input>,
    repositories: &BTreeMap<String, Repository>,
) -> Result<Vec<Layer>, RecipeError> {
    let Some(item) = root.get("layer") else {
        return Ok(Vec::new());
    };
    let tables = as_table_array(item)
        .ok_or_else(|| root.wrong_type("layer", "an array of tables ([[layer]])"))?;
    let mut layers = Vec::with_capacity(tables.len());
    for (index, (t, range)) in tables.into_iter().enumerate() {
        let layer = Tbl {
            cx: root.cx,
            name: "[[layer]]",
            t,
            span: root.cx.span(range, root.key_span("layer")),
        };
        layer.check_keys(&["step", "tar"])?;
        let tar = match layer.string("tar")? {
            None => TarStyle::default(),
            Some(name) => {
                TarStyle::from_name(name).ok_or_else(|| RecipeError::UnknownTarStyle {
                    at: layer.at_value("tar"),
                    value: name.to_string(),
                })?
            }
        };
        let steps = match layer.get("step") {
            None => Vec::new(),
            Some(item) => as_table_array(item)
                .ok_or_else(|| layer.wrong_type("step", "an array of tables ([[layer.step]])"))?
                .into_iter()
                .map(|(t, range)| {
                    let span = root.cx.span(range, layer.key_span("step"));
                    parse_step(
                        &Tbl {
                            cx: root.cx,
                            name: "[[layer.step]]",
                            t,
                            span,
                        },
                        inputs,
                        repositories,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if steps.is_empty() {
            return Err(RecipeError::EmptyLayer {
                at: layer.at(),
                index: index + 1,
            });
        }
        layers.push(Layer {
            steps,
            tar,
            span: layer.span,
        });
    }
    Ok(layers)
}

fn parse_step(
    t: &Tbl<'_>,
    inputs: &BTreeMap<String, Input>,
    repositories: &BTreeMap<String, Repository>,
) -> Result<Step, RecipeError> {
    t.check_keys(STEP_KEYS)?;
    let kinds: Vec<&'static str> = t
        .keys()
        .into_iter()
        .filter_map(|k| STEP_KINDS.iter().copied().find(|kind| *kind == k))
        .collect();
    let kind = match kinds.as_slice() {
        [] => {
            return Err(RecipeError::NoStepKind {
                at: t.at(),
                expected: STEP_KINDS.to_vec(),
            })
        }
        [kind] => *kind,
        [first, second, ..] => {
            return Err(RecipeError::TwoStepKinds {
                at: t.at_key(second),
                first,
                second,
            });
        }
    };
    let allowed = options(kind);
    for key in t.keys() {
        if key != kind && !allowed.contains(&key) {
            let key = STEP_KEYS
                .iter()
                .copied()
                .find(|k| *k == key)
                .expect("checked against STEP_KEYS");
            return Err(RecipeError::KeyNotForKind {
                at: t.at_key(key),
                key,
                kind,
                allowed: allowed.to_vec(),
            });
        }
    }
    let kind = match kind {
        "extract" => StepKind::Extract {
            input: input(t, kind, inputs)?,
            dest: t.parsed("dest")?.unwrap_or_else(ImagePath::root),
        },
        "copy" => StepKind::Copy {
            input: input(t, kind, inputs)?,
            dest: t.parsed("dest")?.ok_or_else(|| t.missing("dest"))?,
            mode: t.parsed("mode")?,
            owner: t.parsed("owner")?,
        },
        "write" => StepKind::Write {
            path: target_path(t, kind)?,
            content: t
                .string("content")?
                .ok_or_else(|| t.missing("content"))?
                .to_string(),
            mode: t.parsed("mode")?.unwrap_or(Mode::FILE),
            owner: t.parsed("owner")?.unwrap_or(Owner::ROOT),
        },
        "mkdir" => StepKind::Mkdir {
            path: target_path(t, kind)?,
            mode: t.parsed("mode")?.unwrap_or(Mode::DIR),
            owner: t.parsed("owner")?.unwrap_or(Owner::ROOT),
        },
        "symlink" => StepKind::Symlink {
            path: target_path(t, kind)?,
            target: t.text("target")?.ok_or_else(|| t.missing("target"))?,
            owner: t.parsed("owner")?.unwrap_or(Owner::ROOT),
        },
        "remove" => StepKind::Remove {
            path: target_path(t, kind)?,
        },
        "packages" => packages(t, repositories)?,
        _ => StepKind::Run {
            argv: command(t)?,
            env: t.string_map("env", "`env` of [[layer.step]]", true)?,
            workdir: t.parsed("workdir")?,
            user: t.text("user")?,
        },
    };
    Ok(Step { kind, span: t.span })
}

/// `packages = [...]` with `from` (optional when the recipe has one repository).
fn packages(
    t: &Tbl<'_>,
    repositories: &BTreeMap<String, Repository>,
) -> Result<StepKind, RecipeError> {
    let mut names = t.strings("packages")?.expect("kind key present");
    if let Some(bad) = names.iter().find(|n| !is_package_name(n)) {
        return Err(RecipeError::InvalidPackageName {
            at: t.at_value("packages"),
            name: bad.clone(),
        });
    }
    if names.is_empty() {
        return Err(t.missing("packages"));
    }
    names.sort();
    names.dedup();
    let known: Vec<String> = repositories.keys().cloned().collect();
    let from = match t.string("from")? {
        Some(name) if repositories.contains_key(name) => name.to_string(),
        Some(name) => {
            return Err(RecipeError::UnknownRepository {
                at: t.at_value("from"),
                name: name.to_string(),
                known,
            })
        }
        None if known.len() == 1 => known[0].clone(),
        None => {
            return Err(RecipeError::UnknownRepository {
                at: t.at_key("packages"),
                name: String::new(),
                known,
            })
        }
    };
    let mut generate = Vec::new();
    for name in t.strings("generate")?.unwrap_or_default() {
        let Some(g) = Generated::from_name(&name) else {
            return Err(RecipeError::UnknownGenerated {
                at: t.at_value("generate"),
                value: name,
            });
        };
        generate.push(g);
    }
    generate.sort();
    generate.dedup();
    Ok(StepKind::Packages {
        names,
        from,
        generate,
    })
}

/// The input named by `extract`/`copy`, which must exist.
fn input(
    t: &Tbl<'_>,
    kind: &'static str,
    inputs: &BTreeMap<String, Input>,
) -> Result<String, RecipeError> {
    let name = t.string(kind)?.expect("kind key present");
    if !inputs.contains_key(name) {
        return Err(RecipeError::UnknownInput {
            at: t.at_value(kind),
            kind,
            input: name.to_string(),
            known: inputs.keys().cloned().collect(),
        });
    }
    Ok(name.to_string())
}

/// The path a `write`/`mkdir`/`symlink`/`remove` step acts on; never the root itself.
fn target_path(t: &Tbl<'_>, kind: &'static str) -> Result<ImagePath, RecipeError> {
    let path: ImagePath = t.parsed(kind)?.expect("kind key present");
    if path.is_root() {
        return Err(RecipeError::RootPath {
            at: t.at_value(kind),
            kind,
        });
    }
    Ok(path)
}

/// `run = "…"` (a shell command) or `run = ["argv0", …]`.
fn command(t: &Tbl<'_>) -> Result<Vec<String>, RecipeError> {
    let argv = match t.get("run").and_then(|item| item.as_str()) {
        Some(script) => {
            if script.trim().is_empty() {
                return Err(RecipeError::EmptyCommand {
                    at: t.at_value("run"),
                });
            }
            t.check_text("run", script)?;
            vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()]
        }
        None => t
            .strings("run")
            .map_err(|e| match e {
                RecipeError::WrongType {
                    at,
                    key,
                    table,
                    found,
                    ..
                } => RecipeError::WrongType {
                    at,
                    key,
                    table,
                    expected: "a string or an array of strings",
                    found,
                },
                other => other,
            })?
            .expect("kind key present"),
    };
    if argv.first().is_none_or(String::is_empty) {
        return Err(RecipeError::EmptyCommand {
            at: t.at_value("run"),
        });
    }
    Ok(argv)
}
