#!/usr/bin/env python3
"""Multinomial logistic regression: trainyard against scikit-learn, side by side in one invocation.

    python3 benches/multiclass.py                       # 250k and 1M rows, 10 classes
    python3 benches/multiclass.py --rows 100000 --classes 5 --rounds 1   # a quick look

The data is what users have: 32 float64 numeric columns (as pandas and Spark write them, 2% nulls
in every fourth column) and one string categorical column with 2,000 levels (Zipf-like), the
class drawn from a softmax of a seeded linear model over them. Train and test are separate
Parquet files (test = a quarter of the train rows). Each tool runs in a fresh process, end to end:

  (a) `trainyard train` (read, standardize, codes, fit, evaluate, write the run; l2 = 1/C);
  (b) pyarrow read + ColumnTransformer(SimpleImputer(median) + StandardScaler on the numerics,
      OneHotEncoder(handle_unknown="ignore") sparse on the categorical) + LogisticRegression(
      solver="lbfgs", C, tol, max_iter) (multinomial) fit + predict_proba + log loss.

Both use the same tolerance on the mean objective's gradient (scikit-learn averages the loss
since 1.2, as trainyard does). It prints a markdown table with wall seconds, peak RSS (wait4) and
test log loss and accuracy of each, and the ratio of scikit-learn's time to trainyard's.

Environment: TRAINYARD_BIN=/path/to/trainyard instead of $CARGO_TARGET_DIR/release/trainyard.
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

PEER = r"""
import json, sys, time
import numpy as np, pyarrow.parquet as pq
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
train, test, C, tol, max_iter = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
tr, te = pq.read_table(train).to_pandas(), pq.read_table(test).to_pandas()
numeric = [c for c in tr.columns if c.startswith("x")]
prep = ColumnTransformer([
    ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
    ("cat", OneHotEncoder(handle_unknown="ignore"), ["shop"]),
])
model = make_pipeline(prep, LogisticRegression(C=C, tol=tol, max_iter=max_iter))
t = time.perf_counter()
model.fit(tr[numeric + ["shop"]], tr["label"])
fit = time.perf_counter() - t
p = model.predict_proba(te[numeric + ["shop"]])
y = te["label"].values
print(json.dumps({"fit_seconds": fit, "log_loss": log_loss(y, p, labels=model.classes_),
                  "accuracy": accuracy_score(y, model.classes_[p.argmax(1)]),
                  "n_iter": int(model[-1].n_iter_[0])}))
"""


def make_data(out, rows, classes, seed):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    d, levels = 32, 2000
    w = rng.normal(0, 0.6, size=(d, classes))
    shop_effect = rng.normal(0, 1.0, size=(levels, classes))
    for name, n in [("train", rows), ("test", rows // 4)]:
        x = rng.normal(0, 1, size=(n, d))
        shop = np.minimum((levels + 1) ** rng.random(n) - 1, levels - 1).astype(np.int64)
        z = x @ w + shop_effect[shop]
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        label = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
        columns = {}
        for j in range(d):
            col = x[:, j].copy()
            mask = (rng.random(n) < 0.02) if j % 4 == 0 else None
            columns[f"x{j}"] = pa.array(col, mask=mask)
        columns["shop"] = pa.array([f"shop-{s}" for s in shop])
        columns["label"] = pa.array(label)
        pq.write_table(pa.table(columns), os.path.join(out, f"{name}.parquet"), row_group_size=256 * 1024)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="*", default=[250_000, 1_000_000])
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--max-iter", type=int, default=500)
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.environ.get("TRAINYARD_BIN", os.path.join(target, "release", "trainyard"))
    if "TRAINYARD_BIN" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "trainyard"], cwd=ROOT, check=True)
    print("| rows | classes | tool | wall s | fit s | peak MiB | test log loss | test accuracy | iterations | scikit-learn / trainyard |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            make_data(tmp, rows, args.classes, seed=rows)
            spec = {
                "name": "multiclass-bench",
                "data": {"features": [os.path.join(tmp, "train.parquet")]},
                "label": "label",
                "features": {"numeric": [f"x{j}" for j in range(32)], "categorical": ["shop"],
                             "min_category_count": 1},
                "holdout": {"files": [os.path.join(tmp, "test.parquet")]},
                "model": {"logistic": {"l2": args.l2, "tol": args.tol, "max_iter": args.max_iter}},
                "device": "cpu",
            }
            spec_path = os.path.join(tmp, "spec.json")
            with open(spec_path, "w") as f:
                json.dump(spec, f)
            peer = os.path.join(tmp, "peer.py")
            with open(peer, "w") as f:
                f.write(PEER)
            for _ in range(args.rounds):
                run = os.path.join(tmp, "run")
                wall, rss, _, failure = run_measured([binary, "train", spec_path, "--output", run, "--overwrite"])
                if failure:
                    sys.exit(f"trainyard failed: {failure}")
                with open(os.path.join(run, "metrics.json")) as f:
                    m = json.load(f)
                ours = wall
                print(f"| {rows} | {args.classes} | trainyard | {fmt(wall, 2)} | {fmt(m['phases']['fit'], 2)} | "
                      f"{fmt(rss, 0)} | {fmt(m['test']['log_loss'], 5)} | {fmt(m['test']['accuracy'], 4)} | "
                      f"{m['fit']['iterations']} | |")
                wall, rss, out, failure = run_measured(
                    [sys.executable, peer, os.path.join(tmp, "train.parquet"), os.path.join(tmp, "test.parquet"),
                     str(1.0 / args.l2), str(args.tol), str(args.max_iter)])
                if failure:
                    print(f"| {rows} | {args.classes} | scikit-learn | failed: {failure} | | | | | | |")
                    continue
                r = json.loads(out)
                print(f"| {rows} | {args.classes} | scikit-learn | {fmt(wall, 2)} | {fmt(r['fit_seconds'], 2)} | "
                      f"{fmt(rss, 0)} | {fmt(r['log_loss'], 5)} | {fmt(r['accuracy'], 4)} | {r['n_iter']} | "
                      f"{wall / ours:.1f}x |")


if __name__ == "__main__":
    main()
