//! The rule for numeric feature values: null and NaN are missing (imputed with the train median
//! plus a missing indicator); ±infinity, and finite values beyond float32's range (the design's
//! precision, about ±3.4e38), are a data error naming the column, the file and the row, found as
//! the data is read, before anything is fitted. An infinite value has no place on a
//! standardized scale: it would turn the column's mean and scale into inf or NaN and train a
//! model of zeros.

use super::column::{Column, Values};
use super::parquet_file::{Origins, ParquetFile};
use crate::error::{Error, Result};

/// A numeric feature value as the design holds it: rounded to f32. `Err` carries the value when
/// it is infinite or beyond f32's range (then it has no place on a float32 scale).
#[inline]
pub fn to_design(v: f64) -> std::result::Result<f32, f64> {
    let x = v as f32;
    if x.is_infinite() { Err(v) } else { Ok(x) }
}

/// The error for an infinite or out-of-range value of numeric feature `column` at `row`
/// (0-based, counted over the whole file) of `file`.
pub(crate) fn out_of_range(field: &str, column: &str, file: &ParquetFile, row: u64, value: f64) -> Error {
    let rule = if value.is_infinite() {
        "numeric features must be finite (null and NaN are treated as missing)".to_string()
    } else {
        format!("numeric features are read as float32 and must be within ±{:e}; rescale the column", f32::MAX)
    };
    Error::data(format!(
        "{field}: column {column:?} in {} has {value:e} at row {row}; {rule}",
        file.path.display()
    ))
}

/// Checks that the float columns `columns` (`(spec field, column name)`) of a frame read from
/// `files` (its columns by name through `column`) hold no ±infinity and nothing beyond float32's
/// range, naming the file and row of the first one.
pub fn check_finite<'a>(
    files: &[ParquetFile],
    origins: &Origins,
    column: impl Fn(&str) -> Option<&'a Column>,
    columns: &[(String, String)],
) -> Result<()> {
    for (field, name) in columns {
        let Some(column) = column(name) else { continue };
        let Values::Float(values) = &column.values else { continue };
        // A null slot's value is unspecified: only non-null values count.
        let found = values.iter().enumerate().position(|(j, &v)| to_design(v).is_err() && !column.is_null(j));
        if let Some(i) = found {
            return Err(locate(files, origins, field, name, i, values[i]));
        }
    }
    Ok(())
}

/// The error for frame row `i`: which file, and which row of it, the row was read from.
fn locate(files: &[ParquetFile], origins: &Origins, field: &str, name: &str, i: usize, value: f64) -> Error {
    let mut first = 0usize;
    for (fi, rg, kept) in &origins.units {
        if i < first + kept.len() {
            let file = &files[*fi];
            let row = file.first_row_of_group(*rg) + u64::from(kept[i - first]);
            return out_of_range(field, name, file, row, value);
        }
        first += kept.len();
    }
    Error::data(format!(
        "{field}: column {name:?} has {value} at read row {i}; numeric features must be finite"
    ))
}
