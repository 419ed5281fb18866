//! Running the real `trainyard` binary under a time limit and judging how it ended: the
//! contract is exit 0, or exit 1 or 2 with an `error:` line on stderr, and never a panic, an
//! abort or a signal.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a run of the binary ended.
#[derive(Debug, Clone)]
pub struct Ended {
    /// Exit code, `None` when a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub seconds: f64,
}

/// The binary with `args`, in `dir`, with a backtrace asked for (so a panic says where).
pub fn trainyard(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainyard"));
    c.args(["--log-format", "json"]).args(args).current_dir(dir).env("RUST_BACKTRACE", "1");
    c
}

/// Runs `command`, killing it after `timeout`. Output goes through files, so a chatty child
/// never blocks on a full pipe while we wait for it.
pub fn run(mut command: Command, timeout: Duration) -> Ended {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let started = Instant::now();
    command.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(err.try_clone().unwrap());
    // The target directory is shared: another build may be relinking the binary right now.
    let mut child = (0..50)
        .find_map(|_| match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::thread::sleep(Duration::from_millis(200));
                None
            }
            spawned => Some(spawned.unwrap()),
        })
        .expect("the trainyard binary stayed missing for 10 s");
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status, false);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            break (child.wait().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut s = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut s).unwrap();
        String::from_utf8_lossy(&s).into_owned()
    };
    Ended {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        stdout: read(out),
        stderr: read(err),
        seconds: started.elapsed().as_secs_f64(),
    }
}

impl Ended {
    /// `Err((kind, details))` when the run broke the exit contract; `kind` names the failure
    /// (where a panic happened, which signal) so that a fuzzer counts each bug once.
    pub fn check_clean(&self) -> Result<(), (String, String)> {
        let tail = {
            let lines: Vec<&str> = self.stderr.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        let fail = |kind: String| Err((kind.clone(), format!("{kind}; stderr:\n{tail}")));
        if self.timed_out {
            return fail(format!("still running after {:.0} s (killed)", self.seconds));
        }
        if let Some(at) = self.stderr.split("panicked at ").nth(1) {
            let location = at.split(|c: char| c.is_whitespace()).next().unwrap_or("").trim_end_matches(':');
            return fail(format!("the binary panicked at {location}"));
        }
        if self.stderr.contains("memory allocation of") {
            return fail("the binary aborted: memory allocation failed".into());
        }
        if let Some(sig) = self.signal {
            return fail(format!("the binary was killed by signal {sig}"));
        }
        if self.stderr.contains("RUST_BACKTRACE") {
            return fail("the binary printed a backtrace note".into());
        }
        match self.code.unwrap_or(-1) {
            0 => Ok(()),
            1 | 2 if self.error_line().is_some() => Ok(()),
            code @ (1 | 2) => fail(format!("exit {code} without an `error:` line")),
            code => fail(format!("exit {code}")),
        }
    }

    /// The `error: ...` line `main` prints on failure.
    pub fn error_line(&self) -> Option<&str> {
        self.stderr.lines().find(|l| l.starts_with("error: ") && l.len() > "error: ".len())
    }
}
