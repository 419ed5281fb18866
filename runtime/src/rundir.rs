//! The run directory: written into a hidden staging directory beside the target and renamed into
//! place only when complete, so a crash (even SIGKILL) never leaves a half-written run at the
//! target path.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File names inside a run directory.
pub mod names {
    /// Run id, status, resolved spec and its hash, versions, device, inputs, times.
    pub const MANIFEST: &str = "manifest.json";
    /// Metrics per split, fit details and phase timings.
    pub const METRICS: &str = "metrics.json";
    /// Model kind, hyperparameters, feature pipeline, label mapping, tensor names.
    pub const MODEL_JSON: &str = "model.json";
    /// The weights.
    pub const WEIGHTS: &str = "model.safetensors";
    /// Test rows: key, label, score.
    pub const PREDICTIONS: &str = "predictions.parquet";
}

/// Fails early (before any work) when `target` exists and is not an empty directory, unless
/// `overwrite` is set.
pub fn check_target(target: &Path, overwrite: bool) -> Result<()> {
    match fs::metadata(target) {
        Err(_) => Ok(()),
        Ok(m) if !m.is_dir() => {
            Err(Error::Usage(format!("output {} exists and is not a directory", target.display())))
        }
        Ok(_) => {
            let empty = fs::read_dir(target).map_err(|e| Error::io(target, e))?.next().is_none();
            if empty || overwrite {
                Ok(())
            } else {
                Err(Error::Usage(format!(
                    "output {} already exists and is not empty; pass --overwrite to replace it",
                    target.display()
                )))
            }
        }
    }
}

/// A staging directory that becomes the run directory on [`Staging::commit`] and is removed if
/// dropped before that.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staging {
    /// Creates `.<name>.staging-<pid>` beside `target` (its parent is created if needed).
    pub fn new(target: &Path) -> Result<Self> {
        let parent = parent_of(target);
        fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let name =
            target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
        remove_abandoned(&parent, &name);
        let dir = parent.join(format!(".{name}.staging-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Staging { dir, target: target.to_path_buf(), committed: false })
    }

    /// Path of `name` inside the staging directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `bytes` to `name` ([`Staging::commit`] flushes every staged file to disk).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(name);
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
    }

    /// Flushes the staged files and renames the directory into place, replacing an existing
    /// target (already allowed by [`check_target`]).
    pub fn commit(mut self) -> Result<PathBuf> {
        for entry in fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let path = entry.map_err(|e| Error::io(&self.dir, e))?.path();
            File::open(&path).and_then(|f| f.sync_all()).map_err(|e| Error::io(&path, e))?;
        }
        let old = self.dir.with_file_name(format!(
            "{}.old",
            self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ));
        let replaced = self.target.exists();
        if replaced {
            fs::rename(&self.target, &old).map_err(|e| Error::io(&self.target, e))?;
        }
        fs::rename(&self.dir, &self.target).map_err(|e| Error::io(&self.target, e))?;
        self.committed = true;
        // Make the rename itself durable.
        let parent = parent_of(&self.target);
        if let Ok(d) = File::open(&parent) {
            let _ = d.sync_all();
        }
        if replaced {
            fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes staging directories of earlier runs of the same target whose process is gone (killed
/// before it could clean up, e.g. by SIGKILL or an OOM kill). Best effort; only where `/proc`
/// tells which processes are alive.
fn remove_abandoned(parent: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!(".{name}.staging-");
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let Ok(pid) = rest.trim_end_matches(".old").parse::<u32>() else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_into_place_and_drop_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("runs/a");
        check_target(&target, false).unwrap();
        let s = Staging::new(&target).unwrap();
        s.write("x.json", b"{}").unwrap();
        assert!(!target.exists());
        s.commit().unwrap();
        assert_eq!(fs::read(target.join("x.json")).unwrap(), b"{}");

        let err = check_target(&target, false).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("pass --overwrite"), "{err}");
        check_target(&target, true).unwrap();
        let s = Staging::new(&target).unwrap();
        s.write("y.json", b"[]").unwrap();
        s.commit().unwrap();
        assert!(!target.join("x.json").exists() && target.join("y.json").exists());

        let s = Staging::new(&tmp.path().join("runs/b")).unwrap();
        let staged = s.path("");
        drop(s);
        assert!(!staged.exists() && !tmp.path().join("runs/b").exists());
        // Only the two runs are left: no staging or old directories.
        assert_eq!(fs::read_dir(tmp.path().join("runs")).unwrap().count(), 1);

        // A staging directory abandoned by a dead process is removed by the next run.
        let abandoned = tmp.path().join("runs/.a.staging-4294967295");
        fs::create_dir_all(&abandoned).unwrap();
        Staging::new(&target).unwrap();
        assert!(!abandoned.exists());
    }
}
