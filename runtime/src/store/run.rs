//! Run directories on object stores. A store has no rename, so a run is committed explicitly:
//! every file is uploaded first, then `manifest.json` last, with a conditional create (unless
//! `--overwrite`). A prefix is a run only when its manifest exists and says `succeeded`; a
//! crashed upload leaves files without a manifest, which readers refuse and the next run to
//! the same output deletes.

use std::path::Path;

use bytes::Bytes;

use super::Remote;
use crate::error::{Error, Result};
use crate::progress::{Counter, Reporter};
use crate::rundir::{self, names};

/// Checks, before any work, that a run may be written at `target`: it names a run (its last
/// segment fits the local staging rules), no input URL is under it, and it holds no committed run
/// unless `overwrite` (and then only a trainyard run: its manifest has a `run_id`).
pub fn check_target(target: &Remote, overwrite: bool, inputs: &[String]) -> Result<()> {
    let url = target.url();
    let name = target.name().ok_or_else(|| {
        Error::Usage(format!(
            "output {url} does not name a run (give a key, such as s3://bucket/runs/<name>)"
        ))
    })?;
    if name.len() > rundir::MAX_NAME_BYTES {
        return Err(Error::Usage(format!(
            "output {url}: the run name is {} bytes long; the limit is {} bytes",
            name.len(),
            rundir::MAX_NAME_BYTES
        )));
    }
    if let Some(input) =
        inputs.iter().find(|i| i.trim_end_matches('/') == url || i.starts_with(&format!("{url}/")))
    {
        return Err(Error::Usage(format!(
            "output {url} contains the input {input}; later runs would read this run's Parquet files, \
             so write the run somewhere else"
        )));
    }
    // Listing first: a missing bucket or a denied listing fails here, before any work.
    target.list()?;
    match target.child(names::MANIFEST).get()? {
        None => Ok(()),
        Some(_) if !overwrite => Err(Error::Usage(format!(
            "output {url} already holds a run ({}); pass --overwrite to replace it",
            names::MANIFEST
        ))),
        Some(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(m) if m.get("run_id").is_some() => Ok(()),
            _ => Err(Error::Usage(format!(
                "output {url} has a {} that is not a trainyard manifest; refusing to replace it with \
                 --overwrite",
                names::MANIFEST
            ))),
        },
    }
}

/// Uploads the finished local run directory `local` to `target`:
/// 1. an earlier run's manifest there (only with `overwrite`) is deleted first, so that no
///    reader takes the prefix for a run while its files change;
/// 2. every file but the manifest is uploaded (large ones in parts);
/// 3. objects under the prefix that are not files of this run (an earlier run's, or what a
///    crashed upload left) are deleted;
/// 4. the manifest is written last, with `If-None-Match: *` unless `overwrite`: two runs racing
///    to one output cannot both commit.
pub fn commit(local: &Path, target: &Remote, overwrite: bool, progress: &Reporter) -> Result<()> {
    let started = std::time::Instant::now();
    let url = target.url();
    let manifest = target.child(names::MANIFEST);
    let existing = target.list()?;
    if existing.iter().any(|o| o.location == *manifest.key()) {
        if !overwrite {
            return Err(Error::Usage(format!(
                "output {url} already holds a run ({}); pass --overwrite to replace it",
                names::MANIFEST
            )));
        }
        target.delete(vec![manifest.key().clone()])?;
    }
    let mut files: Vec<String> = std::fs::read_dir(local)
        .map_err(|e| Error::io(local, e))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()).map_err(|e| Error::io(local, e)))
        .collect::<Result<_>>()?;
    files.sort();
    files.retain(|f| f != names::MANIFEST);
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(local.join(f)).map(|m| m.len()).map_err(|e| Error::io(local.join(f), e)))
        .collect::<Result<_>>()?;
    let units = sizes.iter().map(|&b| Remote::upload_units(b)).sum::<usize>() + 1;
    let counter = Counter::new(progress, "upload", "uploading the run", units);
    for name in &files {
        target.child(name).upload_reporting(&local.join(name), &|| counter.tick())?;
    }
    let stale: Vec<_> = existing
        .into_iter()
        .map(|o| o.location)
        .filter(|k| *k != *manifest.key() && !files.iter().any(|f| *k == *target.child(f).key()))
        .collect();
    if !stale.is_empty() {
        tracing::info!(objects = stale.len(), output = %url, "deleting objects under the output that are not part of this run");
        target.delete(stale)?;
    }
    let path = local.join(names::MANIFEST);
    let bytes = Bytes::from(std::fs::read(&path).map_err(|e| Error::io(&path, e))?);
    if overwrite {
        manifest.put(bytes)?;
    } else if !manifest.create(bytes)? {
        return Err(Error::Usage(format!(
            "output {url}: another run committed its {} there while this one was uploading; this run \
             was not committed (pass --overwrite to replace that run)",
            names::MANIFEST
        )));
    }
    counter.tick();
    tracing::info!(
        phase = "upload",
        seconds = started.elapsed().as_secs_f64(),
        bytes = sizes.iter().sum::<u64>(),
        output = %url,
        "committed the run to {url} ({} files, manifest last)",
        files.len() + 1
    );
    Ok(())
}

/// The manifest of the run at `run`, which must be committed: exit 2 naming the prefix when it
/// has no manifest (never written, or its upload did not finish) or the manifest does not say
/// `succeeded`.
pub fn committed_manifest(run: &Remote) -> Result<serde_json::Value> {
    let url = run.url();
    let bytes = run.child(names::MANIFEST).get()?.ok_or_else(|| {
        Error::Usage(format!(
            "{url} is not a trainyard run: it has no {} (the run was never written there, or its \
             upload did not finish)",
            names::MANIFEST
        ))
    })?;
    let manifest: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::data(format!("{url}/{}: not a trainyard manifest: {e}", names::MANIFEST)))?;
    match manifest.get("status").and_then(|s| s.as_str()) {
        Some("succeeded") => Ok(manifest),
        status => Err(Error::Usage(format!(
            "{url} is not a finished run: its {} says status {}",
            names::MANIFEST,
            status.map_or("(none)".to_string(), |s| format!("{s:?}"))
        ))),
    }
}
