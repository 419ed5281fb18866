//! `trainyard predict`: scores new Parquet data with nothing but a run directory. Scores equal
//! the training-time test scores exactly: the same pipeline builds the same f32 rows, and each
//! row is scored independently of the others (the MLP in fixed-size blocks).

use std::path::{Path, PathBuf};

use crate::artifact;
use crate::data::{self, ParquetFile};
use crate::error::{Error, Result};
use crate::runfiles::{RunFiles, write_predictions};
use crate::store::{Remote, Scratch};

/// What a prediction run did.
#[derive(Debug, Clone)]
pub struct PredictSummary {
    /// Rows scored.
    pub rows: usize,
    /// Files read.
    pub files: usize,
    /// The output file.
    pub out: PathBuf,
}

/// Scores the rows of `data` (files, globs or directories) with the model in `run` and writes
/// `out`: the model's key column when the data has it, then `score` (binary), or `predicted`
/// and one `probability_<class>` column per class (multiclass). The output appears only once
/// complete.
pub fn predict(run: &Path, data: &[String], out: &Path) -> Result<PredictSummary> {
    let remote_out = Remote::parse_path(out)?;
    if let Some(remote) = &remote_out
        && remote.name().is_none()
    {
        return Err(Error::Usage(format!("--out {}: name the output Parquet object", remote.url())));
    }
    crate::runfiles::refuse_output_in_run(run, out, "the scores")?;
    let out = &PathBuf::from(crate::store::local_path(&out.to_string_lossy()));
    if remote_out.is_none() && out.is_dir() {
        return Err(Error::Usage(format!(
            "--out {} is a directory; name the output Parquet file",
            out.display()
        )));
    }
    let loaded = artifact::load_from(&RunFiles::open(run)?)?;
    let card = &loaded.card;
    let paths = data::expand("--data", data, |p| PathBuf::from(p))?;
    // Writing the scores over an input would destroy it (the rename replaces the file).
    if let Some(input) = paths.iter().map(data::Source::path).find(|p| match &remote_out {
        Some(r) => p.to_string_lossy() == r.url(),
        None => out.canonicalize().is_ok_and(|target| p.canonicalize().is_ok_and(|c| c == target)),
    }) {
        return Err(Error::Usage(format!(
            "--out {} is one of the --data files ({}); write the scores elsewhere",
            out.display(),
            input.display()
        )));
    }
    let files = ParquetFile::open_sources(&paths)?;
    let mut columns = card.input_columns();
    // The key is copied out unless it is a feature (as before group columns were read here).
    let features = card.pipeline.numeric.len() + card.pipeline.categorical.len();
    let key = card
        .key
        .clone()
        .filter(|k| files.iter().all(|f| f.has_column(k)) && !columns[..features].contains(k));
    if let Some(k) = key.as_ref().filter(|k| !columns.contains(k)) {
        columns.push(k.clone());
    }
    let kinds = data::column_kinds(&files, &columns)?;
    let (frame, _, origins) = data::read_tracked(&files, &columns, &kinds, &[])?;
    let numeric: Vec<(String, String)> =
        card.pipeline.numeric.iter().map(|n| ("--data".to_string(), n.column.clone())).collect();
    data::check_finite(&files, &origins, |n| frame.column(n), &numeric)?;
    let scores = loaded.score(&frame)?;

    let key_column = key.as_deref().and_then(|k| frame.column(k).map(|c| (k, c)));
    if let Some(remote) = &remote_out {
        // The object appears whole or not at all (one PUT, or a multipart upload's completion).
        let scratch = Scratch::new("predict")?;
        let tmp = scratch.path().join("scores.parquet");
        write_predictions(&tmp, key_column, None, &scores, &card.labels)?;
        remote.upload(&tmp)?;
        return Ok(PredictSummary { rows: frame.rows, files: files.len(), out: PathBuf::from(remote.url()) });
    }
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = out.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let written = write_predictions(&tmp, key_column, None, &scores, &card.labels)
        .and_then(|()| std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    Ok(PredictSummary { rows: frame.rows, files: files.len(), out: out.to_path_buf() })
}
