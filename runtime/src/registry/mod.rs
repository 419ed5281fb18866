//! The registry over a runs root (a directory or a bucket prefix): every run below it, found by
//! its `manifest.json` (written last, so a folder without one is not a run), and the production
//! pointers in `ROOT/.production/` ([`production`]). `trainyard runs list|show|compare|promote|
//! production|history` are the functions here and in the submodules.

pub mod compare;
pub mod production;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rundir::names;
use crate::runfiles::{InputFile, RunSummary};
use crate::store::{self, Remote};

/// Folders below the root searched for runs: `ROOT/RUN` and `ROOT/GROUP/RUN` (one level of
/// grouping, e.g. by job name), and one more.
const MAX_DEPTH: usize = 3;

/// A runs root.
#[derive(Debug, Clone)]
pub enum Root {
    /// A local directory.
    Local(PathBuf),
    /// A prefix in an object store.
    Remote(Remote),
}

impl Root {
    /// The root at `path` (a directory, `file://` or an object-store URL); a local root must be an
    /// existing directory (exit 2 otherwise).
    pub fn open(path: &str) -> Result<Root> {
        if let Some(remote) = Remote::parse(path)? {
            return Ok(Root::Remote(remote));
        }
        let dir = PathBuf::from(store::local_path(path));
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(Root::Local(dir)),
            Ok(_) => Err(Error::Usage(format!("runs root {} is a file, not a directory", dir.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::Usage(format!("runs root {} not found", dir.display())))
            }
            Err(e) => Err(Error::io(&dir, e)),
        }
    }

    /// The root as a user writes it.
    pub fn display(&self) -> String {
        match self {
            Root::Local(dir) => dir.display().to_string(),
            Root::Remote(r) => r.url(),
        }
    }

    /// The path (or URL, as a path) of `rel` under the root, as run readers take it.
    pub fn location(&self, rel: &str) -> PathBuf {
        match self {
            Root::Local(dir) => dir.join(rel),
            Root::Remote(r) => PathBuf::from(self.remote(r, rel).url()),
        }
    }

    fn remote(&self, r: &Remote, rel: &str) -> Remote {
        let key = if r.key().as_ref().is_empty() { rel.to_string() } else { format!("{}/{rel}", r.key()) };
        r.at(object_store::path::Path::from(key))
    }

    /// `run` relative to the root when it lies below it (what pointers record, so that a root
    /// can move), else as given.
    pub fn relative(&self, run: &Path) -> String {
        let shown = run.to_string_lossy();
        match self {
            Root::Local(dir) => {
                let (Ok(root), Ok(run_abs)) = (dir.canonicalize(), run.canonicalize()) else {
                    return shown.into_owned();
                };
                match run_abs.strip_prefix(&root) {
                    Ok(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
                    _ => run_abs.to_string_lossy().into_owned(),
                }
            }
            Root::Remote(r) => {
                let prefix = format!("{}/", r.url().trim_end_matches('/'));
                shown.strip_prefix(&prefix).map(str::to_string).unwrap_or_else(|| shown.into_owned())
            }
        }
    }

    /// The bytes of `rel`, or `None` when there is no such file.
    pub(crate) fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Root::Local(dir) => {
                let path = dir.join(rel);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(&path, e)),
                }
            }
            Root::Remote(r) => Ok(self.remote(r, rel).get()?.map(|b| b.to_vec())),
        }
    }

    /// Writes `rel` only if it does not exist yet, whole or not at all; `false` when it exists.
    /// Of processes racing to create one file, exactly one gets `true`.
    pub(crate) fn create(&self, rel: &str, bytes: &[u8]) -> Result<bool> {
        match self {
            Root::Local(dir) => {
                let path = dir.join(rel);
                let tmp = staged(&path, bytes)?;
                // A hard link fails when the name exists: an exclusive create of a file that
                // is complete from the moment it appears (create_new + write would let a reader
                // see it half written).
                let linked = std::fs::hard_link(&tmp, &path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(Error::io(&path, e)),
                }
            }
            Root::Remote(r) => self.remote(r, rel).create(Bytes::copy_from_slice(bytes)),
        }
    }

    /// Writes `rel`, replacing it, atomically (readers see the old or the new bytes).
    pub(crate) fn replace(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Root::Local(dir) => {
                let path = dir.join(rel);
                let tmp = staged(&path, bytes)?;
                std::fs::rename(&tmp, &path).map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    Error::io(&path, e)
                })
            }
            Root::Remote(r) => self.remote(r, rel).put(Bytes::copy_from_slice(bytes)),
        }
    }

    /// The names of the files and of the folders directly in the folder `rel`, each sorted;
    /// empty when there is no such folder. One listing either way.
    pub(crate) fn entries_in(&self, rel: &str) -> Result<Entries> {
        let mut out = Entries::default();
        match self {
            Root::Local(dir) => {
                let path = dir.join(rel);
                let entries = match std::fs::read_dir(&path) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(Error::io(&path, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| Error::io(&path, e))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    match entry.file_type() {
                        Ok(t) if t.is_file() => out.files.push(name),
                        Ok(t) if t.is_dir() => out.folders.push(name),
                        _ => {}
                    }
                }
            }
            Root::Remote(r) => {
                let folder = self.remote(r, rel);
                let depth = folder.key().parts().count();
                for o in folder.list()? {
                    let parts: Vec<String> = o.location.parts().map(|p| p.as_ref().to_string()).collect();
                    match parts.len().checked_sub(depth) {
                        Some(1) => out.files.push(parts[depth].clone()),
                        Some(n) if n > 1 => out.folders.push(parts[depth].clone()),
                        _ => {}
                    }
                }
            }
        }
        for names in [&mut out.files, &mut out.folders] {
            names.sort();
            names.dedup();
        }
        Ok(out)
    }

    /// Every run below the root: its path relative to the root and its manifest's bytes, read in
    /// parallel. Folders whose name starts with `.` or `_` (staging, pointers, checkpoints) are
    /// skipped.
    pub fn manifests(&self) -> Result<Vec<(String, Vec<u8>)>> {
        match self {
            Root::Local(dir) => {
                let mut runs = Vec::new();
                find_local_runs(dir, "", 0, &mut runs)?;
                runs.into_par_iter()
                    .map(|rel| {
                        let path = dir.join(&rel).join(names::MANIFEST);
                        std::fs::read(&path).map(|b| (rel, b)).map_err(|e| Error::io(&path, e))
                    })
                    .collect()
            }
            Root::Remote(r) => {
                let base = r.key().parts().count();
                let runs: Vec<String> = r
                    .list()?
                    .into_iter()
                    .filter_map(|o| {
                        let parts: Vec<String> = o.location.parts().map(|p| p.as_ref().to_string()).collect();
                        let rel = parts.get(base..parts.len().checked_sub(1)?)?;
                        let hidden = rel.iter().any(|p| p.starts_with('.') || p.starts_with('_'));
                        (parts.last()? == names::MANIFEST
                            && !rel.is_empty()
                            && rel.len() <= MAX_DEPTH
                            && !hidden)
                            .then(|| rel.join("/"))
                    })
                    .collect();
                let objects: Vec<Remote> =
                    runs.iter().map(|rel| self.remote(r, &format!("{rel}/{}", names::MANIFEST))).collect();
                runs.into_iter()
                    .zip(Remote::get_all(&objects))
                    .filter_map(|(rel, got)| match got {
                        Ok(Some(bytes)) => Some(Ok((rel, bytes.to_vec()))),
                        Ok(None) => None,
                        Err(e) => Some(Err(e)),
                    })
                    .collect()
            }
        }
    }
}

/// What [`Root::entries_in`] found in a folder.
#[derive(Debug, Default)]
pub(crate) struct Entries {
    /// File names, sorted.
    pub files: Vec<String>,
    /// Folder names, sorted.
    pub folders: Vec<String>,
}

/// `bytes` in a temporary file beside `path` (its folder created), flushed to disk.
fn staged(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    use std::io::Write as _;
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Processes in different containers share a volume and a pid (1): the name is random, and
    // created exclusively, so no two writers ever share a temporary file.
    let random = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
        );
        h.finish()
    };
    let tmp = parent.join(format!(".{name}.tmp-{random:016x}"));
    let written = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    Ok(tmp)
}

fn find_local_runs(root: &Path, rel: &str, depth: usize, out: &mut Vec<String>) -> Result<()> {
    let dir = root.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with('_') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        children.push(if rel.is_empty() { name } else { format!("{rel}/{name}") });
    }
    for child in children {
        if root.join(&child).join(names::MANIFEST).is_file() {
            out.push(child);
        } else if depth + 1 < MAX_DEPTH {
            find_local_runs(root, &child, depth + 1, out)?;
        }
    }
    Ok(())
}

/// What `runs list` shows of a run, read from its manifest alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run id.
    pub run_id: String,
    /// The job name.
    pub name: String,
    /// `succeeded` (a run without a manifest is not listed).
    pub status: String,
    /// Path below the root.
    pub path: String,
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// Wall seconds.
    pub seconds: f64,
    /// Train rows, test rows and the headline test metrics (runs written before 0.2 lack them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<RunSummary>,
    /// A short hash of every input's fingerprint: equal hashes, equal data.
    pub data_fingerprint: String,
    /// The gate's verdict, when the spec had a gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligible: Option<bool>,
    /// Whether this run is its name's production run in this root.
    pub production: bool,
}

/// The manifest fields a listing reads; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Listed {
    run_id: String,
    name: String,
    status: String,
    started_at: String,
    seconds: f64,
    #[serde(default)]
    inputs: Vec<InputFile>,
    #[serde(default)]
    summary: Option<RunSummary>,
    #[serde(default)]
    promotion: Option<crate::gate::Promotion>,
}

/// Which runs `runs list` shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this job name.
    pub name: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only runs started at or after this instant (Unix milliseconds).
    pub since_ms: Option<i64>,
}

/// Every run below `root` that passes `filter`, newest first. A manifest that does not parse is
/// exit 2 naming it.
pub fn list(root: &Root, filter: &Filter) -> Result<Vec<RunRecord>> {
    let production = production::all_current(root)?;
    let records = root
        .manifests()?
        .into_par_iter()
        .map(|(rel, bytes)| {
            let m: Listed = serde_json::from_slice(&bytes).map_err(|e| {
                Error::data(format!(
                    "{}: not a trainyard manifest: {e}",
                    root.location(&rel).join(names::MANIFEST).display()
                ))
            })?;
            let live = production.get(&m.name).is_some_and(|p| p.run_id == m.run_id);
            Ok(RunRecord {
                data_fingerprint: data_fingerprint(&m.inputs),
                eligible: m.promotion.map(|p| p.eligible),
                production: live,
                path: rel,
                run_id: m.run_id,
                name: m.name,
                status: m.status,
                started_at: m.started_at,
                seconds: m.seconds,
                summary: m.summary,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut records: Vec<RunRecord> = records
        .into_iter()
        .filter(|r| filter.name.as_ref().is_none_or(|n| *n == r.name))
        .filter(|r| filter.status.as_ref().is_none_or(|s| *s == r.status))
        .filter(|r| {
            filter
                .since_ms
                .is_none_or(|since| crate::spec::parse_instant(&r.started_at).is_some_and(|t| t >= since))
        })
        .collect();
    records.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| a.run_id.cmp(&b.run_id)));
    Ok(records)
}

/// A short hash of what the inputs were: role, path and content fingerprint of each, in order.
pub fn data_fingerprint(inputs: &[InputFile]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in inputs {
        for part in [
            f.role.as_str(),
            &f.path.to_string_lossy(),
            f.sha256.as_deref().unwrap_or(""),
            f.etag.as_deref().unwrap_or(""),
            f.version.as_deref().unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
    }
    crate::runfiles::hex(&h.finalize())[..12].to_string()
}

/// The listing as a table for a terminal.
pub fn table(records: &[RunRecord]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let id_width = records.iter().map(|r| r.run_id.len()).max().unwrap_or(6).max(6);
    let name_width = records.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(
        s,
        "{:<id_width$}  {:<name_width$}  {:<10}  {:<20}  {:>8}  {:>9}  {:>8}  {:>8}  {:>8}  {:<12}  {:<5}  PRODUCTION",
        "RUN", "NAME", "STATUS", "STARTED", "SECONDS", "TRAIN", "TEST", "AUC", "LOGLOSS", "DATA", "GATE"
    );
    for r in records {
        let (train, test, auc, ll) = match &r.summary {
            Some(s) => (
                s.train_rows.to_string(),
                s.test_rows.to_string(),
                s.test.get("roc_auc").map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into()),
                s.test.get("log_loss").map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into()),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let gate = match r.eligible {
            Some(true) => "pass",
            Some(false) => "fail",
            None => "-",
        };
        let started: String = r.started_at.chars().take(19).collect();
        let line = format!(
            "{:<id_width$}  {:<name_width$}  {:<10}  {:<20}  {:>8.1}  {:>9}  {:>8}  {:>8}  {:>8}  {:<12}  {:<5}  {}",
            r.run_id,
            r.name,
            r.status,
            started,
            r.seconds,
            train,
            test,
            auc,
            ll,
            r.data_fingerprint,
            gate,
            if r.production { "*" } else { "" }
        );
        let _ = writeln!(s, "{}", line.trim_end());
    }
    s
}

/// The run a command names: a run directory or URL, else a folder below `root`, else a run id
/// found by listing `root`.
pub fn locate(root: Option<&Root>, run: &str) -> Result<PathBuf> {
    let direct = PathBuf::from(run);
    let has_manifest = |p: &Path| -> Result<bool> {
        match Remote::parse_path(p)? {
            Some(r) => Ok(r.child(names::MANIFEST).head()?.is_some()),
            None => Ok(p.join(names::MANIFEST).is_file()),
        }
    };
    if has_manifest(&direct)? {
        return Ok(direct);
    }
    let Some(root) = root else { return Ok(direct) };
    if !store::is_url(run) && !Path::new(run).is_absolute() {
        let below = root.location(run);
        if has_manifest(&below)? {
            return Ok(below);
        }
        for (rel, bytes) in root.manifests()? {
            let id = serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(&bytes)
                .ok()
                .and_then(|m| m.get("run_id").and_then(|v| v.as_str().map(str::to_string)));
            if id.as_deref() == Some(run) {
                return Ok(root.location(&rel));
            }
        }
    }
    Err(Error::Usage(format!(
        "run {run} not found: not a run directory, nor a run folder or run id in {}",
        root.display()
    )))
}

/// `runs show`: a run's record with its gate verdict, baseline comparison and inputs.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// What `runs list` shows of it (`production`: whether it is its name's production run in
    /// the folder that holds it).
    pub record: RunRecord,
    /// The gate's verdict.
    pub promotion: Option<crate::gate::Promotion>,
    /// The comparison with its baseline.
    pub baseline: Option<crate::baseline::Comparison>,
    /// Its input files.
    pub inputs: Vec<InputFile>,
}

/// Reads what `runs show` prints of `run`.
pub fn show(run: &Path) -> Result<Shown> {
    let files = crate::runfiles::RunFiles::open(run)?;
    let manifest: crate::runfiles::Manifest = serde_json::from_value(files.manifest().clone())
        .map_err(|e| Error::data(format!("{}: {e}", files.path(names::MANIFEST).display())))?;
    let metrics: crate::runfiles::MetricsFile = files.read_json(names::METRICS)?;
    let shown = run.to_string_lossy().into_owned();
    let parent = crate::baseline::parent_of(&shown);
    let production = match Root::open(&parent) {
        Ok(root) => {
            production::all_current(&root)?.get(&manifest.name).is_some_and(|p| p.run_id == manifest.run_id)
        }
        Err(_) => false,
    };
    Ok(Shown {
        record: RunRecord {
            run_id: manifest.run_id,
            name: manifest.name,
            status: manifest.status,
            path: shown,
            started_at: manifest.started_at,
            seconds: manifest.seconds,
            summary: manifest.summary,
            data_fingerprint: data_fingerprint(&manifest.inputs),
            eligible: manifest.promotion.as_ref().map(|p| p.eligible),
            production,
        },
        promotion: manifest.promotion,
        baseline: metrics.baseline,
        inputs: manifest.inputs,
    })
}

/// [`Shown`] for people.
pub fn describe(s: &Shown) -> String {
    use std::fmt::Write as _;
    let r = &s.record;
    let mut out = String::new();
    let _ =
        writeln!(out, "run {}  ({}){}", r.run_id, r.status, if r.production { "  PRODUCTION" } else { "" });
    let _ = writeln!(out, "  name        {}", r.name);
    let _ = writeln!(out, "  path        {}", r.path);
    let _ = writeln!(out, "  started     {}  ({:.2} s)", r.started_at, r.seconds);
    let _ = writeln!(out, "  data        {} ({} input files)", r.data_fingerprint, s.inputs.len());
    if let Some(sum) = &r.summary {
        let metrics: Vec<String> = sum.test.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        let _ = writeln!(out, "  rows        {} train, {} test", sum.train_rows, sum.test_rows);
        let _ = writeln!(out, "  test        {}", metrics.join(", "));
    }
    crate::gate::describe(s.promotion.as_ref(), &mut out);
    if let Some(c) = &s.baseline {
        c.describe(&mut out);
    }
    out
}
