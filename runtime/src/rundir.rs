//! The run directory: where it may go, and writing it. [`check_output`] vets the output path
//! before any work; [`Staging`] writes the run into a hidden staging directory beside the target
//! and swaps it into place only when complete, so a crash (even SIGKILL) never leaves a
//! half-written run at the target path.

use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};

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
    /// What the report draws that `metrics.json` does not hold: downsampled curves, calibration
    /// bins, score histograms, operating points and per-group points.
    pub const CURVES: &str = "curves.json";
    /// The run report: one self-contained HTML page of charts and tables.
    pub const REPORT: &str = "report.html";
    /// The model with its pipeline as ONNX, when the spec's `export` asks for it.
    pub const ONNX: &str = "model.onnx";
}

/// The longest run directory name, in bytes. The staging directory beside the run,
/// `.<name>.staging-<pid>.old`, adds up to 24 bytes and must still fit the 255-byte limit most
/// file systems put on a name.
pub const MAX_NAME_BYTES: usize = 200;

/// The longest name of any path component (`NAME_MAX` on Linux and macOS).
const NAME_MAX: usize = 255;

/// How often [`Staging::commit`] tries again when other writers keep replacing the target.
const SWAP_ATTEMPTS: usize = 16;

/// Checks, before any work and without creating anything, that a run can be written at `target`,
/// and returns the path to write it at (`target` without trailing separators or `.` components,
/// so that the checkpoint directory `<output>.checkpoint` lands beside the run, not in it).
///
/// `inputs` are the spec's input entries, resolved: files, directories or globs. Every refusal is
/// [`Error::Usage`] (exit 2), since running again with the same command line cannot help:
/// - the last component names a directory (not `.`, `..` or the root) in at most
///   [`MAX_NAME_BYTES`] bytes;
/// - every existing ancestor is a directory, and the nearest one is writable;
/// - the target is not the current directory or one of its ancestors, contains no input, and is
///   not inside a directory read as input (the next run would read this run's Parquet files);
/// - an existing target is an empty directory, or, with `overwrite`, a trainyard run (it has a
///   `manifest.json` with a `run_id`): `--overwrite` must not delete a directory of someone
///   else's files.
pub fn check_output(target: &Path, overwrite: bool, inputs: &[PathBuf]) -> Result<PathBuf> {
    let shown = target.display();
    let name = run_name(target)?;
    let run_dir: PathBuf = target.components().collect();
    let parent = parent_of(&run_dir);
    let (existing, missing) = nearest_existing_dir(target, &parent)?;
    writable(&existing).map_err(|e| {
        Error::Usage(format!("output {shown} cannot be created in {}: {e}", existing.display()))
    })?;

    let mut absolute = fs::canonicalize(&existing).map_err(|e| Error::io(&existing, e))?;
    for c in missing.iter().rev() {
        match c {
            Component::ParentDir => {
                absolute.pop();
            }
            c => absolute.push(c),
        }
    }
    absolute.push(name);

    let cwd = std::env::current_dir().and_then(fs::canonicalize).map_err(|e| Error::io(".", e))?;
    if cwd.starts_with(&absolute) {
        return Err(Error::Usage(format!(
            "output {shown} is the current directory or one of its parents; write the run into a \
             directory of its own, such as runs/<name>"
        )));
    }
    for input in inputs {
        let (root, recursive) = input_root(input);
        // An input that does not exist is the loader's to report, with its spec field.
        let Ok(root) = fs::canonicalize(&root) else { continue };
        if root.starts_with(&absolute) {
            return Err(Error::Usage(format!(
                "output {shown} contains the input {}; write the run somewhere else",
                input.display()
            )));
        }
        if recursive && root.is_dir() && absolute.starts_with(&root) {
            return Err(Error::Usage(format!(
                "output {shown} is inside the input directory {}, so later runs would read this \
                 run's Parquet files as input; write the run somewhere else",
                root.display()
            )));
        }
    }
    check_existing(target, &run_dir, overwrite)?;
    Ok(run_dir)
}

/// The last component of `target`, which must name the run directory.
fn run_name(target: &Path) -> Result<&std::ffi::OsStr> {
    let shown = target.display();
    // `Path::components` drops a trailing `.` (`runs/.` would read as `runs`), so look at the
    // path as written.
    let written = target.as_os_str().to_string_lossy();
    let last = written.trim_end_matches(std::path::is_separator).rsplit(std::path::is_separator).next();
    let name = match (last, target.file_name()) {
        (Some(last), Some(name)) if !matches!(last, "" | "." | "..") => name,
        _ => {
            return Err(Error::Usage(format!(
                "output {shown} does not name a run directory (its last component is {:?}); \
                 give a name, such as runs/<name>",
                last.unwrap_or_default()
            )));
        }
    };
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::Usage(format!(
            "output {shown}: the run directory name is {} bytes long; the limit is {MAX_NAME_BYTES} \
             bytes, so that its staging directory (.<name>.staging-<pid>.old) fits the file \
             system's {NAME_MAX}-byte limit",
            name.len()
        )));
    }
    for c in target.components() {
        if let Component::Normal(c) = c
            && c.len() > NAME_MAX
        {
            return Err(Error::Usage(format!(
                "output {shown}: a path component is {} bytes long; file systems allow {NAME_MAX}",
                c.len()
            )));
        }
    }
    Ok(name)
}

/// The nearest ancestor of `dir` (or `dir` itself) that exists, which must be a directory, and
/// the components below it that do not exist yet, last first.
fn nearest_existing_dir<'a>(output: &Path, dir: &'a Path) -> Result<(PathBuf, Vec<Component<'a>>)> {
    let shown = output.display();
    let mut missing = Vec::new();
    for a in dir.ancestors() {
        // A relative path's last ancestor is "", the current directory.
        let a = if a.as_os_str().is_empty() { Path::new(".") } else { a };
        match fs::metadata(a) {
            Ok(m) if m.is_dir() => return Ok((a.to_path_buf(), missing)),
            Ok(_) => {
                return Err(Error::Usage(format!(
                    "output {shown} cannot be created: {} is a file, not a directory",
                    a.display()
                )));
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                missing.extend(a.components().next_back());
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Error::Usage(format!("output {shown} cannot be created: {}: {e}", a.display())));
            }
            Err(e) => return Err(Error::io(a, e)),
        }
    }
    Err(Error::Internal(format!("no ancestor of {} exists", dir.display())))
}

/// Whether the process may create entries in `dir`. Read-only file systems (a pod's read-only
/// root) fail here too, with EROFS.
#[cfg(unix)]
fn writable(dir: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call; access only reads it.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere creating the staging directory is the test.
#[cfg(not(unix))]
fn writable(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// The path an input entry reads under, and whether it reads below it recursively: a directory
/// is searched recursively; a glob reads under its leading directory, recursively only when a
/// wildcard is in a directory component (`data/*.parquet` lists files of `data` alone, so a run
/// in `data/run` is not read).
fn input_root(entry: &Path) -> (PathBuf, bool) {
    let is_glob = |c: &Component<'_>| c.as_os_str().to_string_lossy().contains(['*', '?', '[']);
    let components: Vec<Component<'_>> = entry.components().collect();
    match components.iter().position(is_glob) {
        None => (entry.to_path_buf(), true),
        Some(i) => {
            let root: PathBuf = components[..i].iter().collect();
            let root = if root.as_os_str().is_empty() { PathBuf::from(".") } else { root };
            (root, i + 1 < components.len())
        }
    }
}

/// Refuses an existing target that is a file, a non-empty directory without `overwrite`, or a
/// non-empty directory that is not a trainyard run.
fn check_existing(output: &Path, target: &Path, overwrite: bool) -> Result<()> {
    let shown = output.display();
    match fs::metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(target, e)),
        Ok(m) if !m.is_dir() => {
            return Err(Error::Usage(format!("output {shown} exists and is not a directory")));
        }
        Ok(_) => {}
    }
    if fs::read_dir(target).map_err(|e| Error::io(target, e))?.next().is_none() {
        return Ok(());
    }
    match (not_a_run(target), overwrite) {
        (None, true) => Ok(()),
        (None, false) => Err(Error::Usage(format!(
            "output {shown} already exists and is not empty; pass --overwrite to replace it"
        ))),
        (Some(why), true) => Err(Error::Usage(format!(
            "output {shown} is not a trainyard run ({why}); refusing to replace it with --overwrite"
        ))),
        (Some(why), false) => Err(Error::Usage(format!(
            "output {shown} already exists and is not empty, and it is not a trainyard run ({why}) \
             that --overwrite could replace; choose another output"
        ))),
    }
}

/// Why `dir` is not a trainyard run, or `None` when it is one: its `manifest.json` is a JSON
/// object with a `run_id`.
fn not_a_run(dir: &Path) -> Option<String> {
    let manifest = dir.join(names::MANIFEST);
    let text = match fs::read_to_string(&manifest) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(format!("no {}", names::MANIFEST)),
        Err(e) => return Some(format!("{} cannot be read: {e}", names::MANIFEST)),
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) if v.get("run_id").is_some_and(serde_json::Value::is_string) => None,
        Ok(_) => Some(format!("{} has no run_id", names::MANIFEST)),
        Err(e) => Some(format!("{} is not JSON: {e}", names::MANIFEST)),
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

    /// Flushes the staged files and puts the directory in place, replacing an existing target
    /// (already allowed by [`check_output`]). Concurrent commits to one target all succeed; the
    /// last one's run stays.
    pub fn commit(mut self) -> Result<PathBuf> {
        for entry in fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let path = entry.map_err(|e| Error::io(&self.dir, e))?.path();
            File::open(&path).and_then(|f| f.sync_all()).map_err(|e| Error::io(&path, e))?;
        }
        let replaced = swap_into_place(&self.dir, &self.target).map_err(|e| Error::io(&self.target, e))?;
        self.committed = true;
        // Make the rename itself durable.
        let parent = parent_of(&self.target);
        if let Ok(d) = File::open(&parent) {
            let _ = d.sync_all();
        }
        if let Some(old) = replaced
            && let Err(e) = fs::remove_dir_all(&old)
        {
            // The new run is in place, so this is no reason to fail it; a later run of this
            // target removes the leftover once this process is gone (`remove_abandoned`).
            tracing::warn!(path = %old.display(), error = %e, "could not remove the replaced run");
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

/// Moves `staging` to `target`, replacing whatever run is there, and returns where the replaced
/// run now is, for the caller to remove. Linux swaps the two atomically, so the target is a
/// complete run at every moment, even while other processes replace it too.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn swap_into_place(staging: &Path, target: &Path) -> io::Result<Option<PathBuf>> {
    // Flags a file system does not support (NFS, some FUSE) give EINVAL; kernels before 3.15,
    // or a seccomp filter, ENOSYS.
    let unsupported = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS));
    for _ in 0..SWAP_ATTEMPTS {
        match renameat2(staging, target, libc::RENAME_NOREPLACE) {
            Ok(()) => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) if unsupported(&e) => return two_renames(staging, target),
            Err(e) => return Err(e),
        }
        match renameat2(staging, target, libc::RENAME_EXCHANGE) {
            // The replaced run is now at the staging path.
            Ok(()) => return Ok(Some(staging.to_path_buf())),
            // Writers never leave the target missing, but a person may remove it in between.
            Err(e) if e.kind() == io::ErrorKind::NotFound && staging.exists() => {}
            Err(e) if unsupported(&e) => return two_renames(staging, target),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!("the output kept changing during {SWAP_ATTEMPTS} attempts to replace it")))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn swap_into_place(staging: &Path, target: &Path) -> io::Result<Option<PathBuf>> {
    two_renames(staging, target)
}

/// `renameat2(2)` relative to the current directory, as `rename(2)` resolves paths.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated strings that outlive the call, which only reads them.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), flags) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The portable swap: the target moves aside to `<staging>.old`, the staging directory takes its
/// place, and the caller removes `.old`. Between the two renames the target is missing, and
/// another writer may fill it; then that writer's run has replaced the one moved aside, and the
/// next attempt replaces it in turn. On failure the run moved aside goes back (or, when the
/// target is taken, away), so no `.old` is left behind.
fn two_renames(staging: &Path, target: &Path) -> io::Result<Option<PathBuf>> {
    let mut old = staging.as_os_str().to_owned();
    old.push(".old");
    let old = PathBuf::from(old);
    for _ in 0..SWAP_ATTEMPTS {
        let moved = match fs::rename(target, &old) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        match fs::rename(staging, target) {
            Ok(()) => return Ok(moved.then_some(old)),
            Err(e) if matches!(e.kind(), io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists) => {
                if moved {
                    fs::remove_dir_all(&old)?;
                }
            }
            Err(e) => {
                if moved && fs::rename(&old, target).is_err() {
                    let _ = fs::remove_dir_all(&old);
                }
                return Err(e);
            }
        }
    }
    Err(io::Error::other(format!("the output kept changing during {SWAP_ATTEMPTS} attempts to replace it")))
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

    const MANIFEST: &[u8] = br#"{"run_id": "t-20240101T000000Z-00000000"}"#;

    #[test]
    fn commit_renames_into_place_and_drop_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("runs/a");
        assert_eq!(check_output(&target, false, &[]).unwrap(), target);
        assert!(!tmp.path().join("runs").exists(), "the check creates nothing");
        let s = Staging::new(&target).unwrap();
        s.write(names::MANIFEST, MANIFEST).unwrap();
        s.write("x.json", b"{}").unwrap();
        assert!(!target.exists());
        s.commit().unwrap();
        assert_eq!(fs::read(target.join("x.json")).unwrap(), b"{}");

        let err = check_output(&target, false, &[]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("pass --overwrite"), "{err}");
        check_output(&target, true, &[]).unwrap();
        let s = Staging::new(&target).unwrap();
        s.write(names::MANIFEST, MANIFEST).unwrap();
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

    #[test]
    fn output_paths_that_cannot_hold_a_run_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let at = |p: &str| tmp.path().join(p);
        let refused = |target: &Path, overwrite: bool, inputs: &[PathBuf], needle: &str| {
            let err = check_output(target, overwrite, inputs).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{err}");
            assert!(err.to_string().contains(needle), "{target:?}: {err}");
        };
        for p in [".", "..", "runs/.", "runs/..", "/", ""] {
            refused(Path::new(p), true, &[], "does not name a run directory");
        }
        refused(&at(&"n".repeat(MAX_NAME_BYTES + 1)), false, &[], "the limit is 200 bytes");
        refused(&at(&format!("{}/run", "n".repeat(NAME_MAX + 1))), false, &[], "file systems allow 255");
        assert!(check_output(&at(&"n".repeat(MAX_NAME_BYTES)), false, &[]).is_ok());

        fs::write(at("file"), "x").unwrap();
        refused(&at("file/run"), false, &[], "file is a file, not a directory");
        refused(&at("file/deeper/run"), false, &[], "file is a file, not a directory");
        refused(&at("file"), true, &[], "exists and is not a directory");

        // Trailing separators and `.` components go; `..` between missing names resolves.
        assert_eq!(check_output(&at("runs/./a/"), false, &[]).unwrap(), at("runs/a"));
        let cwd = std::env::current_dir().unwrap();
        refused(&cwd, true, &[], "is the current directory or one of its parents");
        refused(cwd.parent().unwrap(), true, &[], "is the current directory or one of its parents");

        fs::create_dir_all(at("data/deep")).unwrap();
        fs::write(at("data/deep/x.parquet"), "x").unwrap();
        let inputs = [at("data")];
        refused(&at("data/run"), false, &inputs, "is inside the input directory");
        refused(&at("data/missing/../run"), false, &inputs, "is inside the input directory");
        refused(&at("data"), true, &[at("data/deep/x.parquet")], "contains the input");
        refused(&at("data"), true, &[at("data/deep/*.parquet")], "contains the input");
        refused(&at("data/run"), false, &[at("data/*/*.parquet")], "is inside the input directory");
        refused(&at("data/run"), false, &[at("data/**/x.parquet")], "is inside the input directory");
        // A one-level glob lists files of its directory alone, so a run beside them is never read.
        check_output(&at("data/run"), false, &[at("data/*.parquet")]).unwrap();
        check_output(&at("runs/a"), false, &[at("*.parquet"), at("data/deep/x.parquet")]).unwrap();
        assert_eq!(input_root(Path::new("d/*.parquet")), (PathBuf::from("d"), false));
        assert_eq!(input_root(Path::new("*.parquet")), (PathBuf::from("."), false));
        assert_eq!(input_root(Path::new("d/p[0-9]/x")), (PathBuf::from("d"), true));
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2, "nothing was created");
    }

    #[test]
    fn overwrite_replaces_only_trainyard_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mine");
        fs::create_dir(&dir).unwrap();
        check_output(&dir, false, &[]).unwrap();
        fs::write(dir.join("notes.txt"), "precious").unwrap();
        for (manifest, why) in [
            (None, "(no manifest.json)"),
            (Some(&b"not json"[..]), "(manifest.json is not JSON"),
            (Some(&br#"{"status": "succeeded"}"#[..]), "(manifest.json has no run_id)"),
        ] {
            if let Some(m) = manifest {
                fs::write(dir.join(names::MANIFEST), m).unwrap();
            }
            let err = check_output(&dir, true, &[]).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains("refusing to replace it with --overwrite"), "{err}");
            let err = check_output(&dir, false, &[]).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains("choose another output"), "{err}");
        }
        fs::write(dir.join(names::MANIFEST), MANIFEST).unwrap();
        check_output(&dir, true, &[]).unwrap();
    }

    /// Threads commit to one target again and again, each with its own staging directory (the
    /// staging name holds the pid, which threads share): every commit succeeds, one complete run
    /// is left, and nothing beside it.
    fn race(swap: fn(&Path, &Path) -> io::Result<Option<PathBuf>>, always_complete: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("a");
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            if always_complete {
                scope.spawn(|| {
                    let mut seen = false;
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let complete = target.join(names::MANIFEST).is_file();
                        assert!(complete || !seen, "the target was missing or incomplete mid-swap");
                        seen |= complete;
                    }
                });
            }
            let writers: Vec<_> = (0..4)
                .map(|t| {
                    let (dir, target) = (tmp.path(), &target);
                    scope.spawn(move || {
                        for round in 0..50 {
                            let staging = dir.join(format!(".a.staging-t{t}"));
                            fs::create_dir(&staging).unwrap();
                            fs::write(staging.join(names::MANIFEST), format!("{t} {round}")).unwrap();
                            if let Some(old) = swap(&staging, target).unwrap() {
                                fs::remove_dir_all(old).unwrap();
                            }
                        }
                    })
                })
                .collect();
            for w in writers {
                w.join().unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        assert!(target.join(names::MANIFEST).is_file());
        let names: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn concurrent_commits_all_succeed_and_leave_one_run() {
        race(swap_into_place, true);
    }

    #[test]
    fn concurrent_commits_all_succeed_with_the_portable_swap() {
        race(two_renames, false);
    }
}
