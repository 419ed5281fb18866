//! `trainyard serve` end to end on loopback with the local executor, one test body against
//! SQLite and (with `TRAINYARD_POSTGRES_URL`, required in CI by `TRAINYARD_REQUIRE_POSTGRES=1`)
//! a fresh database on a real PostgreSQL server: a quick-start job succeeds with its metrics, a
//! bad spec is 400 with the CLI's message, a data error fails without a retry, an exit-1 fault is
//! retried up to the backoff limit and then fails, a running job is cancelled, a resubmission with
//! the same idempotency key is the same job, and tokens see only their owner's jobs; the CLI
//! client (`submit --wait`, `jobs list|show|cancel|logs`), the registry routes, the OpenAPI
//! document, the Prometheus histograms and the body limit.

#![allow(clippy::unwrap_used)]

#[path = "common/serve.rs"]
mod serve;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve::{Server, backends, client, examples, quickstart};

#[test]
fn jobs_succeed_fail_retry_cancel_and_stay_private_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for (i, state) in backends(dir.path()).into_iter().enumerate() {
        eprintln!("backend {state}");
        let runs = dir.path().join(format!("runs-{i}"));
        let server = Server::start(&state, &runs, &[]);

        // A quick-start job succeeds, with its test metrics in the job and its files served.
        let (status, created) =
            server.json("POST", "/v1/jobs", Some(&quickstart()), &[("Idempotency-Key", "q1")]);
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["state"], "queued");
        let id = created["id"].as_str().unwrap().to_string();
        let (status, again) =
            server.json("POST", "/v1/jobs", Some(&quickstart()), &[("Idempotency-Key", "q1")]);
        assert_eq!((status, again["id"].as_str()), (200, Some(id.as_str())), "the same key is the same job");
        let job = server.wait(&id, &[]);
        assert_eq!(job["state"], "succeeded", "{job}");
        assert!(job["result"]["test"]["roc_auc"].as_f64().unwrap() > 0.7, "{job}");
        assert_eq!(job["attempts"].as_array().unwrap().len(), 1);
        let states: Vec<&str> =
            job["transitions"].as_array().unwrap().iter().map(|t| t["state"].as_str().unwrap()).collect();
        assert_eq!(states, ["queued", "running", "succeeded"]);
        let (status, metrics) = server.json("GET", &format!("/v1/jobs/{id}/metrics"), None, &[]);
        assert_eq!(status, 200);
        assert_eq!(metrics["test"], job["result"]["test"]);
        let (status, logs) = server.call("GET", &format!("/v1/jobs/{id}/logs?tail=1"), None, &[]);
        assert_eq!(status, 200);
        assert!(logs.contains("trained on"), "{logs}");

        // The same through the CLI client, from another directory and with a relative spec
        // path: `submit` makes the spec's relative paths absolute against its file, `--wait` exits 0, `jobs` shows the job.
        let url = format!("http://{}", server.addr);
        let submitted = client(
            &["submit", "examples/quickstart.json", "--label", "project=p1", "--wait"],
            &url,
            &examples().join(".."),
        );
        assert_eq!(submitted.status.code(), Some(0), "{}", String::from_utf8_lossy(&submitted.stderr));
        let stdout = String::from_utf8_lossy(&submitted.stdout);
        let cli_id = stdout.lines().next().unwrap().trim().to_string();
        assert!(cli_id.starts_with("job-"), "{stdout}");
        let shown = client(&["jobs", "show", &cli_id, "--format", "json"], &url, dir.path());
        let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
        assert_eq!(
            (shown["state"].as_str(), shown["labels"]["project"].as_str()),
            (Some("succeeded"), Some("p1"))
        );
        assert_eq!(
            shown["result"]["test"], job["result"]["test"],
            "the same spec and data give the same metrics"
        );
        let table = client(&["jobs", "list", "--name", "quickstart"], &url, dir.path());
        let table = String::from_utf8_lossy(&table.stdout);
        assert!(table.contains(&cli_id) && table.contains(&id) && table.contains("succeeded"), "{table}");
        let log = client(&["jobs", "logs", &cli_id, "--tail", "1"], &url, dir.path());
        assert!(String::from_utf8_lossy(&log.stdout).contains("trained on"));
        let text = client(&["jobs", "show", &cli_id], &url, dir.path());
        assert!(
            String::from_utf8_lossy(&text.stdout).contains("roc_auc"),
            "{}",
            String::from_utf8_lossy(&text.stdout)
        );

        // The registry behind the runs root: no production run, then the promoted one.
        let (status, _) = server.json("GET", "/v1/models/quickstart/production", None, &[]);
        assert_eq!(status, 404);
        let promoted = Command::new(env!("CARGO_BIN_EXE_trainyard"))
            .args(["runs", "promote"])
            .arg(&runs)
            .args(["quickstart", job["run_path"].as_str().unwrap(), "--by", "test"])
            .output()
            .unwrap();
        assert!(promoted.status.success(), "{}", String::from_utf8_lossy(&promoted.stderr));
        let (status, pointer) = server.json("GET", "/v1/models/quickstart/production", None, &[]);
        assert_eq!((status, &pointer["run_id"]), (200, &job["result"]["run_id"]), "{pointer}");
        let (_, history) = server.json("GET", "/v1/models/quickstart/history", None, &[]);
        assert_eq!(history["promotions"].as_array().unwrap().len(), 1, "{history}");
        assert_eq!(server.json("GET", "/v1/models/no%20such/production", None, &[]).0, 400);

        // The OpenAPI document, the Prometheus text, and the body limit.
        let (status, doc) = server.json("GET", "/v1/openapi.json", None, &[]);
        assert_eq!((status, doc["openapi"].as_str()), (200, Some("3.1.0")));
        let (_, prometheus) = server.call("GET", "/metrics", None, &[]);
        assert!(prometheus.contains("trainyard_jobs{state=\"succeeded\"} 2"), "{prometheus}");
        assert!(prometheus.contains("trainyard_job_queue_seconds_count 2"), "{prometheus}");
        assert!(prometheus.contains("trainyard_attempt_run_seconds_count 2"), "{prometheus}");
        let mut huge = quickstart();
        huge["params"]["padding"] = json!("x".repeat(1 << 20));
        assert_eq!(server.call("POST", "/v1/jobs", Some(&huge), &[]).0, 413);

        // A bad spec is 400 naming the field, with exactly the CLI's message.
        let mut bad = quickstart();
        bad["model"]["logistic"]["l2"] = json!(-1.0);
        let (status, error) = server.json("POST", "/v1/jobs", Some(&bad), &[]);
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["field"], "model.logistic.l2");
        let spec_path = dir.path().join("bad.json");
        let mut bad_file = bad.clone();
        bad_file["data"]["features"] =
            json!([examples().join("data/charges/*.parquet").display().to_string()]);
        bad_file["data"]["labels"] = json!([examples().join("data/labels.parquet").display().to_string()]);
        std::fs::write(&spec_path, bad_file.to_string()).unwrap();
        let cli =
            Command::new(env!("CARGO_BIN_EXE_trainyard")).arg("validate").arg(&spec_path).output().unwrap();
        assert_eq!(cli.status.code(), Some(2));
        let cli_message = String::from_utf8_lossy(&cli.stderr);
        assert!(cli_message.contains(error["error"].as_str().unwrap()), "API {error} vs CLI {cli_message}");

        // A data error fails at once: one attempt, exit 2, its message kept.
        let mut missing = quickstart();
        missing["data"]["features"] = json!(["data/nothing/*.parquet"]);
        let (_, created) = server.json("POST", "/v1/jobs", Some(&missing), &[]);
        let job = server.wait(created["id"].as_str().unwrap(), &[]);
        assert_eq!(job["state"], "failed", "{job}");
        let attempts = job["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{job}");
        assert_eq!(attempts[0]["exit_code"], 2);
        assert!(attempts[0]["message"].as_str().unwrap().contains("data.features[0]"), "{job}");

        // `submit --wait` exits with the job's exit code.
        let missing_file = dir.path().join("missing.json");
        let mut missing_abs = missing.clone();
        missing_abs["data"]["labels"] = json!([examples().join("data/labels.parquet").display().to_string()]);
        std::fs::write(&missing_file, missing_abs.to_string()).unwrap();
        let waited = client(&["submit", missing_file.to_str().unwrap(), "--wait"], &url, dir.path());
        assert_eq!(waited.status.code(), Some(2), "{}", String::from_utf8_lossy(&waited.stderr));

        // Listing: newest first, filtered by state.
        let (_, listed) = server.json("GET", "/v1/jobs?state=failed", None, &[]);
        assert_eq!(listed["jobs"].as_array().unwrap().len(), 2, "{listed}");
        let (_, page) = server.json("GET", "/v1/jobs?limit=2", None, &[]);
        let cursor = page["next_cursor"].as_str().unwrap();
        let (_, rest) = server.json("GET", &format!("/v1/jobs?limit=10&cursor={cursor}"), None, &[]);
        assert_eq!(rest["jobs"].as_array().unwrap().len(), 2, "4 jobs in all: {page} {rest}");
        drop(server);

        // A program that exits 1 ("sleepy" jobs sleep until killed): retried up to the backoff
        // limit, then failed; a running job is cancelled with SIGTERM.
        let fault = dir.path().join("fault.sh");
        std::fs::write(&fault, "#!/bin/sh\ngrep -q '\"name\":\"sleepy\"' \"$4\" && exec sleep 60\necho '{\"level\":\"ERROR\",\"message\":\"injected fault\"}' >&2\nexit 1\n").unwrap();
        Command::new("chmod").arg("+x").arg(&fault).status().unwrap();
        let server = Server::start(&state, &runs, &["--train-binary", fault.to_str().unwrap()]);
        let (_, created) = server.json("POST", "/v1/jobs", Some(&quickstart()), &[]);
        let job = server.wait(created["id"].as_str().unwrap(), &[]);
        assert_eq!(job["state"], "failed", "{job}");
        let codes: Vec<i64> =
            job["attempts"].as_array().unwrap().iter().map(|a| a["exit_code"].as_i64().unwrap()).collect();
        assert_eq!(codes, [1, 1, 1, 1], "one attempt and backoffLimit 3 retries: {job}");
        assert_eq!(job["attempts"][0]["message"], "injected fault");
        let mut sleepy = quickstart();
        sleepy["name"] = json!("sleepy");
        let (_, created) = server.json("POST", "/v1/jobs", Some(&sleepy), &[]);
        let id = created["id"].as_str().unwrap().to_string();
        let started = Instant::now();
        while server.json("GET", &format!("/v1/jobs/{id}"), None, &[]).1["state"] != "running" {
            assert!(started.elapsed() < Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(50));
        }
        let cancelled = client(&["jobs", "cancel", &id], &format!("http://{}", server.addr), dir.path());
        assert!(cancelled.status.success(), "{}", String::from_utf8_lossy(&cancelled.stderr));
        let job = server.wait(&id, &[]);
        assert_eq!(job["state"], "cancelled", "{job}");
        assert_eq!(job["attempts"][0]["exit_code"], 143, "{job}");
        drop(server);

        // Tokens: no token is 401, another owner's job is 404, the admin sees it.
        let tokens = dir.path().join("tokens.json");
        std::fs::write(
            &tokens,
            r#"{"ta": {"owner": "a"}, "tb": {"owner": "b"}, "tadmin": {"owner": "ops", "admin": true}}"#,
        )
        .unwrap();
        let server =
            Server::start(&state, &runs, &["--auth", tokens.to_str().unwrap(), "--slots", "cpu-small=0"]);
        let (status, _) = server.json("POST", "/v1/jobs", Some(&quickstart()), &[]);
        assert_eq!(status, 401);
        let (status, created) =
            server.json("POST", "/v1/jobs", Some(&quickstart()), &[("Authorization", "Bearer ta")]);
        assert_eq!(status, 400, "no slots for cpu-small on this service: {created}");
        let mut large = quickstart();
        large["resources"] = json!("cpu-large");
        let (status, created) =
            server.json("POST", "/v1/jobs", Some(&large), &[("Authorization", "Bearer ta")]);
        assert_eq!(status, 201, "{created}");
        let path = format!("/v1/jobs/{}", created["id"].as_str().unwrap());
        assert_eq!(server.json("GET", &path, None, &[("Authorization", "Bearer tb")]).0, 404);
        assert_eq!(
            server.json("POST", &format!("{path}/cancel"), None, &[("Authorization", "Bearer tb")]).0,
            404
        );
        assert_eq!(server.json("GET", &path, None, &[("Authorization", "Bearer tadmin")]).0, 200);
        let url = format!("http://{}", server.addr);
        let id_a = created["id"].as_str().unwrap();
        let other = client(&["jobs", "show", id_a, "--token", "tb"], &url, dir.path());
        assert_eq!(other.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&other.stderr).contains("404"),
            "{}",
            String::from_utf8_lossy(&other.stderr)
        );
        let none = client(&["jobs", "list"], &url, dir.path());
        assert!(
            String::from_utf8_lossy(&none.stderr).contains("401"),
            "{}",
            String::from_utf8_lossy(&none.stderr)
        );
        let (_, listed) = server.json("GET", "/v1/jobs?owner=a", None, &[("Authorization", "Bearer tb")]);
        assert!(listed["jobs"].as_array().unwrap().iter().all(|j| j["owner"] == "b"), "{listed}");
    }
}
