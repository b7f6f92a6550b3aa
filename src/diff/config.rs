//! Comparing two image configs field by field.
//!
//! Runtime fields (entrypoint, cmd, env, user, workdir, labels, exposed ports, volumes, stop
//! signal, platform) decide how a container runs: differences there are class `config` and
//! make images `different`. `created`, `history`, `author` and build-tool fields (docker's
//! `container_config`, `docker_version` …) are metadata. `rootfs` is compared as layers.
//!
//! Missing, `null`, `[]`, `{}` and `""` are the same: Docker writes `"Cmd": null` where
//! others leave the key out. Env is compared per variable (the last assignment wins, as in a
//! runtime), labels, ports and volumes per key.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::report::{Class, FieldDiff};

/// Runtime fields inside `config`, by their JSON key, with the name the report uses.
const RUNTIME_FIELDS: &[(&str, &str)] = &[
    ("Entrypoint", "entrypoint"),
    ("Cmd", "cmd"),
    ("Env", "env"),
    ("User", "user"),
    ("WorkingDir", "workdir"),
    ("Labels", "labels"),
    ("ExposedPorts", "exposed ports"),
    ("Volumes", "volumes"),
    ("StopSignal", "stop signal"),
];

const PLATFORM_FIELDS: &[&str] = &["architecture", "os", "variant", "os.version", "os.features"];

/// Every difference between configs `a` and `b` (parsed JSON).
pub fn compare(a: &Value, b: &Value) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let empty = Map::new();
    let top_a = a.as_object().unwrap_or(&empty);
    let top_b = b.as_object().unwrap_or(&empty);
    for key in PLATFORM_FIELDS {
        push_if_differs(
            &mut out,
            Class::Config,
            key,
            None,
            top_a.get(*key),
            top_b.get(*key),
        );
    }
    let cfg_a = top_a
        .get("config")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let cfg_b = top_b
        .get("config")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (json_key, name) in RUNTIME_FIELDS {
        let (va, vb) = (cfg_a.get(*json_key), cfg_b.get(*json_key));
        match *json_key {
            "Env" => compare_env(&mut out, va, vb),
            "Labels" | "ExposedPorts" | "Volumes" => compare_keyed(&mut out, name, va, vb),
            _ => push_if_differs(&mut out, Class::Config, name, None, va, vb),
        }
    }
    let known: BTreeSet<&str> = RUNTIME_FIELDS.iter().map(|(k, _)| *k).collect();
    for key in union_keys(cfg_a, cfg_b) {
        if !known.contains(key.as_str()) {
            let name = key.to_lowercase();
            push_if_differs(
                &mut out,
                Class::Config,
                &name,
                None,
                cfg_a.get(&key),
                cfg_b.get(&key),
            );
        }
    }
    push_if_differs(
        &mut out,
        Class::Created,
        "created",
        None,
        top_a.get("created"),
        top_b.get("created"),
    );
    compare_history(&mut out, top_a.get("history"), top_b.get("history"));
    for key in union_keys(top_a, top_b) {
        let handled = PLATFORM_FIELDS.contains(&key.as_str())
            || ["config", "rootfs", "created", "history"].contains(&key.as_str());
        if !handled {
            push_if_differs(
                &mut out,
                Class::ConfigMetadata,
                &key,
                None,
                top_a.get(&key),
                top_b.get(&key),
            );
        }
    }
    out
}

fn union_keys(a: &Map<String, Value>, b: &Map<String, Value>) -> BTreeSet<String> {
    a.keys().chain(b.keys()).cloned().collect()
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

fn push_if_differs(
    out: &mut Vec<FieldDiff>,
    class: Class,
    field: &str,
    key: Option<String>,
    a: Option<&Value>,
    b: Option<&Value>,
) {
    if is_empty(a) && is_empty(b) {
        return;
    }
    if a == b {
        return;
    }
    out.push(FieldDiff {
        class,
        field: field.to_string(),
        key,
        layer: None,
        a: a.cloned().unwrap_or(Value::Null),
        b: b.cloned().unwrap_or(Value::Null),
    });
}

fn env_map(v: Option<&Value>) -> (BTreeMap<String, String>, Vec<String>) {
    let list: Vec<String> = v
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut map = BTreeMap::new();
    for item in &list {
        let (k, val) = item.split_once('=').unwrap_or((item.as_str(), ""));
        map.insert(k.to_string(), val.to_string());
    }
    (map, list)
}

fn compare_env(out: &mut Vec<FieldDiff>, a: Option<&Value>, b: Option<&Value>) {
    let (ma, la) = env_map(a);
    let (mb, lb) = env_map(b);
    let keys: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    for k in keys {
        let va = ma.get(k).map(|s| Value::String(s.clone()));
        let vb = mb.get(k).map(|s| Value::String(s.clone()));
        if va != vb {
            out.push(FieldDiff {
                class: Class::Config,
                field: "env".into(),
                key: Some(k.clone()),
                layer: None,
                a: va.unwrap_or(Value::Null),
                b: vb.unwrap_or(Value::Null),
            });
        }
    }
    if ma == mb && la != lb {
        out.push(FieldDiff {
            class: Class::ConfigMetadata,
            field: "env order".into(),
            key: None,
            layer: None,
            a: Value::from(la),
            b: Value::from(lb),
        });
    }
}

fn compare_keyed(out: &mut Vec<FieldDiff>, name: &str, a: Option<&Value>, b: Option<&Value>) {
    let empty = Map::new();
    let ma = a.and_then(Value::as_object).unwrap_or(&empty);
    let mb = b.and_then(Value::as_object).unwrap_or(&empty);
    for k in union_keys(ma, mb) {
        let (va, vb) = (ma.get(&k), mb.get(&k));
        if va != vb {
            out.push(FieldDiff {
                class: Class::Config,
                field: name.to_string(),
                key: Some(k.clone()),
                layer: None,
                // A port or volume present with `{}` is shown as `true`.
                a: va.map_or(Value::Null, |v| {
                    if v == &Value::Object(Map::new()) {
                        Value::Bool(true)
                    } else {
                        v.clone()
                    }
                }),
                b: vb.map_or(Value::Null, |v| {
                    if v == &Value::Object(Map::new()) {
                        Value::Bool(true)
                    } else {
                        v.clone()
                    }
                }),
            });
        }
    }
}

fn compare_history(out: &mut Vec<FieldDiff>, a: Option<&Value>, b: Option<&Value>) {
    let none = Vec::new();
    let ha = a.and_then(Value::as_array).unwrap_or(&none);
    let hb = b.and_then(Value::as_array).unwrap_or(&none);
    for i in 0..ha.len().max(hb.len()) {
        let (va, vb) = (ha.get(i), hb.get(i));
        if va != vb {
            out.push(FieldDiff {
                class: Class::History,
                field: "history".into(),
                key: Some(i.to_string()),
                layer: None,
                a: va.cloned().unwrap_or(Value::Null),
                b: vb.cloned().unwrap_or(Value::Null),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(diffs: &[FieldDiff]) -> Vec<(Class, String, Option<String>)> {
        diffs
            .iter()
            .map(|d| (d.class, d.field.clone(), d.key.clone()))
            .collect()
    }

    #[test]
    fn runtime_fields_are_config_and_the_rest_metadata() {
        let a = json!({
            "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
            "config": {
                "Env": ["PATH=/bin", "A=1"], "Cmd": null, "User": "0",
                "Labels": {"x": "1", "y": "2"}, "ExposedPorts": {"80/tcp": {}}
            },
            "history": [{"created_by": "a"}],
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
        });
        let b = json!({
            "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "author": "someone",
            "config": {
                "Env": ["PATH=/usr/bin", "B=2"], "User": "0",
                "Labels": {"x": "1", "y": "3"}, "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
                "Entrypoint": ["/bin/sh"]
            },
            "history": [{"created_by": "a"}, {"created_by": "b"}],
            "rootfs": {"type": "layers", "diff_ids": ["sha256:bb"]},
        });
        let got = fields(&compare(&a, &b));
        let want = vec![
            (Class::Config, "entrypoint".to_string(), None),
            (Class::Config, "env".into(), Some("A".into())),
            (Class::Config, "env".into(), Some("B".into())),
            (Class::Config, "env".into(), Some("PATH".into())),
            (Class::Config, "labels".into(), Some("y".into())),
            (
                Class::Config,
                "exposed ports".into(),
                Some("443/tcp".into()),
            ),
            (Class::Created, "created".into(), None),
            (Class::History, "history".into(), Some("1".into())),
            (Class::ConfigMetadata, "author".into(), None),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn empty_and_missing_are_the_same_and_env_order_is_metadata() {
        let a = json!({"config": {"Cmd": [], "Env": ["A=1", "B=2"], "Labels": {}}});
        let b = json!({"config": {"Env": ["B=2", "A=1"]}});
        let got = fields(&compare(&a, &b));
        assert_eq!(
            got,
            vec![(Class::ConfigMetadata, "env order".to_string(), None)]
        );
    }
}
