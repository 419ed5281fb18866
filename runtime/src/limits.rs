//! What this process may use: its memory budget (the cgroup limit, else physical memory,
//! lowered by `TRAINYARD_MEMORY_LIMIT`) and what it holds now. Read by the memory check before
//! a fit and by the object-store reader to size its fetch-ahead window.

use serde::Serialize;

/// Environment variable that lowers the memory budget below what the process may use (bytes),
/// e.g. to keep room for a sidecar, or to test the check.
pub const LIMIT_ENV: &str = "TRAINYARD_MEMORY_LIMIT";

/// The memory this process may use, and where that number comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    /// Bytes.
    pub bytes: u64,
    /// `cgroup memory.max`, `physical memory`, or the environment variable.
    pub source: String,
}

/// The process's memory budget: the cgroup limit (v2 `memory.max`, else v1
/// `memory.limit_in_bytes`), else physical memory; [`LIMIT_ENV`] lowers it.
pub fn budget() -> Budget {
    let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let physical = meminfo_total();
    let mut best = match physical {
        Some(b) => Budget { bytes: b, source: "physical memory".into() },
        None => Budget { bytes: u64::MAX, source: "unknown".into() },
    };
    for (path, source) in [
        ("/sys/fs/cgroup/memory.max", "cgroup memory.max"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "cgroup memory.limit_in_bytes"),
    ] {
        if let Some(b) = read(path)
            && b < best.bytes
        {
            best = Budget { bytes: b, source: source.into() };
        }
    }
    if let Some(b) = std::env::var(LIMIT_ENV).ok().and_then(|s| s.trim().parse::<u64>().ok())
        && b < best.bytes
    {
        best = Budget { bytes: b, source: LIMIT_ENV.into() };
    }
    best
}

fn meminfo_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// Resident memory of this process now (what loading already holds), or 0 where unknown.
pub fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages.saturating_mul(u64::try_from(page).unwrap_or(4096))
}
