//! The one error type of the library, and the exit code each kind of failure maps to.

use std::path::PathBuf;

/// Everything that can go wrong in a trainyard command.
///
/// The variant decides the exit code (see [`Error::exit_code`]): problems with the spec or the
/// input data are the user's to fix and retrying cannot help (exit 2); everything else may be
/// transient (exit 1), so Kubernetes' `backoffLimit` retries it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The job spec is malformed or invalid; `path` is the JSON path of the offending field.
    #[error("{path}: {message}")]
    Spec {
        /// JSON path such as `model.logistic.l2`, or `spec` for the document as a whole.
        path: String,
        /// What was wrong, with the value that was given.
        message: String,
    },
    /// The input data cannot be used; the message names the file and/or column.
    #[error("{0}")]
    Data(String),
    /// The command-line usage is wrong (conflicting flags, an existing output directory).
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a file failed for a reason outside the user's data (disk, permissions).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An object-store request failed for a reason that may pass (throttling, 5xx, timeouts,
    /// an unreachable endpoint), also after its retries; the message names the URL.
    #[error("{0}")]
    Store(String),
    /// The run was written, but it is not eligible for promotion against its baseline and
    /// `--fail-on-gate` was given.
    #[error("{0}")]
    GateFailed(String),
    /// Training stopped on SIGTERM after writing a checkpoint; running again resumes.
    #[error("{0}")]
    Preempted(String),
    /// A bug or an infrastructure failure that is not the input's fault.
    #[error("internal error: {0}")]
    Internal(String),
    /// A job waited on through the service ended without succeeding; the process exits with
    /// the job's own exit code, as if it had run here.
    #[error("{message}")]
    JobEnded {
        /// The job's last attempt's exit code (143 for a cancelled job).
        code: u8,
        /// What ended it.
        message: String,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code for this error, per the table in DESIGN.md.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Spec { .. } | Error::Data(_) | Error::Usage(_) => 2,
            Error::Io { .. } | Error::Store(_) | Error::Internal(_) => 1,
            Error::GateFailed(_) => 3,
            Error::Preempted(_) => 143,
            Error::JobEnded { code, .. } => *code,
        }
    }

    /// A spec error at `path`.
    pub fn spec(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Spec { path: path.into(), message: message.into() }
    }

    /// A data error; the message must name the file and/or column.
    pub fn data(message: impl Into<String>) -> Self {
        Error::Data(message.into())
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
