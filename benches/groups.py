#!/usr/bin/env python3
"""Per-group logistic models: trainyard's `partition` against a scikit-learn loop, side by side.

    python3 benches/groups.py                       # 20,000 groups, 2M rows, 32 features
    python3 benches/groups.py --groups 2000 --rows 200000   # a quick look

Data: numpy makes `--groups` groups with Zipf-like sizes between 50 and 5,000 rows (`--rows` in
all), 32 float32 features and labels from a logistic model whose coefficients differ per group
(~5% positives). The last 20% of each group's rows are the test set (train.parquet,
test.parquet), so both tools see the same split.

Both sides fit the same objective per group: L2-penalized logistic regression (C = 1/l2, tol
1e-4) on features standardized with the train rows' mean and standard deviation, for every
group with at least --min-rows train rows and --min-positives positive and negative train rows;
trainyard with `shrinkage: "none"` (scikit-learn cannot shrink toward another model). scikit-learn
runs one `LogisticRegression(solver="lbfgs")` per group in a loop with one BLAS thread (trainyard
with `l2` fixed and `select: "none"`, the same work). Three more trainyard runs show what a user
deploys: a fixed pull toward the generic model, and the defaults (`l2: "auto"`, `select:
"validation"`) with either shrinkage, whose whole partition phase (choosing the strength, fitting,
selecting) is set against the scikit-learn loop.
Compared: seconds fitting the groups (trainyard's `partition.fit_seconds`, grouping and gathering
included; scikit-learn's loop), end to end, and the distribution of per-group test ROC AUC.
Installs numpy, pyarrow and scikit-learn with pip when missing; builds the release binary (skip
with --no-build).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = 32

SKLEARN = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np, pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
work, l2, tol, max_iter, min_rows, min_pos, limit = sys.argv[1:8]
l2, tol, max_iter, min_rows, min_pos, limit = float(l2), float(tol), int(max_iter), int(min_rows), int(min_pos), int(limit)
cols = [f"x{j}" for j in range(%d)]
def load(name):
    t = pq.read_table(f"{work}/{name}.parquet")
    x = np.column_stack([t.column(c).to_numpy() for c in cols]).astype(np.float64)
    return t.column("merchant").to_numpy(), x, t.column("label").to_numpy()
g_tr, x_tr, y_tr = load("train")
g_te, x_te, y_te = load("test")
mean, std = x_tr.mean(0), x_tr.std(0)
std[std == 0] = 1.0
x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
order_tr, order_te = np.argsort(g_tr, kind="stable"), np.argsort(g_te, kind="stable")
keys_tr, start_tr = np.unique(g_tr[order_tr], return_index=True)
keys_te, start_te = np.unique(g_te[order_te], return_index=True)
bounds_tr = dict(zip(keys_tr, zip(start_tr, list(start_tr[1:]) + [len(g_tr)])))
bounds_te = dict(zip(keys_te, zip(start_te, list(start_te[1:]) + [len(g_te)])))
fit_s, fitted, aucs = 0.0, 0, {}
for k in keys_tr[:limit] if limit > 0 else keys_tr:
    a, b = bounds_tr[k]
    idx = order_tr[a:b]
    y = y_tr[idx]
    pos = int(y.sum())
    if len(idx) < min_rows or pos < min_pos or len(idx) - pos < min_pos:
        continue
    t = time.perf_counter()
    m = LogisticRegression(C=1.0 / l2, tol=tol, max_iter=max_iter, solver="lbfgs").fit(x_tr[idx], y)
    fit_s += time.perf_counter() - t
    fitted += 1
    if k in bounds_te:
        a, b = bounds_te[k]
        idx = order_te[a:b]
        if 0 < y_te[idx].sum() < len(idx):
            aucs[int(k)] = roc_auc_score(y_te[idx], m.predict_proba(x_te[idx])[:, 1])
print(json.dumps({"fit_seconds": fit_s, "seconds": time.perf_counter() - t0, "fitted": fitted,
                  "considered": int(limit if limit > 0 else len(keys_tr)), "total_groups": int(len(keys_tr)), "aucs": aucs}))
""" % FEATURES


def ensure_peers():
    try:
        import numpy, pyarrow, sklearn  # noqa: F401
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "numpy", "pyarrow", "scikit-learn"])


def make_data(work, groups, rows, seed=7):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    if os.path.exists(os.path.join(work, "test.parquet")):
        return
    rng = np.random.default_rng(seed)
    # Zipf-like sizes clipped to [50, 5000], with the exponent found so they add up to `rows`.
    rank = np.arange(1, groups + 1, dtype=np.float64)
    lo, hi = 0.1, 5.0
    for _ in range(60):
        a = (lo + hi) / 2
        total = np.clip(5000 / rank**a, 50, 5000).sum()
        lo, hi = (a, hi) if total > rows else (lo, a)
    sizes = np.clip(5000 / rank**a, 50, 5000).astype(np.int64)
    rng.shuffle(sizes)
    n = int(sizes.sum())
    merchant = np.repeat(np.arange(groups, dtype=np.int64) + 100_000, sizes)
    x = rng.standard_normal((n, FEATURES)).astype(np.float32)
    base = rng.normal(0, 0.2, FEATURES)
    deviation = rng.normal(0, 0.3, (groups, FEATURES))
    deviation[:, 8:] = 0  # groups differ in the first eight features only
    beta = base + deviation[merchant - 100_000]
    z = (x * beta).sum(1) - 3.8
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    # The last 20% of each group's rows (rows are in group order) are the test rows.
    pos_in_group = np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    test = pos_in_group >= np.repeat(np.ceil(sizes * 0.8), sizes)
    os.makedirs(work, exist_ok=True)
    for name, mask in [("train", ~test), ("test", test)]:
        cols = {"merchant": merchant[mask]}
        cols.update({f"x{j}": x[mask, j] for j in range(FEATURES)})
        cols["label"] = y[mask]
        pq.write_table(pa.table(cols), os.path.join(work, f"{name}.parquet"), row_group_size=1 << 18)
    print(f"data: {groups} groups, {n:,} rows ({sizes.min()}-{sizes.max()} per group, Zipf exponent {a:.3f}), "
          f"{y.mean():.1%} positives", file=sys.stderr)


def run_measured(cmd, env=None):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} ... failed with {proc.returncode}:\n{err[-3000:]}")
    return out, seconds


def quantiles(values):
    import numpy as np
    v = np.array(sorted(values))
    return [float(np.quantile(v, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)] if len(v) else [float("nan")] * 5


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=20_000)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--min-rows", type=int, default=40)
    ap.add_argument("--min-positives", type=int, default=1)
    ap.add_argument("--sklearn-groups", type=int, default=0, help="fit only the first N groups with scikit-learn (0: all) and scale its time")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "trainyard-groups"))
    ap.add_argument("--global-l2", type=float, default=20.0, help="partition.l2 of the run with global shrinkage and a fixed strength")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()

    ensure_peers()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.no_build:
        subprocess.check_call(["cargo", "build", "--release", "--locked", "-p", "trainyard"], cwd=ROOT)
    trainyard = os.path.join(target, "release", "trainyard")
    work = os.path.join(args.work, f"{args.groups}x{args.rows}")
    make_data(work, args.groups, args.rows)
    l2, tol, max_iter = 1.0, 1e-4, 100

    spec = {
        "name": "groups-bench",
        "data": {"features": [os.path.join(work, "train.parquet")]},
        "label": "label",
        "features": {"numeric": [f"x{j}" for j in range(FEATURES)]},
        "holdout": {"files": [os.path.join(work, "test.parquet")]},
        "model": {"logistic": {"l2": l2, "tol": tol, "max_iter": max_iter}},
        "partition": {"by": "merchant", "min_rows": args.min_rows, "min_positives": args.min_positives, "shrinkage": "none",
                      "l2": l2, "select": "none"},
    }
    spec_path = os.path.join(work, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    run_dir = os.path.join(work, "run")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    _, ty_seconds = run_measured([trainyard, "--log-format", "json", "train", spec_path, "--output", run_dir, "--overwrite"])
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    part = metrics["partition"]
    # The same groups as a user would deploy them: a fixed pull toward the generic model, then the
    # defaults (strength chosen by cross-validation, groups kept only where they beat the generic
    # model on held-out rows), with either shrinkage.
    variants = [
        (f"shrinkage global, l2 {args.global_l2}, select none", {"shrinkage": "global", "l2": args.global_l2, "select": "none"}),
        ("defaults (shrinkage global, l2 auto, select validation)", {"shrinkage": "global", "l2": "auto", "select": "validation"}),
        ("shrinkage none, l2 auto, select validation", {"shrinkage": "none", "l2": "auto", "select": "validation"}),
    ]
    runs = []
    for i, (name, partition) in enumerate(variants):
        spec["partition"].update(partition)
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        run_variant = os.path.join(work, f"run-{i}")
        _, secs = run_measured([trainyard, "--log-format", "json", "train", spec_path, "--output", run_variant, "--overwrite"])
        with open(os.path.join(run_variant, "metrics.json")) as f:
            runs.append((name, json.load(f)["partition"], secs))
    import pyarrow.parquet as pq
    table = pq.read_table(os.path.join(run_dir, "groups.parquet")).to_pydict()
    ty_aucs = {g: a for g, a, fitted in zip(table["group"], table["test_roc_auc"], table["fitted"]) if fitted and a is not None}

    out, sk_seconds = run_measured([sys.executable, "-c", SKLEARN, work, str(l2), str(tol), str(max_iter),
                                    str(args.min_rows), str(args.min_positives), str(args.sklearn_groups)], env)
    sk = json.loads(out)
    scale = sk["total_groups"] / sk["considered"]
    sk_fit = sk["fit_seconds"] * scale
    sk_aucs = {int(k): v for k, v in sk["aucs"].items()}
    common = sorted(set(ty_aucs) & set(sk_aucs))
    gaps = [abs(ty_aucs[g] - sk_aucs[g]) for g in common]

    note = "" if scale == 1 else f" (fitted {sk['considered']} of {sk['total_groups']} groups, time scaled by {scale:.1f})"
    print(f"\n{args.groups:,} groups, {metrics['train']['rows'] + metrics['test']['rows']:,} rows, {FEATURES} features, "
          f"{os.cpu_count()} cores; per group: l2 {l2}, tol {tol}, min_rows {args.min_rows}, min_positives {args.min_positives}{note}\n")
    print("| what | trainyard | scikit-learn loop | scikit-learn ÷ trainyard |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| groups fitted | {part['groups_fitted']:,} | {sk['fitted'] * scale:,.0f} | |")
    print(f"| seconds fitting the groups | {part['fit_seconds']:.2f} | {sk_fit:.2f} | {sk_fit / part['fit_seconds']:.1f}x |")
    print(f"| seconds end to end (read, fit generic + groups, evaluate, write) | {ty_seconds:.2f} | {sk['seconds'] * (1 if scale == 1 else float('nan')):.2f} | |")
    q_ty = quantiles([ty_aucs[g] for g in common])
    q_sk = quantiles([sk_aucs[g] for g in common])
    print(f"| per-group test ROC AUC p10 / p25 / p50 / p75 / p90 | {' / '.join(f'{v:.3f}' for v in q_ty)} | {' / '.join(f'{v:.3f}' for v in q_sk)} | |")
    if gaps:
        print(f"| per-group test ROC AUC, mean / max absolute gap over {len(common):,} groups | {sum(gaps) / len(gaps):.5f} / {max(gaps):.5f} | | |")
    for name, p, secs in [(f"shrinkage none, l2 {l2}, select none", part, ty_seconds)] + runs:
        ratio = p["composition"]["log_loss"] / p["generic"]["log_loss"] - 1
        print(f"| trainyard {name}: test log loss composition / generic (difference); ROC AUC composition / generic; seconds end to end "
              f"| {p['composition']['log_loss']:.5f} / {p['generic']['log_loss']:.5f} ({ratio:+.2%}); {p['composition']['roc_auc']:.4f} / {p['generic']['roc_auc']:.4f}; {secs:.2f} | | |")
    for name, p, _ in runs:
        if p["strength"]["method"] != "auto":
            continue
        phase = p["fit_seconds"] + p["selection_seconds"]
        sel = p.get("selection") or {}
        print(f"| trainyard {name}: chosen l2 (from {p['strength']['sample_groups']:,} sampled groups); groups kept / dropped by selection; "
              f"held-out gain | {p['strength']['l2']:g}; {p['groups_kept']:,} / {p['groups_dropped_by_selection']:,}; "
              f"{sel.get('validation_relative_gain', float('nan')):+.2%} | | |")
        print(f"| trainyard {name}: seconds of the whole partition phase (choosing the strength {p['strength']['seconds']:.2f}, "
              f"fitting {p['fit_seconds']:.2f}, selection {sel.get('seconds', 0.0):.2f}) against the scikit-learn loop at a fixed C "
              f"| {phase:.2f} | {sk_fit:.2f} | {sk_fit / phase:.1f}x |")


if __name__ == "__main__":
    main()
