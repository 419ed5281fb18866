//! `trainyard serve` under load, killed with SIGKILL in the middle, restarted on the same state:
//! 1,000 submissions from 20 concurrent clients to a service with 4 local slots, on SQLite and on
//! PostgreSQL. Every submission is one job (clients retry with their idempotency key across the
//! outage), every job reaches one final state exactly once, no job's attempts overlap, no job
//! runs again after it succeeded, and at no instant do more than 4 attempts run, checked twice:
//! from the attempts' timestamps in the state store, and from a ledger each attempt's process
//! writes itself. The attempts stand in for `trainyard train` (a shell script that sleeps and
//! exits 0, or 2 for the jobs named `bad-*`): what is under test is the service, and real
//! training is covered by `serve_runs_jobs_end_to_end`.
//!
//! It prints the submission throughput and the latency percentiles of `POST /v1/jobs` (not
//! asserted; `benches/serve_load.sh` runs it in release for the README's numbers).

#![allow(clippy::unwrap_used)]

#[path = "common/serve.rs"]
mod serve;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve::{Server, backends, quickstart};

const SUBMISSIONS: usize = 1000;
const CLIENTS: usize = 20;
const SLOTS: usize = 4;

/// The attempt: appends `start`/`end` lines (pid, spec, nanoseconds) to the ledger (the path
/// replaces `LEDGER`).
const ATTEMPT: &str = r#"#!/bin/sh
spec="$4"
echo "start $$ $spec $(date +%s%N)" >> "LEDGER"
sleep 0.05
if grep -q '"name":"bad-' "$spec"; then
  echo '{"level":"ERROR","message":"data.features[0]: injected data error"}' >&2
  echo "end $$ $spec $(date +%s%N) 2" >> "LEDGER"
  exit 2
fi
echo "end $$ $spec $(date +%s%N) 0" >> "LEDGER"
"#;

/// A free loopback port, so the restarted service listens where the clients already point.
/// Below Linux's ephemeral range (32768 up): a client reconnecting there while the service is
/// down could otherwise be handed the port itself and connect to itself, holding it.
fn free_port() -> u16 {
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    (0..1000u64)
        .map(|i| {
            20_000 + (seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i * 7919) % 12_000) as u16
        })
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .unwrap()
}

/// The most intervals open at one instant.
fn max_overlap(intervals: &[(i64, i64)]) -> usize {
    let mut events: Vec<(i64, i32)> = intervals.iter().flat_map(|&(a, b)| [(a, 1), (b, -1)]).collect();
    // Ends before starts at the same instant: a slot handed over is not two attempts.
    events.sort();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, d) in events {
        open += d;
        most = most.max(open);
    }
    most as usize
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn every_job_ends_once_within_the_slots_through_a_kill_9_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for (b, state) in backends(dir.path()).into_iter().enumerate() {
        eprintln!("backend {state}");
        let runs = dir.path().join(format!("runs-{b}"));
        let ledger = dir.path().join(format!("ledger-{b}"));
        let script = dir.path().join(format!("attempt-{b}.sh"));
        std::fs::write(&script, ATTEMPT.replace("LEDGER", ledger.to_str().unwrap())).unwrap();
        std::process::Command::new("chmod").arg("+x").arg(&script).status().unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let extra = ["--train-binary", script.to_str().unwrap(), "--slots", &format!("cpu-small={SLOTS}")];
        let server = Arc::new(RwLock::new(Some(Server::start_on(&state, &runs, &listen, &extra))));
        let addr = server.read().unwrap().as_ref().unwrap().addr.clone();

        // 20 clients, 50 submissions each, each with its own idempotency key; a submission
        // that gets no answer (the service is down) is retried with the same key.
        let sent = Arc::new(AtomicUsize::new(0));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let ids = Arc::new(Mutex::new(BTreeMap::<String, String>::new()));
        let started = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (sent, latencies, ids, addr) =
                    (sent.clone(), latencies.clone(), ids.clone(), addr.clone());
                std::thread::spawn(move || {
                    for i in 0..SUBMISSIONS / CLIENTS {
                        let n = c * (SUBMISSIONS / CLIENTS) + i;
                        let key = format!("submission-{n}");
                        let mut spec = quickstart();
                        spec["name"] = json!(if n.is_multiple_of(10) {
                            format!("bad-{n}")
                        } else {
                            format!("load-{n}")
                        });
                        let probe = Server::probe(&addr);
                        let retry_until = Instant::now() + Duration::from_secs(120);
                        let (latency, id) = loop {
                            let t = Instant::now();
                            match probe.try_json(
                                "POST",
                                "/v1/jobs",
                                Some(&spec),
                                &[("Idempotency-Key", &key)],
                            ) {
                                // A reply cut short by the kill has no id: retried like no reply.
                                Some((200 | 201, body)) if body["id"].is_string() => {
                                    break (
                                        t.elapsed().as_secs_f64(),
                                        body["id"].as_str().unwrap().to_string(),
                                    );
                                }
                                Some((200 | 201, _)) => std::thread::sleep(Duration::from_millis(20)),
                                Some((status, body)) => panic!("submission {n}: {status} {body}"),
                                None => {
                                    assert!(Instant::now() < retry_until, "the service did not come back");
                                    std::thread::sleep(Duration::from_millis(20));
                                }
                            }
                        };
                        latencies.lock().unwrap().push(latency);
                        ids.lock().unwrap().insert(key, id);
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();

        // Halfway through, kill -9 the service while attempts run, and start it again.
        while sent.load(Ordering::SeqCst) < SUBMISSIONS / 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut old = server.write().unwrap().take().unwrap();
        old.child.kill().unwrap();
        old.child.wait().unwrap();
        let killed_at = Instant::now();
        std::thread::sleep(Duration::from_millis(300));
        *server.write().unwrap() = Some(Server::start_on(&state, &runs, &listen, &extra));
        eprintln!("killed with SIGKILL after {} submissions; restarted", sent.load(Ordering::SeqCst));
        for c in clients {
            c.join().unwrap();
        }
        let submit_seconds = started.elapsed().as_secs_f64();

        // Wait for the queue to drain.
        let guard = server.read().unwrap();
        let srv = guard.as_ref().unwrap();
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let (_, prometheus) = srv.call("GET", "/metrics", None, &[]);
            let pending = ["queued", "running"]
                .iter()
                .filter_map(|s| {
                    prometheus.lines().find(|l| l.starts_with(&format!("trainyard_jobs{{state=\"{s}\"}}")))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
                .sum::<i64>();
            if pending == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "jobs still pending: {prometheus}");
            std::thread::sleep(Duration::from_millis(200));
        }
        let drained_seconds = started.elapsed().as_secs_f64();

        // Every submission is one job.
        let ids = ids.lock().unwrap().clone();
        let distinct: std::collections::BTreeSet<&String> = ids.values().collect();
        assert_eq!((ids.len(), distinct.len()), (SUBMISSIONS, SUBMISSIONS));
        let mut listed = 0;
        let mut cursor = String::new();
        loop {
            let (_, page) = srv.json("GET", &format!("/v1/jobs?limit=1000&cursor={cursor}"), None, &[]);
            let jobs = page["jobs"].as_array().unwrap();
            listed += jobs.len();
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        assert_eq!(listed, SUBMISSIONS, "no job was stored twice");

        // Each job: one final transition, its expected outcome, attempts that never overlap,
        // nothing after a success.
        let mut intervals = Vec::new();
        let mut lost = 0;
        for (key, id) in &ids {
            let (status, job) = srv.json("GET", &format!("/v1/jobs/{id}"), None, &[]);
            assert_eq!(status, 200);
            let n: usize = key.trim_start_matches("submission-").parse().unwrap();
            let finals: Vec<&Value> = job["transitions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| ["succeeded", "failed", "cancelled"].contains(&t["state"].as_str().unwrap()))
                .collect();
            assert_eq!(finals.len(), 1, "one final state: {job}");
            let attempts = job["attempts"].as_array().unwrap();
            let codes: Vec<i64> = attempts.iter().map(|a| a["exit_code"].as_i64().unwrap()).collect();
            lost += codes.iter().filter(|c| **c == -1).count();
            let expected = if n.is_multiple_of(10) { ("failed", 2) } else { ("succeeded", 0) };
            assert_eq!((job["state"].as_str().unwrap(), *codes.last().unwrap()), expected, "{job}");
            assert!(
                codes[..codes.len() - 1].iter().all(|c| *c == -1),
                "only the kill's attempts are retried: {job}"
            );
            let mut previous_end = 0;
            for a in attempts {
                let (s, e) = (a["started_at"].as_i64().unwrap(), a["finished_at"].as_i64().unwrap());
                assert!(s >= previous_end && e >= s, "attempts of {id} overlap: {job}");
                previous_end = e;
                intervals.push((s, e));
            }
        }
        let store_overlap = max_overlap(&intervals);
        assert!(store_overlap <= SLOTS, "{store_overlap} attempts at once in the state store");

        // The ledger, written by the attempts themselves: at most 4 processes at once; each job
        // run to its end once, except a job whose attempt the kill left unrecorded (its process
        // may have ended just before the kill, and the retry runs it again); no process of an
        // attempt the service recorded as lost is still unaccounted for.
        let text = std::fs::read_to_string(&ledger).unwrap();
        let lost_jobs: std::collections::BTreeSet<String> = ids
            .values()
            .filter(|id| {
                srv.json("GET", &format!("/v1/jobs/{id}"), None, &[]).1["attempts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["exit_code"] == -1)
            })
            .cloned()
            .collect();
        let mut runs_of: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut open: BTreeMap<String, i64> = BTreeMap::new();
        let mut process_intervals = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let (kind, pid, spec, t) = (f[0], f[1], f[2], f[3].parse::<i64>().unwrap());
            let entry = runs_of.entry(spec.to_string()).or_default();
            if kind == "start" {
                entry.0 += 1;
                open.insert(pid.to_string(), t);
            } else {
                entry.1 += 1;
                process_intervals.push((open.remove(pid).unwrap(), t));
            }
        }
        assert_eq!(runs_of.len(), SUBMISSIONS, "every job ran");
        let mut ran_again = 0;
        for (spec, (_, ended)) in &runs_of {
            // The spec of job ID is LOGS/ID/spec.json.
            let id = Path::new(spec).parent().unwrap().file_name().unwrap().to_str().unwrap();
            if lost_jobs.contains(id) {
                assert!((1..=2).contains(ended), "{id} ended {ended} times");
                ran_again += usize::from(*ended == 2);
            } else {
                assert_eq!(*ended, 1, "{id} ran to its end {ended} times");
            }
        }
        // A claimed attempt may not have started its process when the kill came.
        assert!(open.len() <= lost, "{} processes never ended, {lost} attempts were lost", open.len());
        // The killed processes ran until the kill at the latest.
        let kill_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap()
            - i64::try_from(killed_at.elapsed().as_nanos()).unwrap();
        process_intervals.extend(open.values().map(|&s| (s, kill_ns)));
        let process_overlap = max_overlap(&process_intervals);
        assert!(process_overlap <= SLOTS, "{process_overlap} attempt processes at once");
        assert!(lost >= 1, "the kill hit no running attempt, so the restart was not tested");

        let mut sorted = latencies.lock().unwrap().clone();
        sorted.sort_by(f64::total_cmp);
        let report = json!({
            "backend": state.split(':').next(),
            "submissions": SUBMISSIONS,
            "clients": CLIENTS,
            "slots": SLOTS,
            "submissions_per_second": SUBMISSIONS as f64 / submit_seconds,
            "post_latency_ms": {"p50": 1e3 * percentile(&sorted, 0.5), "p99": 1e3 * percentile(&sorted, 0.99), "max": 1e3 * sorted[sorted.len() - 1]},
            "seconds_to_drain": drained_seconds,
            "attempts_lost_to_the_kill": lost,
            "jobs_run_to_the_end_twice": ran_again,
            "most_attempts_at_once": {"state_store": store_overlap, "ledger": process_overlap},
        });
        println!("serve load: {report}");
        drop(guard);
    }
}
