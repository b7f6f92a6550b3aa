//! Canonical JSON for every blob kiln writes (configs, manifests, indexes, statements).
//!
//! Object keys are written in bytewise-sorted order at every depth, with no insignificant white
//! space. That makes the bytes a pure function of the value whatever the field order of the
//! Rust types, whatever map type a dependency used (the `oci-spec` types hold annotations and
//! labels in `HashMap`s), and whether some crate in the build enabled serde_json's
//! `preserve_order` feature.

use serde::Serialize;
use serde_json::Value;

/// Serializes `value` canonically: sorted keys, compact, UTF-8.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(256);
    write_value(&value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write_value(&map[key], out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn keys_are_sorted_at_every_depth() {
        let v = serde_json::json!({"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": null}});
        assert_eq!(
            String::from_utf8(to_canonical_vec(&v).unwrap()).unwrap(),
            r#"{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn hash_map_order_never_leaks() {
        let map: HashMap<String, u32> = (0..64).map(|i| (format!("k{i}"), i)).collect();
        let first = to_canonical_vec(&map).unwrap();
        for _ in 0..8 {
            let again: HashMap<String, u32> = (0..64).rev().map(|i| (format!("k{i}"), i)).collect();
            assert_eq!(to_canonical_vec(&again).unwrap(), first);
        }
    }
}
