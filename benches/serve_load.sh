#!/usr/bin/env bash
# Submission throughput and POST /v1/jobs latency of `trainyard serve` under load with a kill -9
# in the middle: runs the load test (runtime/tests/serve_survives_load_and_kill_9.rs: 1,000
# submissions from 20 clients, 4 local slots, SIGKILL halfway, restart on the same state) with an
# optimized build and prints its numbers, one JSON line per backend. Set TRAINYARD_POSTGRES_URL
# (a server's admin URL) to measure PostgreSQL next to SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p trainyard --test serve_survives_load_and_kill_9 -- --nocapture 2>&1 \
  | grep '^serve load: ' | sed 's/^serve load: //'
