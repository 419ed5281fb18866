//! The `trainyard` command line: parses arguments, calls one library function per command, and
//! turns the error, if any, into the exit code in one place.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use trainyard::metrics::Evaluation;
use trainyard::model::FitReport;
use trainyard::progress::{Reporter, Update};
use trainyard::render::{self, RenderOptions};
use trainyard::signal::Cancellation;
use trainyard::spec::CheckedSpec;
use trainyard::synth::{self, SynthOptions};
use trainyard::train::{self, TrainOptions};
use trainyard::{Error, inspect, predict, validate};

/// A native training runtime: Parquet features and labels in, an evaluated and reproducible
/// model out.
#[derive(Debug, Parser)]
#[command(name = "trainyard", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr. Default: human on a terminal, JSON lines otherwise.
    #[arg(long, value_enum, global = true)]
    log_format: Option<LogFormat>,
    /// Also write the failure reason here (Kubernetes shows it in `kubectl describe pod`).
    /// Default: /dev/termination-log when it exists.
    #[arg(long, global = true, value_name = "PATH")]
    termination_log: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train the model a job spec describes and write its run directory.
    Train {
        /// The JSON job spec.
        spec: PathBuf,
        /// Run directory; overrides the spec's `output` (default `runs/<name>`).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Replace an existing, non-empty run directory.
        #[arg(long)]
        overwrite: bool,
        /// Override a spec field, e.g. `--set model.logistic.l2=0.5` (repeatable). The value is
        /// parsed as JSON when it is valid JSON, else taken as a string.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
        /// Exit 3 when the run is written but its promotion gate (`gate` in the spec) finds it
        /// not eligible, so that a scheduled retrain fails visibly without a retry.
        #[arg(long)]
        fail_on_gate: bool,
    },
    /// The registry over a runs root (a directory or a bucket prefix): list and compare runs,
    /// and promote a run to production.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Score Parquet data with a trained run directory.
    Predict {
        /// The run directory written by `train`.
        #[arg(long)]
        model: PathBuf,
        /// Parquet files, globs or directories to score (repeatable).
        #[arg(long, required = true, num_args = 1..)]
        data: Vec<String>,
        /// Output Parquet file: the model's key column (when present) and `score`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the Kubernetes ConfigMap + Job YAML for a spec and resource class, for
    /// `trainyard render ... | kubectl apply -f -`.
    Render {
        /// The JSON job spec (embedded, resolved, in the ConfigMap).
        spec: PathBuf,
        /// Resource class: cpu-small, cpu-large, highmem or gpu. Default: the spec's `resources`.
        #[arg(long)]
        class: Option<String>,
        /// Container image. Default: ghcr.io/trainyard/trainyard[-cuda]:<version>.
        #[arg(long)]
        image: Option<String>,
        /// Job name. Default: the spec's name, lower-cased, with `_` and `.` turned into `-`.
        #[arg(long)]
        name: Option<String>,
        /// Namespace of the objects.
        #[arg(long, default_value = render::DEFAULT_NAMESPACE)]
        namespace: String,
        /// ServiceAccount of the pod, e.g. one annotated for EKS IRSA or GKE/AKS workload
        /// identity so that it reaches its bucket. Default: none (no API token either way).
        #[arg(long, value_name = "NAME")]
        service_account: Option<String>,
        /// Override a spec field (repeatable), as for `train`.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
    /// Summarize a run directory: manifest, fit and metrics.
    Inspect {
        /// The run directory.
        run: PathBuf,
    },
    /// Draw a run's report again (`report.html`: charts and tables, one self-contained file), or
    /// compare two runs on one page.
    Report {
        /// The run directory (or object-store run).
        run: PathBuf,
        /// A second run to compare with the first: curves overlaid, metric deltas (B − A).
        #[arg(long, value_name = "RUN_B")]
        compare: Option<PathBuf>,
        /// Where to write the page. Default: `<name>.report.html` (`<a>-vs-<b>.report.html`
        /// when comparing) in the current directory.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Export a run's model, feature pipeline included, for scoring elsewhere: an ONNX graph
    /// over the raw feature columns that onnxruntime scores as `predict` does.
    Export {
        /// The run directory (or object-store run).
        run: PathBuf,
        /// The format.
        #[arg(long, value_enum, default_value = "onnx")]
        format: trainyard::onnx::Format,
        /// Where to write the model (a file or an object). Default: `<run id>.onnx` in the
        /// current directory.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The string a categorical input holds for a null (ONNX strings cannot be null).
        #[arg(long, value_name = "TEXT", default_value = "")]
        null_string: String,
        /// A categorical column to take as int64 rather than string (repeatable): its levels
        /// must be integers; -9223372036854775808 (the smallest int64) is null.
        #[arg(long = "int64", value_name = "COLUMN")]
        int64: Vec<String>,
    },
    /// The JSON API in front of the trainer: submit jobs, track their state, fetch their
    /// results. Jobs run as local `trainyard train` child processes.
    Serve {
        /// Address to listen on. A non-loopback address needs --auth (or --insecure-no-auth).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// State store: sqlite://PATH (created on first start) or postgres://USER@HOST/DB.
        #[arg(long, default_value = "sqlite://trainyard-state.db")]
        state: String,
        /// Read the state URL from this file instead (a mounted Secret: the URL holds the
        /// database password).
        #[arg(long, conflicts_with = "state", value_name = "PATH")]
        state_file: Option<PathBuf>,
        /// Runs root: each attempt writes ROOT/<name>/<job id>.
        #[arg(long, default_value = "runs")]
        runs_root: PathBuf,
        /// Bearer tokens: {"TOKEN": {"owner": "risk", "admin": false}}.
        #[arg(long)]
        auth: Option<PathBuf>,
        /// Listen beyond loopback without tokens.
        #[arg(long)]
        insecure_no_auth: bool,
        /// Concurrent attempts per resource class, CLASS=N (repeatable). Default: cpu-small=2,
        /// cpu-large=1, highmem=1, gpu=1.
        #[arg(long = "slots", value_name = "CLASS=N")]
        slots: Vec<String>,
        /// Seconds before the first retry of a failed attempt (doubling after).
        #[arg(long, default_value_t = 10.0)]
        retry_delay: f64,
        /// The program attempts run (`PROGRAM --log-format json train SPEC --output DIR`).
        /// Default: this trainyard binary.
        #[arg(long, value_name = "PROGRAM")]
        train_binary: Option<PathBuf>,
        /// Where attempts run: `local` child processes, or `kubernetes` Jobs (the ConfigMap +
        /// Job `trainyard render` builds; in-cluster config, else the kubeconfig). With
        /// kubernetes, --slots caps the Jobs at once per class.
        #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
        executor: ExecutorKind,
        /// Namespace of the Kubernetes Jobs.
        #[arg(long, default_value = "trainyard")]
        namespace: String,
        /// Container image of the Kubernetes Jobs; default the release's.
        #[arg(long)]
        image: Option<String>,
        /// ServiceAccount of the Kubernetes Jobs' pods.
        #[arg(long)]
        service_account: Option<String>,
    },
    /// Submit a job spec to a `trainyard serve`; prints the job id. With --wait, follows the
    /// job (progress of its attempt) and exits with its exit code.
    Submit {
        /// The JSON job spec; relative paths are made absolute against its directory.
        spec: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
        /// Resource class; overrides the spec's `resources`.
        #[arg(long)]
        resources: Option<String>,
        /// A free label, KEY=VALUE (repeatable), e.g. --label project=chargebacks.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Override a spec field (repeatable), as for `train`.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
        /// A retried submission with the same key is the same job.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Wait for the job to end; exit 0 if it succeeded, else its exit code (143: cancelled).
        #[arg(long)]
        wait: bool,
    },
    /// The jobs of a `trainyard serve`: list, show, cancel, logs.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Check a job spec and its data without training: files, rows, split, features.
    Validate {
        /// The JSON job spec.
        spec: PathBuf,
        /// Override a spec field, e.g. `--set model.logistic.l2=0.5` (repeatable). The value is
        /// parsed as JSON when it is valid JSON, else taken as a string.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
        /// Output format of the report.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// The run directory `train --output` would write: where a `baseline.production` is
        /// looked up by default (its parent).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Write a synthetic fraud-like dataset: OUT/charges/part-*.parquet and OUT/labels.parquet.
    Synth {
        /// Charges to generate.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Output directory (created if needed; existing files of the same names are replaced).
        #[arg(long)]
        out: PathBuf,
        /// Seed; the same seed gives the same files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Number of charge part files.
        #[arg(long, default_value_t = 4)]
        files: usize,
        /// Rows per Parquet row group.
        #[arg(long, default_value_t = 128 * 1024)]
        row_group_rows: usize,
        /// Write a purely numeric benchmark dataset instead: OUT/part-*.parquet with `id`,
        /// `x0`..`x{N-1}` (float32) and `label` (0/1, ~5% positives).
        #[arg(long, value_name = "N")]
        numeric: Option<usize>,
        /// With --numeric: store the features as double, as Spark and pandas write them (the same
        /// values as the float32 dataset of the same seed, widened).
        #[arg(long, requires = "numeric")]
        float64: bool,
        /// Merchants (`merchant_id` levels, Zipf-sized). Default: rows / 40, within 20..20000.
        #[arg(long, value_name = "N", conflicts_with = "numeric")]
        merchants: Option<usize>,
        /// Add a `card_bin` column with N levels (Zipf-sized, each with its own fraud effect).
        #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "numeric")]
        card_bins: usize,
        /// Add a `device_id` column with N levels (Zipf-sized, each with its own fraud effect).
        #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "numeric")]
        devices: usize,
    },
}

/// Where the service is and who the caller is.
#[derive(Debug, Clone, clap::Args)]
struct ServerArgs {
    /// The service's URL.
    #[arg(long, env = "TRAINYARD_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Bearer token (one of the service's --auth tokens).
    #[arg(long, env = "TRAINYARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl ServerArgs {
    fn client(&self) -> Result<trainyard::serve::client::Client, Error> {
        trainyard::serve::client::Client::new(&self.server, self.token.clone())
    }
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Jobs, newest first.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Only jobs of this spec name.
        #[arg(long)]
        name: Option<String>,
        /// Only this owner's jobs (admin tokens).
        #[arg(long)]
        owner: Option<String>,
        /// Only jobs in this state: queued, running, succeeded, failed, cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The page after this cursor (printed under a full page).
        #[arg(long)]
        cursor: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// A job: state, attempts with exit codes and messages, transitions, run, test metrics.
    Show {
        /// The job id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Cancel a job (a running attempt gets SIGTERM).
    Cancel {
        /// The job id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// An attempt's log.
    Logs {
        /// The job id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
        /// Attempt number; default the last.
        #[arg(long)]
        attempt: Option<i64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum ExecutorKind {
    Local,
    Kubernetes,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// Every run below ROOT, newest first: id, status, start, duration, rows, test metrics, data
    /// fingerprint, gate verdict, and `*` for a name's production run. Reads manifests only.
    List {
        /// The runs root: a directory or an object-store prefix.
        root: String,
        /// Only runs of this job name.
        #[arg(long)]
        name: Option<String>,
        /// Only runs with this status.
        #[arg(long)]
        status: Option<String>,
        /// Only runs started at or after this date or RFC 3339 time (UTC).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// One run: its registry record, the gate's verdict and its baseline comparison.
    Show {
        /// The run directory (or URL).
        run: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// What differs between two runs: resolved spec, input fingerprints, test metrics, and the
    /// paired tests on the test rows they share by key (A as the baseline).
    Compare {
        /// The first run (the baseline).
        run_a: PathBuf,
        /// The second run.
        run_b: PathBuf,
        /// Bootstrap resamples of the paired tests.
        #[arg(long, default_value_t = trainyard::metrics::paired::RESAMPLES)]
        resamples: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Make RUN (a run directory, a folder below ROOT, or a run id) the production run of NAME.
    Promote {
        /// The runs root.
        root: String,
        /// The job name.
        name: String,
        /// The run.
        run: String,
        /// Who promotes it, for the history. Default: $USER.
        #[arg(long)]
        by: Option<String>,
        /// The run id you expect in production now (`none` for no production run): the
        /// promotion is refused when someone promoted another run since.
        #[arg(long, value_name = "RUN_ID")]
        previous: Option<String>,
        /// Promote a run that its gate found not eligible.
        #[arg(long)]
        force: bool,
    },
    /// The production run of NAME in ROOT (exit 2 when there is none).
    Production {
        /// The runs root.
        root: String,
        /// The job name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Every promotion of NAME in ROOT, newest first.
    History {
        /// The runs root.
        root: String,
        /// The job name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// The system allocator, except that a failed allocation ends the process with exit 1 and a
/// one-line message instead of Rust's abort (exit 134 with a backtrace): out of memory is an
/// infrastructure failure that a retry on a bigger node can fix (DESIGN.md's exit codes). Runs
/// are sized against the memory limit before they allocate, so this is the last line.
struct ExitOnOutOfMemory;

// SAFETY: every method forwards to `System` with the same arguments; the failure path only
// writes to stderr from a stack buffer and exits, without allocating.
unsafe impl GlobalAlloc for ExitOnOutOfMemory {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given.
        checked(unsafe { System.alloc(layout) }, layout.size())
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given.
        checked(unsafe { System.alloc_zeroed(layout) }, layout.size())
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as given.
        checked(unsafe { System.realloc(ptr, layout, new_size) }, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as given.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: ExitOnOutOfMemory = ExitOnOutOfMemory;

fn checked(ptr: *mut u8, size: usize) -> *mut u8 {
    if ptr.is_null() {
        out_of_memory(size);
    }
    ptr
}

#[cold]
fn out_of_memory(size: usize) -> ! {
    let mut buf = [0u8; 128];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if len < buf.len() {
                buf[len] = b;
                len += 1;
            }
        }
    };
    put(b"error: out of memory: allocating ");
    let mut digits = [0u8; 20];
    let mut n = size;
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    put(&digits[d..]);
    put(b" bytes failed; give the job more memory (a larger resource class)\n");
    // SAFETY: writing a valid buffer to stderr and exiting; neither allocates.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), len);
        libc::_exit(1);
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    exit_1_on_panic();
    let cli = Cli::parse();
    let human = init_logging(cli.log_format);
    let termination_log = cli.termination_log.clone();
    match run(cli, human) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let what = if matches!(e, Error::Preempted(_)) { "stopped" } else { "error" };
            // Messages name URLs; a query string (a SAS token, a signature) never leaves.
            let _ = writeln!(std::io::stderr(), "{what}: {}", trainyard::store::redact(&e.to_string()));
            write_termination_log(termination_log.as_deref(), &e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Tensor code allocates and frees megabyte buffers every step. glibc serves those with fresh
/// mmaps by default, so every step pays page faults and zeroing for memory it just gave back;
/// keeping freed memory in the heap removes those page faults (17% of an MLP training profile
/// before this; the wall-clock gain was within noise then, the fault count is what it fixes).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// A panic is a bug, never the input's fault: one line naming where it happened, and exit 1
/// (an internal error, as DESIGN.md's table says), not exit 101 and a backtrace nobody asked for.
fn exit_1_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        if trainyard::data::panic_is_caught() {
            // A decoder's panic on a corrupt file, turned into a data error by the caller.
            return;
        }
        let message = trainyard::data::panic_message(info.payload());
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let _ = writeln!(std::io::stderr(), "error: internal error: {message}{place}; please report this");
        std::process::exit(1);
    }));
}

/// Sets up logging; returns whether logs are for a person at a terminal (progress bars then).
fn init_logging(format: Option<LogFormat>) -> bool {
    let format =
        format.unwrap_or(if std::io::stderr().is_terminal() { LogFormat::Human } else { LogFormat::Json });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ = match format {
        LogFormat::Human => builder.compact().try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    format == LogFormat::Human && std::io::stderr().is_terminal()
}

/// The failure reason for `kubectl describe pod`: to `--termination-log`, or to
/// /dev/termination-log when the container has one. Best effort: failing to write it must not
/// mask the real error.
fn write_termination_log(explicit: Option<&Path>, error: &Error) {
    let default = Path::new("/dev/termination-log");
    let path = match explicit {
        Some(p) => p,
        None if default.exists() => default,
        None => return,
    };
    let message = trainyard::store::redact(&error.to_string());
    let _ = std::fs::write(path, format!("exit {}: {message}\n", error.exit_code()));
}

/// Progress updates as a one-line bar on stderr at a terminal (redrawn at most every 100 ms,
/// cleared when the phase's count completes so the log line after it starts clean), or as a
/// JSON log line with the rate and ETA at most every 10 s in a pod.
fn progress_reporter(human: bool) -> Reporter {
    use std::io::Write as _;
    use std::time::{Duration, Instant};
    const WIDTH: usize = 30;
    let every = if human { Duration::from_millis(100) } else { Duration::from_secs(10) };
    let state = std::sync::Mutex::new((String::new(), Instant::now(), None::<Instant>));
    Reporter::new(move |u: &Update| {
        let Ok(mut st) = state.lock() else { return };
        let (label, started, drawn) = &mut *st;
        if *label != u.label {
            *label = u.label.clone();
            *started = Instant::now();
            // A bar is redrawn for each new count; log lines keep their pace across counts.
            if human {
                *drawn = None;
            }
        }
        let finished = u.done >= u.total;
        if human && finished {
            if drawn.take().is_some() {
                let _ = write!(std::io::stderr(), "\r\x1b[2K");
            }
            return;
        }
        if finished || drawn.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        *drawn = Some(Instant::now());
        let rate = u.done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let eta = (u.total - u.done) as f64 / rate.max(1e-9);
        let loss = u.loss.map(|l| format!("  loss {l:.5}")).unwrap_or_default();
        if human {
            let filled = WIDTH * u.done / u.total.max(1);
            let _ = write!(
                std::io::stderr(),
                "\r{} [{}{}] {}/{}{loss}  {rate:.0}/s  ETA {eta:.0} s",
                u.label,
                "#".repeat(filled),
                "-".repeat(WIDTH - filled),
                u.done,
                u.total
            );
        } else {
            tracing::info!(
                phase = u.phase,
                done = u.done,
                total = u.total,
                rate_per_second = rate,
                eta_seconds = eta,
                loss = u.loss,
                "{}: {}/{}{loss}",
                u.label,
                u.done,
                u.total
            );
        }
    })
}

/// SIGTERM as the library's cancellation: while a model that checkpoints is fitting, it sets the
/// flag the loop polls (it saves a checkpoint and the process exits 143); at any other time it
/// ends the process as the default action would.
fn sigterm_cancels() -> Result<Cancellation, Error> {
    use signal_hook::{consts::SIGTERM, flag};
    let cancel = Cancellation::default();
    let installed = flag::register_conditional_default(SIGTERM, cancel.immediate_flag())
        .and_then(|_| flag::register(SIGTERM, cancel.requested_flag()));
    installed.map_err(|e| Error::Internal(format!("installing the SIGTERM handler: {e}")))?;
    Ok(cancel)
}

/// `trainyard runs ...`: the text each command prints.
fn runs(command: RunsCommand) -> Result<String, Error> {
    use trainyard::registry::{self, Root, compare, production};
    Ok(match command {
        RunsCommand::List { root, name, status, since, format } => {
            let since_ms = match since {
                Some(s) => Some(trainyard::spec::parse_instant(&s).ok_or_else(|| {
                    Error::Usage(format!("--since {s:?}: not a date (YYYY-MM-DD) or RFC 3339 time"))
                })?),
                None => None,
            };
            let records = registry::list(&Root::open(&root)?, &registry::Filter { name, status, since_ms })?;
            match format {
                ListFormat::Table => registry::table(&records),
                ListFormat::Json => pretty_json(&records)?,
            }
        }
        RunsCommand::Show { run, format } => {
            let shown = registry::show(&run)?;
            match format {
                Format::Text => registry::describe(&shown),
                Format::Json => pretty_json(&shown)?,
            }
        }
        RunsCommand::Compare { run_a, run_b, resamples, format } => {
            if !(1..=100_000).contains(&resamples) {
                return Err(Error::Usage(format!("--resamples must be within 1..=100000, got {resamples}")));
            }
            let report = compare::compare(&run_a, &run_b, resamples)?;
            match format {
                Format::Text => compare::describe(&report),
                Format::Json => pretty_json(&report)?,
            }
        }
        RunsCommand::Promote { root, name, run, by, previous, force } => {
            let by = by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into());
            let root = Root::open(&root)?;
            let request = production::Request {
                name: &name,
                run: &run,
                by: &by,
                expect_previous: previous.as_deref(),
                force,
            };
            match production::promote(&root, &request)? {
                production::Outcome::Promoted(p) => {
                    format!(
                        "promoted {} to production of {name} in {}\n{}",
                        p.run_id,
                        root.display(),
                        production::describe(&p)
                    )
                }
                production::Outcome::Already(p) => {
                    format!("{} is already the production run of {name}; nothing written\n", p.run_id)
                }
            }
        }
        RunsCommand::Production { root, name, format } => {
            let root = Root::open(&root)?;
            let pointer = production::current(&root, &name)?
                .ok_or_else(|| Error::Usage(format!("{name} has no production run in {}", root.display())))?;
            match format {
                Format::Text => production::describe(&pointer),
                Format::Json => pretty_json(&pointer)?,
            }
        }
        RunsCommand::History { root, name, format } => {
            let mut entries = production::history(&Root::open(&root)?, &name)?;
            entries.reverse();
            match format {
                Format::Text => entries.iter().map(production::describe).collect(),
                Format::Json => pretty_json(&entries)?,
            }
        }
    })
}

/// `trainyard jobs ...`: what to print.
fn jobs(command: JobsCommand) -> Result<String, Error> {
    use trainyard::serve::client;
    Ok(match command {
        JobsCommand::List { server, name, owner, state, limit, cursor, format } => {
            let query: Vec<(&str, String)> =
                [("name", name), ("owner", owner), ("state", state), ("cursor", cursor)]
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v?)))
                    .chain([("limit", limit.to_string())])
                    .collect();
            let page = server.client()?.list(&query)?;
            match format {
                ListFormat::Table => client::list_table(&page),
                ListFormat::Json => pretty_json(&page)?,
            }
        }
        JobsCommand::Show { id, server, format } => {
            let job = server.client()?.show(&id)?;
            match format {
                Format::Text => client::describe(&job),
                Format::Json => pretty_json(&job)?,
            }
        }
        JobsCommand::Cancel { id, server } => {
            let answer = server.client()?.cancel(&id)?;
            format!("{id}: {}\n", answer["state"].as_str().unwrap_or("unknown"))
        }
        JobsCommand::Logs { id, server, tail, attempt } => server.client()?.logs(&id, tail, attempt)?,
    })
}

/// Pretty JSON with a trailing newline.
fn pretty_json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string_pretty(value).map(|s| s + "\n").map_err(|e| Error::Internal(e.to_string()))
}

fn run(cli: Cli, human: bool) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    let print = |out: &mut std::io::StdoutLock<'_>, text: &str| {
        out.write_all(text.as_bytes()).map_err(|e| Error::io("<stdout>", e))
    };
    match cli.command {
        Command::Train { spec, output, overwrite, set, fail_on_gate } => {
            let checked = CheckedSpec::from_file(&spec, &set)?;
            let cancel = sigterm_cancels()?;
            let summary = train::train(
                &checked,
                &TrainOptions { output, overwrite, progress: progress_reporter(human), cancel },
            )?;
            tracing::info!(
                run = %summary.run_dir.display(),
                test_auc = summary.test.roc_auc(),
                test_log_loss = summary.test.log_loss(),
                seconds = summary.seconds,
                "run written"
            );
            let headline = match &summary.test {
                Evaluation::Binary(m) => format!("test ROC AUC {:.4}, log loss {:.4}", m.roc_auc, m.log_loss),
                Evaluation::Multiclass(m) => format!(
                    "{} classes, test accuracy {:.4}, log loss {:.4}",
                    m.classes, m.accuracy, m.log_loss
                ),
            };
            print(
                &mut out,
                &format!(
                    "{}: trained on {} rows in {:.2} s; {headline}{} -> {}\n",
                    checked.spec.name,
                    summary.train_rows,
                    summary.seconds,
                    match &summary.fit {
                        FitReport::Logistic(f) if !f.converged => " (not converged)",
                        _ => "",
                    },
                    summary.run_dir.display()
                ),
            )?;
            if let Some(c) = &summary.baseline {
                let auc = match &c.roc_auc_test {
                    Some(t) => format!("ROC AUC {:+.4} (DeLong p = {:.4}), ", t.delta, t.p_value),
                    None => String::new(),
                };
                let ll = c
                    .bootstrap
                    .get("log_loss")
                    .map(|i| format!("log loss {:+.4} [{:+.4}, {:+.4}]", i.delta, i.low, i.high));
                print(
                    &mut out,
                    &format!("against baseline {}: {auc}{}\n", c.run_id, ll.unwrap_or_default()),
                )?;
            }
            match &summary.promotion {
                Some(p) => {
                    let verdict =
                        if p.eligible { "eligible for promotion" } else { "NOT eligible for promotion" };
                    print(&mut out, &format!("gate: {verdict}: {}\n", p.reasons.join("; ")))?;
                    if fail_on_gate && !p.eligible {
                        return Err(Error::GateFailed(format!(
                            "run written to {}, but it failed its promotion gate: {}",
                            summary.run_dir.display(),
                            p.reasons.join("; ")
                        )));
                    }
                    Ok(())
                }
                None if fail_on_gate => {
                    tracing::warn!("--fail-on-gate given, but the spec has no gate; nothing to fail on");
                    Ok(())
                }
                None => Ok(()),
            }
        }
        Command::Runs { command } => print(&mut out, &runs(command)?),
        Command::Submit { spec, server, resources, labels, set, idempotency_key, wait } => {
            use trainyard::serve::client;
            let body = client::submission(&spec, &set, resources.as_deref(), &labels)?;
            let client = server.client()?;
            let job = client.submit(&body, idempotency_key.as_deref())?;
            let id = job["id"].as_str().unwrap_or_default().to_string();
            print(&mut out, &format!("{id}\n"))?;
            if wait {
                let every = if human {
                    std::time::Duration::from_millis(500)
                } else {
                    std::time::Duration::from_secs(2)
                };
                let job = client.wait(&id, &progress_reporter(human), every)?;
                if !human {
                    print(&mut out, &pretty_json(&job)?)?;
                }
                client::outcome(&job)?;
            }
            Ok(())
        }
        Command::Jobs { command } => print(&mut out, &jobs(command)?),
        Command::Predict { model, data, out: path } => {
            let summary = predict::predict(&model, &data, &path)?;
            print(
                &mut out,
                &format!(
                    "scored {} rows from {} files -> {}\n",
                    summary.rows,
                    summary.files,
                    summary.out.display()
                ),
            )
        }
        Command::Inspect { run } => print(&mut out, &inspect::inspect(&run)?),
        Command::Report { run, compare, out: file } => {
            let written = trainyard::report::write(&run, compare.as_deref(), file.as_deref())?;
            print(&mut out, &format!("{}\n", written.display()))
        }
        Command::Export { run, format, out: file, null_string, int64 } => {
            let opts = trainyard::onnx::Options { null_string, int64 };
            let written = trainyard::onnx::export(&run, format, file.as_deref(), &opts)?;
            print(&mut out, &format!("{}\n", written.display()))
        }
        Command::Render { spec, class, image, name, namespace, service_account, set } => {
            let checked = CheckedSpec::from_file(&spec, &set)?;
            let opts = RenderOptions { class, image, name, namespace: Some(namespace), service_account };
            print(&mut out, &render::render(&checked, &opts)?)
        }
        Command::Serve {
            listen,
            state,
            state_file,
            runs_root,
            auth,
            insecure_no_auth,
            slots,
            retry_delay,
            train_binary,
            executor,
            namespace,
            image,
            service_account,
        } => {
            let mut classes: std::collections::BTreeMap<String, usize> =
                [("cpu-small", 2), ("cpu-large", 1), ("highmem", 1), ("gpu", 1)]
                    .into_iter()
                    .map(|(c, n)| (c.to_string(), n))
                    .collect();
            for s in &slots {
                let (class, n) = s
                    .split_once('=')
                    .and_then(|(c, n)| Some((c, n.parse::<usize>().ok()?)))
                    .ok_or_else(|| Error::spec("--slots", format!("expected CLASS=N, got {s:?}")))?;
                if trainyard::spec::ResourceClass::parse(class).is_none() {
                    return Err(Error::spec("--slots", format!("unknown resource class {class:?}")));
                }
                classes.insert(class.to_string(), n);
            }
            classes.retain(|_, n| *n > 0);
            if !(retry_delay >= 0.0 && retry_delay.is_finite()) {
                return Err(Error::spec("--retry-delay", format!("must be >= 0 seconds, got {retry_delay}")));
            }
            let state = match state_file {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| Error::Usage(format!("--state-file {}: {e}", path.display())))?
                    .trim()
                    .to_string(),
                None => state,
            };
            trainyard::serve::run(trainyard::serve::Options {
                listen,
                state,
                runs_root,
                auth,
                insecure_no_auth,
                slots: classes,
                retry_delay: std::time::Duration::from_secs_f64(retry_delay),
                train_binary,
                executor: match executor {
                    ExecutorKind::Local => trainyard::serve::ExecutorKind::Local,
                    ExecutorKind::Kubernetes => {
                        trainyard::serve::ExecutorKind::Kubernetes { namespace, image, service_account }
                    }
                },
            })?;
            Ok(())
        }
        Command::Validate { spec, set, format, output } => {
            let mut checked = CheckedSpec::from_file(&spec, &set)?;
            if let Some(out) = output {
                checked.spec.output = Some(out.to_string_lossy().into_owned());
            }
            let report = validate::validate(&checked)?;
            let text = match format {
                Format::Text => report.to_text(),
                Format::Json => {
                    serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))? + "\n"
                }
            };
            print(&mut out, &text)
        }
        Command::Synth {
            rows,
            out: dir,
            seed,
            files,
            row_group_rows,
            numeric,
            float64,
            merchants,
            card_bins,
            devices,
        } => {
            let opts =
                SynthOptions { rows, seed, files, row_group_rows, float64, merchants, card_bins, devices };
            if let Some(features) = numeric {
                let summary = synth::write_numeric(&dir, features, &opts)?;
                return print(
                    &mut out,
                    &format!(
                        "wrote {} rows x {features} numeric features in {} files under {} ({} positive, {:.2}%)\n",
                        summary.rows,
                        summary.feature_files.len(),
                        dir.display(),
                        summary.positives,
                        100.0 * summary.positives as f64 / summary.rows.max(1) as f64
                    ),
                );
            }
            let summary = synth::write(&dir, &opts)?;
            print(
                &mut out,
                &format!(
                    "wrote {} charges in {} files under {} and {} labels ({} fraud, {:.2}%) in {}\n",
                    summary.rows,
                    summary.feature_files.len(),
                    dir.join("charges").display(),
                    summary.labeled,
                    summary.positives,
                    100.0 * summary.positives as f64 / summary.labeled.max(1) as f64,
                    summary.label_file.display()
                ),
            )
        }
    }
}
