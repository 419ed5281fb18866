//! A small fuzzing harness that runs on stable Rust as ordinary integration tests: a seeded
//! mutation engine ([`mutate`]), a time-bounded driver that turns every panic into a saved
//! finding ([`run_target`]), helpers that run the real binary and judge how it ended
//! ([`binary`]), and real artifacts to start from ([`runs`]). No coverage feedback: diversity
//! comes from structure-aware mutators and from keeping inputs whose error message has a shape
//! not seen before.
//!
//! CI runs each target for `TRAINYARD_FUZZ_SECONDS` (default 12) with a fixed seed. A long run
//! of one target, with a fresh seed each time:
//!
//! ```text
//! TRAINYARD_FUZZ_SECONDS=600 TRAINYARD_FUZZ_SEED=random \
//!     cargo test --release -p trainyard --test fuzz_spec_parser_never_panics -- --nocapture
//! ```
//!
//! (the other targets: `fuzz_parquet_ingest_never_panics`,
//! `fuzz_predict_on_corrupt_artifacts_never_panics`, `fuzz_checkpoint_loader_never_panics`; the
//! property test `any_accepted_spec_trains_or_fails_cleanly` takes `TRAINYARD_FUZZ_SPECS`).
//! Each target prints its executions and executions per second when it ends.
//!
//! Environment:
//! - `TRAINYARD_FUZZ_SECONDS`: time per target (a test with several sub-targets splits it).
//! - `TRAINYARD_FUZZ_SEED`: a number, or `random`; the seed in use is printed.
//! - `TRAINYARD_FUZZ_MEMORY_MB`: address-space limit of the test process and the binaries it
//!   starts (default 4096; 0 for none), so that a corrupt length asking for terabytes fails
//!   fast instead of pushing the machine into swap or the OOM killer.
//! - `TRAINYARD_FUZZ_EXEC_TIMEOUT`: seconds one input may run before it counts as a hang
//!   (default 60).
//! - `TRAINYARD_FUZZ_MINIMIZE_SECONDS`: time to shrink each finding's input (default 5).
//! - `TRAINYARD_FUZZ_SHOW_SHAPES`: print each new error-message shape (what the pool learns).
//!
//! `--release` runs several times more inputs per second; a debug build also reports integer
//! overflow, which release builds wrap silently.
//!
//! A finding (a panic) is saved as `$CARGO_TARGET_TMPDIR/fuzz-findings/<target>/crash-<hash>`
//! with `crash-<hash>.txt` beside it (message, location, backtrace), and the test fails listing
//! them. Before each input runs it is written to `.../<target>/in-flight`, so when the process
//! aborts or hangs (which no `catch_unwind` can see) the input that did it is on disk; the next
//! run renames it to `aborted-<hash>` and says so. To turn a finding into a regression test,
//! copy the file into `runtime/tests/fuzz/corpus/<target>/`: every run replays that folder
//! before it mutates anything.

#![allow(dead_code, clippy::unwrap_used)]

pub mod binary;
pub mod mutate;
pub mod runs;

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::FileExt as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

pub use mutate::Mutator;

/// Time for one target: `TRAINYARD_FUZZ_SECONDS` times `share` (for tests that split their time
/// between sub-targets).
pub fn budget(share: f64) -> Duration {
    let seconds: f64 = env_parse("TRAINYARD_FUZZ_SECONDS").unwrap_or(12.0);
    Duration::from_secs_f64((seconds * share).max(0.0))
}

/// The run's seed: `TRAINYARD_FUZZ_SEED`, `random` for one from the clock, or a fixed default so
/// that CI explores the same inputs on every run and a failure there replays locally.
pub fn seed() -> u64 {
    match std::env::var("TRAINYARD_FUZZ_SEED").ok().as_deref() {
        Some("random") => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        Some(s) => {
            s.parse().unwrap_or_else(|_| panic!("TRAINYARD_FUZZ_SEED={s:?}: expected a number or random"))
        }
        None => 0x7472_6169_6e79_6172,
    }
}

pub fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().map(|s| s.parse().unwrap_or_else(|_| panic!("{name}={s:?} is not a number")))
}

/// Limits the address space of this process (and so of every binary it starts) to
/// `TRAINYARD_FUZZ_MEMORY_MB`. An allocation past the limit fails, which Rust turns into an
/// abort: a finding, where without the limit it could take the machine down with it.
pub fn limit_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mb: u64 = env_parse("TRAINYARD_FUZZ_MEMORY_MB").unwrap_or(4096);
        if mb == 0 {
            return;
        }
        let limit = libc::rlimit { rlim_cur: mb << 20, rlim_max: libc::RLIM_INFINITY };
        // SAFETY: setrlimit only reads the struct we pass; lowering the soft limit is always allowed.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
        if rc != 0 {
            eprintln!("fuzz: could not limit the address space to {mb} MiB; running without a limit");
        }
    });
}

/// The committed corpus of `target`: `runtime/tests/fuzz/corpus/<target>/*`, sorted by name.
/// Seeds and the inputs of past findings alike; every run replays all of them first.
pub fn committed_corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.')))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Where findings of `target` go.
pub fn findings_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn hash_of(bytes: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// What a panic left: its message, where it happened and the stack.
#[derive(Debug, Clone)]
pub struct Captured {
    pub message: String,
    pub location: String,
    pub backtrace: String,
}

impl Captured {
    /// The innermost trainyard frame of the backtrace: where our code called what panicked.
    pub fn caller(&self) -> Option<String> {
        self.backtrace
            .lines()
            .map(str::trim)
            .filter_map(|l| l.split_once(": ").map(|(_, f)| f))
            .find(|f| f.starts_with("trainyard::"))
            .map(str::to_string)
    }
}

static CAPTURED: Mutex<Vec<Captured>> = Mutex::new(Vec::new());
/// Whether the driver is running an input: the panic hook then records instead of printing, or
/// one shallow bug hit a thousand times would bury the test output.
static QUIET: AtomicBool = AtomicBool::new(false);

/// A run of the binary that broke the exit contract, raised by a target as a panic. Its `kind`
/// (where the binary panicked, which signal killed it) stands in for a panic location, so that
/// each distinct failure of the binary is one finding.
#[derive(Debug)]
pub struct ChildFailed {
    pub kind: String,
    pub details: String,
}

/// Raises `ended`'s broken exit contract as a finding (a panic the driver records); nothing when
/// it ended cleanly.
pub fn check_child(ended: &binary::Ended) {
    if let Err((kind, details)) = ended.check_clean() {
        std::panic::panic_any(ChildFailed { kind, details });
    }
}

fn location_of(info: &std::panic::PanicHookInfo<'_>) -> String {
    info.location().map_or_else(|| "<unknown>".into(), |l| l.to_string())
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let (message, location) = match (
                payload.downcast_ref::<&str>(),
                payload.downcast_ref::<String>(),
                payload.downcast_ref::<ChildFailed>(),
            ) {
                (_, _, Some(c)) => (c.details.clone(), c.kind.clone()),
                (Some(s), _, _) => ((*s).to_string(), location_of(info)),
                (_, Some(s), _) => (s.clone(), location_of(info)),
                _ => ("<non-string panic payload>".into(), location_of(info)),
            };
            let backtrace = std::backtrace::Backtrace::force_capture().to_string();
            if let Ok(mut c) = CAPTURED.lock() {
                c.push(Captured { message, location, backtrace });
            }
            // Under the driver a panic is reported once, as a finding with its saved input.
            if !QUIET.load(Ordering::Relaxed) {
                previous(info);
            }
        }));
    });
}

/// What a target did, for the summary line.
#[derive(Debug, Default)]
pub struct Stats {
    pub executions: u64,
    /// Executions that returned `Ok`: how often mutations got all the way through.
    pub accepted: u64,
    pub seconds: f64,
    pub kept: usize,
    pub shapes: usize,
}

/// Most distinct panics one target records before it stops early.
const MAX_FINDINGS: usize = 10;
/// Most inputs kept in the pool.
const MAX_POOL: usize = 4096;

/// Fuzzes `exec` for `budget`: replays the committed corpus of `name` and `seeds`, then feeds it
/// mutations (`mutate(mutator, input, other)`) of pool entries until time is up. An `Err` is
/// fine (an input whose error message has a new shape joins the pool); a panic is a finding.
/// Fails the test, listing the saved inputs, when there were findings.
pub fn run_target<E: Display>(
    name: &str,
    seeds: Vec<Vec<u8>>,
    budget: Duration,
    mut mutate: impl FnMut(&mut Mutator, &[u8], &[u8]) -> Vec<u8>,
    mut exec: impl FnMut(&[u8]) -> Result<(), E>,
) -> Stats {
    install_panic_hook();
    limit_memory();
    let dir = findings_dir(name);
    let in_flight = dir.join("in-flight");
    if let Ok(previous) = std::fs::read(&in_flight) {
        let saved = dir.join(format!("aborted-{}", hash_of(&previous)));
        let _ = std::fs::rename(&in_flight, &saved);
        eprintln!(
            "fuzz {name}: an earlier run died (abort, OOM kill or hang) while running {}; it is kept for you",
            saved.display()
        );
    }
    // Each target gets its own stream from the one run seed.
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    let mut mutator = Mutator::new(seed() ^ h.finish());
    eprintln!("fuzz {name}: seed {} (TRAINYARD_FUZZ_SEED), {:.0} s", seed(), budget.as_secs_f64());
    let mut pool: Vec<Vec<u8>> = committed_corpus(name).into_iter().map(|(_, b)| b).collect();
    pool.extend(seeds);
    // A seed the test generates may also be committed; run it once.
    let mut distinct = HashSet::new();
    pool.retain(|input| distinct.insert(hash_of(input)));
    for input in &pool {
        mutator.learn_words(input);
    }
    let seeds_len = pool.len();
    assert!(seeds_len > 0, "fuzz {name}: no seeds");
    let max_len = pool.iter().map(Vec::len).max().unwrap_or(0) * 2 + 4096;

    // One handle rewritten in place: creating a file per input would cost more than most inputs.
    let in_flight_file = std::fs::File::create(&in_flight).unwrap();
    let watchdog = Watchdog::start(name, &in_flight);
    let mut shapes: HashSet<String> = HashSet::new();
    let mut findings: HashMap<String, (PathBuf, Captured)> = HashMap::new();
    let started = Instant::now();
    let (mut executions, mut accepted) = (0u64, 0u64);
    let mut recent: Vec<usize> = Vec::new();
    let mut replay = 0;
    while findings.len() < MAX_FINDINGS {
        let replaying = replay < seeds_len;
        let input = if replaying {
            replay += 1;
            pool[replay - 1].clone()
        } else if started.elapsed() >= budget {
            break;
        } else {
            // Favour inputs that recently showed something new: they sit where the last
            // mutations reached past an earlier check.
            // The seeds themselves keep a fixed share, or a pool full of near-misses would
            // crowd out the well-formed inputs that reach the deeper checks.
            let a = match mutator.rng.below(10) {
                0..=2 if !recent.is_empty() => *mutator.rng.pick(&recent),
                3 | 4 => mutator.rng.below(seeds_len),
                _ => mutator.rng.below(pool.len()),
            };
            let b = mutator.rng.below(pool.len());
            let mut input = mutate(&mut mutator, &pool[a], &pool[b]);
            input.truncate(max_len);
            input
        };
        in_flight_file
            .write_all_at(&input, 0)
            .and_then(|()| in_flight_file.set_len(input.len() as u64))
            .unwrap();
        watchdog.begin();
        let outcome = attempt(&mut exec, &input);
        watchdog.end();
        executions += 1;
        let shape = match outcome {
            Ok(Ok(())) => {
                accepted += 1;
                "ok".to_string()
            }
            Ok(Err(e)) => shape_of(&e.to_string()),
            Err(captured) => {
                if !findings.contains_key(&captured.location) {
                    let (input, captured) = minimize(&mut exec, input, captured, &watchdog);
                    let path = dir.join(format!("crash-{}", hash_of(&input)));
                    std::fs::write(&path, &input).unwrap();
                    std::fs::write(
                        path.with_extension("txt"),
                        format!("{}\nat {}\n\n{}", captured.message, captured.location, captured.backtrace),
                    )
                    .unwrap();
                    eprintln!(
                        "fuzz {name}: FINDING {} ({} bytes) at {}{}: {}",
                        path.display(),
                        input.len(),
                        captured.location,
                        captured.caller().map(|c| format!(" (from {c})")).unwrap_or_default(),
                        captured.message
                    );
                    findings.insert(captured.location.clone(), (path, captured));
                }
                continue;
            }
        };
        if std::env::var("TRAINYARD_FUZZ_SHOW_SHAPES").is_ok() && !shapes.contains(&shape) {
            eprintln!("fuzz {name}: new shape: {shape}");
        }
        // Accepted inputs all share one shape; a few of them join anyway, so that inputs which
        // pass every check stay in circulation among the near misses.
        let keep_accepted = shape == "ok" && mutator.rng.chance(5);
        if (shapes.insert(shape) || keep_accepted) && !replaying {
            if pool.len() < MAX_POOL {
                pool.push(input);
                recent.push(pool.len() - 1);
            } else {
                let slot = seeds_len + mutator.rng.below(MAX_POOL - seeds_len);
                pool[slot] = input;
            }
            if recent.len() > 64 {
                recent.remove(0);
            }
        }
    }
    drop(in_flight_file);
    let _ = std::fs::remove_file(&in_flight);
    drop(watchdog);
    let seconds = started.elapsed().as_secs_f64();
    let stats = Stats { executions, accepted, seconds, kept: pool.len() - seeds_len, shapes: shapes.len() };
    eprintln!(
        "fuzz {name}: {} executions in {:.1} s ({:.0}/s; {} accepted), {} seeds, {} inputs kept, \
         {} error shapes, {} findings",
        stats.executions,
        stats.seconds,
        stats.executions as f64 / stats.seconds.max(1e-9),
        stats.accepted,
        seeds_len,
        stats.kept,
        stats.shapes,
        findings.len()
    );
    if !findings.is_empty() {
        let mut list: Vec<_> = findings.into_values().collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let text: Vec<String> = list
            .iter()
            .map(|(path, c)| {
                let from = c.caller().map(|c| format!(" (from {c})")).unwrap_or_default();
                format!("  {}\n    {} at {}{from}", path.display(), c.message, c.location)
            })
            .collect();
        panic!("fuzz {name}: {} distinct panics (inputs saved):\n{}", list.len(), text.join("\n"));
    }
    stats
}

/// Runs one input, turning a panic into what the hook captured about it.
fn attempt<E>(
    exec: &mut impl FnMut(&[u8]) -> Result<(), E>,
    input: &[u8],
) -> Result<Result<(), E>, Captured> {
    CAPTURED.lock().unwrap().clear();
    QUIET.store(true, Ordering::Relaxed);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| exec(input)));
    QUIET.store(false, Ordering::Relaxed);
    outcome.map_err(|payload| {
        CAPTURED.lock().unwrap().drain(..).next().unwrap_or_else(|| Captured {
            message: payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .or_else(|| payload.downcast_ref::<ChildFailed>().map(|c| c.details.clone()))
                .unwrap_or_default(),
            location: "<unknown>".into(),
            backtrace: String::new(),
        })
    })
}

/// Shrinks a crashing input while it still panics at the same place, for up to
/// `TRAINYARD_FUZZ_MINIMIZE_SECONDS` (default 5): a short reproducer is one a person can read.
/// JSON shrinks node by node; anything else by deleting ever smaller chunks of bytes (Parquet
/// rarely shrinks: its offsets are absolute).
fn minimize<E>(
    exec: &mut impl FnMut(&[u8]) -> Result<(), E>,
    mut input: Vec<u8>,
    mut captured: Captured,
    watchdog: &Watchdog,
) -> (Vec<u8>, Captured) {
    let seconds: f64 = env_parse("TRAINYARD_FUZZ_MINIMIZE_SECONDS").unwrap_or(5.0);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut still_crashes = |candidate: &[u8], captured: &mut Captured| {
        watchdog.begin();
        let outcome = attempt(exec, candidate);
        watchdog.end();
        match outcome {
            Err(c) if c.location == captured.location => {
                *captured = c;
                true
            }
            _ => false,
        }
    };
    // JSON first, node by node: deleting raw bytes of JSON mostly makes syntax errors.
    if let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&input) {
        let mut progress = true;
        while progress && Instant::now() < deadline {
            progress = false;
            let mut pointers = Vec::new();
            mutate::collect_pointers(&doc, String::new(), &mut pointers);
            for pointer in pointers.iter().rev() {
                if Instant::now() >= deadline {
                    break;
                }
                for candidate in mutate::simpler(&doc, pointer) {
                    let bytes = serde_json::to_vec(&candidate).unwrap();
                    if bytes.len() < input.len() && still_crashes(&bytes, &mut captured) {
                        doc = candidate;
                        input = bytes;
                        progress = true;
                        break;
                    }
                }
            }
        }
        return (input, captured);
    }
    let mut chunk = input.len() / 2;
    while chunk >= 1 && Instant::now() < deadline {
        let mut at = 0;
        while at < input.len() && Instant::now() < deadline {
            let mut shorter = input.clone();
            shorter.drain(at..(at + chunk).min(input.len()));
            if still_crashes(&shorter, &mut captured) {
                input = shorter;
            } else {
                at += chunk;
            }
        }
        chunk /= 2;
    }
    (input, captured)
}

/// An error message with the parts that vary between inputs of the same kind of failure
/// blanked: quoted values, and every word with a digit in it (numbers, offsets, digests). Two
/// inputs rejected for the same reason at different positions share a shape.
pub fn shape_of(message: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.chars().any(|c| c.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in message.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                out.push(c);
            }
            Some(_) => {}
            None if c.is_alphanumeric() || c == '_' => word.push(c),
            None => {
                flush(&mut word, &mut out);
                if matches!(c, '"' | '`') {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
        if out.len() >= 160 {
            break;
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Aborts the process when one input runs longer than `TRAINYARD_FUZZ_EXEC_TIMEOUT`: a hang is
/// a finding too, and its input is already on disk as `in-flight`.
struct Watchdog {
    started_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
}

impl Watchdog {
    fn start(name: &str, in_flight: &Path) -> Self {
        let timeout_ms = env_parse::<u64>("TRAINYARD_FUZZ_EXEC_TIMEOUT").unwrap_or(60) * 1000;
        let started_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        let (s, st) = (started_ms.clone(), stop.clone());
        let (name, in_flight) = (name.to_string(), in_flight.to_path_buf());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let begun = s.load(Ordering::Relaxed);
                let now = epoch.elapsed().as_millis() as u64 + 1;
                if begun != 0 && now - begun > timeout_ms {
                    eprintln!(
                        "fuzz {name}: FINDING an input has run for more than {} s (a hang); it is {}",
                        timeout_ms / 1000,
                        in_flight.display()
                    );
                    std::process::abort();
                }
            }
        });
        Watchdog { started_ms, stop, epoch }
    }

    fn begin(&self) {
        self.started_ms.store(self.epoch.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
    }

    fn end(&self) {
        self.started_ms.store(0, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
