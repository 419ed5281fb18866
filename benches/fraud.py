#!/usr/bin/env python3
"""Fraud-like data with high-cardinality categoricals: trainyard against pyarrow + scikit-learn
and glum, side by side in one invocation.

    python3 benches/fraud.py                                    # 2M and 10M charges, one round
    python3 benches/fraud.py --sizes 200000 --no-build          # a quick look
    python3 benches/fraud.py --sizes 10000000 --skip-sklearn-above 5000000 --peers glum

Data: `trainyard synth --rows N --files 8 --merchants 20000 --card-bins 5000 --devices 50000`
(charges in eight time-ordered part files, June-November 2024, and a label file keyed by
`charge_id` in which the newest 2% of charges have no label yet). Every tool does the same job:
  - keep charges with created_at >= 2024-07-01 (UTC) and amount > 0, inner-join the labels on
    charge_id (unlabeled charges drop out);
  - test = created_at in [2024-11-01, 2024-12-01), train = before 2024-11-01 (trainyard's
    date-range holdout drops rows after the window; the data ends on 2024-12-01, so none are);
  - numeric amount, account_age_days, ip_distance_km (~8% null), prior_charges, is_3ds (0/1):
    train median for missing values plus a 0/1 missing indicator for columns with missing train
    values, then standardized with the train mean and population std;
  - categorical country, merchant_category, card_brand, merchant_id, card_bin, device_id: one
    column per level with >= 5 train rows, one shared column for rarer and unseen levels;
  - L2-penalized logistic regression minimizing sum(log loss) + (l2/2) ||beta||^2, intercept
    unpenalized, l2 = 1, tol 1e-6, at most 500 iterations.
The tools, each in a fresh process, alternating for --rounds rounds (best wall time kept):
  (a) `trainyard train` end to end (read, filter, join, split, features, fit, evaluate, write);
  (b) pyarrow + scikit-learn: SimpleImputer(median, add_indicator) + StandardScaler on the
      values, OneHotEncoder(min_frequency=5, handle_unknown="infrequent_if_exist"), the blocks
      hstacked into CSR, LogisticRegression(solver="lbfgs", C=1/l2);
  (c) pyarrow + glum: the same numeric block, categoricals as pandas Categorical with rare and
      unseen levels mapped to one "other" level (tabmat's native categorical matrices),
      GeneralizedLinearRegressor(family="binomial", alpha=l2/n_train, solver="lbfgs").
"passes" are objective evaluations (one pass over the data each), with the solver's iterations
in brackets for the peers; scikit-learn's and glum's are counted through a wrapped objective.

Objective scaling, so that all three fit the same model: trainyard and scikit-learn minimize
sum(log loss) + (l2/2)||beta||^2 (C = 1/l2). glum minimizes 1/(2 n) deviance + (alpha/2)||beta||^2
(its GeneralizedLinearRegressor docstring), and the binomial unit deviance is
-2 (y log mu + (1-y) log(1-mu)) (glum._distribution.BinomialDistribution.unit_deviance), i.e.
twice the log loss: glum's objective is mean(log loss) + (alpha/2)||beta||^2, which is trainyard's
divided by n_train when alpha = l2 / n_train. The script checks this by printing every tool's
train objective in trainyard's scale under the table. The gradient tolerances are on the
mean-scaled objective in all three (scikit-learn's lbfgs gtol and glum's lbfgs pgtol).

glum runs its "lbfgs" solver: its IRLS solvers ("irls-cd", "irls-ls", the default for pure L2)
allocate a dense (columns x columns) Hessian, 8 * 70,000^2 bytes ~ 40 GB for this design;
--glum-solver picks another one, refused when that Hessian would not fit in half of the memory
available.

Memory target: trainyard's peak RSS against 2 x the raw columns + 300 MiB, where the raw columns
are the bytes Arrow holds for what trainyard reads (pyarrow's nbytes): the 13 charge columns
(features, filter, join and holdout columns) for the rows that pass the filters, plus the label
file's two columns, all rows.

Environment: TRAINYARD_BIN=/path/to/trainyard runs that binary instead of
$CARGO_TARGET_DIR/release/trainyard (use it with --no-build, e.g. for a debug binary).
Installs numpy, pyarrow, scikit-learn, scipy, pandas and glum with pip when they are missing,
and builds the release binary with cargo (skip with --no-build).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from measure import fmt, run_measured

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
L2, TOL, MAX_ITER, MIN_COUNT = 1.0, 1e-6, 500, 5
PARTS = 8
SINCE, TEST_START, TEST_END = "2024-07-01", "2024-11-01", "2024-12-01"
NUMERIC = ["amount", "account_age_days", "ip_distance_km", "prior_charges", "is_3ds"]
CATEGORICAL = ["country", "merchant_category", "card_brand", "merchant_id", "card_bin", "device_id"]

# Read, filter, join and split with pyarrow, and the numeric block: shared by both peers so that
# they see the same rows and the same numeric features.
COMMON = r"""
import datetime, glob, json, sys, time, warnings
t0 = time.perf_counter()
import numpy as np, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler
from sklearn.metrics import roc_auc_score, log_loss
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits
cfg = json.loads(sys.argv[1])
NUMERIC, CATEGORICAL = cfg["numeric"], cfg["categorical"]
def utc(day):
    d = datetime.datetime.fromisoformat(day).replace(tzinfo=datetime.timezone.utc)
    return pa.scalar(d, type=pa.timestamp("us", tz="UTC"))
def read_charges():
    # What trainyard reads: the feature, filter, join and holdout columns, after the filters.
    files = sorted(glob.glob(cfg["data"] + "/charges/*.parquet"))
    charges = pq.read_table(files, columns=["charge_id", "created_at"] + NUMERIC + CATEGORICAL)
    return charges.filter(pc.and_(pc.greater_equal(charges["created_at"], utc(cfg["since"])),
                                  pc.greater(charges["amount"], 0)))
def count_calls(owner, name):
    # Objective evaluations (one pass over the data each), the unit trainyard reports: every
    # call of owner.name from now on adds one.
    calls, wrapped = [0], getattr(owner, name)
    def counted(*a, **k):
        calls[0] += 1
        return wrapped(*a, **k)
    setattr(owner, name, counted)
    return calls
def load():
    charges = read_charges()
    labels = pq.read_table(cfg["data"] + "/labels.parquet")
    # Inner join on the (unique) label key by lookup: Acero's hash join cannot carry dictionary
    # columns such as merchant_category along.
    pos = pc.index_in(charges["charge_id"], value_set=labels["charge_id"].combine_chunks())
    keep = pc.is_valid(pos)
    charges, y = charges.filter(keep), labels["is_fraud"].take(pos.filter(keep))
    t = charges["created_at"]
    test = pc.and_(pc.greater_equal(t, utc(cfg["test_start"])), pc.less(t, utc(cfg["test_end"])))
    train = pc.less(t, utc(cfg["test_start"]))
    return (charges.filter(train), np.asarray(y.filter(train), dtype=np.float64),
            charges.filter(test), np.asarray(y.filter(test), dtype=np.float64))
def strings(column):
    # merchant_category arrives dictionary-encoded; the encoders want plain values.
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column
def numeric_block(tr, te):
    cols = lambda t: np.column_stack([np.asarray(t[c].to_numpy(), dtype=np.float64) for c in NUMERIC])
    imputer = SimpleImputer(strategy="median", add_indicator=True)
    x, xt = imputer.fit_transform(cols(tr)), imputer.transform(cols(te))
    # Only the values are standardized: trainyard keeps its missing indicators 0/1, and the
    # penalty sees the same columns only if the peers do too.
    k = len(NUMERIC)
    scaler = StandardScaler().fit(x[:, :k])
    x[:, :k], xt[:, :k] = scaler.transform(x[:, :k]), scaler.transform(xt[:, :k])
    return x, xt
def objective(y, p, coef):
    # Trainyard's scale: sum of log loss over the train rows + (l2/2) ||beta||^2.
    return log_loss(y, p, normalize=False, labels=[0, 1]) + 0.5 * cfg["l2"] * float(np.dot(coef, coef))
def fit_warnings(caught):
    return sorted({str(w.message).splitlines()[0][:120] for w in caught if issubclass(w.category, ConvergenceWarning)})
"""

SKLEARN = COMMON + r"""
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder
from sklearn.linear_model import _linear_loss
evaluations = count_calls(_linear_loss.LinearModelLoss, "loss_gradient")
with threadpool_limits(limits=cfg["blas_threads"]):
    t = time.perf_counter()
    tr, y, te, yt = load()
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    num, num_t = numeric_block(tr, te)
    enc = OneHotEncoder(min_frequency=cfg["min_count"], handle_unknown="infrequent_if_exist", sparse_output=True)
    cats = lambda t: np.column_stack([strings(t[c]).to_numpy() for c in CATEGORICAL])
    oh, oh_t = enc.fit_transform(cats(tr)), enc.transform(cats(te))
    x = sp.hstack([sp.csr_matrix(num), oh], format="csr")
    xt = sp.hstack([sp.csr_matrix(num_t), oh_t], format="csr")
    without_other = sum(1 for inf in enc.infrequent_categories_ if inf is None)
    prep_s = time.perf_counter() - t
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = time.perf_counter()
        model = LogisticRegression(solver="lbfgs", C=1.0 / cfg["l2"], tol=cfg["tol"], max_iter=cfg["max_iter"]).fit(x, y)
        fit_s = time.perf_counter() - t
    t = time.perf_counter()
    p, pt = model.predict_proba(x)[:, 1], model.predict_proba(xt)[:, 1]
    auc, ll = roc_auc_score(yt, pt), log_loss(yt, pt)
    eval_s = time.perf_counter() - t
n_iter = int(model.n_iter_[0])
print(json.dumps({"read_s": read_s, "prep_s": prep_s, "fit_s": fit_s, "eval_s": eval_s,
                  "train_rows": len(y), "test_rows": len(yt), "width": x.shape[1], "width_without_other": without_other,
                  "n_iter": n_iter, "evaluations": evaluations[0], "converged": n_iter < cfg["max_iter"],
                  "warnings": fit_warnings(caught), "auc": auc, "log_loss": ll,
                  "objective": objective(y, p, model.coef_[0]), "total_s": time.perf_counter() - t0}))
"""

GLUM = COMMON + r"""
import pandas as pd
import glum, glum._solvers
from glum import GeneralizedLinearRegressor
# glum's lbfgs hands scipy a partial of this module-level function, looked up at each fit.
evaluations = count_calls(glum._solvers, "_get_obj_and_derivative")
OTHER = "__other__"
def categorical(train, test):
    train, test = strings(train), strings(test)
    counts = pc.value_counts(train).flatten()
    levels = pc.filter(counts[0], pc.greater_equal(counts[1], cfg["min_count"])).sort()
    rare = len(levels) < len(counts[0])
    # One "other" level for rare and unseen values, as trainyard's; without rare train values
    # there is none (as in scikit-learn), and unseen test values get no column (NaN: all zero).
    categories = levels.to_pylist() + ([OTHER] if rare else [])
    def codes(col):
        c = pc.index_in(col, value_set=levels).fill_null(len(levels) if rare else -1)
        return pd.Categorical.from_codes(np.asarray(c, dtype=np.int32), categories=categories)
    return codes(train), codes(test)
with threadpool_limits(limits=cfg["blas_threads"]):
    t = time.perf_counter()
    tr, y, te, yt = load()
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    num, num_t = numeric_block(tr, te)
    frame = pd.DataFrame(num, columns=[f"n{j}" for j in range(num.shape[1])])
    frame_t = pd.DataFrame(num_t, columns=frame.columns)
    for c in CATEGORICAL:
        frame[c], frame_t[c] = categorical(tr[c], te[c])
    prep_s = time.perf_counter() - t
    model = GeneralizedLinearRegressor(
        family="binomial", alpha=cfg["l2"] / len(y), l1_ratio=0.0, fit_intercept=True, solver=cfg["glum_solver"],
        gradient_tol=cfg["tol"], max_iter=cfg["max_iter"], drop_first=False, cat_missing_method="zero")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = time.perf_counter()
        model.fit(frame, y)
        fit_s = time.perf_counter() - t
    t = time.perf_counter()
    p, pt = model.predict(frame), model.predict(frame_t)
    auc, ll = roc_auc_score(yt, pt), log_loss(yt, pt)
    eval_s = time.perf_counter() - t
n_iter = int(model.n_iter_)
print(json.dumps({"read_s": read_s, "prep_s": prep_s, "fit_s": fit_s, "eval_s": eval_s,
                  "train_rows": len(y), "test_rows": len(yt), "width": int(len(model.coef_)),
                  # IRLS solvers evaluate the objective elsewhere: only their iterations are known.
                  "n_iter": n_iter, "evaluations": evaluations[0] if cfg["glum_solver"] in ("lbfgs", "trust-constr") else None,
                  "converged": n_iter < cfg["max_iter"],
                  "warnings": fit_warnings(caught), "auc": auc, "log_loss": ll, "glum": glum.__version__,
                  "objective": objective(y, p, model.coef_), "total_s": time.perf_counter() - t0}))
"""

# Bytes Arrow holds for the columns trainyard reads, for the rows it keeps after the filters.
RAW = COMMON + r"""
charges = read_charges()
labels = pq.read_table(cfg["data"] + "/labels.parquet")
print(json.dumps({"bytes": charges.nbytes + labels.nbytes, "rows": charges.num_rows}))
"""


def ensure_python_peers(want_glum):
    """Installs what is missing; returns why glum cannot run, or None."""
    # Checked in a child: Linux carries the parent's RSS high-water mark into every child it
    # execs (wait4's ru_maxrss), so a parent holding numpy and friends would floor every peak.
    if subprocess.run([sys.executable, "-c", "import numpy, pyarrow, sklearn, scipy, threadpoolctl"], capture_output=True).returncode != 0:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "numpy", "pyarrow", "scikit-learn", "scipy", "threadpoolctl"])
    if not want_glum:
        return None
    check = [sys.executable, "-c", "import glum, pandas"]
    if subprocess.run(check, capture_output=True).returncode == 0:
        return None
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "glum", "pandas"], capture_output=True, text=True)
    if p.returncode != 0 or subprocess.run(check, capture_output=True).returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["import failed after install"])[-1]
        return f"glum not installed: {tail[:160]}"
    return None


def hessian_fits(width):
    with open("/proc/meminfo") as f:
        available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    return 8 * width * width < available / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000000,10000000", help="charges per dataset, comma-separated")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "trainyard-fraud"))
    ap.add_argument("--blas-threads", type=int, default=1, help="the peers' BLAS and OpenMP threads (1: one pool on 2 cores)")
    ap.add_argument("--merchants", type=int, default=20000)
    ap.add_argument("--card-bins", type=int, default=5000)
    ap.add_argument("--devices", type=int, default=50000)
    ap.add_argument("--peers", default="sklearn,glum", help="comma-separated subset of sklearn,glum (empty: trainyard alone)")
    ap.add_argument("--skip-sklearn-above", type=int, default=None, metavar="N", help="no scikit-learn run on sizes above N rows")
    ap.add_argument("--glum-solver", default="lbfgs", help="glum's solver (IRLS ones need a dense columns^2 Hessian)")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    peers = {p for p in args.peers.split(",") if p}
    if peers - {"sklearn", "glum"}:
        sys.exit(f"--peers: unknown {sorted(peers - {'sklearn', 'glum'})}; choose from sklearn,glum")

    glum_error = ensure_python_peers("glum" in peers)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.no_build:
        subprocess.check_call(["cargo", "build", "--release", "--locked", "-p", "trainyard"], cwd=ROOT)
    trainyard = os.environ.get("TRAINYARD_BIN") or os.path.join(target, "release", "trainyard")
    if "--card-bins" not in subprocess.run([trainyard, "synth", "--help"], capture_output=True, text=True).stdout:
        sys.exit(f"{trainyard} predates `synth --card-bins`: rebuild it, or point TRAINYARD_BIN at a newer one")
    os.makedirs(args.work, exist_ok=True)
    env_peers = dict(os.environ, OMP_NUM_THREADS=str(args.blas_threads))
    # This machine sets these for old OpenBLAS builds; they slow a current numpy (see the env notes).
    env_peers.pop("OPENBLAS_CORETYPE", None)
    env_peers.pop("OPENBLAS_L2_SIZE", None)

    rows_out, notes = [], []
    for n in [int(s) for s in args.sizes.split(",")]:
        data = os.path.join(args.work, f"fraud-{n}-m{args.merchants}-b{args.card_bins}-d{args.devices}")
        if not os.path.isfile(os.path.join(data, "labels.parquet")):
            subprocess.check_call([trainyard, "synth", "--rows", str(n), "--files", str(PARTS), "--merchants", str(args.merchants),
                                   "--card-bins", str(args.card_bins), "--devices", str(args.devices), "--out", data], stdout=subprocess.DEVNULL)
        spec = {
            "name": f"fraud-{n}",
            "data": {
                "features": [os.path.join(data, "charges", "*.parquet")],
                "labels": [os.path.join(data, "labels.parquet")],
                "join_key": "charge_id",
                "filters": [{"column": "created_at", "gte": SINCE}, {"column": "amount", "gt": 0}],
            },
            "label": "is_fraud",
            "features": {"numeric": NUMERIC, "categorical": CATEGORICAL, "min_category_count": MIN_COUNT},
            "holdout": {"date_range": {"column": "created_at", "start": TEST_START, "end": TEST_END}},
            "model": {"logistic": {"l2": L2, "tol": TOL, "max_iter": MAX_ITER}},
            "seed": 42,
            "device": "cpu",
        }
        spec_path = os.path.join(args.work, f"spec-{n}.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        run_dir = os.path.join(args.work, f"run-{n}")
        cfg = {"data": data, "numeric": NUMERIC, "categorical": CATEGORICAL, "min_count": MIN_COUNT, "since": SINCE,
               "test_start": TEST_START, "test_end": TEST_END, "l2": L2, "tol": TOL, "max_iter": MAX_ITER,
               "blas_threads": args.blas_threads, "glum_solver": args.glum_solver}
        _, _, out, failure = run_measured([sys.executable, "-c", RAW, json.dumps(cfg)], env_peers)
        if failure:
            sys.exit(f"measuring the raw columns failed: {failure}")
        raw = json.loads(out)

        # Which peers run on this size, and if not, why not (said in their rows).
        skipped = {}
        if "sklearn" in peers and args.skip_sklearn_above is not None and n > args.skip_sklearn_above:
            skipped["sklearn"] = f"skipped (--skip-sklearn-above {args.skip_sklearn_above})"
        if "glum" in peers and glum_error:
            skipped["glum"] = glum_error
        runs = {"trainyard": [], "sklearn": [], "glum": []}
        failures = {}
        for _ in range(args.rounds):
            wall, rss, _, failure = run_measured([trainyard, "train", spec_path, "--output", run_dir, "--overwrite", "--log-format", "json"])
            if failure:
                sys.exit(f"trainyard train {spec_path} failed: {failure}")
            with open(os.path.join(run_dir, "metrics.json")) as f:
                m = json.load(f)
            runs["trainyard"].append((wall, rss, m))
            if "glum" in peers and "glum" not in skipped and args.glum_solver.startswith("irls") and not hessian_fits(m["design_width"]):
                skipped["glum"] = f"skipped: solver {args.glum_solver} needs a dense {m['design_width']}^2 Hessian"
            for peer, script in (("sklearn", SKLEARN), ("glum", GLUM)):
                if peer not in peers or peer in skipped:
                    continue
                wall, rss, out, failure = run_measured([sys.executable, "-c", script, json.dumps(cfg)], env_peers)
                if failure:
                    failures[peer] = failure
                else:
                    runs[peer].append((wall, rss, json.loads(out)))

        label = f"{n // 1000}k" if n < 10**6 else f"{n / 10**6:g}M"
        tw, trss, tm = min(runs["trainyard"], key=lambda r: r[0])
        best = {p: min(r, key=lambda x: x[0]) for p, r in runs.items() if r and p != "trainyard"}
        names = {"sklearn": ("pyarrow + scikit-learn", "scikit-learn"), "glum": ("pyarrow + glum", "glum")}
        selected = [p for p in ("sklearn", "glum") if p in peers]

        def passes(r):
            if r["evaluations"] is None:
                return f"({r['n_iter']} iter)"
            return f"{r['evaluations']} ({r['n_iter']} iter)"

        def converged(ok, warned=()):
            return ("yes" if ok else "no") + (" (ConvergenceWarning)" if warned else "")

        tp = tm["fit"]["objective_passes"]
        rows_out.append([label, "trainyard train (end to end)", tw, trss, tp, converged(tm["fit"]["converged"]), tm["test"]["roc_auc"], tm["test"]["log_loss"], 1.0])
        for p in selected:
            if p in best:
                w, rss, r = best[p]
                rows_out.append([label, f"{names[p][0]} (end to end)", w, rss, passes(r), converged(r["converged"], r["warnings"]), r["auc"], r["log_loss"], w / tw])
            else:
                why = skipped.get(p) or f"failed, {failures.get(p)}"
                rows_out.append([label, f"{names[p][0]} (end to end): {why}", None, None, None, None, None, None, None])
        tf = tm["phases"]["fit"]
        rows_out.append([label, "trainyard fit only", tf, None, tp, None, None, None, 1.0])
        for p in selected:
            if p in best:
                r = best[p][2]
                rows_out.append([label, f"{names[p][1]} fit only", r["fit_s"], None, passes(r), None, None, None, r["fit_s"] / tf])
        ph = tm["phases"]
        rows_out.append([label, "trainyard load (read, filter, join, split)", ph["load"], None, None, None, None, None, 1.0])
        for p in selected:
            if p in best:
                r = best[p][2]
                rows_out.append([label, f"pyarrow read, filter, join, split ({names[p][1]} run)", r["read_s"], None, None, None, None, None, r["read_s"] / ph["load"]])
        rows_out.append([label, f"trainyard features (impute, standardize, {tm['design_width']} columns)", ph["features"], None, None, None, None, None, 1.0])
        prep_what = {"sklearn": "scikit-learn impute, scale, one-hot, hstack to CSR", "glum": "glum prep: impute, scale, pandas Categoricals"}
        for p in selected:
            if p in best:
                r = best[p][2]
                rows_out.append([label, prep_what[p], r["prep_s"], None, None, None, None, None, r["prep_s"] / ph["features"]])
        rows_out.append([label, "trainyard evaluate (train and test)", ph["evaluate"], None, None, None, None, None, 1.0])
        for p in selected:
            if p in best:
                r = best[p][2]
                rows_out.append([label, f"{names[p][1]} predict and metrics (train and test)", r["eval_s"], None, None, None, None, None, r["eval_s"] / ph["evaluate"]])
        rows_out.append([label, "trainyard write (the run directory)", ph["write"], None, None, None, None, None, None])
        budget = 2 * raw["bytes"] / 2**20 + 300
        rows_out.append([label, f"trainyard peak RSS vs 2 x raw columns + 300 MiB ({raw['bytes'] / 2**20:.0f} MiB raw, {budget:.0f} MiB)", None, trss, None, None, None, None, trss / budget])
        if best:
            p = max(best, key=lambda q: best[q][2]["auc"])
            gap = tm["test"]["roc_auc"] - best[p][2]["auc"]
            rows_out.append([label, f"test AUC trainyard minus the better peer ({names[p][1]})", None, None, None, None, gap, None, None])

        # Reproducibility: the same spec on one thread must give the same model bytes.
        one = run_dir + "-1thread"
        _, _, _, failure = run_measured([trainyard, "train", spec_path, "--output", one, "--overwrite", "--log-format", "json"],
                                        dict(os.environ, RAYON_NUM_THREADS="1"))
        same = failure is None and open(os.path.join(one, "model.safetensors"), "rb").read() == open(os.path.join(run_dir, "model.safetensors"), "rb").read()
        notes.append(f"{label}: model.safetensors on 1 thread and on {os.cpu_count()} threads: {'bitwise identical' if same else 'DIFFERENT ' + str(failure or '')}")

        want = (tm["train"]["rows"], tm["test"]["rows"])
        for p, (w, rss, r) in best.items():
            got = (r["train_rows"], r["test_rows"])
            if got != want:
                notes.append(f"WARNING {label}: {names[p][1]} used {got[0]} train / {got[1]} test rows, trainyard {want[0]} / {want[1]}")
        notes.append(f"{label}: rows after filters {raw['rows']}; train / test rows trainyard {want[0]} / {want[1]}"
                     + "".join(f"; {names[p][1]} {r['train_rows']} / {r['test_rows']}" for p, (_, _, r) in best.items()))
        widths = [f"trainyard {tm['design_width']} (an 'other' column for every categorical)"]
        if "sklearn" in best:
            r = best["sklearn"][2]
            widths.append(f"scikit-learn {r['width']} (+{r['width_without_other']} categoricals without rare levels, no infrequent column)")
        if "glum" in best:
            widths.append(f"glum {best['glum'][2]['width']}")
        notes.append(f"{label}: design columns " + "; ".join(widths))
        objs = [f"trainyard {tm['fit']['final_objective']:.4f}"] + [f"{names[p][1]} {r['objective']:.4f}" for p, (_, _, r) in best.items()]
        notes.append(f"{label}: train objective, sum(log loss) + (l2/2)||beta||^2: " + "; ".join(objs))
        for p, (_, _, r) in best.items():
            if r["warnings"]:
                notes.append(f"{label}: {names[p][1]} warned: {' | '.join(r['warnings'])}")
        if "glum" in best:
            notes.append(f"{label}: glum {best['glum'][2]['glum']}, solver {args.glum_solver}")

    print(f"\nmachine: {os.cpu_count()} cores; peers with {args.blas_threads} BLAS/OpenMP thread(s); "
          f"l2={L2} tol={TOL} max_iter={MAX_ITER} min_category_count={MIN_COUNT}; "
          f"{args.merchants} merchants, {args.card_bins} card BINs, {args.devices} devices; best of {args.rounds} alternating round(s)\n")
    print("| data | what | seconds | peak RSS MiB | passes | converged | test AUC | log loss | ratio to trainyard |")
    print("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for r in rows_out:
        print("| " + " | ".join([r[0], r[1], fmt(r[2]), fmt(r[3], 0), fmt(r[4]), fmt(r[5]), fmt(r[6], 4), fmt(r[7], 4),
                                 fmt(r[8], 2) + ("x" if r[8] is not None else "")]) + " |")
    print()
    for line in notes:
        print(line)


if __name__ == "__main__":
    main()
