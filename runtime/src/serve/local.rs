//! The local executor: each job attempt is a `trainyard train` child process, at most `slots`
//! at a time per resource class, its JSON log lines in a file per attempt. Exit codes go through
//! [`policy::next`]; a cancel sends SIGTERM and, after the grace period, SIGKILL. On start it
//! closes the attempts a previous service left open (their processes died with it) as exit -1,
//! so they are retried like a crash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::serve::policy;
use crate::serve::state::{AttemptEnd, Job, JobState, Store};

/// The executor's name in the attempts table.
pub const NAME: &str = "local";

/// Settings of the local executor.
#[derive(Debug, Clone)]
pub struct Local {
    /// The state store.
    pub store: Store,
    /// The `trainyard` binary the attempts run.
    pub binary: PathBuf,
    /// Where run directories go: `ROOT/<name>/<job id>`.
    pub runs_root: PathBuf,
    /// Where attempt logs and specs go: `LOGS/<job id>/`.
    pub logs: PathBuf,
    /// Concurrent attempts per resource class.
    pub slots: BTreeMap<String, usize>,
    /// The first retry's delay (microseconds); tests shorten it.
    pub first_delay_us: i64,
    /// SIGTERM to SIGKILL on cancel.
    pub grace: Duration,
    /// How often a free slot looks for queued work and a running attempt for a cancel.
    pub poll: Duration,
}

impl crate::serve::Executor for Local {
    const NAME: &'static str = NAME;

    /// Closes the attempts a previous service left open, then starts one scheduler per class.
    async fn start(self) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        for (id, attempt) in self.store.open_attempts(NAME).await? {
            if self.finished_while_down(&id, attempt).await? {
                continue;
            }
            self.lost(&id, attempt, "the service stopped while the attempt ran").await?;
            tracing::warn!(job = %id, attempt, "closed an attempt the previous service left running");
        }
        let this = Arc::new(self);
        Ok(this
            .slots
            .iter()
            .map(|(class, &slots)| {
                let (this, class) = (this.clone(), class.clone());
                tokio::spawn(async move { this.schedule(class, slots).await })
            })
            .collect())
    }
}

impl Local {
    /// Closes open attempt `attempt` of `id` as exit 0 when its run directory was committed
    /// after it started: the process finished, the service died before recording it, and a
    /// retry would train the same run again.
    async fn finished_while_down(&self, id: &str, attempt: i64) -> Result<bool> {
        let Some(job) = self.store.get(id).await? else { return Ok(false) };
        let started =
            self.store.attempts(id).await?.iter().find(|a| a.attempt == attempt).map(|a| a.started_at);
        let output = self.runs_root.join(&job.name).join(&job.id);
        let committed = std::fs::metadata(output.join("manifest.json"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_micros()).ok());
        let (Some(started), Some(committed)) = (started, committed) else { return Ok(false) };
        if committed < started {
            return Ok(false);
        }
        let result = summary(&output);
        let (output_s, log_s) =
            (output.display().to_string(), self.logs.join(id).join(format!("attempt-{attempt}.log")));
        let log_s = log_s.display().to_string();
        let end = AttemptEnd {
            exit_code: 0,
            message: "the run was written; the service stopped before the process's exit was recorded",
            log_path: Some(&log_s),
            run_path: Some(&output_s),
            result: result.as_ref(),
            not_before: 0,
        };
        self.store.finish(id, attempt, &end, JobState::Succeeded).await?;
        tracing::warn!(job = %id, attempt, "an attempt the previous service left running had written its run: succeeded");
        Ok(true)
    }

    /// Every attempt's exit code, the last (still open) one taken as `last`: what the policy
    /// decides on when that attempt ends.
    async fn exits_ending(&self, id: &str, last: i64) -> Result<Vec<i64>> {
        let mut exits: Vec<i64> =
            self.store.attempts(id).await?.iter().map(|a| a.exit_code.unwrap_or(0)).collect();
        if let Some(open) = exits.last_mut() {
            *open = last;
        }
        Ok(exits)
    }

    /// Claims queued jobs of `class` whenever one of its `slots` is free.
    async fn schedule(self: Arc<Self>, class: String, slots: usize) {
        let free = Arc::new(Semaphore::new(slots));
        loop {
            let Ok(permit) = free.clone().acquire_owned().await else { return };
            match self.store.claim(&class, NAME).await {
                Ok(Some((job, attempt))) => {
                    let this = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = this.run(&job, attempt).await {
                            tracing::error!(job = %job.id, attempt, "attempt failed to run: {e}");
                            // Closed as lost (a fork that failed, a full disk), not left open
                            // until the next restart: the policy retries it.
                            if let Err(e) = this.lost(&job.id, attempt, &e.to_string()).await {
                                tracing::error!(job = %job.id, attempt, "recording the lost attempt: {e}");
                            }
                        }
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::time::sleep(self.poll).await;
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(class = %class, "claiming a job: {e}");
                    tokio::time::sleep(self.poll * 10).await;
                }
            }
        }
    }

    /// Closes open attempt `attempt` of `id` as lost (-1) with `why`, retried by the policy.
    async fn lost(&self, id: &str, attempt: i64, why: &str) -> Result<()> {
        let exits = self.exits_ending(id, -1).await?;
        let (next, delay) = policy::next(&exits, self.first_delay_us);
        let end = AttemptEnd {
            exit_code: -1,
            message: why,
            not_before: crate::serve::state::now_us() + delay,
            ..AttemptEnd::default()
        };
        self.store.finish(id, attempt, &end, next).await?;
        Ok(())
    }

    /// Runs one attempt to its end and records it.
    async fn run(&self, job: &Job, attempt: i64) -> Result<()> {
        let dir = self.logs.join(&job.id);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let spec_path = dir.join("spec.json");
        std::fs::write(&spec_path, job.spec.to_string()).map_err(|e| Error::io(&spec_path, e))?;
        let log_path = dir.join(format!("attempt-{attempt}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
        let log_err = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
        // Known while it runs, so `/logs` (and `submit --wait`'s progress) can follow it.
        self.store.set_log_path(&job.id, attempt, &log_path.display().to_string()).await?;
        let output = self.runs_root.join(&job.name).join(&job.id);
        let mut command = tokio::process::Command::new(&self.binary);
        // The attempt dies with the service, even by kill -9: a restarted service retries the
        // attempts it finds open, and an orphan still running would make that job run twice.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .arg("--log-format")
            .arg("json")
            .arg("train")
            .arg(&spec_path)
            .arg("--output")
            .arg(&output)
            .arg("--overwrite")
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::Internal(format!("starting {}: {e}", self.binary.display())))?;
        let mut cancelled = false;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                () = tokio::time::sleep(self.poll) => {
                    if !cancelled && self.store.get(&job.id).await?.is_some_and(|j| j.cancel_requested) {
                        cancelled = true;
                        terminate(&mut child, self.grace).await;
                    }
                }
            }
        }
        .map_err(|e| Error::Internal(format!("waiting for job {}: {e}", job.id)))?;
        let exit_code = exit_code(&status);
        let message = last_error(&log_path);
        let exits = self.exits_ending(&job.id, exit_code).await?;
        let (next, delay) =
            if cancelled { (JobState::Cancelled, 0) } else { policy::next(&exits, self.first_delay_us) };
        let wrote = output.join("manifest.json").is_file();
        let result = if wrote { summary(&output) } else { None };
        let (output_s, log_s) = (output.display().to_string(), log_path.display().to_string());
        let end = AttemptEnd {
            exit_code,
            message: &message,
            log_path: Some(&log_s),
            run_path: wrote.then_some(output_s.as_str()),
            result: result.as_ref(),
            not_before: crate::serve::state::now_us() + delay,
        };
        self.store.finish(&job.id, attempt, &end, next).await?;
        tracing::info!(job = %job.id, attempt, exit_code, next = next.as_str(), "attempt ended");
        Ok(())
    }
}

/// SIGTERM, then SIGKILL after `grace` if it has not exited.
async fn terminate(child: &mut tokio::process::Child, grace: Duration) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) on the pid of a child we own and have not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// The exit code, or 128 + the signal for a process a signal ended (as a shell and the kubelet
/// report it: 143 for SIGTERM).
fn exit_code(status: &std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        (None, None) => -1,
    }
}

/// The termination message: the last error line of the attempt's log, else its last line.
fn last_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let line = lines
        .iter()
        .rev()
        .find(|l| l.contains("\"level\":\"ERROR\"") || l.starts_with("error"))
        .or(lines.last())
        .copied()
        .unwrap_or("");
    // JSON log lines carry the message in "message"; anything else is kept as written.
    let message = serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| line.to_string());
    message.chars().take(2000).collect()
}

/// The test metrics and promotion of a written run, for the job's result.
pub(crate) fn summary(run: &Path) -> Option<serde_json::Value> {
    let read = |name: &str| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(run.join(name)).ok()?).ok()
    };
    let (metrics, manifest) = (read("metrics.json")?, read("manifest.json")?);
    Some(serde_json::json!({
        "run_id": manifest.get("run_id"),
        "test": metrics.get("test"),
        "promotion": manifest.get("promotion"),
    }))
}
