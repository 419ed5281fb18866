#!/usr/bin/env python3
"""Scoring 1M rows: `trainyard predict` against onnxruntime on the exported model, side by side
in one invocation.

    TRAINYARD_BIN=target/release/trainyard ONNX_PYTHON=~/.cache/trainyard-ci/onnx/bin/python \
        python3 benches/onnx_scoring.py [--rows 1000000]

The data is adult's test file (../shared/datasets/adult; 6 integer and 8 string columns, nulls in
three of them) repeated to --rows rows. Three models are trained on adult's train file (binary
logistic, partitioned logistic by occupation, binary MLP [64, 32]) and exported with
`trainyard export`. Each tool runs in a fresh process:

  (a) `trainyard predict` end to end: read the Parquet file, build the design, score, write the
      scores as Parquet;
  (b) onnxruntime (CPUExecutionProvider, default threads): pyarrow reads the same file, the
      columns become the graph's inputs (float64 with NaN, strings with "" for null), one
      `session.run` over all rows, the probabilities written as Parquet. Its `session.run` alone
      is reported too: what a service that already holds its rows in memory pays.

It prints a markdown table of wall seconds, rows/s and peak RSS (wait4) per tool and model, and
the ratio of onnxruntime's end-to-end time to trainyard's.

Environment: TRAINYARD_BIN (default $CARGO_TARGET_DIR/release/trainyard), ONNX_PYTHON (a Python
with onnxruntime, pyarrow and numpy; .ci/onnx-check makes one under the CI cache),
TRAINYARD_DATASETS (default ../shared/datasets).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import fmt, run_measured  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TILE = r"""
import sys, pyarrow as pa, pyarrow.parquet as pq
src, out, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = pq.read_table(src)
t = pa.concat_tables([t] * (rows // t.num_rows + 1)).slice(0, rows)
pq.write_table(t, out, row_group_size=131072)
"""

PEER = r"""
import json, sys, time
import numpy as np, onnxruntime as ort, pyarrow as pa, pyarrow.parquet as pq
model, data, out = sys.argv[1:4]
t0 = time.perf_counter()
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
table = pq.read_table(data, columns=[i.name for i in session.get_inputs()])
feeds = {}
for i in session.get_inputs():
    c = table.column(i.name)
    if i.type == "tensor(double)":
        feeds[i.name] = c.cast(pa.float64()).to_numpy(zero_copy_only=False)
    else:
        feeds[i.name] = np.asarray(c.cast(pa.string()).fill_null("").to_numpy(zero_copy_only=False), dtype=object)
t1 = time.perf_counter()
probabilities, label = session.run(["probabilities", "label"], feeds)
t2 = time.perf_counter()
pq.write_table(pa.table({"score": probabilities[:, 1]}), out)
t3 = time.perf_counter()
print(json.dumps({"read": t1 - t0, "run": t2 - t1, "write": t3 - t2}))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    trainyard = os.environ.get("TRAINYARD_BIN", os.path.join(target, "release", "trainyard"))
    python = os.path.expanduser(os.environ.get("ONNX_PYTHON", "~/.cache/trainyard-ci/onnx/bin/python"))
    datasets = os.environ.get("TRAINYARD_DATASETS", os.path.join(ROOT, "..", "shared", "datasets"))
    adult = os.path.join(datasets, "adult")
    reference = json.load(open(os.path.join(adult, "reference.json")))
    work = tempfile.mkdtemp(prefix="trainyard-onnx-bench-")
    data = os.path.join(work, "score.parquet")
    subprocess.run([python, "-c", TILE, os.path.join(adult, "test.parquet"), data, str(args.rows)], check=True)

    models = {
        "logistic": {"model": {"logistic": {"l2": 1.0}}},
        "partitioned logistic": {
            "model": {"logistic": {"l2": 1.0}},
            "partition": {"by": "occupation", "min_rows": 800, "min_positives": 20, "select": "none", "l2": 1.0},
        },
        "MLP [64, 32]": {"model": {"mlp": {"hidden": [64, 32], "epochs": 4, "batch_size": 256}}},
    }
    print(f"{args.rows:,} rows of adult (6 integer, 8 string columns with nulls); {os.cpu_count()} cores\n")
    print("| model | tool | wall s | rows/s | peak RSS MiB | onnxruntime / trainyard |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, extra in models.items():
        features = dict(reference["features"])
        spec = {
            "name": "bench",
            "data": {"features": [os.path.join(adult, "train.parquet")]},
            "label": reference["label_column"],
            "features": features,
            "holdout": {"files": [os.path.join(adult, "test.parquet")]},
            **extra,
        }
        spec_path = os.path.join(work, "spec.json")
        json.dump(spec, open(spec_path, "w"))
        run_dir = os.path.join(work, "run-" + name.split()[0])
        subprocess.run(
            [trainyard, "--log-format", "json", "train", spec_path, "--output", run_dir, "--overwrite"],
            check=True,
            capture_output=True,
        )
        model = os.path.join(work, "model.onnx")
        subprocess.run([trainyard, "export", run_dir, "--out", model], check=True, capture_output=True)

        wall, rss, _, failure = run_measured(
            [trainyard, "predict", "--model", run_dir, "--data", data, "--out", os.path.join(work, "a.parquet")]
        )
        ours = wall
        print(f"| {name} | trainyard predict | {fmt(wall, 2)} | {args.rows / wall:,.0f} | {fmt(rss, 0)} | {failure or ''} |")
        wall, rss, out, failure = run_measured([python, "-c", PEER, model, data, os.path.join(work, "b.parquet")])
        if failure:
            print(f"| {name} | onnxruntime | | | | {failure} |")
            continue
        phases = json.loads(out)
        print(
            f"| {name} | onnxruntime (read + run + write) | {fmt(wall, 2)} | {args.rows / wall:,.0f} | {fmt(rss, 0)} "
            f"| {wall / ours:.2f} |"
        )
        print(f"| {name} | onnxruntime `session.run` only | {fmt(phases['run'], 2)} | {args.rows / phases['run']:,.0f} | | |")


if __name__ == "__main__":
    main()
