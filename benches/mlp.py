#!/usr/bin/env python3
"""trainyard's MLP against PyTorch on CPU: samples per second of one training epoch.

    python3 benches/mlp.py                        # 1,000,000 x 32, D->256->128->1, two rounds
    python3 benches/mlp.py --rows 200000          # a quick look
    python3 benches/mlp.py --device cuda --features-cuda   # on a GPU box (benches/gpu.sh)

Both sides train the same network on the same rows with the same thread count, alternating, each
in a fresh process: numeric features made by `trainyard synth --numeric`, standardized,
D->256->128->1 with ReLU and dropout 0.1, batch 1024 from a fresh shuffle, weighted-BCE-with-logits
loss, gradient-norm clipping at 1.0, AdamW (lr 1e-3, weight decay 1e-4). trainyard's number is
its own `fit.samples_per_second` (the fit phase of `trainyard train` with one epoch and no
validation, so it includes putting the rows into tensors); PyTorch's is the epoch loop alone.

PyTorch is installed on first use into a virtual environment outside the repository
(TRAINYARD_BENCH_VENV, default ~/.cache/trainyard-bench/torch-venv): from PyPI it is a ~6 GB
install with its CUDA libraries, and no CPU-only build is reachable here.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HIDDEN, BATCH, LR, WD, DROPOUT, CLIP = [256, 128], 1024, 1e-3, 1e-4, 0.1, 1.0

TORCH = r"""
import glob, json, sys, time
import numpy as np, pyarrow.parquet as pq, torch
data, features, rows, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
hidden, batch, lr, wd, dropout, clip = json.loads(sys.argv[5])
device = torch.device(sys.argv[6])
torch.set_num_threads(threads)
torch.manual_seed(0)
cols = [f"x{j}" for j in range(features)]
t = pq.read_table(sorted(glob.glob(data + "/part-*.parquet")), columns=cols + ["label"])
x = np.empty((t.num_rows, features), dtype=np.float32)
for j, c in enumerate(cols):
    x[:, j] = t.column(c).to_numpy()
x = (x - x.mean(0)) / x.std(0)
x, y = torch.from_numpy(x[:rows]).to(device), torch.from_numpy(t.column("label").to_numpy()[:rows].astype(np.float32)).to(device)
layers, width = [], features
for h in hidden:
    layers += [torch.nn.Linear(width, h), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
    width = h
model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1)).to(device)
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
loss_fn = torch.nn.BCEWithLogitsLoss()
model.train()
start = time.perf_counter()
perm = torch.randperm(rows, device=device)
total = 0.0
for i in range(0, rows, batch):
    idx = perm[i:i + batch]
    xb, yb = x[idx], y[idx]
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(xb).squeeze(1), yb)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    total += loss.detach() * len(idx)
total = float(total)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "samples_per_second": rows / seconds, "loss": total / rows,
                  "torch": torch.__version__, "threads": torch.get_num_threads()}))
"""


def ensure_torch(venv):
    python = os.path.join(venv, "bin", "python")
    probe = [python, "-c", "import torch, numpy, pyarrow"]
    if os.path.exists(python) and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing PyTorch into {venv} (a large download, once)", file=sys.stderr)
    subprocess.check_call([sys.executable, "-m", "venv", venv])
    subprocess.check_call([python, "-m", "pip", "install", "--quiet", "torch", "numpy", "pyarrow"])
    return python


def run(cmd, env):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} ... failed with {out.returncode}:\n{out.stderr[-2000:]}")
    return out.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "trainyard-mlp-bench"))
    ap.add_argument("--venv", default=os.environ.get("TRAINYARD_BENCH_VENV", os.path.expanduser("~/.cache/trainyard-bench/torch-venv")))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu or cuda: where both sides train")
    ap.add_argument("--features-cuda", action="store_true", help="build trainyard with --features cuda")
    ap.add_argument("--python", help="a Python whose torch to use instead of the virtual environment")
    ap.add_argument("--no-torch", action="store_true", help="trainyard only")
    args = ap.parse_args()

    python = None if args.no_torch else (args.python or ensure_torch(args.venv))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.no_build:
        features = ["--features", "cuda"] if args.features_cuda else []
        subprocess.check_call(["cargo", "build", "--release", "--locked", "-p", "trainyard", *features], cwd=ROOT)
    trainyard = os.path.join(target, "release", "trainyard")
    os.makedirs(args.work, exist_ok=True)
    n, d = args.rows, args.features
    data = os.path.join(args.work, f"num-{n}x{d}")
    if not os.path.isdir(data):
        subprocess.check_call([trainyard, "synth", "--numeric", str(d), "--rows", str(n), "--files", "4", "--out", data], stdout=subprocess.DEVNULL)
    spec = {
        "name": "mlp-bench",
        "data": {"features": [data]},
        "label": "label",
        "features": {"numeric": [f"x{j}" for j in range(d)]},
        # A sliver of test rows: the epoch runs on (nearly) every row, as PyTorch's does.
        "holdout": {"random": {"fraction": 0.001}},
        "device": args.device,
        "model": {"mlp": {"hidden": HIDDEN, "dropout": DROPOUT, "epochs": 1, "batch_size": BATCH,
                          "learning_rate": LR, "weight_decay": WD, "schedule": "constant",
                          "grad_clip_norm": CLIP, "early_stopping": None}},
    }
    spec_path = os.path.join(args.work, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    run_dir = os.path.join(args.work, "run")
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    ty, pt = [], []
    for _ in range(args.rounds):
        run([trainyard, "--log-format", "json", "train", spec_path, "--output", run_dir, "--overwrite"], env)
        with open(os.path.join(run_dir, "metrics.json")) as f:
            m = json.load(f)
        ty.append(m)
        rows = m["fit"]["train_rows"]
        if python:
            pt.append(json.loads(run([python, "-c", TORCH, data, str(d), str(rows), str(args.threads), json.dumps([HIDDEN, BATCH, LR, WD, DROPOUT, CLIP]), args.device], env)))
    best_ty = max(ty, key=lambda m: m["fit"]["samples_per_second"])
    ty_sps = best_ty["fit"]["samples_per_second"]
    rows = best_ty["fit"]["train_rows"]
    arch = f"{d}->{'->'.join(map(str, HIDDEN))}->1"
    print(f"\nOne epoch of {arch}, batch {BATCH}, AdamW, dropout {DROPOUT}, {rows:,} rows, {args.threads} threads, best of {args.rounds} alternating rounds:\n")
    print("| tool | epoch seconds | samples/s | train loss | trainyard ÷ tool |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| trainyard (candle {args.device}) | {best_ty['phases']['fit']:.2f} | {ty_sps:,.0f} | {best_ty['fit']['history'][0]['train_loss']:.4f} | 1.00 |")
    if pt:
        best_pt = max(pt, key=lambda r: r["samples_per_second"])
        pt_sps = best_pt["samples_per_second"]
        print(f"| PyTorch {best_pt['torch']} ({args.device}) | {best_pt['seconds']:.2f} | {pt_sps:,.0f} | {best_pt['loss']:.4f} | {ty_sps / pt_sps:.2f} |")


if __name__ == "__main__":
    main()
