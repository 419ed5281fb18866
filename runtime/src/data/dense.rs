//! Numeric feature columns decoded straight into row-major f32 rows, skipping the columnar
//! frame: the values a logistic model or the MLP reads are already in the layout of the design
//! matrix, so the features phase can standardize them in place instead of copying, and no
//! decoded column is held beside the rows.
//!
//! Every numeric kind takes this path: float32/float16 as they are, and double, integer,
//! unsigned, decimal, boolean, date and timestamp values read as the frame reads them (dates and
//! timestamps as microseconds since the epoch) and rounded to f32, the design's precision. The
//! frame path rounds the same way ([`to_design`]), so the design matrix is bit for bit what the
//! frame path builds (and what `predict` builds from the same files).

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};

use super::column::{Column, Kind};
use super::finite::{out_of_range, to_design};
use super::parquet_file::{Origins, ParquetFile};
use crate::error::{Error, Result};
use crate::progress::{Counter, Reporter};

/// Rows written per column before moving to the next column: the block of output rows stays in
/// cache while every column of the batch is written into it.
const ROW_BLOCK: usize = 512;

/// Row-major f32 values of some float columns; NaN where the file has a null.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dense {
    /// Column names, in layout order.
    pub names: Vec<String>,
    /// `rows × names.len()` values, row after row.
    pub data: Vec<f32>,
}

impl Dense {
    /// A block of `rows` rows of `names`, zero-filled (pages are mapped as they are written).
    pub fn zeros(names: &[String], rows: usize) -> Dense {
        Dense { names: names.to_vec(), data: vec![0.0; rows * names.len()] }
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.names.len()
    }

    /// Position of column `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The values of column `j`, in row order.
    pub fn column(&self, j: usize) -> impl Iterator<Item = f32> + '_ {
        self.data.iter().skip(j).step_by(self.cols().max(1)).copied()
    }

    /// The rows where `keep` is true.
    pub fn filter(&self, keep: &[bool]) -> Dense {
        let cols = self.cols();
        if cols == 0 {
            return Dense::default();
        }
        let data = self
            .data
            .chunks_exact(cols)
            .zip(keep)
            .filter(|(_, k)| **k)
            .flat_map(|(row, _)| row.iter().copied())
            .collect();
        Dense { names: self.names.clone(), data }
    }
}

/// Whether column `name` has the same numeric kind in every one of `files` (so it can be
/// [`Dense`]). A column whose kind drifts between files goes through the frame, which names the
/// drift as an error.
pub fn is_numeric(files: &[ParquetFile], name: &str) -> bool {
    let kind =
        |f: &ParquetFile| f.schema().field_with_name(name).ok().and_then(|field| Kind::of(field.data_type()));
    let first = files.first().and_then(kind);
    first.is_some_and(Kind::is_numeric) && files.iter().all(|f| kind(f) == first)
}

/// One batch's values of a column: f32 as stored; f64 as Arrow casts the numbers to it (the
/// frame's own cast for these kinds); or, for dates and timestamps, decoded as the frame does.
enum Batch {
    F32(arrow::array::ArrayRef),
    F64(arrow::array::ArrayRef),
    Other(Column),
}

impl Batch {
    fn view(&self) -> View<'_> {
        let nulls = |a: &'_ arrow::array::ArrayRef| a.nulls().filter(|n| n.null_count() > 0).cloned();
        match self {
            Batch::F32(a) => View::F32(a.as_primitive::<Float32Type>().values(), nulls(a)),
            Batch::F64(a) => View::F64(a.as_primitive::<Float64Type>().values(), nulls(a)),
            Batch::Other(c) => View::Other(c),
        }
    }
}

/// The values of a [`Batch`], read one at a time.
enum View<'a> {
    F32(&'a [f32], Option<arrow::buffer::NullBuffer>),
    F64(&'a [f64], Option<arrow::buffer::NullBuffer>),
    Other(&'a Column),
}

impl View<'_> {
    /// Value `i` as the design holds it (NaN for a null), or the value when it has no place there.
    #[inline]
    fn at(&self, i: usize) -> std::result::Result<f32, f64> {
        fn stored<T: Copy + Into<f64>>(
            v: &[T],
            nulls: &Option<arrow::buffer::NullBuffer>,
            i: usize,
        ) -> std::result::Result<f32, f64> {
            if nulls.as_ref().is_some_and(|n| n.is_null(i)) { Ok(f32::NAN) } else { to_design(v[i].into()) }
        }
        match self {
            View::F32(v, nulls) => stored(v, nulls, i),
            View::F64(v, nulls) => stored(v, nulls, i),
            View::Other(c) => c.f64_at(i).map_or(Ok(f32::NAN), to_design),
        }
    }
}

/// Where a read row goes: `(output, row)`, or [`NOWHERE`].
pub type Place = (u32, u32);

/// The place of a row that no output keeps (dropped by the join or the holdout).
pub const NOWHERE: Place = (u32::MAX, u32::MAX);

/// Output rows shared by the parallel decoders. Every row is written by exactly one row group's
/// decoder (the places are a partial injection), so no two writers touch the same value.
struct Target {
    ptr: *mut f32,
    len: usize,
    cols: usize,
}

// SAFETY: see `Target`: writers only touch disjoint rows, and the borrow of the outputs outlives
// the parallel loop that uses these pointers.
unsafe impl Send for Target {}
unsafe impl Sync for Target {}

/// Decodes `names` (numeric in every file; `fields` are the spec fields that list them, for
/// errors) of the row groups in `origins` and writes the
/// value of read row `r` (in the order [`super::read_tracked`] returned rows) into row
/// `places[r].1` of `outs[places[r].0]`, skipping rows placed [`NOWHERE`]. Row groups decode in
/// parallel.
pub fn scatter(
    files: &[ParquetFile],
    origins: &Origins,
    names: &[String],
    fields: &[String],
    places: &[Place],
    outs: &mut [&mut Dense],
) -> Result<()> {
    scatter_reporting(files, origins, names, fields, places, outs, &Reporter::default())
}

/// [`scatter`], reporting each decoded row group to `progress`.
pub fn scatter_reporting(
    files: &[ParquetFile],
    origins: &Origins,
    names: &[String],
    fields: &[String],
    places: &[Place],
    outs: &mut [&mut Dense],
    progress: &Reporter,
) -> Result<()> {
    assert_eq!(names.len(), fields.len(), "one spec field per column");
    let cols = names.len();
    if cols == 0 {
        return Ok(());
    }
    let mut seen = vec![0usize; outs.len()];
    for &(o, r) in places {
        if (o, r) != NOWHERE {
            let rows = outs[o as usize].data.len() / cols;
            if r as usize >= rows {
                return Err(Error::Internal(format!("dense row {r} is past output {o}'s {rows} rows")));
            }
            seen[o as usize] += 1;
        }
    }
    for (o, out) in outs.iter().enumerate() {
        if out.cols() != cols || seen[o] * cols != out.data.len() {
            return Err(Error::Internal(format!("dense output {o} does not match its places")));
        }
    }
    let targets: Vec<Target> =
        outs.iter_mut().map(|d| Target { ptr: d.data.as_mut_ptr(), len: d.data.len(), cols }).collect();
    let mut first = Vec::with_capacity(origins.units.len());
    let mut next = 0usize;
    for (_, _, kept) in &origins.units {
        first.push(next);
        next += kept.len();
    }
    if next != places.len() {
        return Err(Error::Internal(format!("{} places for {next} read rows", places.len())));
    }
    let counter = Counter::new(progress, "load", "decoding numeric columns", origins.units.len());
    let units: Vec<(usize, usize)> = origins.units.iter().map(|(fi, rg, _)| (*fi, *rg)).collect();
    super::remote::each_row_group(files, &units, names, |i, reader| {
        let (fi, rg, kept) = &origins.units[i];
        let unit_places = &places[first[i]..first[i] + kept.len()];
        let done = super::guard::decoding(
            || format!("{} row group {rg}", files[*fi].path.display()),
            || decode_unit(&files[*fi], *rg, reader, names, fields, kept, unit_places, &targets),
        );
        counter.tick();
        done
    })
    .map(|_| ())
}

#[allow(clippy::too_many_arguments)]
fn decode_unit(
    file: &ParquetFile,
    rg: usize,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    names: &[String],
    fields: &[String],
    kept: &[u32],
    places: &[Place],
    targets: &[Target],
) -> Result<()> {
    let path = &file.path;
    let cols = names.len();
    // `kept` is sorted: walk it alongside the batches.
    let mut cursor = 0usize;
    let mut offset = 0u32;
    for batch in reader {
        let batch = batch
            .map_err(|e| Error::data(format!("{}: cannot decode row group {rg}: {e}", path.display())))?;
        let n = batch.num_rows() as u32;
        let end = cursor + kept[cursor..].partition_point(|&k| k < offset + n);
        let arrays = names
            .iter()
            .map(|name| {
                let a = batch.column_by_name(name).ok_or_else(|| {
                    Error::Internal(format!("column {name} missing from a batch of {}", path.display()))
                })?;
                let bad = |e: String| Error::data(format!("column {name:?} in {}: {e}", path.display()));
                Ok(match a.data_type() {
                    DataType::Float32 | DataType::Float16 => Batch::F32(
                        arrow::compute::cast(a, &DataType::Float32).map_err(|e| bad(e.to_string()))?,
                    ),
                    dt if matches!(
                        Kind::of(dt),
                        Some(Kind::Float | Kind::Integer | Kind::Unsigned | Kind::Decimal | Kind::Boolean)
                    ) =>
                    {
                        Batch::F64(
                            arrow::compute::cast(a, &DataType::Float64).map_err(|e| bad(e.to_string()))?,
                        )
                    }
                    _ => Batch::Other(Column::from_arrow(a).map_err(bad)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for start in (cursor..end).step_by(ROW_BLOCK) {
            let block = start..(start + ROW_BLOCK).min(end);
            for (j, array) in arrays.iter().enumerate() {
                let view = array.view();
                for i in block.clone() {
                    let (o, r) = places[i];
                    if (o, r) == NOWHERE {
                        continue;
                    }
                    let v = match view.at((kept[i] - offset) as usize) {
                        Ok(v) => v,
                        Err(value) => {
                            let row = file.first_row_of_group(rg) + u64::from(kept[i]);
                            return Err(out_of_range(&fields[j], &names[j], file, row, value));
                        }
                    };
                    let t = &targets[o as usize];
                    let at = r as usize * cols + j;
                    debug_assert!(at < t.len && t.cols == cols);
                    // SAFETY: `at` is in bounds (checked against the output's length in
                    // `scatter`), and row `r` of output `o` belongs to this read row alone.
                    unsafe { *t.ptr.add(at) = v };
                }
            }
        }
        cursor = end;
        offset += n;
    }
    Ok(())
}
