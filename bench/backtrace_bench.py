"""Benchmark: %native_bt wall time vs `py-spy dump --native` and vs `gdb -batch -p PID -ex "thread
apply all bt"`, on the same target in the same run (target: py-spy engine within 2x of py-spy).

Run: .venv/bin/python bench/backtrace_bench.py      (prints a table, then one JSON line)
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyo3_debug_magic.stacks import pyspy  # noqa: E402
from pyo3_debug_magic.debugger import NativeDebugger  # noqa: E402
from pyo3_debug_magic.render.text import thread_stacks  # noqa: E402
from pyo3_debug_magic.tools import find_gdb, find_py_spy  # noqa: E402

TARGET = ("import threading, time, rustdemo\n"
          "threading.Thread(target=rustdemo.worker_without_gil, args=(600,), daemon=True).start()\n"
          "print('ready', flush=True)\ntime.sleep(600)\n")


def timed(action, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main(repeats: int = int(os.environ.get("PYO3_DEBUG_MAGIC_BENCH_ROUNDS", "7"))) -> int:
    target = subprocess.Popen([sys.executable, "-c", TARGET], stdout=subprocess.PIPE, text=True)
    pid = target.pid
    try:
        assert target.stdout.readline().strip() == "ready"
        spy, gdb = find_py_spy(), find_gdb()
        raw_spy = timed(lambda: subprocess.run([spy, "dump", "--pid", str(pid), "--native"],
                                               capture_output=True, check=True), repeats)
        ours_spy = timed(lambda: thread_stacks(pyspy.dump(pid)), repeats)
        raw_gdb = timed(lambda: subprocess.run([gdb, "-nx", "-batch", "-p", str(pid), "-ex", "thread apply all bt"],
                                               capture_output=True, check=True), repeats)
        debugger = NativeDebugger(pid)
        try:
            debugger.attach()
            ours_gdb = timed(lambda: thread_stacks(debugger.snapshot().threads), repeats)
        finally:
            debugger.close()
    finally:
        target.kill()
        target.wait()
    rows = [("%native_bt --engine py-spy", ours_spy, raw_spy, "py-spy dump --native", 2.0),
            ("%native_bt --engine gdb (attached)", ours_gdb, raw_spy, "py-spy dump --native", None),
            ("%native_bt --engine gdb (attached)", ours_gdb, raw_gdb, "gdb -batch thread apply all bt", None)]
    print(f"{'measure':<36} {'ours':>9} {'baseline':>9} {'ratio':>6} {'target':>7}  baseline")
    result = {"benchmark": "backtrace", "repeats": repeats}
    for name, ours, base, label, target_ratio in rows:
        print(f"{name:<36} {ours * 1000:>7.1f}ms {base * 1000:>7.1f}ms {ours / base:>5.2f}x "
              f"{(f'{target_ratio}x' if target_ratio else '-'):>7}  {label}")
    result.update({"pyspy_engine_ms": round(ours_spy * 1000, 1), "pyspy_raw_ms": round(raw_spy * 1000, 1),
                   "gdb_engine_ms": round(ours_gdb * 1000, 1), "gdb_batch_ms": round(raw_gdb * 1000, 1),
                   "pyspy_engine_ratio": round(ours_spy / raw_spy, 2), "target_met": ours_spy / raw_spy <= 2.0})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
