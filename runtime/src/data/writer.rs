//! Writing Arrow batches as Parquet files (synthetic data, predictions).

use std::fs::File;
use std::path::Path;

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};

/// Writes one batch as a snappy-compressed Parquet file with statistics.
pub fn write_parquet(path: &Path, batch: RecordBatch, row_group_rows: usize) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .build();
    let to_err =
        |e: parquet::errors::ParquetError| Error::Internal(format!("writing {}: {e}", path.display()));
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(to_err)?;
    w.write(&batch).map_err(to_err)?;
    w.close().map_err(to_err)?;
    Ok(())
}
