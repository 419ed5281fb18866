//! Labels: which values a label column may hold, binary (which one is positive, encoded 0/1) or
//! multiclass (K >= 3 classes in ascending order, encoded as the class index), and the encoding
//! the model and the metrics use.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::{Column, Kind, Values};
use crate::error::{Error, Result};

/// Most classes a multiclass label may have: beyond this a "label" is an identifier, and the
/// K × width coefficients and K-wide metrics stop being meaningful.
pub const MAX_CLASSES: usize = 1000;

/// How label values map to classes; recorded in `model.json` (`labels`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Labels {
    /// Two classes: `{"column", "positive", "negative"}`, encoded 1.0 and 0.0.
    Binary(LabelMapping),
    /// K >= 3 classes: `{"column", "classes"}`, encoded as the index into `classes`.
    Multiclass(ClassMapping),
}

/// A multiclass label's classes, in the order of the model's outputs and probability columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassMapping {
    /// The label column.
    pub column: String,
    /// The class values in ascending order (numbers numerically, strings by their UTF-8 bytes),
    /// as scikit-learn's `classes_`: class i is `classes[i]`.
    pub classes: Vec<Value>,
}

impl Labels {
    /// Works out the classes from every label column the job reads (train and test). Labels
    /// that look binary (0/1, booleans, two strings) are binary as [`LabelMapping::fit`] decides;
    /// 3 to [`MAX_CLASSES`] integers or strings are multiclass. `binary_only` names what in the
    /// spec needs a binary label (it is added to the error a multiclass label then gets).
    pub fn fit(
        name: &str,
        columns: &[&Column],
        positive: Option<&Value>,
        binary_only: Option<&str>,
    ) -> Result<Labels> {
        let binary = |why: Option<&str>| {
            LabelMapping::fit(name, columns, positive).map(Labels::Binary).map_err(|e| match (e, why) {
                (Error::Data(m), Some(why)) => Error::data(format!("{m}; {why}")),
                (e, _) => e,
            })
        };
        let kind = columns.first().map_or(Kind::Integer, |c| c.kind);
        let classes: Vec<Value> = match kind {
            Kind::Integer | Kind::Unsigned | Kind::Float | Kind::Decimal => {
                let mut seen = BTreeSet::new();
                for c in columns {
                    for i in 0..c.len() {
                        match c.f64_at(i) {
                            Some(v) if v.is_finite() && v == v.trunc() && v.abs() < 9e15 => {
                                seen.insert(v as i64);
                            }
                            // NaN, fractions, nulls: the binary rules name them.
                            _ => return binary(None),
                        }
                    }
                }
                // Two integers other than 0/1 stay an error: a binary integer label is 0/1.
                if seen.len() <= 2 {
                    return binary(None);
                }
                seen.into_iter().map(Value::from).collect()
            }
            Kind::String => {
                let mut distinct = BTreeSet::new();
                for c in columns {
                    if c.null_count() > 0 {
                        return binary(None);
                    }
                    if let Values::Str { codes, dict } = &c.values {
                        let used: BTreeSet<u32> = codes.iter().copied().collect();
                        distinct.extend(used.into_iter().map(|k| dict[k as usize].clone()));
                    }
                }
                if distinct.len() <= 2 {
                    return binary(None);
                }
                distinct.into_iter().map(Value::String).collect()
            }
            _ => return binary(None),
        };
        if let Some(why) = binary_only {
            return binary(Some(why));
        }
        if classes.len() > MAX_CLASSES {
            let shown: Vec<String> = classes.iter().take(5).map(Value::to_string).collect();
            return Err(Error::data(format!(
                "label column {name:?} has {} distinct values ({}, ...); at most {MAX_CLASSES} classes are supported (is it an identifier?)",
                classes.len(),
                shown.join(", ")
            )));
        }
        if positive.is_some() {
            return Err(Error::spec(
                "positive_label",
                format!(
                    "applies to binary labels; label column {name:?} has {} classes (remove positive_label)",
                    classes.len()
                ),
            ));
        }
        Ok(Labels::Multiclass(ClassMapping { column: name.to_string(), classes }))
    }

    /// The label column.
    pub fn column(&self) -> &str {
        match self {
            Labels::Binary(m) => &m.column,
            Labels::Multiclass(m) => &m.column,
        }
    }

    /// Classes: 2 for binary labels.
    pub fn classes(&self) -> usize {
        match self {
            Labels::Binary(_) => 2,
            Labels::Multiclass(m) => m.classes.len(),
        }
    }

    /// The class values in encoding order (binary: negative, positive).
    pub fn values(&self) -> Vec<Value> {
        match self {
            Labels::Binary(m) => vec![m.negative.clone(), m.positive.clone()],
            Labels::Multiclass(m) => m.classes.clone(),
        }
    }

    /// Encodes a label column (see [`Labels`]). Values outside the mapping are an error.
    pub fn encode(&self, column: &Column) -> Result<Vec<f32>> {
        match self {
            Labels::Binary(m) => m.encode(column),
            Labels::Multiclass(m) => m.encode(column),
        }
    }
}

impl ClassMapping {
    /// Each row's class index, as an f32.
    pub fn encode(&self, column: &Column) -> Result<Vec<f32>> {
        let unknown = |i: usize| {
            Error::data(format!(
                "label column {:?} has value {} at row {i}, which is not one of its {} classes",
                self.column,
                value_at(column, i),
                self.classes.len()
            ))
        };
        match &column.values {
            Values::Str { codes, dict } => {
                let index: std::collections::HashMap<&str, usize> =
                    self.classes.iter().enumerate().filter_map(|(k, v)| Some((v.as_str()?, k))).collect();
                let of_code: Vec<Option<usize>> =
                    dict.iter().map(|s| index.get(s.as_str()).copied()).collect();
                (0..column.len())
                    .map(|i| match (column.is_null(i), of_code[codes[i] as usize]) {
                        (false, Some(k)) => Ok(k as f32),
                        _ => Err(unknown(i)),
                    })
                    .collect()
            }
            _ => {
                let index: std::collections::BTreeMap<i64, usize> =
                    self.classes.iter().enumerate().filter_map(|(k, v)| Some((v.as_i64()?, k))).collect();
                (0..column.len())
                    .map(|i| match column.f64_at(i) {
                        Some(v) if v == v.trunc() && v.abs() < 9e15 => {
                            index.get(&(v as i64)).map(|&k| k as f32).ok_or_else(|| unknown(i))
                        }
                        _ => Err(unknown(i)),
                    })
                    .collect()
            }
        }
    }
}

/// How binary label values map to the positive class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelMapping {
    /// The label column.
    pub column: String,
    /// The value that is class 1 (a number, boolean or string).
    pub positive: Value,
    /// The value that is class 0.
    pub negative: Value,
}

impl LabelMapping {
    /// Works out the binary mapping from every label column the job reads (train and test),
    /// checking that labels are binary and have no nulls. `positive` is the spec's `positive_label`.
    pub fn fit(name: &str, columns: &[&Column], positive: Option<&Value>) -> Result<LabelMapping> {
        for c in columns {
            let nulls = c.null_count();
            if nulls > 0 {
                return Err(Error::data(format!(
                    "label column {name:?} has {nulls} null rows; every row needs a label (filter them out with {{\"column\": {name:?}, \"not_null\": true}})"
                )));
            }
        }
        let kind = columns.first().map_or(Kind::Integer, |c| c.kind);
        let (values, default_positive): (Vec<Value>, Value) = match kind {
            Kind::Integer | Kind::Unsigned | Kind::Float | Kind::Decimal => {
                let mut seen = BTreeSet::new();
                for c in columns {
                    for i in 0..c.len() {
                        let v = c.f64_at(i).unwrap_or(f64::NAN);
                        if v.is_nan() {
                            return Err(Error::data(format!("label column {name:?} has NaN at row {i}")));
                        }
                        if v != 0.0 && v != 1.0 {
                            seen.insert(v.to_string());
                        }
                    }
                }
                if !seen.is_empty() {
                    let shown: Vec<_> = seen.into_iter().take(5).collect();
                    return Err(Error::data(format!(
                        "label column {name:?} has values other than 0 and 1: {} (binary labels are 0/1 numbers, booleans or exactly two strings)",
                        shown.join(", ")
                    )));
                }
                (vec![Value::from(0), Value::from(1)], Value::from(1))
            }
            Kind::Boolean => (vec![Value::Bool(false), Value::Bool(true)], Value::Bool(true)),
            Kind::String => {
                let mut distinct = BTreeSet::new();
                for c in columns {
                    if let Values::Str { codes, dict } = &c.values {
                        let used: BTreeSet<u32> = codes.iter().copied().collect();
                        distinct.extend(used.into_iter().map(|k| dict[k as usize].clone()));
                    }
                }
                let distinct: Vec<String> = distinct.into_iter().collect();
                match distinct.len() {
                    2 => {}
                    1 => {
                        return Err(Error::data(format!(
                            "label column {name:?} has a single value {:?}; binary classification needs two",
                            distinct[0]
                        )));
                    }
                    0 => return Err(Error::data(format!("label column {name:?} has no rows"))),
                    n => {
                        let shown: Vec<_> = distinct.iter().take(5).map(|s| format!("{s:?}")).collect();
                        return Err(Error::data(format!(
                            "label column {name:?} has {n} distinct values ({}{}); binary labels need exactly two",
                            shown.join(", "),
                            if n > 5 { ", ..." } else { "" }
                        )));
                    }
                }
                let last = Value::String(distinct[1].clone());
                (distinct.into_iter().map(Value::String).collect(), last)
            }
            Kind::Date | Kind::Timestamp => {
                return Err(Error::data(format!(
                    "label column {name:?} is a {}; binary labels are 0/1 numbers, booleans or two strings",
                    kind.name()
                )));
            }
        };
        let positive = match positive {
            None => default_positive,
            Some(p) => {
                let p = normalize(p);
                if !values.contains(&p) {
                    let shown: Vec<String> = values.iter().map(Value::to_string).collect();
                    return Err(Error::spec(
                        "positive_label",
                        format!("{p} is not a value of label column {name:?}; values: {}", shown.join(", ")),
                    ));
                }
                p
            }
        };
        let negative = values.into_iter().find(|v| v != &positive).unwrap_or(Value::Null);
        Ok(LabelMapping { column: name.to_string(), positive, negative })
    }

    /// Encodes a label column: 1.0 for the positive value, 0.0 otherwise. Values outside the
    /// mapping are an error (they can only come from data the mapping was not fitted on).
    pub fn encode(&self, column: &Column) -> Result<Vec<f32>> {
        (0..column.len())
            .map(|i| {
                let v = value_at(column, i);
                if v == self.positive {
                    Ok(1.0)
                } else if v == self.negative {
                    Ok(0.0)
                } else {
                    Err(Error::data(format!(
                        "label column {:?} has value {v} at row {i}, expected {} or {}",
                        self.column, self.positive, self.negative
                    )))
                }
            })
            .collect()
    }
}

fn normalize(v: &Value) -> Value {
    // 1.0 and 1 name the same label.
    match v.as_f64() {
        Some(x) if x == 0.0 || x == 1.0 => Value::from(x as i64),
        _ => v.clone(),
    }
}

fn value_at(column: &Column, i: usize) -> Value {
    if column.is_null(i) {
        return Value::Null;
    }
    match &column.values {
        Values::Str { codes, dict } => Value::String(dict[codes[i] as usize].clone()),
        Values::Bool(b) => Value::Bool(b[i]),
        _ => column.f64_at(i).map_or(Value::Null, |x| normalize(&Value::from(x))),
    }
}

/// A class value as people read it: a string without its quotes, anything else as JSON.
pub fn class_name(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[i64]) -> Column {
        Column { kind: Kind::Integer, values: Values::Int(v.to_vec()), nulls: None }
    }
    fn strs(v: &[u32], dict: &[&str]) -> Column {
        Column {
            kind: Kind::String,
            values: Values::Str { codes: v.to_vec(), dict: dict.iter().map(|s| s.to_string()).collect() },
            nulls: None,
        }
    }

    #[test]
    fn integers_booleans_and_strings() {
        let m = LabelMapping::fit("y", &[&ints(&[0, 1, 1])], None).unwrap();
        assert_eq!(m.encode(&ints(&[1, 0])).unwrap(), [1.0, 0.0]);
        let m = LabelMapping::fit("y", &[&ints(&[0, 1])], Some(&Value::from(0))).unwrap();
        assert_eq!(m.encode(&ints(&[1, 0])).unwrap(), [0.0, 1.0]);

        let b = Column { kind: Kind::Boolean, values: Values::Bool(vec![true, false]), nulls: None };
        assert_eq!(LabelMapping::fit("y", &[&b], None).unwrap().encode(&b).unwrap(), [1.0, 0.0]);

        // The string that sorts last is positive by default; dictionaries may differ per column.
        let train = strs(&[0, 1, 0], &["legit", "fraud"]);
        let test = strs(&[0, 1], &["fraud", "legit"]);
        let m = LabelMapping::fit("y", &[&train, &test], None).unwrap();
        assert_eq!(m.positive, Value::from("legit"));
        let m = LabelMapping::fit("y", &[&train, &test], Some(&Value::from("fraud"))).unwrap();
        assert_eq!(m.encode(&train).unwrap(), [0.0, 1.0, 0.0]);
        assert_eq!(m.encode(&test).unwrap(), [1.0, 0.0]);
    }

    #[test]
    fn non_binary_null_and_unknown_positive_are_errors() {
        let err = LabelMapping::fit("y", &[&ints(&[0, 1, 2])], None).unwrap_err().to_string();
        assert!(err.contains("label column \"y\" has values other than 0 and 1: 2"), "{err}");
        let err =
            LabelMapping::fit("y", &[&strs(&[0, 1, 2], &["a", "b", "c"])], None).unwrap_err().to_string();
        assert!(err.contains("has 3 distinct values (\"a\", \"b\", \"c\")"), "{err}");
        let mut n = ints(&[0, 1]);
        n.nulls = Some(vec![false, true]);
        let err = LabelMapping::fit("y", &[&n], None).unwrap_err().to_string();
        assert!(err.contains("has 1 null rows"), "{err}");
        let f = Column { kind: Kind::Float, values: Values::Float(vec![0.0, f64::NAN]), nulls: None };
        assert!(LabelMapping::fit("y", &[&f], None).unwrap_err().to_string().contains("NaN"));
        let err =
            LabelMapping::fit("y", &[&strs(&[0, 1], &["a", "b"])], Some(&Value::from("c"))).unwrap_err();
        assert!(err.to_string().starts_with("positive_label: \"c\" is not a value"), "{err}");
    }

    #[test]
    fn three_or_more_integers_or_strings_are_classes_in_ascending_order() {
        let m = Labels::fit("y", &[&ints(&[2, 0, 1, 7])], None, None).unwrap();
        assert_eq!(m.values(), [Value::from(0), Value::from(1), Value::from(2), Value::from(7)]);
        assert_eq!(m.encode(&ints(&[7, 2, 0])).unwrap(), [3.0, 2.0, 0.0]);
        let train = strs(&[0, 1, 2], &["cat", "ant", "bee"]);
        let test = strs(&[0, 1], &["bee", "ant"]);
        let m = Labels::fit("y", &[&train, &test], None, None).unwrap();
        assert_eq!(m.classes(), 3);
        assert_eq!(m.encode(&train).unwrap(), [2.0, 0.0, 1.0]);
        assert_eq!(m.encode(&test).unwrap(), [1.0, 0.0]);
        // Binary labels stay binary, with the same mapping as before.
        let b = Labels::fit("y", &[&ints(&[0, 1, 1])], None, None).unwrap();
        assert_eq!(b, Labels::Binary(LabelMapping::fit("y", &[&ints(&[0, 1, 1])], None).unwrap()));
        // Serialized, a binary mapping has exactly its old fields.
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"column": "y", "positive": 1, "negative": 0})
        );
        let back: Labels = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn multiclass_where_binary_is_needed_too_many_classes_and_positive_label_are_errors() {
        let err = Labels::fit("y", &[&ints(&[0, 1, 2])], None, Some("partition needs a binary label"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("values other than 0 and 1: 2") && err.ends_with("; partition needs a binary label"),
            "{err}"
        );
        let many: Vec<i64> = (0..1001).collect();
        let err = Labels::fit("y", &[&ints(&many)], None, None).unwrap_err().to_string();
        assert!(err.contains("has 1001 distinct values") && err.contains("at most 1000"), "{err}");
        let err = Labels::fit("y", &[&ints(&[0, 1, 2])], Some(&Value::from(1)), None).unwrap_err();
        assert!(err.to_string().starts_with("positive_label: applies to binary labels"), "{err}");
        let f = Column { kind: Kind::Float, values: Values::Float(vec![0.0, 1.0, 2.5]), nulls: None };
        assert!(Labels::fit("y", &[&f], None, None).is_err());
    }
}
