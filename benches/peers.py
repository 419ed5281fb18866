#!/usr/bin/env python3
"""trainyard's logistic path against its peers, side by side in one invocation.

    python3 benches/peers.py                      # 1M x 32 and 4M x 64, float32 and float64, two rounds
    python3 benches/peers.py --sizes 200000x16 --dtypes float32   # a quick look

For each size and each of --dtypes it makes numeric data with `trainyard synth --numeric` (float32
columns, or with `--float64` the same values stored as double, as Spark and pandas write them; the
last of five part files is the test set, the rest train), then alternates:
  (a) `trainyard train` end to end (read, split, standardize, fit, evaluate, write the run);
  (b) pyarrow read (into a float32 matrix for float32 data, float64 for float64: what a numpy,
      pandas or Spark user gets) + StandardScaler + scikit-learn LogisticRegression(
      solver="lbfgs", C=1/l2, tol, max_iter) fit + predict + AUC, in its own process;
  (c) the fit alone on both sides (from (a)'s metrics.json and (b)'s own timer);
  (d) linfa-logistic on the smallest size, on exactly trainyard's design matrix;
  (e) polars reading all the files into a row-major f32 matrix, against trainyard's load phase
      (Parquet to row-major f32 train and test rows) and its load + features phases (to the
      standardized design matrices).
Each tool runs in a fresh process; peak RSS comes from wait4(). It prints a markdown table with
the ratio of every peer's time to trainyard's, and the memory-bandwidth floor: the bytes one
objective pass reads divided by this machine's measured read bandwidth, against trainyard's
measured seconds per pass. With both dtypes, each size also gets trainyard's float64 end-to-end
time over its float32 one (trainyard's matrix is f32 either way, so this is the cost of decoding
and narrowing doubles), and the memory target (1.5 x the f32 matrix + 300 MiB) holds for both.

Environment: TRAINYARD_BIN=/path/to/trainyard runs that binary, and the `bandwidth` and
`linfa_fit` helpers from its folder, instead of those in $CARGO_TARGET_DIR/release (use it with
--no-build, e.g. for a debug build).

It installs numpy, pyarrow, scikit-learn and polars with pip when they are missing, and builds the
release binaries with cargo (skip with --no-build).
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

from measure import fmt
from measure import run_measured as measured


def run_measured(cmd, env=None):
    """Wall seconds, peak RSS MiB and stdout; a failed tool stops the benchmark."""
    wall, rss, out, failure = measured(cmd, env)
    if failure:
        sys.exit(f"{' '.join(cmd[:3])} ... failed: {failure}")
    return wall, rss, out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
L2, TOL, MAX_ITER = 1.0, 1e-4, 1000
PARTS = 5

SKLEARN = r"""
import json, sys, time, glob
t0 = time.perf_counter()
import numpy as np, pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.metrics import roc_auc_score, log_loss
from threadpoolctl import threadpool_limits
data, features, l2, tol, max_iter, blas, dtype = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
files = sorted(glob.glob(data + "/part-*.parquet"))
cols = [f"x{j}" for j in range(features)]
def read(paths):
    t = pq.read_table(paths, columns=cols + ["label"])
    x = np.empty((t.num_rows, features), dtype=dtype)  # row-major, as trainyard's matrix; the file's precision
    for j, c in enumerate(cols):
        x[:, j] = t.column(c).to_numpy()
    return x, t.column("label").to_numpy()
t = time.perf_counter()
x, y = read(files[:-1])
xt, yt = read(files[-1:])
read_s = time.perf_counter() - t
# Count objective evaluations (one pass over the data each), the unit trainyard reports.
from sklearn.linear_model import _linear_loss
evaluations = [0]
_loss_gradient = _linear_loss.LinearModelLoss.loss_gradient
def counted(self, *a, **k):
    evaluations[0] += 1
    return _loss_gradient(self, *a, **k)
_linear_loss.LinearModelLoss.loss_gradient = counted
with threadpool_limits(limits=blas):
    t = time.perf_counter()
    scaler = StandardScaler().fit(x)
    x = scaler.transform(x); xt = scaler.transform(xt)
    prep_s = time.perf_counter() - t
    t = time.perf_counter()
    model = LogisticRegression(solver="lbfgs", C=1.0 / l2, tol=tol, max_iter=max_iter).fit(x, y)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    p = model.predict_proba(xt)[:, 1]
    auc, ll = roc_auc_score(yt, p), log_loss(yt, p)
    eval_s = time.perf_counter() - t
print(json.dumps({"read_s": read_s, "prep_s": prep_s, "fit_s": fit_s, "eval_s": eval_s,
                  "n_iter": int(model.n_iter_[0]), "evaluations": evaluations[0], "auc": auc, "log_loss": ll,
                  "coef": model.coef_[0].tolist(), "intercept": float(model.intercept_[0]),
                  "total_s": time.perf_counter() - t0}))
"""


POLARS = r"""
import glob, json, sys, time
t0 = time.perf_counter()
import polars as pl
data, features = sys.argv[1], int(sys.argv[2])
files = sorted(glob.glob(data + "/part-*.parquet"))
t = time.perf_counter()
df = pl.read_parquet(files, columns=[f"x{j}" for j in range(features)])
x = df.select(pl.all().cast(pl.Float32)).to_numpy(order="c")  # row-major f32, as trainyard's matrix
assert x.dtype.name == "float32" and x.flags["C_CONTIGUOUS"]
print(json.dumps({"read_s": time.perf_counter() - t, "rows": x.shape[0], "polars": pl.__version__}))
"""


def ensure_python_peers():
    # Checked in a child: Linux carries the parent's RSS high-water mark into every child it
    # execs (wait4's ru_maxrss), so a parent holding numpy and friends would floor every peak.
    if subprocess.run([sys.executable, "-c", "import numpy, pyarrow, sklearn, threadpoolctl, polars"], capture_output=True).returncode != 0:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "numpy", "pyarrow", "scikit-learn", "threadpoolctl", "polars"])


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = list(struct.unpack(f"<{(b - a) // 8}d", blob[a:b]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000x32,4000000x64")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "trainyard-peers"))
    ap.add_argument("--blas-threads", type=int, default=1, help="scikit-learn's BLAS threads (1: one pool on 2 cores)")
    ap.add_argument("--dtypes", default="float32,float64", help="feature column types to store the data as, comma-separated")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    dtypes = [t for t in args.dtypes.split(",") if t]
    if not dtypes or set(dtypes) - {"float32", "float64"}:
        sys.exit(f"--dtypes: choose from float32,float64, got {args.dtypes!r}")

    ensure_python_peers()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.no_build:
        subprocess.check_call(["cargo", "build", "--release", "--locked", "-p", "trainyard", "-p", "trainyard-benches", "--bins"], cwd=ROOT)
    trainyard = os.environ.get("TRAINYARD_BIN") or os.path.join(target, "release", "trainyard")
    bin_dir = os.path.dirname(os.path.abspath(trainyard))
    if "float64" in dtypes and "--float64" not in subprocess.run([trainyard, "synth", "--help"], capture_output=True, text=True).stdout:
        sys.exit(f"{trainyard} predates `synth --float64`: rebuild it, or point TRAINYARD_BIN at a newer one")
    bw = json.loads(subprocess.check_output([os.path.join(bin_dir, "bandwidth"), "1024"]))
    os.makedirs(args.work, exist_ok=True)
    env_sklearn = dict(os.environ, OMP_NUM_THREADS="1")
    # This machine sets these for old OpenBLAS builds; they slow a current numpy (see the env notes).
    env_sklearn.pop("OPENBLAS_CORETYPE", None)
    env_sklearn.pop("OPENBLAS_L2_SIZE", None)

    rows_out = []
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    for si, (n, d) in enumerate(sizes):
        end_to_end = {}
        for dtype in dtypes:
            data = os.path.join(args.work, f"num-{n}x{d}-{dtype}")
            if not os.path.isdir(data):
                wide = ["--float64"] if dtype == "float64" else []
                subprocess.check_call([trainyard, "synth", "--numeric", str(d), "--rows", str(n), "--files", str(PARTS), *wide, "--out", data], stdout=subprocess.DEVNULL)
            parts = sorted(f for f in os.listdir(data) if f.endswith(".parquet"))
            spec = {
                "name": f"peers-{n}x{d}-{dtype}",
                "data": {"features": [os.path.join(data, p) for p in parts[:-1]]},
                "label": "label",
                "features": {"numeric": [f"x{j}" for j in range(d)]},
                "holdout": {"files": [os.path.join(data, parts[-1])]},
                "model": {"logistic": {"l2": L2, "tol": TOL, "max_iter": MAX_ITER}},
            }
            spec_path = os.path.join(args.work, f"spec-{n}x{d}-{dtype}.json")
            with open(spec_path, "w") as f:
                json.dump(spec, f)
            run_dir = os.path.join(args.work, f"run-{n}x{d}-{dtype}")
            ty, sk, pl = [], [], []
            for _ in range(args.rounds):
                wall, rss, _ = run_measured([trainyard, "train", spec_path, "--output", run_dir, "--overwrite", "--log-format", "json"])
                with open(os.path.join(run_dir, "metrics.json")) as f:
                    m = json.load(f)
                ty.append((wall, rss, m))
                wall, rss, out = run_measured([sys.executable, "-c", SKLEARN, data, str(d), str(L2), str(TOL), str(MAX_ITER), str(args.blas_threads), dtype], env_sklearn)
                sk.append((wall, rss, json.loads(out)))
                wall, rss, out = run_measured([sys.executable, "-c", POLARS, data, str(d)])
                pl.append((wall, rss, json.loads(out)))
            tw, trss, tm = min(ty, key=lambda r: r[0])
            sw, srss, sm = min(sk, key=lambda r: r[0])
            weights = read_safetensors(os.path.join(run_dir, "model.safetensors"))
            # Reproducibility: the same spec on one thread must give the same model bytes.
            one = run_dir + "-1thread"
            run_measured([trainyard, "train", spec_path, "--output", one, "--overwrite", "--log-format", "json"], dict(os.environ, RAYON_NUM_THREADS="1"))
            with open(os.path.join(one, "model.safetensors"), "rb") as a, open(os.path.join(run_dir, "model.safetensors"), "rb") as b:
                identical = a.read() == b.read()
            train_rows = tm["train"]["rows"]
            matrix_mib = train_rows * d * 4 / 2**20
            size_label = f"{n // 1000}k x {d}" if n < 10**6 else f"{n // 10**6}M x {d}"
            label = f"{size_label} {dtype}"
            end_to_end[dtype] = tw
            rows_out.append([label, "trainyard train (end to end)", tw, trss, tm["fit"]["objective_passes"], tm["test"]["roc_auc"], tm["test"]["log_loss"], 1.0])
            rows_out.append([label, f"model.safetensors on 1 thread vs {os.cpu_count()}: {'bitwise identical' if identical else 'DIFFERENT'}", None, None, None, None, None, None])
            sk_passes = f"{sm['evaluations']} ({sm['n_iter']} iter)"
            rows_out.append([label, "pyarrow + scikit-learn (end to end)", sw, srss, sk_passes, sm["auc"], sm["log_loss"], sw / tw])
            tf, sf = tm["phases"]["fit"], sm["fit_s"]
            rows_out.append([label, "trainyard fit only", tf, None, tm["fit"]["objective_passes"], None, None, 1.0])
            rows_out.append([label, "scikit-learn fit only", sf, None, sk_passes, None, None, sf / tf])
            per_pass = tf / max(tm["fit"]["objective_passes"], 1)
            floor = train_rows * d * 4 / (bw["gb_per_s"] * 1e9)
            rows_out.append([label, f"seconds per pass vs bandwidth floor ({bw['gb_per_s']:.1f} GB/s, {matrix_mib:.0f} MiB/pass)", per_pass, None, None, None, None, per_pass / floor])
            # Memory target: 1.5 x the f32 matrix of all rows (train and test) + 300 MiB, for
            # float64 files too: trainyard's matrix is f32 whatever the columns' type.
            all_rows = train_rows + tm["test"]["rows"]
            budget = 1.5 * all_rows * d * 4 / 2**20 + 300
            rows_out.append([label, f"trainyard peak RSS vs 1.5 x f32 matrix + 300 MiB ({budget:.0f} MiB)", None, trss, None, None, None, trss / budget])
            # The report (curves.json from every train and test score, then report.html) against
            # the whole run: its share of the end-to-end wall time is the ratio.
            report_kib = os.path.getsize(os.path.join(run_dir, "report.html")) / 1024
            rows_out.append([label, f"trainyard report phase (report.html {report_kib:.0f} KiB), share of end to end", tm["phases"]["report"], None, None, None, None, tm["phases"]["report"] / tw])
            rows_out.append([label, "trainyard load (Parquet to f32 train and test rows)", tm["phases"]["load"], None, None, None, None, 1.0])
            rows_out.append([label, f"pyarrow read to {'f32' if dtype == 'float32' else 'f64'} matrix", sm["read_s"], None, None, None, None, sm["read_s"] / tm["phases"]["load"]])
            # Parquet to row-major f32 rows, all files: trainyard's load phase (which also reads the
            # label and splits the rows into a train and a test matrix) against polars reading the
            # same files into one matrix; then with trainyard's features phase (imputation
            # statistics, exact medians, standardization) on top.
            ty_matrix = tm["phases"]["load"] + tm["phases"]["features"]
            pw, prss, pm = min(pl, key=lambda r: r[2]["read_s"])
            rows_out.append([label, f"polars {pm['polars']} read to f32 matrix (all files)", pm["read_s"], prss, None, None, None, pm["read_s"] / tm["phases"]["load"]])
            rows_out.append([label, "trainyard Parquet to standardized f32 matrices (load + features)", ty_matrix, None, None, None, None, pm["read_s"] / ty_matrix])
            coef_gap = max(abs(a - b) / max(abs(b), 1e-3) for a, b in zip(weights["coef"], sm["coef"]))
            rows_out.append([label, "max relative coefficient gap trainyard vs scikit-learn", coef_gap, None, None, None, None, None])
            # linfa fits trainyard's design matrix, the same f32 for either dtype: once is enough.
            if si == 0 and dtype == dtypes[0]:
                wall, rss, out = run_measured([os.path.join(bin_dir, "linfa_fit"), spec_path])
                lf = json.loads(out)
                gap = max(abs(a - b) / max(abs(b), 1e-3) for a, b in zip(weights["coef"], lf["coef"]))
                rows_out.append([label, "linfa-logistic fit only", lf["fit_seconds"], rss, None, None, None, lf["fit_seconds"] / tf])
                rows_out.append([label, "max relative coefficient gap trainyard vs linfa", gap, None, None, None, None, None])

        if len(end_to_end) == 2:
            rows_out.append([size_label, "trainyard float64 vs float32 end to end", end_to_end["float64"], None, None, None, None,
                             end_to_end["float64"] / end_to_end["float32"]])

    print(f"\nmachine: {os.cpu_count()} cores, read bandwidth {bw['gb_per_s']:.1f} GB/s on {bw['threads']} threads; "
          f"scikit-learn with {args.blas_threads} BLAS thread(s); l2={L2} tol={TOL}; best of {args.rounds} alternating rounds; feature columns {', '.join(dtypes)}\n")
    print("| data | what | seconds | peak RSS MiB | passes | test AUC | log loss | ratio to trainyard |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows_out:
        print("| " + " | ".join([r[0], r[1], fmt(r[2]), fmt(r[3], 0), fmt(r[4]), fmt(r[5], 4), fmt(r[6], 4), fmt(r[7], 2) + ("x" if r[7] is not None else "")]) + " |")


if __name__ == "__main__":
    main()
