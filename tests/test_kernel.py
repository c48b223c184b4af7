"""The extension in real Jupyter kernels (jupyter_client) and the demo notebook (nbclient)."""
from __future__ import annotations

import re
import subprocess
import sys

import nbformat
import pytest

from harness import ROOT, KernelHarness, agent_processes, gdb_processes, marker_line, tracer_of

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]


def test_load_ext_and_call_into_rustdemo(kernel):
    loaded = kernel.run("%load_ext pyo3_debug_magic")
    assert loaded.status == "ok", loaded.text
    called = kernel.run("import rustdemo\nrustdemo.compute([1, 2, 3])")
    assert called.status == "ok" and called.results == ["42"], called.text


def test_attach_keeps_the_kernel_responsive_and_detach_cleans_up(kernel, gdb_path):
    kernel.run("%load_ext pyo3_debug_magic")
    attached = kernel.run("%native_attach")
    assert attached.status == "ok" and "attached to kernel pid" in attached.output, attached.text
    assert agent_processes(kernel.pid) and gdb_processes(kernel.pid)
    assert kernel.heartbeat_ok()
    mixed = kernel.run("import rustdemo\nrustdemo.call_python(lambda v: rustdemo.square(v) + 1, 4)")
    assert mixed.results == ["17"], mixed.text
    helpers = agent_processes(kernel.pid) + gdb_processes(kernel.pid)
    detached = kernel.run("%native_detach")
    assert "detached" in detached.output and "--stop" in detached.output, detached.text
    assert tracer_of(kernel.pid) == 0  # gdb let go; the helper waits, idle, for the next attach
    assert agent_processes(kernel.pid) + gdb_processes(kernel.pid) == helpers
    assert kernel.run("rustdemo.compute([1, 2, 3])").results == ["42"]
    again = kernel.run("%native_attach")
    assert again.status == "ok" and agent_processes(kernel.pid) + gdb_processes(kernel.pid) == helpers, again.text
    stopped = kernel.run("%native_detach --stop")
    assert "detached" in stopped.output, stopped.text
    assert not agent_processes(kernel.pid) and not gdb_processes(kernel.pid)
    assert tracer_of(kernel.pid) == 0


def test_kernel_shutdown_while_attached_leaves_nothing_running(demo_crate, gdb_path):
    harness = KernelHarness()
    try:
        harness.run("%load_ext pyo3_debug_magic")
        assert harness.run("%native_attach").status == "ok"
        assert agent_processes(harness.pid)
    finally:
        killed = harness.shutdown()
    assert killed == [], "the agent or gdb outlived the kernel and had to be killed"


def test_without_gdb_load_works_and_attach_names_the_fix(demo_crate):
    harness = KernelHarness(env={"PYO3_DEBUG_MAGIC_GDB": "/nonexistent/gdb"})
    try:
        assert harness.run("%load_ext pyo3_debug_magic").status == "ok"
        failed = harness.run("%native_attach")
        assert failed.status == "error"
        # IPython shows a UsageError as one line on stderr, without a traceback
        assert failed.stderr.startswith("UsageError: gdb not found"), failed.text
        assert "apt-get install gdb" in failed.stderr and failed.stderr.count("\n") == 1
        assert harness.run("import rustdemo; rustdemo.square(7)").results == ["49"]
    finally:
        harness.shutdown()


@pytest.mark.timeout(240)
def test_demo_notebook_runs_end_to_end(demo_crate, gdb_path, tmp_path):
    executed = tmp_path / "demo.executed.ipynb"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebook.py"),
                          str(ROOT / "notebooks" / "demo.ipynb"), "--output", str(executed)],
                         capture_output=True, text=True, timeout=200)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "42" in out and "native debugger attached" in out
    assert "[log breakpoint 1 hit 3]" in out and "LEAK +1/call" in out
    # each view, in the executed copy too (readable without running anything)
    assert "native breakpoint 2 hit in thread 1:" in out and re.search(r"total = \d+", out)   # a pause, answered
    assert "thread 1 stepped to rustdemo::compute" in out
    assert "native debugger, after this cell:" in out                                          # the log, titled
    assert "looks stuck" in out and "thread 1 paused where it was stuck" in out               # a hang, in place
    assert f"SIGSEGV in rustdemo::segfault at src/lib.rs:{marker_line('segfault')}" in out and "crashed thread:" in out
    notebook = nbformat.read(executed, as_version=4)
    outputs = [(c.source.strip(), o) for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    panel = [o for source, o in outputs if source == "%native_break"]
    assert panel and "application/vnd.jupyter.widget-view+json" in panel[0]["data"]
    assert "<table" in panel[0]["data"]["text/html"]  # what a viewer without widgets shows
    assert "widgets" in notebook.metadata  # the widget state, stored: the panel renders from the file
    stops = [o for _, o in outputs if "pyo3-native-stop" in o.get("data", {}).get("text/html", "")]
    assert stops, "no stop view in the executed notebook"
