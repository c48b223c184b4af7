"""Each benchmark is one command that prints a table and a JSON line, and meets its target."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness import ROOT


@pytest.mark.timeout(120)
def test_refcheck_benchmark_detects_every_seeded_leak_within_10_calls(demo_crate):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "refcheck_bench.py")],
                         capture_output=True, text=True, timeout=110)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["target_met"] and len(result["detection"]) == 4
    assert all(row["measured_calls_to_detect"] <= 10 for row in result["detection"])
