"""Crash capture that survives "Kernel died": real kernels crashed by the demo crate, restarted."""
from __future__ import annotations

import json
import os
import re
import time

import pytest

from harness import KernelHarness, marker_line, wait_for
from pyo3_debug_magic.crash import report_files

pytestmark = [pytest.mark.kernel, pytest.mark.gdb, pytest.mark.timeout(150)]


@pytest.fixture
def state_dir(tmp_path):
    """A private state directory for the kernels of one test (reports stay out of the user's)."""
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


def crash_and_restart(state_dir, cell: str, answers=None) -> KernelHarness:
    kernel = KernelHarness(env={"PYO3_DEBUG_MAGIC_STATE": str(state_dir)})
    assert kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo").status == "ok"
    assert "attached" in kernel.run("%native_attach").output
    crashed = kernel.run(cell, timeout=30, answers=answers)
    assert crashed.status == "died", f"the kernel should have died: {crashed.status}\n{crashed.text}"
    kernel.manager.restart_kernel(now=True)
    kernel.client.wait_for_ready(timeout=60)
    return kernel


@pytest.mark.parametrize("function, signal, marker", [
    ("segfault", "SIGSEGV", "segfault"),
    ("abort", "SIGABRT", "abort"),
    ("stack_overflow", "stack overflow (SIGSEGV)", "stack-overflow"),
    ("illegal_instruction", "SIGILL", "illegal-instruction"),
    ("divide_by_zero", "SIGFPE", "divide-by-zero"),
    ("bus_error", "SIGBUS", "bus-error"),
])
def test_crash_is_reported_after_the_restart(demo_crate, gdb_path, state_dir, function, signal, marker):
    kernel = crash_and_restart(state_dir, f"x = 1\nrustdemo.{function}()")
    try:
        loaded = kernel.run("%load_ext pyo3_debug_magic")
        line = marker_line(marker)
        expected = f"The previous kernel crashed: {signal} in rustdemo::"
        assert expected in loaded.output, loaded.text
        # a stack overflow faults in the prologue's probe, which DWARF may put on the next line
        lines = f"({line}|{line + 1})" if function == "stack_overflow" else str(line)
        assert re.search(rf"at src/lib.rs:{lines}, called from cell line 2", loaded.output), loaded.text
        assert loaded.output.count("\n") == 1  # one line
        report = kernel.run("%native_crash")
        assert report.output.startswith(loaded.output.split("crashed: ")[1].split(" (`%native")[0])
        assert "crashed thread:" in report.output and "<- cell" in report.output
        # which process it was, that it is not this one, and when it died
        assert re.search(rf"of pid \d+, an earlier process than this one \(pid {kernel.pid}\), crashed "
                         r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+ s ago\)", report.output), report.output
        if function == "abort":
            assert "rustdemo: about to abort" in report.output  # the tail of the kernel's stderr
        if function == "stack_overflow":
            assert "stack overflow: the fault is at the thread's stack guard" in report.output
        if function == "segfault":
            assert "target = 0x0" in report.output  # locals of the faulting Rust frame
            assert re.search(rf"-> {line} .*MARK: segfault", report.output), report.output  # the source
            assert "threads of the kernel's own machinery hidden" in report.output  # folded as %native_bt
            assert report.output.index("MARK: segfault") < report.output.index("crashed thread:")
        again = kernel.run("%reload_ext pyo3_debug_magic")
        assert "previous kernel crashed" not in again.output  # announced once
        listed = kernel.run("%native_crash --list").output
        assert re.match(r"crash-\d+-\d+\.json: ", listed) and listed.count("\n") == 1, listed
        files = list((state_dir / "crashes").glob("crash-*.json"))
        assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
        assert oct((state_dir / "crashes").stat().st_mode & 0o777) == "0o700"
        assert "removed 1 crash report" in kernel.run("%native_crash --clear").output
        assert "no crash report for this kernel" in kernel.run("%native_crash").output
    finally:
        kernel.shutdown()


def test_crash_in_a_worker_thread_during_a_paused_hand_off(demo_crate, gdb_path, state_dir):
    go = state_dir / "crash-now"
    cell = ("import os, threading, time\n"
            f"def crash_when_told():\n    while not os.path.exists({str(go)!r}):\n        time.sleep(0.01)\n"
            "    rustdemo.segfault()\n"
            "threading.Thread(target=crash_when_told, daemon=True).start()\n"
            "rustdemo.square(3)")
    setup = f"%native_break src/lib.rs:{marker_line('square')}"

    def crash_then_answer(prompt):
        # the main thread is paused (GIL handed off) at the prompt: now the worker crashes
        go.write_text("")
        wait_for(lambda: not kernel.manager.is_alive(), 30, "the kernel dying of the worker's SIGSEGV")
        return "c"

    kernel = KernelHarness(env={"PYO3_DEBUG_MAGIC_STATE": str(state_dir)})
    try:
        kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo")
        kernel.run(setup, timeout=60)
        assert kernel.run(cell, timeout=60, answers=crash_then_answer).status == "died"
        kernel.manager.restart_kernel(now=True)
        kernel.client.wait_for_ready(timeout=60)
        loaded = kernel.run("%load_ext pyo3_debug_magic")
        assert "SIGSEGV in rustdemo::segfault at src/lib.rs:" in loaded.output, loaded.text
        report = kernel.run("%native_crash").output
        assert "paused at a breakpoint" in report  # the main thread was paused when it happened
    finally:
        kernel.shutdown()


def test_without_the_agent_nothing_is_invented(demo_crate, state_dir):
    kernel = KernelHarness(env={"PYO3_DEBUG_MAGIC_STATE": str(state_dir)})
    try:
        kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo")
        assert kernel.run("rustdemo.segfault()", timeout=30).status == "died"
        kernel.manager.restart_kernel(now=True)
        kernel.client.wait_for_ready(timeout=60)
        loaded = kernel.run("%load_ext pyo3_debug_magic")
        assert "crashed" not in loaded.output, loaded.text
        shown = kernel.run("%native_crash").output
        assert "no crash report for this kernel" in shown and "%native_attach" in shown
    finally:
        kernel.shutdown()


def test_reports_of_other_kernels_and_users_are_not_the_previous_kernels(tmp_path):
    directory = tmp_path / "crashes"
    directory.mkdir()
    base = {"version": 1, "pid": os.getpid() + 1, "time": time.time(), "summary": "SIGSEGV in x"}
    (directory / "crash-1-1.json").write_text(json.dumps({**base, "uid": os.getuid(), "kernel_id": "kernel-other"}))
    (directory / "crash-2-2.json").write_text(json.dumps({**base, "uid": os.getuid() + 1, "kernel_id": "kernel-mine"}))
    (directory / "crash-3-3.json").write_text(json.dumps({**base, "uid": os.getuid(), "kernel_id": "kernel-mine",
                                                          "pid": os.getpid()}))
    assert report_files.previous_crash("kernel-mine", directory) is None
    assert report_files.previous_crash(None, directory) is None
    (directory / "crash-4-4.json").write_text(json.dumps({**base, "uid": os.getuid(), "kernel_id": "kernel-mine"}))
    found = report_files.previous_crash("kernel-mine", directory)
    assert found is not None and found.path.name == "crash-4-4.json"
    assert report_files.announce_once("kernel-mine", directory).startswith("The previous kernel crashed: SIGSEGV in x")
    assert report_files.announce_once("kernel-mine", directory) is None
