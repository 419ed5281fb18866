//! The in-memory column: what one Parquet column becomes after decoding, whatever its Arrow type.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, UInt64Type,
};

/// The logical kind of a column. Two files agree on a column when its kind is the same in both,
/// so `int32` in one file and `int64` in another is fine, `int64` and `double` is drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Kind {
    Integer,
    Unsigned,
    Float,
    Decimal,
    Boolean,
    Date,
    Timestamp,
    String,
}

impl Kind {
    /// The kind of an Arrow type, or `None` when trainyard cannot use it.
    pub fn of(dt: &DataType) -> Option<Kind> {
        Some(match dt {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Kind::Integer,
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => Kind::Unsigned,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Kind::Float,
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => Kind::Decimal,
            DataType::Boolean => Kind::Boolean,
            DataType::Date32 | DataType::Date64 => Kind::Date,
            DataType::Timestamp(..) => Kind::Timestamp,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::String,
            DataType::Dictionary(_, v) if Kind::of(v) == Some(Kind::String) => Kind::String,
            _ => return None,
        })
    }

    /// Whether values of this kind can be a numeric feature.
    pub fn is_numeric(self) -> bool {
        !matches!(self, Kind::String)
    }

    /// Lower-case name for messages and reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Integer => "integer",
            Kind::Unsigned => "unsigned",
            Kind::Float => "float",
            Kind::Decimal => "decimal",
            Kind::Boolean => "boolean",
            Kind::Date => "date",
            Kind::Timestamp => "timestamp",
            Kind::String => "string",
        }
    }
}

/// Decoded values; each [`Kind`] has exactly one representation, so chunks of a column read from
/// different files always concatenate. Nulls are kept in [`Column::nulls`]; the value slot of a null is unspecified.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Signed integers.
    Int(Vec<i64>),
    /// Unsigned integers (kept apart so keys above `i64::MAX` stay exact).
    UInt(Vec<u64>),
    /// Floats and decimals.
    Float(Vec<f64>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Dates and timestamps as microseconds since the Unix epoch, UTC (dates at midnight).
    Time(Vec<i64>),
    /// Strings as codes into a dictionary of distinct values.
    Str {
        /// One code per row.
        codes: Vec<u32>,
        /// The distinct values, in order of first appearance.
        dict: Vec<String>,
    },
}

/// One column of a [`Frame`](super::Frame).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Logical kind in the file.
    pub kind: Kind,
    /// The values.
    pub values: Values,
    /// `Some(v)` with `v[i] == true` where row `i` is null; `None` when no row is null.
    pub nulls: Option<Vec<bool>>,
}

/// A join or holdout key value, borrowed from a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyRef<'a> {
    /// An integer key (signed, or unsigned up to `i64::MAX`).
    Int(i64),
    /// An unsigned key above `i64::MAX`.
    UInt(u64),
    /// A string key.
    Str(&'a str),
}

impl std::fmt::Display for KeyRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRef::Int(v) => write!(f, "{v}"),
            KeyRef::UInt(v) => write!(f, "{v}"),
            KeyRef::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl Column {
    /// Decodes an Arrow array. Errors are plain messages; the caller adds file and column.
    pub fn from_arrow(array: &ArrayRef) -> Result<Column, String> {
        let dt = array.data_type();
        let kind = Kind::of(dt).ok_or_else(|| format!("unsupported type {dt}"))?;
        let nulls = (array.null_count() > 0).then(|| (0..array.len()).map(|i| array.is_null(i)).collect());
        let cast =
            |to: &DataType| arrow::compute::cast(array, to).map_err(|e| format!("cannot read {dt}: {e}"));
        let values = match kind {
            Kind::Integer => {
                Values::Int(cast(&DataType::Int64)?.as_primitive::<Int64Type>().values().to_vec())
            }
            Kind::Unsigned => {
                Values::UInt(cast(&DataType::UInt64)?.as_primitive::<UInt64Type>().values().to_vec())
            }
            Kind::Float | Kind::Decimal => {
                Values::Float(cast(&DataType::Float64)?.as_primitive::<Float64Type>().values().to_vec())
            }
            Kind::Boolean => {
                let b = array.as_boolean();
                Values::Bool((0..b.len()).map(|i| b.value(i)).collect())
            }
            Kind::Date | Kind::Timestamp => {
                let to = DataType::Timestamp(TimeUnit::Microsecond, None);
                let ts = match dt {
                    // Casting a zoned timestamp to a naive one keeps the UTC instant.
                    DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => cast(&to)?,
                    _ => unreachable!("kind Date/Timestamp"),
                };
                Values::Time(ts.as_primitive::<TimestampMicrosecondType>().values().to_vec())
            }
            Kind::String => strings(array)?,
        };
        Ok(Column { kind, values, nulls })
    }

    /// A column of `kind` with no rows.
    pub fn empty(kind: Kind) -> Column {
        Column { kind, values: Values::empty(kind), nulls: None }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match &self.values {
            Values::Int(v) | Values::Time(v) => v.len(),
            Values::UInt(v) => v.len(),
            Values::Float(v) => v.len(),
            Values::Bool(v) => v.len(),
            Values::Str { codes, .. } => codes.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `i` is null.
    pub fn is_null(&self, i: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n[i])
    }

    /// Number of null rows.
    pub fn null_count(&self) -> usize {
        self.nulls.as_ref().map_or(0, |n| n.iter().filter(|&&b| b).count())
    }

    /// Row `i` as a number: `None` for nulls and strings, and NaN stays NaN.
    pub fn f64_at(&self, i: usize) -> Option<f64> {
        if self.is_null(i) {
            return None;
        }
        Some(match &self.values {
            Values::Int(v) | Values::Time(v) => v[i] as f64,
            Values::UInt(v) => v[i] as f64,
            Values::Float(v) => v[i],
            Values::Bool(v) => f64::from(u8::from(v[i])),
            Values::Str { .. } => return None,
        })
    }

    /// Row `i` as a string: the string itself, or the number's decimal form (for integer columns
    /// declared categorical). `None` for nulls.
    pub fn string_at(&self, i: usize) -> Option<String> {
        if self.is_null(i) {
            return None;
        }
        Some(match &self.values {
            Values::Str { codes, dict } => dict[codes[i] as usize].clone(),
            Values::Int(v) | Values::Time(v) => v[i].to_string(),
            Values::UInt(v) => v[i].to_string(),
            Values::Float(v) => v[i].to_string(),
            Values::Bool(v) => v[i].to_string(),
        })
    }

    /// Row `i` as a key, `None` for nulls. Floats are not keys (the caller checks the kind).
    pub fn key_at(&self, i: usize) -> Option<KeyRef<'_>> {
        if self.is_null(i) {
            return None;
        }
        match &self.values {
            Values::Int(v) | Values::Time(v) => Some(KeyRef::Int(v[i])),
            Values::UInt(v) => Some(match i64::try_from(v[i]) {
                Ok(x) => KeyRef::Int(x),
                Err(_) => KeyRef::UInt(v[i]),
            }),
            Values::Str { codes, dict } => Some(KeyRef::Str(&dict[codes[i] as usize])),
            Values::Bool(v) => Some(KeyRef::Int(i64::from(v[i]))),
            Values::Float(_) => None,
        }
    }

    /// The rows where `keep[i]` is true, in order.
    pub fn filter(&self, keep: &[bool]) -> Column {
        let indices: Vec<usize> = keep.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i).collect();
        self.take(&indices)
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> Column {
        fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
            idx.iter().map(|&i| v[i].clone()).collect()
        }
        Column {
            kind: self.kind,
            values: match &self.values {
                Values::Int(v) => Values::Int(pick(v, indices)),
                Values::Time(v) => Values::Time(pick(v, indices)),
                Values::UInt(v) => Values::UInt(pick(v, indices)),
                Values::Float(v) => Values::Float(pick(v, indices)),
                Values::Bool(v) => Values::Bool(pick(v, indices)),
                Values::Str { codes, dict } => {
                    Values::Str { codes: pick(codes, indices), dict: dict.clone() }
                }
            },
            nulls: self.nulls.as_ref().map(|n| pick(n, indices)).filter(|n| n.iter().any(|&b| b)),
        }
    }

    /// The column as an Arrow array (dates come back as UTC microsecond timestamps).
    pub fn to_arrow(&self) -> ArrayRef {
        use arrow::array::{
            BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray, UInt64Array,
        };
        use std::sync::Arc;
        let valid = |i: usize| !self.is_null(i);
        let opt = |v: &[i64]| (0..v.len()).map(|i| valid(i).then_some(v[i])).collect::<Vec<_>>();
        match &self.values {
            Values::Int(v) => Arc::new(Int64Array::from(opt(v))),
            Values::Time(v) => Arc::new(TimestampMicrosecondArray::from(opt(v)).with_timezone("UTC")),
            Values::UInt(v) => Arc::new(UInt64Array::from(
                (0..v.len()).map(|i| valid(i).then_some(v[i])).collect::<Vec<_>>(),
            )),
            Values::Float(v) => Arc::new(Float64Array::from(
                (0..v.len()).map(|i| valid(i).then_some(v[i])).collect::<Vec<_>>(),
            )),
            Values::Bool(v) => Arc::new(BooleanArray::from(
                (0..v.len()).map(|i| valid(i).then_some(v[i])).collect::<Vec<_>>(),
            )),
            Values::Str { codes, dict } => Arc::new(StringArray::from(
                (0..codes.len())
                    .map(|i| valid(i).then(|| dict[codes[i] as usize].as_str()))
                    .collect::<Vec<_>>(),
            )),
        }
    }

    /// Concatenates chunks of the same column (same kind) in order, merging string dictionaries.
    pub fn concat(chunks: Vec<Column>) -> Column {
        let kind = chunks.first().map_or(Kind::Float, |c| c.kind);
        let any_nulls = chunks.iter().any(|c| c.nulls.is_some());
        let nulls = any_nulls.then(|| {
            chunks
                .iter()
                .flat_map(|c| match &c.nulls {
                    Some(n) => n.clone(),
                    None => vec![false; c.len()],
                })
                .collect()
        });
        let values = match chunks.first().map(|c| &c.values) {
            None => Values::Float(Vec::new()),
            Some(Values::Str { .. }) => {
                let mut index: HashMap<String, u32> = HashMap::new();
                let mut dict = Vec::new();
                let mut codes = Vec::with_capacity(chunks.iter().map(Column::len).sum());
                for c in chunks {
                    let Values::Str { codes: cc, dict: cd } = c.values else { unreachable!("same kind") };
                    let remap: Vec<u32> = cd
                        .into_iter()
                        .map(|s| {
                            *index.entry(s.clone()).or_insert_with(|| {
                                dict.push(s);
                                (dict.len() - 1) as u32
                            })
                        })
                        .collect();
                    // Null rows carry an arbitrary code; any in-range value will do.
                    codes.extend(cc.into_iter().map(|c| remap.get(c as usize).copied().unwrap_or(0)));
                }
                Values::Str { codes, dict }
            }
            Some(_) => {
                let mut out = Values::empty(kind);
                for c in chunks {
                    out.extend(c.values);
                }
                out
            }
        };
        Column { kind, values, nulls }
    }
}

impl Values {
    /// The representation of `kind`, with no rows.
    fn empty(kind: Kind) -> Values {
        match kind {
            Kind::Integer => Values::Int(Vec::new()),
            Kind::Unsigned => Values::UInt(Vec::new()),
            Kind::Float | Kind::Decimal => Values::Float(Vec::new()),
            Kind::Boolean => Values::Bool(Vec::new()),
            Kind::Date | Kind::Timestamp => Values::Time(Vec::new()),
            Kind::String => Values::Str { codes: Vec::new(), dict: Vec::new() },
        }
    }

    fn extend(&mut self, other: Values) {
        match (self, other) {
            (Values::Int(a), Values::Int(b)) | (Values::Time(a), Values::Time(b)) => a.extend(b),
            (Values::UInt(a), Values::UInt(b)) => a.extend(b),
            (Values::Float(a), Values::Float(b)) => a.extend(b),
            (Values::Bool(a), Values::Bool(b)) => a.extend(b),
            // The loader checks kinds across files before decoding; mixed chunks are a bug.
            _ => unreachable!("chunks of one column have one representation"),
        }
    }
}

fn strings(array: &ArrayRef) -> Result<Values, String> {
    if let DataType::Dictionary(key, _) = array.data_type() {
        // Dictionary-encoded: reuse the file's dictionary instead of hashing every row.
        let keys = arrow::compute::cast(array, &DataType::Dictionary(key.clone(), Box::new(DataType::Utf8)))
            .map_err(|e| e.to_string())?;
        let dict = keys.as_any_dictionary();
        let values = arrow::compute::cast(dict.values(), &DataType::Utf8).map_err(|e| e.to_string())?;
        let values = values.as_string::<i32>();
        let dict_strings: Vec<String> = (0..values.len()).map(|i| values.value(i).to_string()).collect();
        let key_codes = arrow::compute::cast(dict.keys(), &DataType::Int32).map_err(|e| e.to_string())?;
        let codes = key_codes.as_primitive::<Int32Type>().values().iter().map(|&k| k.max(0) as u32).collect();
        return Ok(Values::Str { codes, dict: dict_strings });
    }
    let utf8 = arrow::compute::cast(array, &DataType::Utf8).map_err(|e| e.to_string())?;
    let s = utf8.as_string::<i32>();
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut dict = Vec::new();
    let codes = (0..s.len())
        .map(|i| {
            if s.is_null(i) {
                return 0;
            }
            let v = s.value(i);
            *index.entry(v).or_insert_with(|| {
                dict.push(v.to_string());
                (dict.len() - 1) as u32
            })
        })
        .collect();
    Ok(Values::Str { codes, dict })
}
