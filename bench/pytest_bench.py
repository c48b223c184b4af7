"""Benchmark: a suite of 200 fast tests against the demo crate, run by pytest with
``--native-crash`` against the same suite run plainly, alternating, in the same run (target:
1.2x or lower; the agent attaches once per process, not per test). Also with pytest-xdist (2
workers, one attach each) against xdist alone, and the same at 2000 tests: the difference
between the two sizes is what each test costs, the rest is the one attach per process.

Run: .venv/bin/python bench/pytest_bench.py     (prints a table, then one JSON line)
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = 200
MANY = 2000
ROUNDS = int(os.environ.get("PYO3_DEBUG_MAGIC_BENCH_ROUNDS", "5"))  # the suite runs it with fewer: it checks the command
TARGET = 1.2

SUITE = '''import rustdemo
import pytest


@pytest.mark.parametrize("value", range({tests}))
def test_square(value):
    assert rustdemo.square(value) == value * value
'''


def run_once(directory: Path, options: list[str], state: Path, suite: str = "test_fast.py", tests: int = TESTS) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYO3_DEBUG_MAGIC_STATE"] = str(state)
    started = time.perf_counter()
    finished = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", suite,
                               *options], cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    if finished.returncode != 0 or f"{tests} passed" not in finished.stdout:
        raise SystemExit(f"the suite failed with {options}:\n{finished.stdout[-2000:]}{finished.stderr[-2000:]}")
    return seconds


def main() -> int:
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        (directory / "test_fast.py").write_text(SUITE.format(tests=TESTS))
        (directory / "test_many.py").write_text(SUITE.format(tests=MANY))
        (directory / "pytest.ini").write_text("[pytest]\n")  # its own rootdir: no project options
        state = directory / "state"
        cases = {"plain": [], "native-crash": [], "xdist": ["-p", "xdist", "-n", "2"],
                 "xdist native-crash": ["-p", "xdist", "-n", "2", "--native-crash"]}
        cases["native-crash"] = ["--native-crash"]
        times: dict[str, list[float]] = {name: [] for name in cases}
        for name, options in cases.items():  # one warm-up each (imports, page cache)
            run_once(directory, options, state)
        many = {"plain": [], "native-crash": []}
        for _ in range(ROUNDS):
            for name, options in cases.items():
                times[name].append(run_once(directory, options, state))
            for name in many:
                many[name].append(run_once(directory, cases[name], state, "test_many.py", MANY))
    median = {name: statistics.median(values) for name, values in times.items()}
    fixed = median["native-crash"] - median["plain"]
    at_many = statistics.median(many["native-crash"]) - statistics.median(many["plain"])
    per_test_ms = 1000 * (at_many - fixed) / (MANY - TESTS)
    ratio = median["native-crash"] / median["plain"]
    xdist_ratio = median["xdist native-crash"] / median["xdist"]
    print(f"{TESTS} fast tests (rustdemo.square), median of {ROUNDS} alternating runs, wall time of `pytest`")
    print(f"{'run':<22} {'seconds':>8} {'ratio':>7}")
    for name in cases:
        base = median["xdist"] if name.startswith("xdist") else median["plain"]
        print(f"{name:<22} {median[name]:>8.3f} {median[name] / base:>6.2f}x")
    print(f"--native-crash costs {fixed:.3f} s at {TESTS} tests and {at_many:.3f} s at {MANY}: "
          f"{per_test_ms:.3f} ms per test, the rest once per process (starting the agent and gdb, the attach)")
    result = {"benchmark": "pytest", "tests": TESTS, "rounds": ROUNDS,
              "seconds": {name: round(value, 3) for name, value in median.items()},
              "ratio": round(ratio, 3), "xdist_ratio": round(xdist_ratio, 3), "target": TARGET,
              "once_per_process_s": round(fixed, 3), "per_test_ms": round(per_test_ms, 3),
              "target_met": ratio <= TARGET}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
