//! JSON text to a [`serde_json::Value`], rejecting a key that appears twice in one object.
//!
//! serde_json keeps the last of two equal keys without a word, so `{"l2": 0.1, ..., "l2": 10}`
//! trains with 10 while a reader of the file sees 0.1. The document is deserialized through a
//! visitor that builds the value itself and knows the JSON path of every node, so the error can
//! name where the duplicate is.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why text is not an acceptable JSON document.
#[derive(Debug)]
pub(crate) enum Error {
    /// Not JSON (or nested too deeply), as serde_json reports it.
    Syntax(serde_json::Error),
    /// `key` appears twice in the object at the parent of `path` (the path of the key).
    DuplicateKey {
        /// JSON path of the duplicated key, e.g. `params.owner` or `data.filters[0].column`.
        path: String,
        /// The key.
        key: String,
        /// Line of the second occurrence.
        line: usize,
        /// Column just after the second occurrence.
        column: usize,
    },
}

/// Parses `text` as one JSON value.
pub(crate) fn parse(text: &str) -> Result<Value, Error> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Node { path: String::new(), duplicate: &duplicate }.deserialize(&mut de).and_then(|v| {
        de.end()?;
        Ok(v)
    });
    parsed.map_err(|e| match duplicate.into_inner() {
        // The visitor's error carries serde_json's position of the second key.
        Some((path, key)) => Error::DuplicateKey { path, key, line: e.line(), column: e.column() },
        None => Error::Syntax(e),
    })
}

/// One node of the document: its path, and where to record a duplicate key (serde errors
/// carry only a message, and the path would otherwise have to be parsed back out of it).
struct Node<'a> {
    path: String,
    duplicate: &'a RefCell<Option<(String, String)>>,
}

impl<'a> Node<'a> {
    fn child(&self, path: String) -> Node<'a> {
        Node { path, duplicate: self.duplicate }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json produces only finite numbers, which `from` keeps as numbers.
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child(format!("{}[{}]", self.path, items.len())))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() { key.clone() } else { format!("{}.{key}", self.path) };
            if object.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some((path, key));
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(self.child(path))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(text: &str) -> (String, String) {
        match parse(text) {
            Err(Error::DuplicateKey { path, key, .. }) => (path, key),
            other => panic!("expected a duplicate key in {text}, got {other:?}"),
        }
    }

    #[test]
    fn parses_what_serde_json_parses() {
        let text =
            r#"{"a": [1, -2, 3.5, 1e300, 18446744073709551615, "x\u00e9", true, null, {}], "b": {"c": []}}"#;
        assert_eq!(parse(text).unwrap(), serde_json::from_str::<Value>(text).unwrap());
        let order: Vec<_> =
            parse(r#"{"z": 1, "a": 2}"#).unwrap().as_object().unwrap().keys().cloned().collect();
        assert_eq!(order, ["z", "a"], "key order is kept");
    }

    #[test]
    fn duplicate_keys_are_named_with_their_path() {
        assert_eq!(duplicate(r#"{"a": 1, "a": 2}"#), ("a".into(), "a".into()));
        assert_eq!(
            duplicate(r#"{"params": {"owner": "x", "owner": "y"}}"#),
            ("params.owner".into(), "owner".into())
        );
        assert_eq!(
            duplicate(r#"{"data": {"filters": [{"column": "a"}, {"column": "b", "column": "c"}]}}"#),
            ("data.filters[1].column".into(), "column".into())
        );
        // Escapes are decoded before comparing.
        assert_eq!(duplicate(r#"{"k": 1, "\u006b": 2}"#), ("k".into(), "k".into()));
    }

    #[test]
    fn syntax_errors_and_trailing_text_are_syntax_errors() {
        for text in ["{", "{} x", "[1,]", ""] {
            assert!(matches!(parse(text), Err(Error::Syntax(_))), "{text}");
        }
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(matches!(parse(&deep), Err(Error::Syntax(_))), "serde_json's recursion limit holds");
    }
}
