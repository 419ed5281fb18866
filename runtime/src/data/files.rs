//! Turning the spec's file entries (paths, globs, directories) into a list of Parquet files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Expands `entries` (from the spec field `field`, e.g. `data.features`) into files, in a stable
/// order: entries in the order given; within a glob or directory, sorted by path. A file listed
/// twice is read once. Directories are searched recursively for `*.parquet`, skipping hidden and
/// `_`-prefixed names (`_SUCCESS`, `.crc` files of Spark writers).
pub fn expand(field: &str, entries: &[String], resolve: impl Fn(&str) -> PathBuf) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let path = resolve(entry);
        let here = format!("{field}[{i}]");
        let found = if entry.contains(['*', '?', '[']) {
            let pattern = path.to_string_lossy().into_owned();
            let paths = glob::glob(&pattern)
                .map_err(|e| Error::spec(&here, format!("invalid glob {entry:?}: {e}")))?;
            let mut files: Vec<PathBuf> = paths.filter_map(|p| p.ok()).filter(|p| p.is_file()).collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::data(format!(
                    "{here}: glob {entry:?} matched no files (looked for {pattern})"
                )));
            }
            files
        } else if path.is_dir() {
            let mut files = Vec::new();
            walk(&path, &mut files).map_err(|e| Error::io(&path, e))?;
            files.sort();
            if files.is_empty() {
                return Err(Error::data(format!(
                    "{here}: directory {} contains no .parquet files",
                    path.display()
                )));
            }
            files
        } else if path.is_file() {
            vec![path]
        } else {
            return Err(Error::data(format!("{here}: file {} not found", path.display())));
        };
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if name.ends_with(".parquet") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_globs_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("part/sub")).unwrap();
        for f in [
            "a.parquet",
            "b.parquet",
            "part/x.parquet",
            "part/sub/y.parquet",
            "part/_SUCCESS",
            "part/.z.parquet",
        ] {
            std::fs::write(d.join(f), b"").unwrap();
        }
        let resolve = |s: &str| d.join(s);
        let got = expand("data.features", &["*.parquet".into(), "part".into(), "a.parquet".into()], resolve)
            .unwrap();
        let names: Vec<_> =
            got.iter().map(|p| p.strip_prefix(d).unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["a.parquet", "b.parquet", "part/sub/y.parquet", "part/x.parquet"]);

        let err = expand("data.features", &["nope/*.parquet".into()], resolve).unwrap_err().to_string();
        assert!(err.starts_with("data.features[0]: glob \"nope/*.parquet\" matched no files"), "{err}");
        let err = expand("data.labels", &["x".into(), "missing.parquet".into()], |s| d.join(s)).unwrap_err();
        assert!(err.to_string().starts_with("data.labels[0]: file"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}
