#!/usr/bin/env python3
"""`trainyard runs list` over 10,000 runs, against the plain script a team would write first,
side by side in one invocation.

    python3 benches/runs_list.py                 # 10,000 runs, three rounds
    python3 benches/runs_list.py --runs 1000 --rounds 1   # a quick look

The runs root: --runs run folders under --work (default /tmp/trainyard-bench/runs-N), each
holding only a manifest.json, copied from a real run of the quick start (`trainyard train
examples/quickstart.json`, made once in the work folder) with its run id, name (one of 20 job
names), start time, duration and headline test metrics varied, plus a production pointer per
name made with `trainyard runs promote`. Manifests only, as the issue asks: the listing reads
nothing else. The folder is made once and reused (--fresh makes it again).

Measured, each in a fresh process, alternating for --rounds rounds, page cache warm (the folder
was just written or listed):
  (a) `trainyard runs list ROOT` (the table), (b) `--format json`, (c) `--name N --since DATE`
      (filters apply after the read, so this reads as much);
  (d) the script: os.scandir over the root, json.load of every manifest.json, the same fields
      picked and sorted by start time, printed as JSON (one process, no parallelism: what a
      quick script does).
Reported: median wall seconds and peak RSS, and each row's ratio to the script.

The trainyard binary is $TRAINYARD_BIN, else $CARGO_TARGET_DIR/release/trainyard (CARGO_TARGET_DIR
defaults to $HOME/.cache/trainyard-ci/target); --build runs `cargo build --release` first.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import fmt, run_measured  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import json, os, sys
root = sys.argv[1]
rows = []
with os.scandir(root) as entries:
    for e in entries:
        if e.name.startswith(".") or not e.is_dir():
            continue
        path = os.path.join(e.path, "manifest.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            m = json.load(f)
        s = m.get("summary") or {}
        rows.append({"run_id": m["run_id"], "name": m["name"], "status": m["status"],
                     "started_at": m["started_at"], "seconds": m["seconds"],
                     "test": s.get("test"), "test_rows": s.get("test_rows")})
rows.sort(key=lambda r: r["started_at"], reverse=True)
json.dump(rows, sys.stdout)
"""


def make_root(trainyard, work, runs):
    root = os.path.join(work, f"runs-{runs}")
    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return root
    seed_run = os.path.join(work, "seed-run")
    if not os.path.exists(os.path.join(seed_run, "manifest.json")):
        subprocess.check_call([trainyard, "train", os.path.join(ROOT, "examples", "quickstart.json"), "--output",
                               seed_run, "--overwrite"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    with open(os.path.join(seed_run, "manifest.json")) as f:
        seed = json.load(f)
    subprocess.check_call(["rm", "-rf", root])
    os.makedirs(root)
    names = [f"fraud-{i:02d}" for i in range(20)]
    for i in range(runs):
        m = dict(seed)
        name = names[i % len(names)]
        day, second = divmod(i, 86400 // 20)
        started = f"2025-{1 + (day // 28) % 12:02d}-{1 + day % 28:02d}T{(second * 20) // 3600 % 24:02d}:" \
                  f"{(second * 20) // 60 % 60:02d}:{(second * 20) % 60:02d}.000Z"
        m["name"] = name
        m["run_id"] = f"{name}-{i:06d}-{seed['spec_sha256'][:8]}"
        m["started_at"] = started
        m["seconds"] = 30.0 + (i * 7919) % 600
        summary = dict(seed.get("summary") or {})
        summary["test"] = {k: v + ((i * 31) % 100 - 50) * 1e-4 for k, v in (summary.get("test") or {}).items()}
        m["summary"] = summary
        folder = os.path.join(root, f"{name}-run-{i:06d}")
        os.makedirs(folder)
        with open(os.path.join(folder, "manifest.json"), "w") as f:
            json.dump(m, f, indent=2)
    # A production run per name, through the command users run (the manifests carry no gate).
    for j, name in enumerate(names):
        subprocess.check_call([trainyard, "runs", "promote", root, name, f"{name}-run-{j:06d}", "--by", "bench"],
                              stdout=subprocess.DEVNULL)
    open(done, "w").close()
    return root


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="/tmp/trainyard-bench")
    ap.add_argument("--fresh", action="store_true", help="make the runs root again")
    ap.add_argument("--build", action="store_true", help="cargo build --release the trainyard binary first")
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/trainyard-ci/target"))
    if args.build:
        subprocess.check_call(["cargo", "build", "--release", "--locked", "-p", "trainyard", "--bins"], cwd=ROOT,
                              env=dict(os.environ, CARGO_TARGET_DIR=target))
    trainyard = os.environ.get("TRAINYARD_BIN") or os.path.join(target, "release", "trainyard")
    os.makedirs(args.work, exist_ok=True)
    if args.fresh:
        subprocess.check_call(["rm", "-rf", os.path.join(args.work, f"runs-{args.runs}")])
    root = make_root(trainyard, args.work, args.runs)

    tools = {
        "trainyard runs list (table)": [trainyard, "runs", "list", root],
        "trainyard runs list --format json": [trainyard, "runs", "list", root, "--format", "json"],
        "trainyard runs list --name --since": [trainyard, "runs", "list", root, "--name", "fraud-07",
                                               "--since", "2025-01-02"],
        "python script (json.load each manifest)": [sys.executable, "-c", SCRIPT, root],
    }
    results = {k: [] for k in tools}
    lines = {}
    for _ in range(args.rounds):
        for label, cmd in tools.items():
            wall, rss, out, failure = run_measured(cmd)
            if failure:
                sys.exit(f"{label}: {failure}")
            results[label].append((wall, rss))
            lines[label] = out.count("\n") if "table" in label or "--since" in label else len(json.loads(out))
    script = statistics.median(w for w, _ in results["python script (json.load each manifest)"])
    print(f"\n{args.runs} runs (manifests only), {os.cpu_count()} cores, median of {args.rounds} rounds\n")
    print("| command | seconds | peak RSS MiB | rows out | vs the script |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, rs in results.items():
        wall = statistics.median(w for w, _ in rs)
        rss = max(r for _, r in rs)
        print(f"| {label} | {fmt(wall)} | {fmt(rss, 1)} | {lines[label]} | {fmt(script / wall, 2)}x |")


if __name__ == "__main__":
    main()
