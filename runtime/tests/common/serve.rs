//! A `trainyard serve` child process on loopback for the service's integration tests, a
//! minimal HTTP/1.1 client for it, and the state backends the suites run against.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running service, stopped when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

impl Server {
    /// Starts `serve` on a free loopback port with `state`, from the examples directory (so the
    /// quick start's relative paths resolve), with `extra` arguments.
    pub fn start(state: &str, runs: &Path, extra: &[&str]) -> Server {
        Server::start_on(state, runs, "127.0.0.1:0", extra)
    }

    /// As [`Server::start`], listening on `listen`.
    pub fn start_on(state: &str, runs: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trainyard"))
            .args(["--log-format", "json", "serve", "--listen", listen, "--state", state, "--runs-root"])
            .arg(runs)
            .args(["--retry-delay", "0.05"])
            .args(extra)
            .current_dir(examples())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("serve exited before listening").unwrap();
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && let Some(listen) = v.get("listen").and_then(Value::as_str)
            {
                break listen.to_string();
            }
        };
        // Keep draining the log so the service never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    /// One HTTP/1.1 request; returns the status and the body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        Server::probe(&self.addr).try_call(method, path, body, headers).expect("the service answers")
    }

    /// Requests to `addr` that may find no service there.
    pub fn probe(addr: &str) -> Probe {
        Probe { addr: addr.to_string() }
    }

    pub fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let (status, body) = self.call(method, path, body, headers);
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }

    /// Polls a job until it reaches a final state.
    pub fn wait(&self, id: &str, headers: &[(&str, &str)]) -> Value {
        let started = Instant::now();
        loop {
            let (status, job) = self.json("GET", &format!("/v1/jobs/{id}"), None, headers);
            assert_eq!(status, 200, "{job}");
            if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap()) {
                return job;
            }
            assert!(started.elapsed() < Duration::from_secs(180), "job {id} did not finish: {job}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// An address requests go to, whether a service listens there or not.
pub struct Probe {
    pub addr: String,
}

impl Probe {
    /// One HTTP/1.1 request: the status and the body, or None when no answer came.
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(&self.addr).ok()?;
        // A request the service never answers (it was killed mid-way) must not hang the caller.
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        stream.set_write_timeout(Some(Duration::from_secs(30))).ok()?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        stream.write_all(req.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status: u16 = response.strip_prefix("HTTP/1.1 ")?.split(' ').next()?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((status, body))
    }

    /// As [`Probe::try_call`], the body parsed as JSON (or kept as a string).
    pub fn try_json(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Option<(u16, Value)> {
        let (status, body) = self.try_call(method, path, body, headers)?;
        Some((status, serde_json::from_str(&body).unwrap_or(Value::String(body))))
    }
}

/// The state URLs the suite runs against.
pub fn backends(dir: &Path) -> Vec<String> {
    let mut urls = vec![format!("sqlite://{}", dir.join("state.db").display())];
    match std::env::var("TRAINYARD_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!(
                "trainyard_serve_{}_{}",
                std::process::id(),
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            );
            let out = Command::new("psql")
                .args([&admin, "-c", &format!("CREATE DATABASE {name}")])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            urls.push(format!("{base}/{name}"));
        }
        Err(_) if std::env::var("TRAINYARD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("TRAINYARD_REQUIRE_POSTGRES=1 but TRAINYARD_POSTGRES_URL is not set")
        }
        Err(_) => eprintln!("skipped the PostgreSQL backend: set TRAINYARD_POSTGRES_URL"),
    }
    urls
}

/// Runs the `trainyard` client with `args` against `server` from `cwd`.
pub fn client(args: &[&str], server: &str, cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["--log-format", "json"])
        .args(args)
        .env("TRAINYARD_SERVER", server)
        .env_remove("TRAINYARD_TOKEN")
        .current_dir(cwd)
        .output()
        .unwrap()
}

pub fn quickstart() -> Value {
    serde_json::from_str(&std::fs::read_to_string(examples().join("quickstart.json")).unwrap()).unwrap()
}
