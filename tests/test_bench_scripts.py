"""Each benchmark is one command that prints a table and a JSON line, and meets its target."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness import ROOT

# each benchmark measures for a while; those whose test asserts a ratio of times run alone (serial)
pytestmark = pytest.mark.slow


def run_benchmark(script: str, timeout: float, env: dict | None = None, args: tuple = ()) -> tuple[dict, str]:
    """Run ``bench/SCRIPT`` as a user would, with three rounds (a run by hand has more: the suite
    checks the command and its output, the numbers come from those runs); its JSON line (the
    last one) and everything it printed."""
    run = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, "PYO3_DEBUG_MAGIC_BENCH_ROUNDS": "3", **(env or {})})
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1]), run.stdout


@pytest.mark.timeout(120)
def test_refcheck_benchmark_detects_every_seeded_leak_within_10_calls(demo_crate):
    result, _ = run_benchmark("refcheck_bench.py", timeout=110)
    assert result["target_met"] and len(result["detection"]) == 4
    assert all(row["measured_calls_to_detect"] <= 10 for row in result["detection"])


@pytest.mark.timeout(300)
def test_breakpoint_benchmark_runs_and_prints_its_json(demo_crate, gdb_path):
    result, _ = run_benchmark("breakpoint_bench.py", timeout=280)
    assert {"attach_detach", "Rust_heavy_call_bp_elsewhere", "hit_stop_view", "log_hits_per_s"} <= set(result)
    assert result["log_hits_per_s"]["ours"] > 0 and result["hit_stop_view"]["ours_ms"] > 0


@pytest.mark.serial
@pytest.mark.timeout(200)
def test_backtrace_benchmark_meets_its_py_spy_target(demo_crate, gdb_path):
    result, printed = run_benchmark("backtrace_bench.py", timeout=190)
    assert result["gdb_engine_ms"] > 0 and result["pyspy_raw_ms"] > 0
    assert result["target_met"], f"the py-spy engine costs over 2x raw py-spy:\n{printed}"


@pytest.mark.timeout(900)  # builds the generated debug crate once
def test_attach_benchmark_runs_and_prints_its_json(demo_crate, gdb_path):
    # a third of the default crate: the command and its output are what is checked here (the
    # default's build alone takes a minute); the closing notes' numbers come from runs by hand
    result, printed = run_benchmark("attach_bench.py", timeout=880, args=("--classes", "270"))
    for case, megabytes in (("polars", 100), ("large_debug", 30)):
        row = result[case]
        assert row["raw_s"] > 0 and row["first_s"] > 0 and row["second_s"] > 0, printed
        assert row["library_mb"] >= megabytes, printed  # the large extensions were really loaded
    # the verdict the JSON line states is the one its own ratios give (its value is reported,
    # not asserted: a timed test would fail on a busy machine)
    rows = [result["polars"], result["large_debug"]]
    assert result["target_met"] is all(r["first_ratio"] <= 1.2 and r["second_ratio"] <= 0.5 for r in rows) \
        or any(abs(r["first_ratio"] - 1.2) < 0.01 or abs(r["second_ratio"] - 0.5) < 0.01 for r in rows), printed


@pytest.mark.serial
@pytest.mark.timeout(200)
def test_profile_benchmark_measures_the_overhead_and_the_step_aside(release_demo, gdb_path):
    result, printed = run_benchmark("profile_bench.py", timeout=180, env={"PYTHONPATH": str(release_demo)})
    assert "cell wall time under py-spy at 100 Hz" in printed
    assert 0.9 < result["overhead_ratio"] < 1.5, printed       # the target (1.03x) is reported, not timed here
    assert result["render_s"] < result["plain_s"] and result["step_aside_s"] < result["first_attach_s"]
    assert result["return_s"] is not None and result["return_s"] > 0


@pytest.mark.serial
@pytest.mark.timeout(900)
def test_pytest_benchmark_times_native_crash_against_the_plain_run(demo_crate, gdb_path):
    result, printed = run_benchmark("pytest_bench.py", timeout=880)
    seconds = result["seconds"]
    assert seconds["plain"] > 0 and seconds["native-crash"] > seconds["plain"] * 0.9, printed
    # attached once per process: a test costs well under a millisecond more (the ratio against
    # the 1.2x target is reported, not asserted: it is the fixed cost of one attach)
    assert result["per_test_ms"] < 1.0, printed
    assert result["target"] == 1.2
    ratio = result["seconds"]["native-crash"] / result["seconds"]["plain"]
    assert abs(ratio - result["ratio"]) < 0.01, printed
    assert result["target_met"] is (result["ratio"] <= 1.2) or abs(result["ratio"] - 1.2) < 0.002, printed
