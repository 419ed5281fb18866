//! `--set path=value` overrides, applied to the JSON document before it is deserialized so that
//! an override is validated exactly like the same value written in the file.

use serde_json::Value;

use super::strict_json;
use crate::error::{Error, Result};

/// Applies one `path=value` override. `path` is dot-separated (`model.logistic.l2`); a segment
/// that is a number indexes an array. `value` is parsed as JSON when it is valid JSON
/// (`0.5`, `true`, `["a"]`, `{"random": {}}`) and taken as a string otherwise (`cpu`); JSON
/// with a key twice in one object is an error, as in the spec file.
/// Missing objects along the path are created.
pub fn apply_override(doc: &mut Value, assignment: &str) -> Result<()> {
    let (path, raw) = assignment.split_once('=').ok_or_else(|| {
        Error::Usage(format!("--set {assignment:?}: expected path=value, e.g. model.logistic.l2=0.5"))
    })?;
    let path = path.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(Error::Usage(format!("--set {assignment:?}: empty path segment")));
    }
    let value = match strict_json::parse(raw) {
        Ok(value) => value,
        Err(strict_json::Error::Syntax(_)) => Value::String(raw.to_string()),
        // Valid JSON, so not meant as a string: reject it as a duplicate in the file would be.
        Err(strict_json::Error::DuplicateKey { path: inner, key, .. }) => {
            return Err(Error::Usage(format!(
                "--set {path}: duplicate key {key:?} in the value (at {inner})"
            )));
        }
    };

    let mut node = doc;
    for (depth, segment) in path.split('.').enumerate() {
        let here = path.split('.').take(depth + 1).collect::<Vec<_>>().join(".");
        node = match node {
            Value::Array(items) => {
                let index: usize = segment.parse().map_err(|_| {
                    Error::Usage(format!("--set {path}: {here} indexes an array, expected a number"))
                })?;
                let len = items.len();
                items.get_mut(index).ok_or_else(|| {
                    Error::Usage(format!(
                        "--set {path}: index {index} out of range, the array has {len} items"
                    ))
                })?
            }
            other => {
                if !other.is_object() {
                    *other = Value::Object(Default::default());
                }
                match other {
                    Value::Object(map) => map.entry(segment.to_string()).or_insert(Value::Null),
                    _ => unreachable!("made an object above"),
                }
            }
        };
    }
    *node = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sets_nested_values_parsing_json_or_strings() {
        let mut doc = json!({"model": {"logistic": {"l2": 1.0}}, "data": {"features": ["a", "b"]}});
        apply_override(&mut doc, "model.logistic.l2=0.5").unwrap();
        apply_override(&mut doc, "device=cpu").unwrap();
        apply_override(&mut doc, "data.features.1=c.parquet").unwrap();
        apply_override(&mut doc, "holdout={\"files\": [\"e.parquet\"]}").unwrap();
        assert_eq!(doc["model"]["logistic"]["l2"], 0.5);
        assert_eq!(doc["device"], "cpu");
        assert_eq!(doc["data"]["features"], json!(["a", "c.parquet"]));
        assert_eq!(doc["holdout"], json!({"files": ["e.parquet"]}));
    }

    #[test]
    fn rejects_malformed_assignments() {
        let mut doc = json!({"a": [1]});
        assert!(apply_override(&mut doc, "novalue").is_err());
        assert!(apply_override(&mut doc, "a.x=1").is_err());
        assert!(apply_override(&mut doc, "a.5=1").is_err());
        assert!(apply_override(&mut doc, "a..b=1").is_err());
        let err = apply_override(&mut doc, r#"params={"x": {"k": 1, "k": 2}}"#).unwrap_err().to_string();
        assert_eq!(err, r#"--set params: duplicate key "k" in the value (at x.k)"#);
    }
}
