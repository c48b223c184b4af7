"""Benchmark: how many measured calls %refcheck needs to detect each seeded leak of the demo
crate, and what a default refcheck costs against the same number of plain calls.

Run: .venv/bin/python bench/refcheck_bench.py     (prints a table, then one JSON line)
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

import rustdemo

from pyo3_debug_magic.refchecker.engine import MIN_MEASURED_CALLS, SETTLING_CALLS, RefChecker, Verdict


def seeded_cases():
    """(name, function, args, predicate on the report that says the leak was found)."""
    victim = {"held": "elsewhere"}
    return [
        ("reference leak", rustdemo.leak_reference, ([object()],),
         lambda r: r.objects[0].verdict is Verdict.LEAK),
        ("over-release", rustdemo.over_release, (victim,),
         lambda r: r.objects[0].verdict is Verdict.OVER_RELEASE),
        ("leaked result", rustdemo.leak_result, (5,),
         lambda r: r.result is not None and r.result.verdict is Verdict.LEAK),
        ("native heap leak", rustdemo.leak_native, (4096,),
         lambda r: any(c.unit == "bytes" and c.verdict is Verdict.LEAK for c in r.counters)),
    ]


def calls_to_detect(func, args, found) -> tuple[int | None, float]:
    for number in range(MIN_MEASURED_CALLS, 11):
        started = time.perf_counter()
        report = RefChecker(number=number).check(func, *args)
        if found(report):
            return number, time.perf_counter() - started
    return None, float("nan")


def timing(repeats: int = int(os.environ.get("PYO3_DEBUG_MAGIC_BENCH_ROUNDS", "7"))) -> tuple[float, float]:
    """Median wall time of a default refcheck and of the same number of plain calls."""
    values = list(range(200))
    checker = RefChecker()
    plain_calls = checker.warmup + checker.number
    refcheck_times, plain_times = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        checker.check(rustdemo.compute, values)
        refcheck_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(plain_calls):
            rustdemo.compute(values)
        plain_times.append(time.perf_counter() - started)
    return statistics.median(refcheck_times), statistics.median(plain_times)


def main() -> int:
    rows = []
    for name, func, args, found in seeded_cases():
        needed, seconds = calls_to_detect(func, args, found)
        rows.append({"leak": name, "measured_calls_to_detect": needed, "seconds": round(seconds, 4)})
    refcheck_s, plain_s = timing()
    print(f"{'seeded leak':<18} {'measured calls to detect':>25} {'time (s)':>9}")
    for row in rows:
        print(f"{row['leak']:<18} {str(row['measured_calls_to_detect']):>25} {row['seconds']:>9.3f}")
    print(f"\ndefault %refcheck (3 warm-up + 10 measured + {SETTLING_CALLS}x2 settling + baseline loop): "
          f"{refcheck_s * 1000:.1f} ms")
    print(f"same number of plain calls (13): {plain_s * 1000:.3f} ms")
    print(f"ratio: {refcheck_s / plain_s:.0f}x (absolute overhead {1000 * (refcheck_s - plain_s):.1f} ms)")
    result = {"benchmark": "refcheck", "python": sys.version.split()[0], "detection": rows,
              "refcheck_ms": round(refcheck_s * 1000, 2), "plain_calls_ms": round(plain_s * 1000, 4),
              "ratio": round(refcheck_s / plain_s, 1),
              "target_met": all(r["measured_calls_to_detect"] is not None and
                                r["measured_calls_to_detect"] <= 10 for r in rows)}
    print(json.dumps(result))
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
