//! Binary labels: which values a label column may hold, which one is positive, and the encoding
//! to 0/1 that the model and the metrics use.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::{Column, Kind, Values};
use crate::error::{Error, Result};

/// How label values map to the positive class; recorded in `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelMapping {
    /// The label column.
    pub column: String,
    /// The value that is class 1 (a number, boolean or string).
    pub positive: Value,
    /// The value that is class 0.
    pub negative: Value,
}

impl LabelMapping {
    /// Works out the mapping from every label column the job reads (train and test), checking
    /// that labels are binary and have no nulls. `positive` is the spec's `positive_label`.
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
}
