//! The image config: inherited from the base image (every field it has, including ones kiln
//! does not know), then overridden by `[config]`. Built as a JSON value and written canonically.

use serde_json::{json, Map, Value};

use crate::recipe::{ConfigSection, HistoryEntry, Platform};

/// RFC 3339 UTC text for `epoch` seconds (no sub-seconds), as OCI's `created` fields use.
pub fn rfc3339(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the whole i64 day range we accept.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// The history entry and diff_id of one new layer.
pub struct NewLayer {
    pub diff_id: String,
    pub created_by: String,
}

/// Builds the config JSON from the base's config (if any), the recipe and the new layers.
/// `history`, when the recipe gives it, replaces the entries kiln would write for the new
/// layers (the recipe parser checked that it has one non-empty entry per layer).
pub fn image_config(
    base: Option<&Value>,
    platform: &Platform,
    epoch: i64,
    recipe: &ConfigSection,
    new_layers: &[NewLayer],
    history_override: Option<&[HistoryEntry]>,
) -> Value {
    let mut cfg = match base {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let created = rfc3339(epoch);
    cfg.insert("created".into(), json!(created));
    cfg.insert("architecture".into(), json!(platform.architecture()));
    cfg.insert("os".into(), json!(platform.os()));
    match platform.variant() {
        Some(v) => cfg.insert("variant".into(), json!(v)),
        None => cfg.remove("variant"),
    };
    // Fields that describe the base's own build, not this image.
    for stale in [
        "container",
        "container_config",
        "docker_version",
        "author",
        "parent",
        "id",
    ] {
        cfg.remove(stale);
    }

    let mut c = match cfg.remove("config") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Some(ep) = &recipe.entrypoint {
        c.insert("Entrypoint".into(), json!(ep));
        // As a Dockerfile's ENTRYPOINT does: a new entrypoint drops the inherited command.
        if recipe.cmd.is_none() {
            c.remove("Cmd");
        }
    }
    if let Some(cmd) = &recipe.cmd {
        c.insert("Cmd".into(), json!(cmd));
    }
    if !recipe.env.is_empty() {
        let mut env: Vec<String> = c
            .get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for (k, v) in &recipe.env {
            let entry = format!("{k}={v}");
            match env
                .iter_mut()
                .find(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k.as_str()))
            {
                Some(slot) => *slot = entry,
                None => env.push(entry),
            }
        }
        c.insert("Env".into(), json!(env));
    }
    if let Some(w) = &recipe.workdir {
        c.insert("WorkingDir".into(), json!(w.as_str()));
    }
    if let Some(u) = &recipe.user {
        c.insert("User".into(), json!(u));
    }
    if !recipe.exposed_ports.is_empty() {
        let mut ports = match c.remove("ExposedPorts") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for p in &recipe.exposed_ports {
            ports.insert(p.clone(), json!({}));
        }
        c.insert("ExposedPorts".into(), Value::Object(ports));
    }
    if !recipe.labels.is_empty() {
        let mut labels = match c.remove("Labels") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (k, v) in &recipe.labels {
            labels.insert(k.clone(), json!(v));
        }
        c.insert("Labels".into(), Value::Object(labels));
    }
    if let Some(s) = &recipe.stop_signal {
        c.insert("StopSignal".into(), json!(s));
    }
    if !c.is_empty() {
        cfg.insert("config".into(), Value::Object(c));
    }

    let mut rootfs = match cfg.remove("rootfs") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    rootfs.insert("type".into(), json!("layers"));
    let mut diff_ids: Vec<Value> = rootfs
        .remove("diff_ids")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let mut history: Vec<Value> = cfg
        .remove("history")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    for layer in new_layers {
        diff_ids.push(json!(layer.diff_id));
        if history_override.is_none() {
            history.push(json!({"created": created, "created_by": layer.created_by}));
        }
    }
    for entry in history_override.unwrap_or_default() {
        let mut h = Map::new();
        h.insert("created".into(), json!(created));
        for (key, value) in [
            ("created_by", &entry.created_by),
            ("author", &entry.author),
            ("comment", &entry.comment),
        ] {
            if let Some(v) = value {
                h.insert(key.into(), json!(v));
            }
        }
        if entry.empty_layer {
            h.insert("empty_layer".into(), json!(true));
        }
        history.push(Value::Object(h));
    }
    rootfs.insert("diff_ids".into(), Value::Array(diff_ids));
    cfg.insert("rootfs".into(), Value::Object(rootfs));
    cfg.insert("history".into(), Value::Array(history));
    Value::Object(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_dates() {
        for (epoch, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(epoch), text, "{epoch}");
        }
    }

    #[test]
    fn recipe_overrides_base_and_keeps_unknown_fields() {
        let base = json!({
            "architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00Z",
            "config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Labels": {"x": "1"}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
            "history": [{"created_by": "base"}],
            "container_config": {}, "moby.extra": true
        });
        let recipe = ConfigSection {
            entrypoint: Some(vec!["/bin/app".into()]),
            env: [
                ("A".to_string(), "2".to_string()),
                ("B".to_string(), "3".to_string()),
            ]
            .into(),
            labels: [("y".to_string(), "2".to_string())].into(),
            ..Default::default()
        };
        let p: Platform = "linux/amd64".parse().unwrap();
        let cfg = image_config(
            Some(&base),
            &p,
            10,
            &recipe,
            &[NewLayer {
                diff_id: "sha256:bb".into(),
                created_by: "kiln".into(),
            }],
            None,
        );
        assert_eq!(cfg["created"], "1970-01-01T00:00:10Z");
        assert_eq!(cfg["config"]["Env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert!(
            cfg["config"].get("Cmd").is_none(),
            "a new entrypoint drops the inherited cmd"
        );
        assert_eq!(cfg["config"]["Labels"], json!({"x": "1", "y": "2"}));
        assert_eq!(cfg["rootfs"]["diff_ids"], json!(["sha256:aa", "sha256:bb"]));
        assert_eq!(cfg["history"].as_array().unwrap().len(), 2);
        assert!(cfg.get("container_config").is_none());
        assert_eq!(cfg["moby.extra"], true);
    }

    #[test]
    fn recipe_history_replaces_the_new_layers_entries() {
        let base =
            json!({"history": [{"created_by": "base"}], "rootfs": {"diff_ids": ["sha256:aa"]}});
        let p: Platform = "linux/amd64".parse().unwrap();
        let history = [
            HistoryEntry {
                created_by: Some("COPY dir:x in / ".into()),
                ..Default::default()
            },
            HistoryEntry {
                created_by: Some("CMD [\"sh\"]".into()),
                comment: Some("FROM e8952cbeabbc".into()),
                author: None,
                empty_layer: true,
            },
        ];
        let layer = NewLayer {
            diff_id: "sha256:bb".into(),
            created_by: "kiln: copy".into(),
        };
        let cfg = image_config(
            Some(&base),
            &p,
            0,
            &ConfigSection::default(),
            &[layer],
            Some(&history),
        );
        assert_eq!(
            cfg["history"],
            json!([
                {"created_by": "base"},
                {"created": "1970-01-01T00:00:00Z", "created_by": "COPY dir:x in / "},
                {"created": "1970-01-01T00:00:00Z", "created_by": "CMD [\"sh\"]", "comment": "FROM e8952cbeabbc", "empty_layer": true},
            ])
        );
        assert_eq!(cfg["rootfs"]["diff_ids"], json!(["sha256:aa", "sha256:bb"]));
    }
}
