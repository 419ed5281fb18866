//! Which run of a name is in production: `ROOT/.production/NAME.json`, a small pointer (run id,
//! path below the root, who promoted it and when, the run it replaced), and its history,
//! `ROOT/.production/NAME/000001.json`, `000002.json`, ...
//!
//! A promotion is a compare-and-swap on the previous value: it reads the current pointer (number
//! N), then creates history entry N+1 with an exclusive create (a hard link locally,
//! `If-None-Match: *` on an object store). Of two promotions that read the same N, exactly one
//! creates N+1; the other is refused. The winner then replaces `NAME.json`. A reader starts from
//! `NAME.json` and follows any newer history entries, so a winner that stopped between the two
//! writes, or two winners whose pointer writes landed out of order, still read as the newest.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Root;
use crate::error::{Error, Result};
use crate::rundir::names;
use crate::runfiles::{Manifest, RunFiles};

/// The folder of the pointers, below the root.
pub const FOLDER: &str = ".production";

/// A production pointer: the content of `NAME.json` and of each history entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pointer {
    /// The job name.
    pub name: String,
    /// The promotion's number: 1 for the first, one more for each after it.
    pub seq: u64,
    /// The production run's id.
    pub run_id: String,
    /// Its path below the root (or absolute, for a run outside it).
    pub path: String,
    /// Who promoted it (`--by`).
    pub by: String,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The run it replaced, if any.
    pub previous: Option<Previous>,
}

impl Pointer {
    /// Where the production run is: its path below `root`, or the absolute path or URL recorded.
    pub fn location(&self, root: &Root) -> std::path::PathBuf {
        if crate::store::is_url(&self.path) || Path::new(&self.path).is_absolute() {
            std::path::PathBuf::from(&self.path)
        } else {
            root.location(&self.path)
        }
    }
}

/// Refuses to replace a production run: `train --overwrite` into the folder a pointer in its
/// parent names would swap the model in production for one nobody promoted.
pub fn refuse_overwrite(output: &str) -> Result<()> {
    let Ok(root) = Root::open(&crate::baseline::parent_of(output)) else { return Ok(()) };
    let same = |p: &Path| match (&root, p.canonicalize(), Path::new(output).canonicalize()) {
        (Root::Local(_), Ok(a), Ok(b)) => a == b,
        _ => p.to_string_lossy().trim_end_matches('/') == output.trim_end_matches('/'),
    };
    for (name, pointer) in all_current(&root)? {
        if same(&pointer.location(&root)) {
            return Err(Error::Usage(format!(
                "{output} holds run {}, the production run of {name}; --overwrite would replace the model \
                 in production: write the retrain to a new folder",
                pointer.run_id
            )));
        }
    }
    Ok(())
}

/// The run a promotion replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Previous {
    /// Its promotion's number.
    pub seq: u64,
    /// Its run id.
    pub run_id: String,
    /// Its path.
    pub path: String,
}

fn pointer_file(name: &str) -> String {
    format!("{FOLDER}/{name}.json")
}

fn entry_file(name: &str, seq: u64) -> String {
    format!("{FOLDER}/{name}/{seq:06}.json")
}

fn parse(root: &Root, rel: &str, bytes: &[u8]) -> Result<Pointer> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::data(format!("{}: not a trainyard production pointer: {e}", root.location(rel).display()))
    })
}

fn check_name(name: &str) -> Result<()> {
    crate::spec::check_name(name).map_err(|_| {
        Error::Usage(format!("{name:?} is not a job name (1-63 letters, digits, '.', '_' or '-')"))
    })
}

/// The production run of `name` in `root`, if any.
pub fn current(root: &Root, name: &str) -> Result<Option<Pointer>> {
    check_name(name)?;
    let mut pointer = match root.read(&pointer_file(name))? {
        Some(bytes) => Some(parse(root, &pointer_file(name), &bytes)?),
        None => None,
    };
    loop {
        let seq = pointer.as_ref().map_or(0, |p| p.seq) + 1;
        let next = entry_file(name, seq);
        match root.read(&next)? {
            Some(bytes) => {
                let entry = parse(root, &next, &bytes)?;
                // An entry whose number is not its file's (edited, copied) would be read again
                // and again.
                if entry.seq != seq || entry.name != name {
                    return Err(Error::data(format!(
                        "{}: records promotion #{} of {:?}, not #{seq} of {name:?}; the history was edited",
                        root.location(&next).display(),
                        entry.seq,
                        entry.name
                    )));
                }
                pointer = Some(entry);
            }
            None => return Ok(pointer),
        }
    }
}

/// The production run of every name in `root`, by name.
pub fn all_current(root: &Root) -> Result<BTreeMap<String, Pointer>> {
    let mut out = BTreeMap::new();
    // A name whose first promotion stopped before its pointer has a history folder only.
    let entries = root.entries_in(FOLDER)?;
    let names: std::collections::BTreeSet<&str> = entries
        .files
        .iter()
        .filter_map(|f| f.strip_suffix(".json"))
        .chain(entries.folders.iter().map(String::as_str))
        .collect();
    for name in names {
        if crate::spec::check_name(name).is_err() {
            continue;
        }
        if let Some(p) = current(root, name)? {
            out.insert(name.to_string(), p);
        }
    }
    Ok(out)
}

/// Every promotion of `name`, oldest first.
pub fn history(root: &Root, name: &str) -> Result<Vec<Pointer>> {
    check_name(name)?;
    let folder = format!("{FOLDER}/{name}");
    let mut out = Vec::new();
    for file in root.entries_in(&folder)?.files {
        if file.strip_suffix(".json").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            let rel = format!("{folder}/{file}");
            if let Some(bytes) = root.read(&rel)? {
                out.push(parse(root, &rel, &bytes)?);
            }
        }
    }
    out.sort_by_key(|p| p.seq);
    Ok(out)
}

/// What a promotion is asked to do.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The job name.
    pub name: &'a str,
    /// The run to promote (a path, a folder below the root, or a run id).
    pub run: &'a str,
    /// Who promotes it.
    pub by: &'a str,
    /// The run id the caller believes is in production now (`none` for no production run):
    /// the promotion is refused when it is not.
    pub expect_previous: Option<&'a str>,
    /// Promote a run its gate found ineligible.
    pub force: bool,
}

/// What a promotion did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The run is now in production.
    Promoted(Pointer),
    /// The run was in production already; nothing was written.
    Already(Pointer),
}

/// Makes `request.run` the production run of `request.name` in `root`. Refused (exit 2) when
/// the run is not a succeeded run of that name, when its gate found it ineligible (unless
/// `force`), when the production run is not `expect_previous`, and when another promotion of the
/// name wins the race between reading the pointer and writing it.
pub fn promote(root: &Root, request: &Request<'_>) -> Result<Outcome> {
    let name = request.name;
    check_name(name)?;
    let run = super::locate(Some(root), request.run)?;
    let files = RunFiles::open(&run)?;
    let manifest: Manifest = serde_json::from_value(files.manifest().clone())
        .map_err(|e| Error::data(format!("{}: {e}", files.path(names::MANIFEST).display())))?;
    if manifest.status != "succeeded" {
        return Err(Error::Usage(format!(
            "run {} has status {:?}; only succeeded runs are promoted",
            manifest.run_id, manifest.status
        )));
    }
    if manifest.name != name {
        return Err(Error::Usage(format!(
            "run {} is a run of {:?}, not of {name:?}; promote it as {:?}",
            manifest.run_id, manifest.name, manifest.name
        )));
    }
    if let Some(p) = manifest.promotion.as_ref().filter(|p| !p.eligible && !request.force) {
        return Err(Error::Usage(format!(
            "run {} failed its promotion gate ({}); pass --force to promote it anyway",
            manifest.run_id,
            p.reasons.join("; ")
        )));
    }
    let now = current(root, name)?;
    if let Some(expected) = request.expect_previous {
        let actual = now.as_ref().map_or("none", |p| p.run_id.as_str());
        if actual != expected {
            return Err(Error::Usage(format!(
                "the production run of {name} is {actual}, not {expected} as --previous says; \
                 someone promoted since you looked (see `trainyard runs history`)"
            )));
        }
    }
    if let Some(p) = now.as_ref().filter(|p| p.run_id == manifest.run_id) {
        return Ok(Outcome::Already(p.clone()));
    }
    if matches!(root, Root::Remote(_)) && !crate::store::is_url(&run.to_string_lossy()) {
        return Err(Error::Usage(format!(
            "{} is a local run and {} a bucket: promote runs that live in the root's store",
            run.display(),
            root.display()
        )));
    }
    let pointer = Pointer {
        name: name.to_string(),
        seq: now.as_ref().map_or(0, |p| p.seq) + 1,
        run_id: manifest.run_id.clone(),
        path: root.relative(Path::new(&run)),
        by: request.by.to_string(),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        previous: now.map(|p| Previous { seq: p.seq, run_id: p.run_id, path: p.path }),
    };
    let bytes = crate::runfiles::to_json(&pointer)?;
    if !root.create(&entry_file(name, pointer.seq), &bytes)? {
        let winner = current(root, name)?.map(|p| format!("{} (by {})", p.run_id, p.by)).unwrap_or_default();
        return Err(Error::Usage(format!(
            "another promotion of {name} won the race: production is now {winner}; \
             check `trainyard runs production` and promote again if you still mean to"
        )));
    }
    root.replace(&pointer_file(name), &bytes)?;
    Ok(Outcome::Promoted(pointer))
}

/// A pointer for people.
pub fn describe(p: &Pointer) -> String {
    let previous = match &p.previous {
        Some(prev) => format!("replacing {} (#{})", prev.run_id, prev.seq),
        None => "the first".into(),
    };
    format!("#{} {}  {}  by {} at {}  {previous}\n", p.seq, p.run_id, p.path, p.by, p.at)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pointer(seq: u64, run: &str) -> Pointer {
        Pointer {
            name: "fraud".into(),
            seq,
            run_id: run.into(),
            path: run.into(),
            by: "t".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            previous: None,
        }
    }

    #[test]
    fn of_threads_creating_one_entry_exactly_one_succeeds_and_the_file_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::Local(dir.path().to_path_buf());
        for round in 0..20 {
            let rel = format!("{FOLDER}/fraud/{round:06}.json");
            let wins: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|i| {
                        let (root, rel) = (&root, &rel);
                        s.spawn(move || {
                            root.create(rel, format!("writer {i}").repeat(1000).as_bytes()).unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
            });
            assert_eq!(wins, 1, "round {round}");
            let text = String::from_utf8(root.read(&rel).unwrap().unwrap()).unwrap();
            assert_eq!(text.len(), "writer 0".len() * 1000, "a whole file, never a partial one");
        }
    }

    #[test]
    fn readers_follow_history_entries_newer_than_the_pointer() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::Local(dir.path().to_path_buf());
        assert_eq!(current(&root, "fraud").unwrap(), None);
        // A promotion that created its entry but stopped before the pointer.
        let first = crate::runfiles::to_json(&pointer(1, "a")).unwrap();
        assert!(root.create(&entry_file("fraud", 1), &first).unwrap());
        assert_eq!(current(&root, "fraud").unwrap().unwrap().run_id, "a");
        root.replace(&pointer_file("fraud"), &first).unwrap();
        // Two more entries, the pointer left behind at the first.
        for (seq, run) in [(2, "b"), (3, "c")] {
            let bytes = crate::runfiles::to_json(&pointer(seq, run)).unwrap();
            assert!(root.create(&entry_file("fraud", seq), &bytes).unwrap());
        }
        assert_eq!(current(&root, "fraud").unwrap().unwrap().run_id, "c");
        let runs: Vec<String> = history(&root, "fraud").unwrap().into_iter().map(|p| p.run_id).collect();
        assert_eq!(runs, ["a", "b", "c"]);
        assert_eq!(all_current(&root).unwrap()["fraud"].seq, 3);
        // An entry whose number is not its file's is an error, not an endless loop.
        let wrong = crate::runfiles::to_json(&pointer(2, "d")).unwrap();
        assert!(root.create(&entry_file("fraud", 4), &wrong).unwrap());
        assert!(current(&root, "fraud").unwrap_err().to_string().contains("edited"));
        assert!(current(&root, "../etc").is_err(), "names cannot leave the folder");
    }
}
