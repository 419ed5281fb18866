//! Parquet files in object stores, read through the parquet crate's async reader: the footer
//! first (one suffix-sized request usually holds it), then, per row group that survives
//! statistics pruning, only the byte ranges of the projected column chunks, nearby ranges
//! coalesced into one request. Row groups are fetched ahead of the decoders, several at once,
//! with the bytes in flight bounded.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use rayon::prelude::*;

use super::parquet_file::{BATCH_ROWS, ParquetFile};
use crate::error::{Error, Result};
use crate::store::{self, Remote, TRAFFIC};

/// Bytes read from the end of a file for its footer: most footers fit, so one request does
/// (a larger one takes a second request for the rest).
const FOOTER_PREFETCH: usize = 64 << 10;
/// Ranges closer than this are fetched as one request.
const COALESCE_BYTES: u64 = 1 << 20;
/// Row groups being fetched at once.
const ROW_GROUPS_IN_FLIGHT: usize = 8;
/// The most compressed bytes fetched and not yet decoded, over all row groups in flight: a
/// sixteenth of the process's memory budget, between 64 and 512 MiB, so that the window stays
/// small next to the frame being filled in a tight pod.
fn bytes_in_flight() -> u64 {
    (crate::limits::budget().bytes / 16).clamp(64 << 20, 512 << 20)
}

/// A Parquet object and the metadata its listing returned (size, ETag, version).
#[derive(Debug, Clone)]
pub struct RemoteFile {
    /// Where it is.
    pub remote: Remote,
    /// Its size, ETag, version and last-modified time.
    pub meta: ObjectMeta,
}

/// An [`AsyncFileReader`] over one object. Every request asks for the version listed, so a file
/// replaced while the run reads it fails the read instead of mixing two versions.
#[derive(Clone)]
struct Reader {
    store: Arc<dyn ObjectStore>,
    file: Arc<RemoteFile>,
}

impl Reader {
    fn options(&self, range: GetRange) -> GetOptions {
        GetOptions {
            range: Some(range),
            if_match: self.file.meta.e_tag.clone(),
            version: self.file.meta.version.clone(),
            ..Default::default()
        }
    }

    async fn fetch(&self, range: GetRange) -> object_store::Result<Bytes> {
        let got = self.store.get_opts(self.file.remote.key(), self.options(range)).await?;
        let bytes = got.bytes().await?;
        TRAFFIC.read(1, bytes.len() as u64);
        Ok(bytes)
    }
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for Reader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.fetch(GetRange::Bounded(range)).await.map_err(external) }.boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            object_store::coalesce_ranges(&ranges, |r| self.fetch(GetRange::Bounded(r)), COALESCE_BYTES)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.file.meta.size;
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(FOOTER_PREFETCH))
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// The error of a failed read of `url`: the store's failure when there is one (so that a
/// transient one stays exit 1), else the file's content (exit 2).
fn read_error(url: &str, what: &str, e: ParquetError) -> Error {
    if let ParquetError::External(inner) = e {
        match inner.downcast::<object_store::Error>() {
            Ok(e) => return store::failed(url, what, *e),
            Err(inner) => return Error::data(format!("{url}: {what}: {inner}")),
        }
    }
    Error::data(format!("{url}: {what}: {e}"))
}

/// Reads the footer of `file`.
pub(crate) async fn metadata(file: &Arc<RemoteFile>) -> Result<ArrowReaderMetadata> {
    let url = file.remote.url();
    let mut reader = Reader { store: file.remote.store().clone(), file: file.clone() };
    ArrowReaderMetadata::load_async(&mut reader, Default::default())
        .await
        .map_err(|e| read_error(&url, "not a readable Parquet file", e))
}

/// Fetches the projected column chunks of row group `rg` and returns the reader that decodes
/// them (the same batches the local reader gives).
async fn fetch_row_group(
    file: ParquetFile,
    remote: Arc<RemoteFile>,
    rg: usize,
    mask: ProjectionMask,
) -> Result<ParquetRecordBatchReader> {
    let url = remote.remote.url();
    let reader = Reader { store: remote.remote.store().clone(), file: remote };
    let mut stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, file.meta.clone())
        .with_projection(mask)
        .with_row_groups(vec![rg])
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| read_error(&url, &format!("cannot read row group {rg}"), e))?;
    stream
        .next_row_group()
        .await
        .map_err(|e| read_error(&url, &format!("cannot read row group {rg}"), e))?
        .ok_or_else(|| Error::Internal(format!("{url}: row group {rg} yielded no reader")))
}

/// Runs `work` on the reader of each `(file, row group)` unit, on the rayon pool, and returns
/// the results in unit order. Units of object-store files are fetched ahead in unit order, at
/// most [`ROW_GROUPS_IN_FLIGHT`] at once and [`bytes_in_flight`] fetched but not yet decoded;
/// the decoders take them in that order, so the window moves as they finish.
pub(crate) fn each_row_group<T: Send>(
    files: &[ParquetFile],
    units: &[(usize, usize)],
    columns: &[String],
    work: impl Fn(usize, ParquetRecordBatchReader) -> Result<T> + Sync + Send,
) -> Result<Vec<T>> {
    if units.iter().all(|&(fi, _)| files[fi].remote.is_none()) {
        // The error reported is the first unit's in file order, whichever thread finds its
        // error first: the same bad data gives the same message every run. Units after a
        // failed one are skipped (their placeholder errors sort after the real one).
        let failed = std::sync::atomic::AtomicUsize::new(usize::MAX);
        let results: Vec<Result<T>> = units
            .par_iter()
            .enumerate()
            .map(|(i, &(fi, rg))| {
                if i > failed.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(Error::Internal("skipped after an earlier row group failed".into()));
                }
                let done = super::guard::decoding(
                    || format!("{} row group {rg}", files[fi].path.display()),
                    || files[fi].row_group_reader(rg, columns),
                )
                .and_then(|reader| work(i, reader));
                if done.is_err() {
                    failed.fetch_min(i, std::sync::atomic::Ordering::Relaxed);
                }
                done
            })
            .collect();
        return results.into_iter().collect();
    }
    let mut jobs = Vec::with_capacity(units.len());
    for (i, &(fi, rg)) in units.iter().enumerate() {
        let file = &files[fi];
        let mask = file.projection(columns)?;
        let meta = file.meta.metadata().row_group(rg);
        let bytes: u64 = (0..meta.num_columns())
            .filter(|&c| mask.leaf_included(c))
            .map(|c| meta.column(c).compressed_size().max(0) as u64)
            .sum();
        jobs.push((i, file.clone(), rg, mask, bytes));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(ROW_GROUPS_IN_FLIGHT);
    let window_kib = bytes_in_flight() >> 10;
    let budget = Arc::new(tokio::sync::Semaphore::new(window_kib as usize));
    let fetcher = store::spawn(async move {
        // Permits are taken in unit order, before each fetch starts, so a later unit never holds
        // the budget an earlier one (which the decoders wait for) needs.
        let fetches = futures::stream::iter(jobs)
            .then(|(i, file, rg, mask, bytes)| {
                let budget = budget.clone();
                async move {
                    let kib = (bytes >> 10).clamp(1, window_kib) as u32;
                    let permit = budget.acquire_many_owned(kib).await;
                    (i, file, rg, mask, permit)
                }
            })
            .map(|(i, file, rg, mask, permit)| async move {
                let fetched = match (&file.remote, permit) {
                    (Some(remote), Ok(permit)) => {
                        let remote = remote.clone();
                        fetch_row_group(file, remote, rg, mask).await.map(|r| (r, Some(permit)))
                    }
                    (None, _) => file.row_group_reader_masked(rg, mask).map(|r| (r, None)),
                    (_, Err(_)) => Err(Error::Internal("the fetch budget closed".into())),
                };
                (i, fetched)
            })
            .buffered(ROW_GROUPS_IN_FLIGHT);
        futures::pin_mut!(fetches);
        while let Some(item) = fetches.next().await {
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    let results: Result<Vec<(usize, T)>> = std::iter::from_fn(|| rx.blocking_recv())
        .par_bridge()
        .map(|(i, fetched)| {
            // The permit is held until the unit is decoded, then returned to the budget.
            let (reader, _permit) = fetched?;
            Ok((i, work(i, reader)?))
        })
        .collect();
    drop(rx);
    let mut results = results?;
    if results.len() < units.len() {
        // The fetcher stopped early without an error: it panicked on a file's bytes.
        let why = match store::block_on(fetcher) {
            Err(e) if e.is_panic() => super::panic_message(&*e.into_panic()),
            _ => "the fetcher stopped".to_string(),
        };
        return Err(Error::data(format!("reading row groups from the object store failed: {why}")));
    }
    fetcher.abort();
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, t)| t).collect())
}
