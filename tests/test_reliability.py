"""Never cost the user their kernel: every Python, faults of gdb and the agent, Interrupts with
several threads paused, hang diagnosis over many cells, injection attempts, a soak.

Each test records what it did in the ``reliability`` figures printed at the end of the run.
``PYO3_DEBUG_MAGIC_FULL=1`` runs the long versions (200 cycles, 200 watched cells).
"""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from harness import (PYTHONS, KernelHarness, agent_processes, gdb_processes, is_alive, marker_line,
                     python_variant)

pytestmark = [pytest.mark.kernel, pytest.mark.gdb, pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(300)]

FULL = bool(os.environ.get("PYO3_DEBUG_MAGIC_FULL"))


def shown(result) -> list[str]:
    return [d.get("text/plain", "") for d in result.displays]


def start_kernel(python=None, env=None, variant: str | None = None) -> KernelHarness:
    """A kernel with the extension loaded; ``variant`` names a harness.PYTHONS entry."""
    if variant is not None:
        python, variant_env = python_variant(variant)
        env = {**variant_env, **(env or {})}
    kernel = KernelHarness(python=python, env=env)
    loaded = kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo\nkeep = {'set': 'before'}")
    assert loaded.status == "ok", loaded.text
    return kernel


def break_at(kernel, marker: str, options: str = "") -> None:
    result = kernel.run(f"%native_break src/lib.rs:{marker_line(marker)} {options}", timeout=60)
    assert result.status == "ok", result.text


def still_intact(kernel) -> None:
    """The kernel answers and the state set before the fault is there."""
    answer = kernel.run("keep['set'], 6 * 7", timeout=30)
    assert answer.results == ["('before', 42)"], answer.text


def wait_until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture(params=list(PYTHONS))
def any_python(request, demo_crate):
    kernel = start_kernel(variant=request.param)
    kernel.variant = request.param
    try:
        yield kernel
    finally:
        assert kernel.shutdown() == [], "the agent or gdb outlived the kernel"


# ----- every Python ---------------------------------------------------------------------
def test_pause_step_and_continue_on_every_python(any_python, reliability):
    kernel = any_python
    break_at(kernel, "compute-loop")
    result = kernel.run("rustdemo.compute([1, 2, 3])", answers=["p total", "n", "p term", "frame 25", "c"],
                        timeout=90)
    assert result.status == "ok" and result.results == ["42"], result.text
    views = shown(result)
    # what gdb inside the agent knows of libpython is what the variant promises
    interpreter_frame = next((v for v in views if v.startswith("#25 ")), views)  # inside libpython
    has_source = bool(re.search(r"\.[ch]:\d+$", str(interpreter_frame)))
    assert has_source == (kernel.variant != "debian-python3"), interpreter_frame
    assert any(f"src/lib.rs:{marker_line('compute-loop')}" in v and "native breakpoint 1 hit" in v
               for v in views), views
    assert "total = 0" in views and "term = 3" in views, views
    assert not any("not paused" in v for v in views), views
    still_intact(kernel)
    reliability.count("pauses on Pythons with and without libpython debug info (pyenv, Debian, Debian + python3.X-dbg)")


def test_backtrace_on_every_python(any_python):
    kernel = any_python
    assert "attached" in kernel.run("%native_attach").output
    shown_bt = kernel.run("%native_bt --engine gdb", timeout=60)
    assert shown_bt.status == "ok", shown_bt.text
    assert "<- cell" in shown_bt.output, shown_bt.output
    # gdb's Python frames come from memory on every Python: without libpython's debug info, by
    # the layout the kernel found in itself; the GIL's holder is known either way
    read = kernel.run("from pyo3_debug_magic.debugger import get_debugger\n"
                      "snapshot = get_debugger().snapshot()\n"
                      "snapshot.python_source, snapshot.problem, {t.holds_gil for t in snapshot.threads}")
    source, problem, holders = eval(read.results[0])
    assert (source, problem) == ("memory", None) and holders - {None}, read.text  # None: a thread without Python


@pytest.mark.parametrize("python", list(PYTHONS))
def test_crash_report_on_every_python(demo_crate, tmp_path, python):
    interpreter, env = python_variant(python)
    kernel = KernelHarness(python=interpreter, env={**env, "PYO3_DEBUG_MAGIC_STATE": str(tmp_path / "state")})
    try:
        assert kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo").status == "ok"
        assert "attached" in kernel.run("%native_attach").output
        assert kernel.run("rustdemo.segfault()", timeout=30).status == "died"
        kernel.manager.restart_kernel(now=True)
        kernel.client.wait_for_ready(timeout=60)
        loaded = kernel.run("%load_ext pyo3_debug_magic")
        assert f"SIGSEGV in rustdemo::segfault at src/lib.rs:{marker_line('segfault')}" in loaded.output, loaded.text
        again = kernel.run("%unload_ext pyo3_debug_magic\n%load_ext pyo3_debug_magic")
        assert "previous kernel crashed" not in again.output  # announced once
    finally:
        kernel.shutdown()


# ----- several threads --------------------------------------------------------------------
TWO_THREADS = """
import threading
results = []
workers = [threading.Thread(target=lambda: results.append(rustdemo.compute([1, 2, 3]))) for _ in range(2)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
sorted(results)
"""


def test_interrupt_with_two_threads_paused_ends_every_pause(demo_crate, reliability):
    kernel = start_kernel()
    try:
        break_at(kernel, "compute-loop")

        def interrupt_when_both_paused(prompt):
            # the first thread handed its GIL over, so the second reaches the line and pauses
            # too while the first waits at this prompt
            time.sleep(1.0)
            kernel.manager.interrupt_kernel()
            return None

        result = kernel.run(TWO_THREADS, answers=interrupt_when_both_paused, timeout=90)
        assert result.status == "error" and result.error["ename"] == "KeyboardInterrupt", result.text
        assert len(result.prompts) == 1, result.prompts  # no prompt for a pause the Interrupt ended
        done = kernel.run("import time\nfor w in workers: w.join(20)\nsorted(results)", timeout=60)
        assert done.results == ["[42, 42]"], done.text
        still_intact(kernel)
        reliability.fault("Interrupt with two threads paused", "both resumed, kernel intact")
    finally:
        assert kernel.shutdown() == []


def test_a_thread_hitting_a_breakpoint_while_another_is_paused(demo_crate, reliability):
    kernel = start_kernel()
    try:
        break_at(kernel, "compute-result")
        result = kernel.run(TWO_THREADS, answers=["c", "c", "c", "c"], timeout=90)
        assert result.status == "ok" and result.results == ["[42, 42]"], result.text
        assert len(result.prompts) >= 2, result.prompts
        still_intact(kernel)
        reliability.fault("breakpoint hit by two threads in turn", "both paused and resumed")
    finally:
        assert kernel.shutdown() == []


# ----- the agent and gdb dying or stopping ---------------------------------------------------
@pytest.mark.parametrize("kind", ["--log value", ""])
def test_gdb_killed_with_breakpoints_inserted(demo_crate, reliability, kind):
    kernel = start_kernel()
    try:
        break_at(kernel, "square", kind)
        assert kernel.run("rustdemo.square(2)", answers=["c"], timeout=60).results == ["4"]
        for pid in gdb_processes(kernel.pid):
            os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not gdb_processes(kernel.pid), 10)
        time.sleep(1.0)  # the agent notices within its loop's half second
        after = kernel.run("rustdemo.square(3)", timeout=30)
        assert after.status == "ok" and after.results == ["9"], f"{after.status}: {after.text}"
        still_intact(kernel)
        listed = kernel.run("%native_break")
        assert listed.status == "ok", listed.text
        reliability.fault(f"gdb SIGKILL with a {'log' if kind else 'pausing'} breakpoint",
                          "int3 removed, no SIGTRAP, kernel intact")
    finally:
        assert kernel.shutdown() == []


# ----- hang diagnosis over many cells ------------------------------------------------------
@pytest.mark.timeout(1800 if FULL else 300)
@pytest.mark.parametrize("python", list(PYTHONS))
def test_native_watch_over_many_cells(demo_crate, reliability, python):
    cells = 200 if FULL else 12
    kernel = start_kernel(variant=python)
    try:
        assert "native watch" in kernel.run("%native_watch --after 0.3\nimport time", timeout=60).output
        reports = 0
        for number in range(cells):
            # about 1.4 s each: Rust holding the GIL, then pure Python (past the 0.3 s bound with
            # room for the report to reach the cell while it runs, on a busy machine too)
            code = ("rustdemo.busy_work(180_000_000)" if number % 2 else
                    "started = time.monotonic()\nwhile time.monotonic() - started < 1.4:\n    pass\n1")
            result = kernel.run(code, timeout=60)
            assert result.status == "ok" and result.results, f"cell {number}: {result.status} {result.text}"
            reports += sum("looks stuck" in v for v in shown(result))
        still_intact(kernel)
        assert reports == cells, f"{reports} of {cells} cells reported, although each runs over 0.3 s"
        reliability.fault(f"%native_watch at 0.3 s over {cells} cells ({python})", f"{reports} reports, kernel intact")
    finally:
        assert kernel.shutdown() == []


# ----- injection ---------------------------------------------------------------------------
def test_nothing_typed_runs_a_gdb_command(demo_crate, tmp_path, reliability):
    marker = tmp_path / "injected"
    shell = f'$_shell("touch {marker}")'
    kernel = start_kernel()
    try:
        line = marker_line("square")
        attempts = [
            f"%native_break src/lib.rs:{line} --if '{shell}'",
            f"%native_break src/lib.rs:{line} --log '{shell}'",
            f"%native_break src/lib.rs:{line} --log 'value, $_as_string({shell})'",
            f"%native_break 'src/lib.rs:{line}\n-interpreter-exec console \"shell touch {marker}\"'",
            f"%native_break src/lib.rs:{line} --if 'value == 1\" -gdb-exit'",
            f"%native_break rustdemo::square --crate 'x; shell touch {marker}'",
        ]
        for attempt in attempts:
            result = kernel.run(attempt, timeout=60)
            assert result.status == "error" and "Traceback" not in result.text, result.text
        break_at(kernel, "square")
        prompt_attempts = [f"p {shell}", f"p $_as_string({shell})", f"p ($_shell)(\"touch {marker}\")",
                           "p value\n-gdb-exit", f"p python import os; os.system('touch {marker}')"]
        result = kernel.run("rustdemo.square(5)", answers=prompt_attempts + ["c"], timeout=60)
        assert result.results == ["25"], result.text
        refused = [v for v in shown(result) if "not allowed" in v or v.startswith("error:")]
        assert len(refused) >= 3, shown(result)
        assert not marker.exists(), "a typed gdb command ran"
        reliability.injections(len(attempts) + len(prompt_attempts), blocked=len(attempts) + len(prompt_attempts))
    finally:
        assert kernel.shutdown() == []


# ----- soak ----------------------------------------------------------------------------------
def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


@pytest.mark.timeout(1800 if FULL else 300)
def test_attach_detach_soak(demo_crate, reliability):
    """Attach/detach cycles (200 with PYO3_DEBUG_MAGIC_FULL=1); every tenth also sets a
    breakpoint, hits it, inspects a value and continues. Descriptors, threads and resident
    memory of the kernel stay flat."""
    cycles = 200 if FULL else 20
    kernel = start_kernel()
    try:
        line = marker_line("square")
        # one whole cycle first, so lazily created threads (the pause console) and files are
        # there before counting
        kernel.run(f"%native_break src/lib.rs:{line}\nrustdemo.square(1)", answers=["p value", "c"], timeout=60)
        kernel.run("%native_delete all\n%native_detach --stop", timeout=60)
        descriptors, threads = open_descriptors(kernel.pid), thread_count(kernel.pid)
        memory = resident_kib(kernel.pid)
        for cycle in range(cycles):
            if cycle % 10 == 0:
                result = kernel.run(f"%native_break src/lib.rs:{line}\nrustdemo.square({cycle})",
                                    answers=["p value", "c"], timeout=60)
                assert result.status == "ok" and result.results == [str(cycle * cycle)], f"cycle {cycle}: {result.text}"
                assert f"value = {cycle}" in shown(result), f"cycle {cycle}: {shown(result)}"
                ended = kernel.run("%native_delete all\n%native_detach", timeout=60)
            else:
                assert kernel.run("%native_attach", timeout=60).status == "ok"
                ended = kernel.run("%native_detach" + (" --stop" if cycle % 2 else ""), timeout=60)
            stop = cycle % 2 == 1  # every other detach ends the helper too
            assert ended.status == "ok", f"cycle {cycle}: {ended.text}"
            helpers = (agent_processes(kernel.pid), gdb_processes(kernel.pid))
            assert (not any(helpers)) if stop else tuple(map(len, helpers)) == (1, 1), f"cycle {cycle}: {helpers}"
        kernel.run("%native_detach --stop", timeout=60)
        still_intact(kernel)
        # the last helper's pipes and threads close a moment after it exits
        wait_until(lambda: thread_count(kernel.pid) <= threads and open_descriptors(kernel.pid) <= descriptors, 10)
        leaked_fds = open_descriptors(kernel.pid) - descriptors
        leaked_threads = thread_count(kernel.pid) - threads
        grown_kib = resident_kib(kernel.pid) - memory
        reliability.cycles(cycles, leaked_descriptors=leaked_fds, leaked_threads=leaked_threads)
        reliability.count(f"kernel resident memory change over {cycles} attach/detach cycles (KiB)", grown_kib)
        assert leaked_fds <= 0 and leaked_threads <= 0, (leaked_fds, leaked_threads)
        assert grown_kib < 8 * 1024, grown_kib  # flat: the kernel hosts neither gdb nor the helper
    finally:
        assert kernel.shutdown() == []


# ----- the kernel going away while paused, and a flood of log hits -----------------------------
@pytest.mark.parametrize("how", ["restart", "shutdown"])
def test_kernel_restart_or_shutdown_while_paused_leaves_nothing_behind(demo_crate, reliability, how):
    kernel = start_kernel()
    left_behind = []
    try:
        break_at(kernel, "square")
        helpers = []

        def leave(prompt):
            helpers.extend(agent_processes(kernel.pid) + gdb_processes(kernel.pid))
            if how == "restart":
                kernel.manager.restart_kernel(now=False)
            else:
                kernel.manager.shutdown_kernel(now=False)
            return None

        ended = kernel.run("rustdemo.square(12)", answers=leave, timeout=60)
        assert ended.status in ("died", "restarted"), ended.status  # at once, not at the timeout
        assert helpers, "no agent or gdb was running during the pause"
        assert wait_until(lambda: not any(is_alive(pid) for pid in helpers), 20), \
            [pid for pid in helpers if is_alive(pid)]
        if how == "restart":
            kernel.client.wait_for_ready(timeout=60)
            assert kernel.run("1 + 1").results == ["2"]
        reliability.fault(f"kernel {how} while paused", "agent and gdb gone")
    finally:
        if kernel.manager.has_kernel:
            left_behind = kernel.shutdown()
    assert left_behind == []


def test_log_breakpoint_flood_in_a_hot_loop(demo_crate, reliability):
    kernel = start_kernel()
    try:
        break_at(kernel, "compute-loop", "--log total")
        started = time.monotonic()
        result = kernel.run("rustdemo.compute(list(range(20_000)))", timeout=240)
        elapsed = time.monotonic() - started
        assert result.status == "ok" and result.results, result.text
        assert "log breakpoint 1" in result.text, result.text[:500]
        listed = kernel.run("%native_break").output
        assert "20000" in listed.replace(",", ""), listed  # every hit counted
        still_intact(kernel)
        reliability.fault(f"log breakpoint hit 20,000 times in a hot loop ({elapsed:.1f} s)",
                          "every hit counted, kernel intact")
    finally:
        assert kernel.shutdown() == []


@pytest.mark.parametrize("python", ["pyenv-3.11", "debian-python3-dbg"])
def test_steps_never_stop_in_c_code(demo_crate, reliability, python):
    """`s` into the interpreter (both have libpython line info: `ffi::Py_DecRef`) finishes back
    out to Rust, `s` over a PyO3 call stays in the user's function, and `s` off its end runs
    on: a pause never hands the GIL over from inside C code, nor stops in PyO3's code."""
    kernel = start_kernel(variant=python)
    try:
        break_at(kernel, "over-release")
        released = kernel.run("kept = object()\nrustdemo.over_release(kept)\n'released'", answers=["s"] * 4 + ["c"],
                              timeout=180)
        assert released.status == "ok" and released.results == ["'released'"], released.text
        break_at(kernel, "call-python")
        result = kernel.run("rustdemo.call_python(lambda v: v + 1, 41)", answers=["s"] * 12 + ["c"], timeout=180)
        assert result.status == "ok" and result.results == ["42"], result.text
        assert "left rustdemo::call_python for PyO3's wrapper" in result.output, result.text
        stops = [v for v in shown(released) + shown(result) if v.startswith(("native breakpoint", "thread 1 "))]
        assert len(stops) >= 4, stops
        for stop in stops:
            first = stop.splitlines()[0]
            assert "src/lib.rs:" in first and ".c:" not in first and "pyo3" not in first, first
        still_intact(kernel)
    finally:
        assert kernel.shutdown() == []


def test_the_agent_never_imports_from_the_notebooks_folder(demo_crate, tmp_path):
    planted = tmp_path / "notebooks"
    planted.mkdir()
    marker = tmp_path / "imported"
    (planted / "pygdbmi.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    kernel = KernelHarness(cwd=planted)
    try:
        loaded = kernel.run("%load_ext pyo3_debug_magic\n%native_attach", timeout=60)
        assert "attached" in loaded.output, loaded.text
        assert not marker.exists(), "the agent imported a module from the working directory"
    finally:
        assert kernel.shutdown() == []
