//! Turning the spec's file entries (paths, globs, directories, object-store URLs and prefixes)
//! into a list of Parquet files.

use std::collections::HashSet;
use std::fs::{FileType, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::remote::RemoteFile;
use crate::error::{Error, Result};
use crate::store::Remote;

/// One input file: a local path or an object in a store.
#[derive(Debug, Clone)]
pub enum Source {
    /// A local file.
    Local(PathBuf),
    /// An object, with the metadata its listing returned.
    Remote(Arc<RemoteFile>),
}

impl Source {
    /// The path, or the URL as a path, for messages and the manifest.
    pub fn path(&self) -> PathBuf {
        match self {
            Source::Local(p) => p.clone(),
            Source::Remote(f) => PathBuf::from(f.remote.url()),
        }
    }
}

/// A file's or directory's identity: one (device, inode) is one file, whichever path, symbolic
/// link or hard link reaches it.
type Identity = (u64, u64);

fn identity(m: &Metadata) -> Identity {
    (m.dev(), m.ino())
}

/// Expands `entries` (from the spec field `field`, e.g. `data.features`) into files, in a stable
/// order: entries in the order given; within a glob or directory, sorted by path. Directories are
/// searched recursively for `*.parquet`, skipping hidden and `_`-prefixed names (`_SUCCESS`,
/// `.crc` files of Spark writers).
///
/// Symbolic links are followed, but a directory is searched at most once per entry, so a link
/// back to a parent (`ln -s . loop`) adds nothing and cannot make the search endless; `**` in a
/// glob follows links by the same rule. Each file is listed once, under the first path that
/// reached it: a file named by two entries (two globs, a glob and a path, a path and a symbolic
/// link to it) or found through two links is read once.
///
/// A named entry, or a `*.parquet` match, that is not a regular file (a named pipe, a device, a
/// socket) is an error that says what it is; it is never opened, since opening a named pipe
/// blocks. Only a path that does not exist is "not found", and a dangling link says so.
///
/// An object-store URL (`s3://bucket/key`) names an object, or, when no object has that key, a
/// prefix searched the same way as a directory; a glob in its key matches keys by listing the
/// prefix before the first wildcard.
pub fn expand(field: &str, entries: &[String], resolve: impl Fn(&str) -> PathBuf) -> Result<Vec<Source>> {
    let mut out: Vec<Source> = Vec::new();
    let mut listed: HashSet<Identity> = HashSet::new();
    let mut listed_urls: HashSet<String> = HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let here = format!("{field}[{i}]");
        if crate::store::is_url(entry) {
            for f in expand_remote(&here, entry)? {
                if listed_urls.insert(f.remote.url()) {
                    out.push(Source::Remote(Arc::new(f)));
                }
            }
            continue;
        }
        let path = resolve(crate::store::local_path(entry));
        let found = if entry.contains(['*', '?', '[']) {
            glob_files(&here, entry, &path)?
        } else {
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => {
                    let mut search = Search::new(&here, Want::Parquet);
                    search.dirs.insert(identity(&m));
                    search.walk(&path)?;
                    if search.files.is_empty() {
                        return Err(Error::data(format!(
                            "{here}: directory {} contains no .parquet files",
                            path.display()
                        )));
                    }
                    search.files
                }
                Ok(m) if m.is_file() => vec![(path, identity(&m))],
                Ok(m) => return Err(not_regular(&here, &path, m.file_type())),
                Err(e) => return Err(unreadable(&here, &path, e)),
            }
        };
        for (f, id) in found {
            if listed.insert(id) {
                out.push(Source::Local(f));
            }
        }
    }
    Ok(out)
}

/// The objects one URL entry names: the object at its key, else the `*.parquet` objects under
/// it as a prefix (skipping names starting with `_` or `.` at any level, as for directories);
/// for a glob, the keys under its literal prefix that match it.
fn expand_remote(here: &str, entry: &str) -> Result<Vec<RemoteFile>> {
    let parse = |url: &str| match Remote::parse(url) {
        Ok(Some(remote)) => Ok(remote),
        Ok(None) => Err(Error::Internal(format!("{url} is not an object-store URL"))),
        Err(e) => Err(Error::spec(here, e.to_string())),
    };
    let after_scheme = entry.find("://").map_or(0, |i| i + 3);
    // In a URL `?` starts a query (refused by `Remote::parse`), so only `*` and `[` are wildcards.
    if let Some(w) = entry[after_scheme..].find(['*', '[']).map(|w| w + after_scheme) {
        // Wildcards are not valid in keys: list the literal prefix and match the rest.
        let cut = entry[..w].rfind('/').filter(|&c| c >= after_scheme).ok_or_else(|| {
            Error::spec(here, format!("{entry:?}: a wildcard in the bucket name is not supported"))
        })?;
        let prefix = parse(&entry[..cut])?;
        let rest = &entry[cut + 1..];
        let key = if prefix.key().as_ref().is_empty() {
            rest.to_string()
        } else {
            format!("{}/{rest}", prefix.key())
        };
        let pattern = glob::Pattern::new(&key)
            .map_err(|e| Error::spec(here, format!("invalid glob {entry:?}: {e}")))?;
        let found: Vec<RemoteFile> = prefix
            .list()?
            .into_iter()
            .filter(|m| pattern.matches_with(m.location.as_ref(), GLOB_OPTIONS))
            .map(|meta| RemoteFile { remote: prefix.at(meta.location.clone()), meta })
            .collect();
        if found.is_empty() {
            return Err(Error::data(format!(
                "{here}: glob {entry:?} matched no objects (listed {})",
                prefix.url()
            )));
        }
        return Ok(found);
    }
    let remote = parse(entry)?;
    let url = remote.url();
    let key = remote.key().as_ref().to_string();
    if let Some(meta) = remote.head()? {
        return Ok(vec![RemoteFile { remote, meta }]);
    }
    let found: Vec<RemoteFile> = remote
        .list()?
        .into_iter()
        .filter(|m| {
            let rest = m.location.as_ref().strip_prefix(key.as_str()).unwrap_or(m.location.as_ref());
            m.location.as_ref().ends_with(".parquet") && !rest.split('/').any(skipped)
        })
        .map(|meta| RemoteFile { remote: remote.at(meta.location.clone()), meta })
        .collect();
    if found.is_empty() {
        return Err(Error::data(format!(
            "{here}: {url} not found (no object has that key, and no .parquet objects are under it)"
        )));
    }
    Ok(found)
}

/// The regular files a glob entry matches, sorted by path.
fn glob_files(here: &str, entry: &str, path: &Path) -> Result<Vec<(PathBuf, Identity)>> {
    let pattern = path.to_string_lossy().into_owned();
    let invalid = |e: glob::PatternError| Error::spec(here, format!("invalid glob {entry:?}: {e}"));
    let files = if pattern.contains("**") {
        // The glob crate follows links under `**` without remembering where it has been: every
        // `ln -s . loop` doubles the paths it visits (until the kernel's 40-link limit), so two
        // such links never finish. Walk the literal prefix ourselves and match each path instead.
        let compiled = glob::Pattern::new(&pattern).map_err(invalid)?;
        let root: PathBuf = pattern
            .split('/')
            .take_while(|s| !s.contains(['*', '?', '[']))
            .collect::<Vec<_>>()
            .join("/")
            .into();
        let mut search = Search::new(here, Want::Matching(&compiled));
        // A prefix that is no directory matches nothing, which is reported below.
        let listing = if root.as_os_str().is_empty() { Path::new(".") } else { &root };
        if let Ok(m) = std::fs::metadata(listing)
            && m.is_dir()
        {
            search.dirs.insert(identity(&m));
            search.walk(&root)?;
        }
        search.files
    } else {
        let mut files = Vec::new();
        // Entries the glob crate cannot read (unreadable directories) are skipped, as before.
        for p in glob::glob(&pattern).map_err(invalid)?.filter_map(|p| p.ok()) {
            match std::fs::metadata(&p) {
                // A pattern such as `data/*` also matches directories; they are not files.
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.is_file() => files.push((p, identity(&m))),
                Ok(m) => return Err(not_regular(here, &p, m.file_type())),
                Err(e) => return Err(unreadable(here, &p, e)),
            }
        }
        files.sort();
        files
    };
    if files.is_empty() {
        return Err(Error::data(format!("{here}: glob {entry:?} matched no files (looked for {pattern})")));
    }
    Ok(files)
}

/// Names a directory or prefix search skips at any level: hidden ones and `_`-prefixed ones
/// (Spark's `_SUCCESS`, `_temporary`, `.crc` files).
fn skipped(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// Which files a directory search keeps.
enum Want<'p> {
    /// `*.parquet`, skipping hidden and `_`-prefixed names (a directory entry).
    Parquet,
    /// Paths matching a `**` glob, as the glob crate would match them.
    Matching(&'p glob::Pattern),
}

/// One entry's recursive search: the directories searched so far (so that none is searched
/// twice) and the files found, in walk order.
struct Search<'a> {
    here: &'a str,
    want: Want<'a>,
    dirs: HashSet<Identity>,
    files: Vec<(PathBuf, Identity)>,
}

impl<'a> Search<'a> {
    fn new(here: &'a str, want: Want<'a>) -> Self {
        Search { here, want, dirs: HashSet::new(), files: Vec::new() }
    }

    /// Searches `dir` (empty: the working directory, so that paths keep no `./` prefix).
    fn walk(&mut self, dir: &Path) -> Result<()> {
        let listing = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let mut names: Vec<_> = std::fs::read_dir(listing)
            .and_then(|it| it.map(|e| e.map(|e| e.file_name())).collect::<std::io::Result<_>>())
            .map_err(|e| Error::io(listing, e))?;
        // Sorted, so that the files come out sorted by path, and which of two links to one
        // directory names its files does not depend on the file system's order.
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let wanted = match self.want {
                Want::Parquet => {
                    let name = name.to_string_lossy();
                    if skipped(&name) {
                        continue;
                    }
                    name.ends_with(".parquet")
                }
                Want::Matching(pattern) => pattern.matches_path_with(&path, GLOB_OPTIONS),
            };
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() && self.dirs.insert(identity(&m)) => self.walk(&path)?,
                // Searched already: reached again through a link.
                Ok(m) if m.is_dir() => {}
                Ok(m) if wanted && m.is_file() => self.files.push((path, identity(&m))),
                Ok(m) if wanted => return Err(not_regular(self.here, &path, m.file_type())),
                Err(e) if wanted => return Err(unreadable(self.here, &path, e)),
                // Neither a directory nor a file we want (and then its oddities do not matter).
                _ => {}
            }
        }
        Ok(())
    }
}

/// `glob::glob`'s matching: `*` and `?` stay within one path component, `**` spans several.
const GLOB_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// What a path that is neither a regular file nor a directory is, for messages.
pub(crate) fn describe(file_type: FileType) -> &'static str {
    if file_type.is_fifo() {
        "a named pipe (FIFO)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

fn not_regular(here: &str, path: &Path, file_type: FileType) -> Error {
    Error::data(format!("{here}: {} is {}, not a regular Parquet file", path.display(), describe(file_type)))
}

/// The error for a path whose metadata cannot be read (following links).
fn unreadable(here: &str, path: &Path, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => match std::fs::read_link(path) {
            Ok(target) => Error::data(format!(
                "{here}: {} is a dangling symbolic link (its target {} does not exist)",
                path.display(),
                target.display()
            )),
            Err(_) => Error::data(format!("{here}: file {} not found", path.display())),
        },
        Some(libc::ELOOP) => Error::data(format!(
            "{here}: {} is a symbolic link loop (too many levels of links)",
            path.display()
        )),
        // Permissions and the like: not the spec's fault, possibly transient.
        _ => Error::io(path, e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn names(got: &[Source], d: &Path) -> Vec<String> {
        got.iter().map(|s| s.path().strip_prefix(d).unwrap().to_string_lossy().into_owned()).collect()
    }

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
        assert_eq!(names(&got, d), ["a.parquet", "b.parquet", "part/sub/y.parquet", "part/x.parquet"]);

        let err = expand("data.features", &["nope/*.parquet".into()], resolve).unwrap_err().to_string();
        assert!(err.starts_with("data.features[0]: glob \"nope/*.parquet\" matched no files"), "{err}");
        let err = expand("data.labels", &["x".into(), "missing.parquet".into()], |s| d.join(s)).unwrap_err();
        assert!(err.to_string().starts_with("data.labels[0]: file"), "{err}");
        assert!(err.to_string().ends_with("not found"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn recursive_globs_match_across_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("t/a/b")).unwrap();
        for f in ["t/x.parquet", "t/a/b/y.parquet", "t/a/notes.txt"] {
            std::fs::write(d.join(f), b"").unwrap();
        }
        let got = expand("data.features", &["t/**/*.parquet".into()], |s| d.join(s)).unwrap();
        assert_eq!(names(&got, d), ["t/a/b/y.parquet", "t/x.parquet"]);
        let err = expand("data.features", &["t/**/*.csv".into()], |s| d.join(s)).unwrap_err();
        assert!(err.to_string().contains("matched no files"), "{err}");
    }

    #[test]
    fn symlink_loops_are_searched_once_and_each_file_is_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("t/sub")).unwrap();
        std::fs::write(d.join("t/a.parquet"), b"").unwrap();
        std::fs::write(d.join("t/sub/b.parquet"), b"").unwrap();
        // Two links back to the top: followed naively, the search doubles at every level.
        symlink(".", d.join("t/loop")).unwrap();
        symlink("..", d.join("t/sub/up")).unwrap();
        symlink("a.parquet", d.join("t/alias.parquet")).unwrap();
        let resolve = |s: &str| d.join(s);
        let got = expand("data.features", &["t".into()], resolve).unwrap();
        assert_eq!(names(&got, d), ["t/a.parquet", "t/sub/b.parquet"]);

        let entries = ["t/**/*.parquet", "t/loop/a.parquet", "t/*.parquet", "t", "t/alias.parquet"];
        let got = expand("data.features", &entries.map(String::from), resolve).unwrap();
        assert_eq!(names(&got, d), ["t/a.parquet", "t/sub/b.parquet"]);
    }

    #[test]
    fn special_files_say_what_they_are_and_are_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let fifo =
            std::ffi::CString::new(d.join("pipe.parquet").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let _socket = std::os::unix::net::UnixListener::bind(d.join("sock.parquet")).unwrap();
        symlink("gone.parquet", d.join("dangling.parquet")).unwrap();
        symlink("self.parquet", d.join("self.parquet")).unwrap();
        std::fs::create_dir(d.join("dir")).unwrap();
        std::fs::write(d.join("dir/ok.parquet"), b"").unwrap();
        symlink("../pipe.parquet", d.join("dir/z.parquet")).unwrap();

        let resolve = |s: &str| d.join(s);
        let message = |entry: &str| {
            let err = expand("data.features", &[entry.to_string()], resolve).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{err}");
            err.to_string()
        };
        let at = |name: &str| d.join(name).display().to_string();
        assert_eq!(
            message("pipe.parquet"),
            format!(
                "data.features[0]: {} is a named pipe (FIFO), not a regular Parquet file",
                at("pipe.parquet")
            )
        );
        assert!(message("sock.parquet").ends_with("sock.parquet is a socket, not a regular Parquet file"));
        assert_eq!(
            message("/dev/null"),
            "data.features[0]: /dev/null is a character device, not a regular Parquet file"
        );
        assert!(message("dangling.parquet").contains("is a dangling symbolic link (its target gone.parquet"));
        assert!(message("self.parquet").contains("is a symbolic link loop"));
        assert!(message("dir").contains("dir/z.parquet is a named pipe (FIFO)"));
        assert!(message("*.parquet").contains("is a dangling symbolic link"));
        assert!(message("missing.parquet").ends_with(&format!("file {} not found", at("missing.parquet"))));
    }
}
