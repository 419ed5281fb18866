//! The `trainyard` command line: parses arguments, calls one library function per command, and
//! turns the error, if any, into the exit code in one place.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use trainyard::spec::CheckedSpec;
use trainyard::synth::{self, SynthOptions};
use trainyard::{Error, validate};

/// A native training runtime: Parquet features and labels in, an evaluated and reproducible
/// model out.
#[derive(Debug, Parser)]
#[command(name = "trainyard", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    let print = |out: &mut std::io::StdoutLock<'_>, text: &str| {
        out.write_all(text.as_bytes()).map_err(|e| Error::io("<stdout>", e))
    };
    match cli.command {
        Command::Validate { spec, set, format } => {
            let checked = CheckedSpec::from_file(&spec, &set)?;
            let report = validate::validate(&checked)?;
            let text = match format {
                Format::Text => report.to_text(),
                Format::Json => {
                    serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))? + "\n"
                }
            };
            print(&mut out, &text)
        }
        Command::Synth { rows, out: dir, seed, files, row_group_rows } => {
            let summary = synth::write(&dir, &SynthOptions { rows, seed, files, row_group_rows })?;
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
