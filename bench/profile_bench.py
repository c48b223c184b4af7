"""Benchmark: what %%native_profile costs. The same CPU-bound cell (the demo crate's busy_work)
unprofiled, under py-spy at 100 Hz and under the elfutils engine at 100 Hz, in this run; the
time from the cell's end to the rendered profile; and, with gdb attached, the agent's step
aside and return against a first attach.

Run: .venv/bin/python bench/profile_bench.py     (prints a table, then one JSON line)
Profiles the demo crate as it is importable (a release build with debug info is what a PyO3
author profiles: put it first on PYTHONPATH).
"""
from __future__ import annotations

import json
import os
import statistics
import time

import rustdemo

from pyo3_debug_magic.debugger import NativeDebugger
from pyo3_debug_magic.profiling.run import ProfileOptions, run_profiled
from pyo3_debug_magic.render.flamegraph import profile_html
from pyo3_debug_magic.render.profile_text import profile_text

ROUNDS = int(os.environ.get("PYO3_DEBUG_MAGIC_BENCH_ROUNDS", "5"))  # the suite runs it with fewer: it checks the command
TARGET_OVERHEAD = 1.03


def cell(iterations: int) -> None:
    for _ in range(40):
        rustdemo.busy_work(iterations)


def calibrate() -> int:
    """Iterations for a cell of about 1.5 s."""
    iterations = 100_000
    while True:
        started = time.perf_counter()
        cell(iterations)
        spent = time.perf_counter() - started
        if spent > 0.2:
            return int(iterations * 1.5 / spent)
        iterations *= 4


def main() -> None:
    iterations = calibrate()
    plain, profiled, to_view, native, native_view = [], [], [], [], []
    for _ in range(ROUNDS):  # interleaved, so drift hits all alike
        started = time.perf_counter()
        cell(iterations)
        plain.append(time.perf_counter() - started)
        for engine, spent, view in (("py-spy", profiled, to_view), ("elfutils", native, native_view)):
            ended = {}

            def timed():
                started = time.perf_counter()
                cell(iterations)
                ended["at"] = time.perf_counter()
                ended["spent"] = ended["at"] - started

            run = run_profiled(timed, ProfileOptions(rate=100, engine=engine))
            assert run.profile is not None and run.profile.samples > 50, run.problem
            profile_text(run.profile)
            profile_html(run.profile)
            view.append(time.perf_counter() - ended["at"])
            spent.append(ended["spent"])
    debugger = NativeDebugger()
    started = time.perf_counter()
    debugger.attach()
    first_attach = time.perf_counter() - started
    try:
        run = run_profiled(lambda: cell(iterations // 10), ProfileOptions(rate=100), debugger)
        assert run.profile is not None and run.aside is not None, run.problem
        away, back = run.aside
    finally:
        debugger.close()
    plain_s, profiled_s, native_s = statistics.median(plain), statistics.median(profiled), statistics.median(native)
    rows = [
        ("cell wall time, unprofiled (baseline)", plain_s, 1.0),
        ("cell wall time under py-spy at 100 Hz", profiled_s, profiled_s / plain_s),
        ("cell end -> profile rendered (vs the cell)", statistics.median(to_view), statistics.median(to_view) / plain_s),
        ("cell wall time, --engine elfutils at 100 Hz", native_s, native_s / plain_s),
        ("  cell end -> profile rendered (symbols named)", statistics.median(native_view),
         statistics.median(native_view) / plain_s),
        ("gdb first attach (baseline)", first_attach, 1.0),
        ("gdb steps aside", away, away / first_attach),
        ("gdb attaches again, breakpoints kept", back, back / first_attach),
    ]
    print(f"{'measure':48} {'seconds':>9} {'ratio':>7}")
    for name, seconds, ratio in rows:
        print(f"{name:48} {seconds:9.3f} {ratio:6.2f}x")
    overhead = profiled_s / plain_s
    print(f"overhead {overhead:.3f}x (target {TARGET_OVERHEAD}x or lower)")
    print(json.dumps({"benchmark": "profile", "plain_s": round(plain_s, 4), "profiled_s": round(profiled_s, 4),
                      "overhead_ratio": round(overhead, 4), "target_overhead_ratio": TARGET_OVERHEAD,
                      "render_s": round(statistics.median(to_view), 4), "first_attach_s": round(first_attach, 4),
                      "elfutils_s": round(native_s, 4), "elfutils_overhead_ratio": round(native_s / plain_s, 4),
                      "elfutils_render_s": round(statistics.median(native_view), 4),
                      "step_aside_s": round(away, 4), "return_s": round(back, 4) if back is not None else None}))


if __name__ == "__main__":
    main()
