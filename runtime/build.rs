//! Records the git commit trainyard is built from, for run manifests.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TRAINYARD_GIT_COMMIT");
    // Image builds have no .git; they pass the commit in.
    if let Ok(commit) = std::env::var("TRAINYARD_GIT_COMMIT") {
        println!("cargo:rustc-env=TRAINYARD_GIT_COMMIT={commit}");
        return;
    }
    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TRAINYARD_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves (a checkout or a commit).
    for path in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
