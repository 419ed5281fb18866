//! A Parquet file opened for reading: its footer (schema, row groups, statistics) read once,
//! the kind of each column checked across files, and where a read's rows came from. What both
//! the column reader (`reader.rs`) and the dense decoder (`dense.rs`) start from.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};

use rayon::prelude::*;

use super::column::Kind;
use super::files::describe;
use crate::error::{Error, Result};

/// Rows per decoded Arrow batch; large enough to amortize per-batch overhead, small enough to
/// keep a row group's transient Arrow buffers well below the size of the final frame.
const BATCH_ROWS: usize = 64 * 1024;

/// A Parquet file whose footer has been read.
#[derive(Debug, Clone)]
pub struct ParquetFile {
    /// Path as resolved from the spec.
    pub path: PathBuf,
    /// File size in bytes.
    pub bytes: u64,
    pub(crate) meta: ArrowReaderMetadata,
}

impl ParquetFile {
    /// A reader of `columns` in row group `rg`, in batches of [`BATCH_ROWS`].
    pub(crate) fn row_group_reader(&self, rg: usize, columns: &[String]) -> Result<ParquetRecordBatchReader> {
        let path = &self.path;
        let handle = File::open(path).map_err(|e| Error::io(path, e))?;
        let roots: Vec<usize> = columns
            .iter()
            .map(|c| {
                self.schema()
                    .index_of(c)
                    .map_err(|_| Error::Internal(format!("column {c} vanished from {}", path.display())))
            })
            .collect::<Result<_>>()?;
        let mask = ProjectionMask::roots(self.meta.metadata().file_metadata().schema_descr(), roots);
        ParquetRecordBatchReaderBuilder::new_with_metadata(handle, self.meta.clone())
            .with_projection(mask)
            .with_row_groups(vec![rg])
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| Error::data(format!("{}: cannot read row group {rg}: {e}", path.display())))
    }

    /// Opens `path` and reads its footer. A file that is not Parquet, is truncated, is not a
    /// regular file, or has two top-level columns of one name, is a data error naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        // Non-blocking, so that a named pipe where a Parquet file was expected is reported below
        // instead of blocking the open until a writer appears; regular files ignore the flag.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let metadata = file.metadata().map_err(|e| Error::io(path, e))?;
        if !metadata.is_file() {
            return Err(Error::data(format!(
                "{} is {}, not a regular Parquet file",
                path.display(),
                describe(metadata.file_type())
            )));
        }
        let meta = super::guard::decoding(
            || path.display().to_string(),
            || {
                ArrowReaderMetadata::load(&file, Default::default())
                    .map_err(|e| Error::data(format!("{}: not a readable Parquet file: {e}", path.display())))
            },
        )?;
        // Columns are looked up by name everywhere, and a lookup would silently take the first.
        let names: Vec<&str> = meta.schema().fields().iter().map(|f| f.name().as_str()).collect();
        let mut seen = HashSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(**n)) {
            let times = names.iter().filter(|n| *n == dup).count();
            return Err(Error::data(format!(
                "{}: column {dup:?} appears {times} times in the schema; trainyard cannot tell which \
                 one is meant (rename the duplicates when writing the file)",
                path.display()
            )));
        }
        Ok(ParquetFile { path: path.to_path_buf(), bytes: metadata.len(), meta })
    }

    /// Opens several files in parallel, keeping their order.
    pub fn open_all(paths: &[PathBuf]) -> Result<Vec<Self>> {
        paths.par_iter().map(|p| Self::open(p)).collect()
    }

    /// The Arrow schema.
    pub fn schema(&self) -> &SchemaRef {
        self.meta.schema()
    }

    /// Rows in the file.
    pub fn rows(&self) -> u64 {
        self.meta.metadata().file_metadata().num_rows().max(0) as u64
    }

    /// Row groups in the file.
    pub fn row_groups(&self) -> usize {
        self.meta.metadata().num_row_groups()
    }

    /// Whether the file has a top-level column `name`.
    pub fn has_column(&self, name: &str) -> bool {
        self.schema().field_with_name(name).is_ok()
    }

    /// The kind of column `name`: an error naming the file and listing the columns when it is
    /// absent, or naming the type when trainyard cannot read it.
    pub fn kind_of(&self, name: &str) -> Result<Kind> {
        let field = self.schema().field_with_name(name).map_err(|_| {
            let available: Vec<&str> = self.schema().fields().iter().map(|f| f.name().as_str()).collect();
            Error::data(format!(
                "column {name:?} not found in {}; columns: {}",
                self.path.display(),
                available.join(", ")
            ))
        })?;
        Kind::of(field.data_type()).ok_or_else(|| {
            Error::data(format!(
                "column {name:?} in {} has type {}, which trainyard cannot use (supported: integers, \
                 unsigned, floats, decimals, booleans, dates, timestamps, strings)",
                self.path.display(),
                field.data_type()
            ))
        })
    }

    /// The file row at which row group `rg` starts.
    pub(crate) fn first_row_of_group(&self, rg: usize) -> u64 {
        let meta = self.meta.metadata();
        (0..rg.min(meta.num_row_groups())).map(|g| meta.row_group(g).num_rows().max(0) as u64).sum()
    }

    pub(crate) fn leaf_index(&self, name: &str) -> Option<usize> {
        let descr = self.meta.metadata().file_metadata().schema_descr();
        descr.columns().iter().position(|c| c.path().parts() == [name])
    }
}

/// The kind of each of `columns`, checked to be the same in every file.
pub fn column_kinds(files: &[ParquetFile], columns: &[String]) -> Result<Vec<Kind>> {
    columns
        .iter()
        .map(|name| {
            let first = &files[0];
            let kind = first.kind_of(name)?;
            for f in &files[1..] {
                let k = f.kind_of(name)?;
                if k != kind {
                    return Err(Error::data(format!(
                        "column {name:?} is {} in {} but {} in {}",
                        kind.name(),
                        first.path.display(),
                        k.name(),
                        f.path.display()
                    )));
                }
            }
            Ok(kind)
        })
        .collect()
}

/// Where each row of a read frame came from: per decoded row group, in frame order, the file,
/// the row group and the positions (within the row group) of the rows the filters kept. A
/// second decode of other columns uses it to put each value straight into its row.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// `(file index, row group, kept positions)`.
    pub units: Vec<(usize, usize, Vec<u32>)>,
}
