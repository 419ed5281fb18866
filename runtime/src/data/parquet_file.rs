//! A Parquet file opened for reading: its footer (schema, row groups, statistics) read once,
//! the kind of each column checked across files, and where a read's rows came from. What both
//! the column reader (`reader.rs`) and the dense decoder (`dense.rs`) start from.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};

use rayon::prelude::*;

use super::column::Kind;
use super::files::{Source, describe};
use super::remote::{self, RemoteFile};
use crate::error::{Error, Result};
use crate::store;

/// Rows per decoded Arrow batch; large enough to amortize per-batch overhead, small enough to
/// keep a row group's transient Arrow buffers well below the size of the final frame.
pub(crate) const BATCH_ROWS: usize = 64 * 1024;

/// A Parquet file whose footer has been read.
#[derive(Debug, Clone)]
pub struct ParquetFile {
    /// Path as resolved from the spec.
    pub path: PathBuf,
    /// File size in bytes.
    pub bytes: u64,
    pub(crate) meta: ArrowReaderMetadata,
    /// The object, for a file in an object store (`path` is then its URL).
    pub(crate) remote: Option<Arc<RemoteFile>>,
}

impl ParquetFile {
    /// The projection of `columns`.
    pub(crate) fn projection(&self, columns: &[String]) -> Result<ProjectionMask> {
        let roots: Vec<usize> = columns
            .iter()
            .map(|c| {
                self.schema()
                    .index_of(c)
                    .map_err(|_| Error::Internal(format!("column {c} vanished from {}", self.path.display())))
            })
            .collect::<Result<_>>()?;
        Ok(ProjectionMask::roots(self.meta.metadata().file_metadata().schema_descr(), roots))
    }

    /// A reader of `columns` in row group `rg` of a local file, in batches of [`BATCH_ROWS`].
    pub(crate) fn row_group_reader(&self, rg: usize, columns: &[String]) -> Result<ParquetRecordBatchReader> {
        self.row_group_reader_masked(rg, self.projection(columns)?)
    }

    /// [`row_group_reader`](Self::row_group_reader) of a projection.
    pub(crate) fn row_group_reader_masked(
        &self,
        rg: usize,
        mask: ProjectionMask,
    ) -> Result<ParquetRecordBatchReader> {
        let path = &self.path;
        if self.remote.is_some() {
            return Err(Error::Internal(format!(
                "{} is read through the object-store reader",
                path.display()
            )));
        }
        let handle = File::open(path).map_err(|e| Error::io(path, e))?;
        ParquetRecordBatchReaderBuilder::new_with_metadata(handle, self.meta.clone())
            .with_projection(mask)
            .with_row_groups(vec![rg])
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| Error::data(format!("{}: cannot read row group {rg}: {e}", path.display())))
    }

    async fn open_remote(file: Arc<RemoteFile>) -> Result<Self> {
        let url = file.remote.url();
        let meta = remote::metadata(&file).await?;
        Self::checked(PathBuf::from(url), file.meta.size, meta, Some(file))
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
        Self::checked(path.to_path_buf(), metadata.len(), meta, None)
    }

    /// The file, once its schema has no two top-level columns of one name.
    fn checked(
        path: PathBuf,
        bytes: u64,
        meta: ArrowReaderMetadata,
        remote: Option<Arc<RemoteFile>>,
    ) -> Result<Self> {
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
        Ok(ParquetFile { path, bytes, meta, remote })
    }

    /// Opens several local files in parallel, keeping their order.
    pub fn open_all(paths: &[PathBuf]) -> Result<Vec<Self>> {
        paths.par_iter().map(|p| Self::open(p)).collect()
    }

    /// Opens several local or object-store files, keeping their order: local footers in
    /// parallel on the rayon pool, object-store footers many at once on the store runtime.
    pub fn open_sources(sources: &[Source]) -> Result<Vec<Self>> {
        let local: Vec<PathBuf> = sources
            .iter()
            .filter_map(|s| if let Source::Local(p) = s { Some(p.clone()) } else { None })
            .collect();
        if local.len() == sources.len() {
            return Self::open_all(&local);
        }
        const FOOTERS_IN_FLIGHT: usize = 32;
        let owned = sources.to_vec();
        store::block_on(async move {
            use futures::{StreamExt, TryStreamExt};
            futures::stream::iter(owned)
                .map(|s| async move {
                    match s {
                        Source::Local(path) => Self::open(&path),
                        Source::Remote(file) => Self::open_remote(file).await,
                    }
                })
                .buffered(FOOTERS_IN_FLIGHT)
                .try_collect()
                .await
        })
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
