#!/usr/bin/env bash
# CPU against CUDA on a GPU box, side by side in one invocation:
#   1. the logistic objective, one pass over the 3.2M x 64 train matrix (GB/s);
#   2. a full logistic fit on 4M x 64 synthetic rows (`trainyard train`, device cpu then cuda);
#   3. MLP samples/s for one epoch (benches/mlp.py), with PyTorch on the same device when
#      `python3 -c "import torch"` works;
# then the tests with TRAINYARD_TEST_CUDA=1, so the CUDA bodies run too.
#
#   bash benches/gpu.sh [--no-build] [--no-tests]
#
# Needs the CUDA 13.0 toolkit (nvcc; CUDA_HOME or /usr/local/cuda) and the NVIDIA driver.
set -euo pipefail
cd "$(dirname "$0")/.."
build=1 tests=1
for a in "$@"; do
    case "$a" in
        --no-build) build=0 ;;
        --no-tests) tests=0 ;;
        *) echo "usage: bash benches/gpu.sh [--no-build] [--no-tests]" >&2; exit 2 ;;
    esac
done
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}" CUDA_PATH="${CUDA_PATH:-${CUDA_HOME:-/usr/local/cuda}}"
target="${CARGO_TARGET_DIR:-target}"
if [[ $build == 1 ]]; then
    cargo build --release --locked --features cuda -p trainyard -p trainyard-benches --bins
fi
bin="$target/release/trainyard"
work="${TMPDIR:-/tmp}/trainyard-gpu-bench"
mkdir -p "$work"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/GPU: /' || echo "GPU: nvidia-smi not found"
echo "CPU: $(nproc) cores"

echo
echo "| what | device | seconds | throughput | CPU ÷ device |"
echo "| --- | --- | ---: | ---: | ---: |"
"$target/release/objective_devices" 3200000 64

data="$work/num-4000000x64"
[[ -d "$data" ]] || "$bin" synth --numeric 64 --rows 4000000 --files 5 --out "$data" >/dev/null
python3 - "$bin" "$data" "$work" <<'PY'
import json, os, subprocess, sys
bin, data, work = sys.argv[1:4]
parts = sorted(os.path.join(data, f) for f in os.listdir(data) if f.endswith(".parquet"))
spec = {"name": "gpu-bench", "data": {"features": parts[:-1]}, "label": "label",
        "features": {"numeric": [f"x{j}" for j in range(64)]},
        "holdout": {"files": parts[-1:]}, "model": {"logistic": {"l2": 1.0}}}
cpu = None
for device in ["cpu", "cuda"]:
    spec["device"] = device
    path = os.path.join(work, f"spec-{device}.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    run = os.path.join(work, f"run-{device}")
    out = subprocess.run([bin, "train", path, "--output", run, "--overwrite"], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"| logistic fit 4M x 64 | {device} | failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1]} | | |")
        continue
    m = json.load(open(os.path.join(run, "metrics.json")))
    fit = m["phases"]["fit"]
    cpu = cpu or fit
    print(f"| logistic fit 4M x 64 ({m['fit']['objective_passes']} passes, test AUC {m['test']['roc_auc']:.5f}) | {device} "
          f"| {fit:.3f} | end to end {m['phases']['total']:.2f} s | {cpu / fit:.2f}x |")
PY

torch=(--no-torch)
if python3 -c "import torch" 2>/dev/null; then torch=(--python "$(command -v python3)"); fi
for device in cpu cuda; do
    python3 benches/mlp.py --no-build --rounds 1 --device "$device" "${torch[@]}" \
        || echo "MLP on $device: failed (see above)"
done

if [[ $tests == 1 ]]; then
    echo
    echo "== tests with the CUDA bodies (TRAINYARD_TEST_CUDA=1)"
    TRAINYARD_TEST_CUDA=1 cargo test --locked --workspace --features cuda
fi
