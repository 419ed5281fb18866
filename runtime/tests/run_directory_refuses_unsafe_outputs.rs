//! Where `train` may write its run, through the binary: `--overwrite` replaces only a trainyard
//! run; an output that cannot hold a run is refused before any data is read (exit 2, a message
//! naming it, nothing created or deleted); concurrent `--overwrite` runs of one output all succeed
//! and leave one complete run and nothing beside it.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Fixture, outcome};
use serde_json::{Value, json};

fn train(fx: &Fixture, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["train", "spec.json"];
    all.extend_from_slice(args);
    outcome(&fx.run(&all))
}

/// Every path under `dir`, relative, sorted, with file contents: what must not change.
fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                out.push((format!("{name}/"), Vec::new()));
                walk(root, &path, out);
            } else {
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs `train spec.json ARGS` and checks that it exits 2 with `needle` in the message before
/// loading any data, and that nothing in the fixture directory changed.
fn refused(fx: &Fixture, args: &[&str], needle: &str) {
    let before = listing(fx.dir.path());
    let (code, _, stderr) = train(fx, args);
    assert_eq!(code, 2, "{args:?}: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: expected {needle:?} in {stderr}");
    assert!(!stderr.contains("\"phase\""), "{args:?}: refused only after a phase ran: {stderr}");
    assert_eq!(listing(fx.dir.path()), before, "{args:?} changed the fixture directory");
}

fn is_run(dir: &Path) -> bool {
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["run_id"].is_string()
}

#[test]
fn overwrite_refuses_a_directory_that_is_not_a_trainyard_run() {
    let fx = Fixture::new();
    fx.write_spec(&fx.base_spec());
    std::fs::create_dir(fx.path("mine")).unwrap();
    std::fs::write(fx.path("mine/notes.txt"), "precious").unwrap();
    refused(
        &fx,
        &["--output", "mine", "--overwrite"],
        "output mine is not a trainyard run (no manifest.json); refusing to replace it with --overwrite",
    );
    refused(&fx, &["--output", "mine"], "is not a trainyard run (no manifest.json) that --overwrite could");
    // A manifest.json of something else is no run either.
    std::fs::write(fx.path("mine/manifest.json"), r#"{"name": "not ours"}"#).unwrap();
    refused(
        &fx,
        &["--output", "mine", "--overwrite"],
        "output mine is not a trainyard run (manifest.json has no run_id)",
    );
    std::fs::write(fx.path("mine/manifest.json"), "{").unwrap();
    refused(
        &fx,
        &["--output", "mine", "--overwrite"],
        "output mine is not a trainyard run (manifest.json is not JSON",
    );
    assert_eq!(std::fs::read_to_string(fx.path("mine/notes.txt")).unwrap(), "precious");

    // A run, and an empty directory, are replaced.
    let (code, _, stderr) = train(&fx, &["--output", "runs/a"]);
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(fx.path("runs/a/extra.txt"), "from the last run").unwrap();
    let (code, _, stderr) = train(&fx, &["--output", "runs/a", "--overwrite"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(is_run(&fx.path("runs/a")) && !fx.path("runs/a/extra.txt").exists());
    std::fs::create_dir(fx.path("runs/empty")).unwrap();
    let (code, _, stderr) = train(&fx, &["--output", "runs/empty"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(is_run(&fx.path("runs/empty")));
}

#[test]
fn output_problems_are_found_before_loading_data() {
    let fx = Fixture::new();
    // The data does not exist: a refusal that names the output shows the output came first.
    let mut spec = fx.base_spec();
    spec["data"]["features"] = json!(["missing.parquet"]);
    fx.write_spec(&spec);
    for output in [".", "..", "runs/.", "runs/..", "/"] {
        refused(&fx, &["--output", output], "does not name a run directory");
        refused(&fx, &["--output", output, "--overwrite"], "does not name a run directory");
    }

    std::fs::write(fx.path("FILE"), "a file, not a directory").unwrap();
    refused(
        &fx,
        &["--output", "FILE/run"],
        "output FILE/run cannot be created: FILE is a file, not a directory",
    );
    refused(&fx, &["--output", "FILE/a/b"], "FILE is a file, not a directory");
    refused(&fx, &["--output", "FILE", "--overwrite"], "output FILE exists and is not a directory");

    let long = "n".repeat(300);
    refused(&fx, &["--output", &long], "the run directory name is 300 bytes long; the limit is 200 bytes");
    refused(&fx, &["--output", &format!("{long}/run")], "a path component is 300 bytes long");
    refused(&fx, &["--output", &"n".repeat(201)], "the limit is 200 bytes");
}

#[test]
fn a_name_at_the_length_limit_trains() {
    let fx = Fixture::new();
    fx.write_spec(&fx.base_spec());
    let name = "n".repeat(200);
    let (code, _, stderr) = train(&fx, &["--output", &format!("runs/{name}")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(is_run(&fx.path(&format!("runs/{name}"))));
}

#[test]
fn the_current_directory_and_its_parents_are_never_replaced() {
    let fx = Fixture::new();
    fx.write_spec(&fx.base_spec());
    // A run directory that is also where trainyard runs: replacing it would pull the working
    // directory out from under the process.
    std::fs::create_dir_all(fx.path("work/inner")).unwrap();
    std::fs::write(fx.path("work/manifest.json"), r#"{"run_id": "old"}"#).unwrap();
    let before = listing(fx.dir.path());
    for output in ["../../work", "..", fx.path("work/inner").to_str().unwrap()] {
        let out = Command::new(env!("CARGO_BIN_EXE_trainyard"))
            .args(["train", fx.path("spec.json").to_str().unwrap(), "--output", output, "--overwrite"])
            .current_dir(fx.path("work/inner"))
            .output()
            .unwrap();
        let (code, _, stderr) = outcome(&out);
        assert_eq!(code, 2, "{output}: {stderr}");
        let needle = if output == ".." {
            "does not name a run directory"
        } else {
            "is the current directory or one of its parents"
        };
        assert!(stderr.contains(needle), "{output}: {stderr}");
    }
    assert_eq!(listing(fx.dir.path()), before);
}

#[test]
fn an_output_must_not_contain_an_input_or_sit_inside_an_input_directory() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.path("in/part")).unwrap();
    std::fs::copy(fx.path("data.parquet"), fx.path("in/part/data.parquet")).unwrap();
    // Marked as a run, so only the input rule keeps --overwrite from deleting the data.
    std::fs::write(fx.path("in/manifest.json"), r#"{"run_id": "old"}"#).unwrap();
    let mut spec = fx.base_spec();
    for features in ["in/part/data.parquet", "in/part/*.parquet", "in/part"] {
        spec["data"]["features"] = json!([features]);
        fx.write_spec(&spec);
        refused(&fx, &["--output", "in", "--overwrite"], "output in contains the input");
    }
    // Data read recursively would take in this run's predictions.parquet next time.
    for features in ["in", "in/**/*.parquet", "in/*/*.parquet"] {
        spec["data"]["features"] = json!([features]);
        fx.write_spec(&spec);
        refused(&fx, &["--output", "in/part/run"], "is inside the input directory");
    }
    spec["data"]["features"] = json!(["data.parquet"]);
    spec["holdout"] = json!({"files": ["in/part"]});
    fx.write_spec(&spec);
    refused(&fx, &["--output", "in/part/run"], "is inside the input directory");

    // A one-level glob lists only the files beside the run, never the run's own files.
    spec["holdout"] = fx.base_spec()["holdout"].clone();
    for features in ["in/part/*.parquet", "data*.parquet"] {
        spec["data"]["features"] = json!([features]);
        fx.write_spec(&spec);
        let (code, _, stderr) = train(&fx, &["--output", "in/part/run", "--overwrite"]);
        assert_eq!(code, 0, "{features}: {stderr}");
        assert!(is_run(&fx.path("in/part/run")));
    }
}

#[test]
fn an_unwritable_parent_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("skipping: root may write anywhere, so no directory is unwritable to it");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    fx.write_spec(&fx.base_spec());
    std::fs::create_dir(fx.path("locked")).unwrap();
    std::fs::set_permissions(fx.path("locked"), std::fs::Permissions::from_mode(0o555)).unwrap();
    refused(
        &fx,
        &["--output", "locked/a/run"],
        "output locked/a/run cannot be created in locked: Permission denied",
    );
    std::fs::set_permissions(fx.path("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn concurrent_overwrites_all_succeed_and_leave_one_complete_run() {
    let fx = Fixture::new();
    fx.write_spec(&fx.base_spec());
    std::fs::create_dir(fx.path("runs")).unwrap();
    // A run of this spec takes milliseconds, so four at once often commit within microseconds of
    // each other; the two-rename swap failed about one process in twenty like this.
    for round in 0..20 {
        // Every other round starts without a run, so the first commit creates the target while
        // the others replace it.
        if round % 2 == 0 {
            let _ = std::fs::remove_dir_all(fx.path("runs/a"));
        }
        let children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_trainyard"))
                    .args(["train", "spec.json", "--output", "runs/a", "--overwrite"])
                    .current_dir(fx.dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let (code, _, stderr) = outcome(&child.wait_with_output().unwrap());
            assert_eq!(code, 0, "round {round}: {stderr}");
        }
        assert!(is_run(&fx.path("runs/a")), "round {round}");
        let names: Vec<String> = std::fs::read_dir(fx.path("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a"], "round {round}: staging or .old entries left beside the run");
    }
}
