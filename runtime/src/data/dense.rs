//! Float32 feature columns decoded straight into row-major f32 rows, skipping the columnar
//! frame: the values a logistic model or the MLP reads are already in the layout of the design
//! matrix, so the features phase can standardize them in place instead of copying.
//!
//! Only columns stored as float32 (or float16) in every file take this path: they convert to f32
//! without loss, so the design matrix is bit for bit what the frame path builds (and what
//! `predict` builds from the same files). Other numeric columns go through the frame.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type};
use rayon::prelude::*;

use super::reader::{Origins, ParquetFile};
use crate::error::{Error, Result};

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

/// Whether column `name` is float32 or float16 in every one of `files` (so it can be [`Dense`]).
pub fn is_f32(files: &[ParquetFile], name: &str) -> bool {
    files.iter().all(|f| {
        f.schema()
            .field_with_name(name)
            .is_ok_and(|field| matches!(field.data_type(), DataType::Float32 | DataType::Float16))
    })
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

/// Decodes `names` (float32/float16 in every file) of the row groups in `origins` and writes the
/// value of read row `r` (in the order [`super::read_tracked`] returned rows) into row
/// `places[r].1` of `outs[places[r].0]`, skipping rows placed [`NOWHERE`]. Row groups decode in
/// parallel.
pub fn scatter(
    files: &[ParquetFile],
    origins: &Origins,
    names: &[String],
    places: &[Place],
    outs: &mut [&mut Dense],
) -> Result<()> {
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
    origins.units.par_iter().zip(&first).try_for_each(|((fi, rg, kept), &first)| {
        let unit_places = &places[first..first + kept.len()];
        super::guard::decoding(
            || format!("{} row group {rg}", files[*fi].path.display()),
            || decode_unit(&files[*fi], *rg, names, kept, unit_places, &targets),
        )
    })
}

fn decode_unit(
    file: &ParquetFile,
    rg: usize,
    names: &[String],
    kept: &[u32],
    places: &[Place],
    targets: &[Target],
) -> Result<()> {
    let path = &file.path;
    let cols = names.len();
    let reader = file.row_group_reader(rg, names)?;
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
                arrow::compute::cast(a, &DataType::Float32)
                    .map_err(|e| Error::data(format!("column {name:?} in {}: {e}", path.display())))
            })
            .collect::<Result<Vec<_>>>()?;
        for start in (cursor..end).step_by(ROW_BLOCK) {
            let block = start..(start + ROW_BLOCK).min(end);
            for (j, array) in arrays.iter().enumerate() {
                let values = array.as_primitive::<Float32Type>();
                let raw = values.values();
                let nulls = values.nulls().filter(|n| n.null_count() > 0);
                for i in block.clone() {
                    let (o, r) = places[i];
                    if (o, r) == NOWHERE {
                        continue;
                    }
                    let local = (kept[i] - offset) as usize;
                    let v = if nulls.is_some_and(|n| n.is_null(local)) { f32::NAN } else { raw[local] };
                    if v.is_infinite() {
                        let row = file.first_row_of_group(rg) + u64::from(kept[i]);
                        let field = "features.numeric";
                        return Err(super::finite::infinite_value(field, &names[j], file, row, f64::from(v)));
                    }
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
