//! Reading Parquet files into a [`Frame`]: metadata first (schemas, drift, statistics), then only
//! the needed columns of the row groups that can match the filters, decoded in parallel.

use rayon::prelude::*;

use super::column::{Column, Kind};
use super::dense::Dense;
use super::filter::Predicate;
use super::parquet_file::{Origins, ParquetFile};
use crate::error::{Error, Result};
use crate::progress::{Counter, Reporter};

/// Named columns of equal length, plus float32 feature columns kept as row-major f32 rows.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// Column names, in request order.
    pub names: Vec<String>,
    /// The columns.
    pub columns: Vec<Column>,
    /// Number of rows.
    pub rows: usize,
    /// Float32 feature columns, row-major with `rows` rows (see [`Dense`]); not in `names`.
    pub dense: Dense,
}

impl Frame {
    /// The column called `name`. Callers ask only for columns they requested.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.names.iter().position(|n| n == name).map(|i| &self.columns[i])
    }

    /// The rows where `keep` is true, consuming this frame a column at a time: the peak is the
    /// kept rows plus one column, not two frames.
    pub fn filter(self, keep: &[bool]) -> Frame {
        let rows = keep.iter().filter(|&&k| k).count();
        let dense = self.dense.filter(keep);
        let columns = self.columns.into_iter().map(|c| c.filter(keep)).collect();
        Frame { names: self.names, rows, columns, dense }
    }

    /// The rows where `a` is true and the rows where `b` is true, as two frames, consuming this
    /// one a column at a time, as [`filter`](Self::filter).
    pub fn split(self, a: &[bool], b: &[bool]) -> (Frame, Frame) {
        let side = |keep: &[bool]| Frame {
            names: self.names.clone(),
            rows: keep.iter().filter(|&&k| k).count(),
            columns: Vec::new(),
            dense: self.dense.filter(keep),
        };
        let (mut x, mut y) = (side(a), side(b));
        for column in self.columns {
            let (ca, cb) = rayon::join(|| column.filter(a), || column.filter(b));
            x.columns.push(ca);
            y.columns.push(cb);
        }
        (x, y)
    }

    /// Takes column `name` out of the frame.
    pub fn remove(&mut self, name: &str) -> Option<Column> {
        let i = self.names.iter().position(|n| n == name)?;
        self.names.remove(i);
        Some(self.columns.remove(i))
    }

    /// Adds a column (its length must be `rows`).
    pub fn push(&mut self, name: &str, column: Column) {
        self.names.push(name.to_string());
        self.columns.push(column);
    }
}

/// What a read did, for `validate` and the run's metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReadStats {
    /// Rows in the files, before pruning and filtering.
    pub rows_in_files: u64,
    /// Row groups in the files.
    pub row_groups: usize,
    /// Row groups skipped because their statistics ruled out every filter match.
    pub row_groups_pruned: usize,
    /// Rows decoded (in row groups that were not pruned).
    pub rows_decoded: u64,
    /// Rows that passed the filters.
    pub rows_kept: u64,
}

/// Reads `columns` (whose kinds are `kinds`) of `files`, keeping rows that pass every predicate.
/// Row groups are decoded in parallel; the result is in file order, then row-group order, so it
/// does not depend on the thread count.
pub fn read(
    files: &[ParquetFile],
    columns: &[String],
    kinds: &[Kind],
    predicates: &[Predicate],
) -> Result<(Frame, ReadStats)> {
    read_tracked(files, columns, kinds, predicates).map(|(frame, stats, _)| (frame, stats))
}

/// [`read`], also saying where each row came from (see [`Origins`]).
pub fn read_tracked(
    files: &[ParquetFile],
    columns: &[String],
    kinds: &[Kind],
    predicates: &[Predicate],
) -> Result<(Frame, ReadStats, Origins)> {
    read_reporting(files, columns, kinds, predicates, &Reporter::default())
}

/// [`read_tracked`], reporting each decoded row group to `progress`.
pub fn read_reporting(
    files: &[ParquetFile],
    columns: &[String],
    kinds: &[Kind],
    predicates: &[Predicate],
    progress: &Reporter,
) -> Result<(Frame, ReadStats, Origins)> {
    let mut stats = ReadStats::default();
    let mut units = Vec::new();
    for (fi, f) in files.iter().enumerate() {
        stats.rows_in_files += f.rows();
        stats.row_groups += f.row_groups();
        for rg in 0..f.row_groups() {
            let meta = f.meta.metadata().row_group(rg);
            let pruned = predicates.iter().any(|p| {
                let kind = kinds[columns.iter().position(|c| c == &p.column).unwrap_or(0)];
                f.leaf_index(&p.column).is_some_and(|leaf| p.prunes(meta, leaf, kind))
            });
            if pruned {
                stats.row_groups_pruned += 1;
            } else {
                stats.rows_decoded += meta.num_rows().max(0) as u64;
                units.push((fi, rg));
            }
        }
    }

    let counter = Counter::new(progress, "load", "reading row groups", units.len());
    let chunks: Vec<(Vec<Column>, Vec<u32>)> =
        super::remote::each_row_group(files, &units, columns, |i, reader| {
            let (fi, rg) = units[i];
            let chunk = super::guard::decoding(
                || format!("{} row group {rg}", files[fi].path.display()),
                || read_row_group(&files[fi], rg, reader, columns, kinds, predicates),
            );
            counter.tick();
            chunk
        })?;

    let mut per_column: Vec<Vec<Column>> =
        (0..columns.len()).map(|_| Vec::with_capacity(chunks.len())).collect();
    let mut origins = Origins::default();
    for (&(fi, rg), (chunk, kept)) in units.iter().zip(chunks) {
        for (i, c) in chunk.into_iter().enumerate() {
            per_column[i].push(c);
        }
        origins.units.push((fi, rg, kept));
    }
    let columns_out: Vec<Column> = per_column
        .into_par_iter()
        .zip(kinds.par_iter())
        .map(|(chunks, &kind)| if chunks.is_empty() { Column::empty(kind) } else { Column::concat(chunks) })
        .collect();
    let rows = columns_out.first().map_or(0, Column::len);
    stats.rows_kept = rows as u64;
    Ok((Frame { names: columns.to_vec(), columns: columns_out, rows, ..Frame::default() }, stats, origins))
}

fn read_row_group(
    file: &ParquetFile,
    rg: usize,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    columns: &[String],
    kinds: &[Kind],
    predicates: &[Predicate],
) -> Result<(Vec<Column>, Vec<u32>)> {
    let path = &file.path;

    let mut parts: Vec<Vec<Column>> = vec![Vec::new(); columns.len()];
    let mut kept: Vec<u32> = Vec::new();
    let mut offset = 0u32;
    for batch in reader {
        let batch = batch
            .map_err(|e| Error::data(format!("{}: cannot decode row group {rg}: {e}", path.display())))?;
        let decoded: Vec<Column> = columns
            .iter()
            .map(|name| {
                let array = batch.column_by_name(name).ok_or_else(|| {
                    Error::Internal(format!("column {name} missing from a batch of {}", path.display()))
                })?;
                Column::from_arrow(array)
                    .map_err(|e| Error::data(format!("column {name:?} in {}: {e}", path.display())))
            })
            .collect::<Result<_>>()?;
        let n = batch.num_rows() as u32;
        let decoded = if predicates.is_empty() {
            kept.extend(offset..offset + n);
            decoded
        } else {
            let mut keep = vec![true; batch.num_rows()];
            for p in predicates {
                let i = columns.iter().position(|c| c == &p.column).unwrap_or(0);
                p.apply(&decoded[i], &mut keep);
            }
            kept.extend((0..n).filter(|&r| keep[r as usize]).map(|r| offset + r));
            if keep.iter().all(|&k| k) { decoded } else { decoded.iter().map(|c| c.filter(&keep)).collect() }
        };
        offset += n;
        for (i, c) in decoded.into_iter().enumerate() {
            parts[i].push(c);
        }
    }
    let columns = parts
        .into_iter()
        .zip(kinds)
        .map(|(p, &kind)| if p.is_empty() { Column::empty(kind) } else { Column::concat(p) })
        .collect();
    Ok((columns, kept))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;

    #[test]
    fn duplicate_column_names_are_rejected_naming_the_file_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dup.parquet");
        let schema = Schema::new(vec![
            Field::new("amount", DataType::Float64, false),
            Field::new("id", DataType::Float64, false),
            Field::new("amount", DataType::Float64, false),
        ]);
        let column: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0]));
        let batch =
            RecordBatch::try_new(Arc::new(schema), vec![column.clone(), column.clone(), column]).unwrap();
        crate::data::write_parquet(&path, batch, 10).unwrap();
        let err = ParquetFile::open(&path).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{}: column \"amount\" appears 2 times", path.display())),
            "{message}"
        );
    }

    #[test]
    fn a_named_pipe_is_reported_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipe.parquet");
        let c = std::ffi::CString::new(path.clone().into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = ParquetFile::open(&path).unwrap_err().to_string();
        assert!(err.ends_with("is a named pipe (FIFO), not a regular Parquet file"), "{err}");
    }
}
