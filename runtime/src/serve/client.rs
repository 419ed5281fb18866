//! The client half of `trainyard serve`: `trainyard submit` and `trainyard jobs`, over the JSON
//! API. A spec is submitted with its relative paths made absolute against the spec file's
//! directory, as `train` reads them, so the service runs what the submitter meant. `--wait`
//! follows the job to its end and exits with its exit code, drawing the attempt's own progress
//! lines (from its log) as `train` would.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::progress::{Reporter, Update};

/// How long `--wait` keeps trying a service that does not answer.
const OUTAGE: Duration = Duration::from_secs(600);

/// A connection to a `trainyard serve`.
#[derive(Debug)]
pub struct Client {
    server: String,
    token: Option<String>,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

/// A non-2xx answer: 4xx are the caller's to fix (exit 2), anything else may pass (exit 1).
fn answer_error(server: &str, status: reqwest::StatusCode, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str)
        .map_or_else(|| String::from_utf8_lossy(body).trim().to_string(), str::to_string);
    if status.is_client_error() {
        match parsed.as_ref().and_then(|v| v.get("field")).and_then(Value::as_str) {
            // The service's message already leads with the field, as the CLI's does.
            Some(field) => Error::Spec {
                path: field.to_string(),
                message: message.strip_prefix(&format!("{field}: ")).unwrap_or(&message).to_string(),
            },
            None => Error::Usage(format!("{server}: {status}: {message}")),
        }
    } else {
        Error::Store(format!("{server}: {status}: {message}"))
    }
}

impl Client {
    /// A client of `server` (`http://HOST:PORT`), sending `token` as a bearer token.
    pub fn new(server: &str, token: Option<String>) -> Result<Client> {
        let server = server.trim_end_matches('/').to_string();
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(Error::Usage(format!("--server: expected http://HOST:PORT, got {server:?}")));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("starting the runtime: {e}")))?;
        Ok(Client { server, token, http, runtime })
    }

    /// One request; the body of a 2xx answer.
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.server);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body.to_string());
        }
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .map_err(|e| Error::Store(format!("{}: cannot reach the service: {e}", self.server)))?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| Error::Store(format!("{url}: {e}")))?;
            if status.is_success() {
                Ok(bytes.to_vec())
            } else {
                Err(answer_error(&self.server, status, &bytes))
            }
        })
    }

    fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Result<Value> {
        let bytes = self.call(method, path, body, key)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Store(format!("{}{path}: not JSON: {e}", self.server)))
    }

    /// `POST /v1/jobs`: `{id, state}`.
    pub fn submit(&self, body: &Value, idempotency_key: Option<&str>) -> Result<Value> {
        self.json(reqwest::Method::POST, "/v1/jobs", Some(body), idempotency_key)
    }

    /// `GET /v1/jobs/{id}`.
    pub fn show(&self, id: &str) -> Result<Value> {
        self.json(reqwest::Method::GET, &format!("/v1/jobs/{}", encode(id)), None, None)
    }

    /// `GET /v1/jobs?...` with `query` pairs.
    pub fn list(&self, query: &[(&str, String)]) -> Result<Value> {
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        self.json(reqwest::Method::GET, &format!("/v1/jobs?{}", query.join("&")), None, None)
    }

    /// `POST /v1/jobs/{id}/cancel`.
    pub fn cancel(&self, id: &str) -> Result<Value> {
        self.json(reqwest::Method::POST, &format!("/v1/jobs/{}/cancel", encode(id)), None, None)
    }

    /// `GET /v1/jobs/{id}/logs`.
    pub fn logs(&self, id: &str, tail: Option<usize>, attempt: Option<i64>) -> Result<String> {
        let mut query = Vec::new();
        if let Some(t) = tail {
            query.push(format!("tail={t}"));
        }
        if let Some(a) = attempt {
            query.push(format!("attempt={a}"));
        }
        let bytes = self.call(
            reqwest::Method::GET,
            &format!("/v1/jobs/{}/logs?{}", encode(id), query.join("&")),
            None,
            None,
        )?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Follows job `id` until it is final: each state change is logged, the running attempt's
    /// latest progress line is passed to `progress`. Returns the final job.
    pub fn wait(&self, id: &str, progress: &Reporter, every: Duration) -> Result<Value> {
        let mut seen = (String::new(), 0usize);
        let started = Instant::now();
        // Quick jobs end in well under a second: poll fast at first, then every `every`.
        let mut pause = Duration::from_millis(50);
        let mut unreachable_since: Option<Instant> = None;
        loop {
            // The service restarting (it loses no job) is no reason to stop waiting: retry for
            // up to `OUTAGE` before giving up.
            let job = match self.show(id) {
                Ok(job) => {
                    unreachable_since = None;
                    job
                }
                Err(e @ Error::Store(_)) => {
                    let since = *unreachable_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > OUTAGE {
                        return Err(e);
                    }
                    tracing::warn!(job = id, "{e}; retrying");
                    std::thread::sleep(every);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let state = job["state"].as_str().unwrap_or("").to_string();
            let attempts = job["attempts"].as_array().map_or(0, Vec::len);
            if (state.as_str(), attempts) != (seen.0.as_str(), seen.1) {
                let reason = job["transitions"]
                    .as_array()
                    .and_then(|t| t.last())
                    .and_then(|t| t["reason"].as_str())
                    .unwrap_or("");
                tracing::info!(job = id, state = %state, attempts, "{id} is {state}: {reason}");
                seen = (state.clone(), attempts);
            }
            if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
                tracing::info!(job = id, seconds = started.elapsed().as_secs_f64(), "{id} ended {state}");
                return Ok(job);
            }
            if state == "running"
                && let Some(update) = self.logs(id, Some(50), None).ok().as_deref().and_then(latest_progress)
            {
                progress.report(&update);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(every);
        }
    }
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The last progress line (`phase`, `done`, `total`) of an attempt's JSON log.
fn latest_progress(log: &str) -> Option<Update> {
    log.lines().rev().find_map(|line| {
        let v: Value = serde_json::from_str(line).ok()?;
        let phase = match v.get("phase")?.as_str()? {
            "load" => "load",
            "fit" => "fit",
            "features" => "features",
            "evaluate" => "evaluate",
            "group_selection" => "group_selection",
            _ => "attempt",
        };
        let label = v.get("message")?.as_str()?.split(':').next()?.to_string();
        Some(Update {
            phase,
            label,
            done: usize::try_from(v.get("done")?.as_u64()?).ok()?,
            total: usize::try_from(v.get("total")?.as_u64()?).ok()?,
            loss: v.get("loss").and_then(Value::as_f64),
        })
    })
}

/// The body `trainyard submit` posts: the spec file (relative paths made absolute against its
/// directory, `--set` applied), its resource class and labels.
pub fn submission(
    spec: &Path,
    overrides: &[String],
    resources: Option<&str>,
    labels: &[String],
) -> Result<Value> {
    // Parsed and checked as `train` would, so a local mistake is reported before any request.
    let checked = crate::spec::CheckedSpec::from_file(spec, overrides)?;
    let mut value = serde_json::to_value(&checked.spec).map_err(|e| Error::Internal(e.to_string()))?;
    // The spec's directory as the service must see it: absolute, whatever our working directory.
    let base = std::env::current_dir()
        .map_err(|e| Error::Internal(format!("working directory: {e}")))?
        .join(&checked.base_dir);
    crate::serve::api::absolutize(&mut value, &base);
    let mut label_map = serde_json::Map::new();
    for l in labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--label: expected KEY=VALUE, got {l:?}")))?;
        label_map.insert(k.to_string(), Value::String(v.to_string()));
    }
    let mut body = json!({"spec": value, "labels": label_map});
    if let Some(class) = resources {
        body["resources"] = Value::String(class.to_string());
    }
    Ok(body)
}

/// The exit a waited-on job maps to: Ok for succeeded, else its last attempt's exit code.
pub fn outcome(job: &Value) -> Result<()> {
    let id = job["id"].as_str().unwrap_or("?");
    let last = job["attempts"].as_array().and_then(|a| a.last());
    let message = last.and_then(|a| a["message"].as_str()).unwrap_or("").to_string();
    match job["state"].as_str() {
        Some("succeeded") => Ok(()),
        Some("cancelled") => Err(Error::JobEnded { code: 143, message: format!("job {id} was cancelled") }),
        _ => {
            let code = last.and_then(|a| a["exit_code"].as_i64()).unwrap_or(1);
            let code = u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1);
            Err(Error::JobEnded { code, message: format!("job {id} failed (exit {code}): {message}") })
        }
    }
}

/// Microseconds since the epoch as RFC 3339, for people.
fn when(us: Option<i64>) -> String {
    us.and_then(chrono::DateTime::from_timestamp_micros)
        .map_or_else(|| "-".to_string(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// `jobs list` as a table.
pub fn list_table(page: &Value) -> String {
    let mut out = format!(
        "{:<34} {:<10} {:<24} {:<12} {:<10} {}\n",
        "ID", "STATE", "NAME", "OWNER", "CLASS", "CREATED"
    );
    for j in page["jobs"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<34} {:<10} {:<24} {:<12} {:<10} {}\n",
            j["id"].as_str().unwrap_or(""),
            j["state"].as_str().unwrap_or(""),
            j["name"].as_str().unwrap_or(""),
            j["owner"].as_str().unwrap_or(""),
            j["resources"].as_str().unwrap_or(""),
            when(j["created_at"].as_i64()),
        ));
    }
    if let Some(next) = page["next_cursor"].as_str() {
        out.push_str(&format!("more: --cursor {next}\n"));
    }
    out
}

/// `jobs show` for people.
pub fn describe(job: &Value) -> String {
    let s = |k: &str| job[k].as_str().unwrap_or("-").to_string();
    let mut out = format!(
        "job {}\n  name {}  owner {}  class {}\n  state {}\n  run {}\n",
        s("id"),
        s("name"),
        s("owner"),
        s("resources"),
        s("state"),
        s("run_path")
    );
    if let Some(test) = job.pointer("/result/test").and_then(Value::as_object) {
        let metrics: Vec<String> = test
            .iter()
            .filter_map(|(k, v)| match v.as_u64() {
                Some(n) => Some(format!("{k} {n}")),
                None => Some(format!("{k} {:.5}", v.as_f64()?)),
            })
            .collect();
        out.push_str(&format!("  test {}\n", metrics.join("  ")));
    }
    out.push_str("  attempts:\n");
    for a in job["attempts"].as_array().into_iter().flatten() {
        let exit = a["exit_code"].as_i64().map_or_else(|| "running".to_string(), |c| format!("exit {c}"));
        out.push_str(&format!(
            "    #{} {} {} -> {}  {exit}  {}\n",
            a["attempt"],
            a["executor"].as_str().unwrap_or(""),
            when(a["started_at"].as_i64()),
            when(a["finished_at"].as_i64()),
            a["message"].as_str().unwrap_or("")
        ));
    }
    out.push_str("  transitions:\n");
    for t in job["transitions"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "    {} {:<10} {}\n",
            when(t["at"].as_i64()),
            t["state"].as_str().unwrap_or(""),
            t["reason"].as_str().unwrap_or("")
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_progress_line_of_a_json_log_is_found() {
        let log = r#"{"level":"INFO","message":"loading"}
{"level":"INFO","phase":"fit","done":3,"total":10,"message":"iteration: 3/10"}
{"level":"INFO","phase":"fit","done":7,"total":10,"loss":0.25,"message":"iteration: 7/10  loss 0.25"}
{"level":"INFO","message":"wrote the run"}"#;
        let u = latest_progress(log).unwrap();
        assert_eq!(
            (u.phase, u.label.as_str(), u.done, u.total, u.loss),
            ("fit", "iteration", 7, 10, Some(0.25))
        );
        assert!(latest_progress("not json\n").is_none());
    }

    #[test]
    fn a_waited_job_exits_with_its_attempts_code() {
        let job = |state: &str, exits: &[i64]| json!({"id": "j", "state": state, "attempts": exits.iter().map(|e| json!({"exit_code": e, "message": "m"})).collect::<Vec<_>>()});
        assert!(outcome(&job("succeeded", &[1, 0])).is_ok());
        assert_eq!(outcome(&job("failed", &[2])).unwrap_err().exit_code(), 2);
        assert_eq!(outcome(&job("failed", &[1, 1, 1, 1])).unwrap_err().exit_code(), 1);
        assert_eq!(outcome(&job("failed", &[-1])).unwrap_err().exit_code(), 1);
        assert_eq!(outcome(&job("cancelled", &[])).unwrap_err().exit_code(), 143);
    }
}
