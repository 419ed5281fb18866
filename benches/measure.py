"""What the peer benchmarks share: running a tool in a fresh process with its wall time and peak
RSS, and formatting the cells of their markdown tables."""

import os
import subprocess
import tempfile
import time


def run_measured(cmd, env=None):
    """Wall seconds, peak RSS MiB (wait4, so only this child counts), stdout, and None or why the
    command failed."""
    with tempfile.TemporaryFile(mode="w+") as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        code = os.waitstatus_to_exitcode(status)
        failure = None
        if code != 0:
            err.seek(0)
            last = (err.read().strip().splitlines() or [""])[-1][:200]
            failure = f"exit {code}" + (" (killed: out of memory?)" if code == -9 else "") + (f": {last}" if last else "")
        return wall, usage.ru_maxrss / 1024.0, out, failure


def fmt(v, digits=3):
    """A table cell: blank for None, numbers to `digits` places (scientific when tiny)."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
