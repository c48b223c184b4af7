"""Thread pools under pytest's options (issue: --refcheck never hangs a suite): a pooled test
runs to the end under --refcheck, --native-crash, --native-break and --native-pdb; a test whose
repetitions stall fails with every thread's stack and the session goes on."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time

import pytest
from harness import marker_line
from test_pytest_native import SUITE, environment, finish, spawn

pytestmark = [pytest.mark.timeout(240)]


def run_pytest(tmp_path, cwd, *arguments, timeout=180):
    started = time.monotonic()
    finished = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *arguments], cwd=cwd,
                              env=environment(tmp_path), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    return finished, time.monotonic() - started


PROBE = """
import json
from concurrent.futures import ThreadPoolExecutor
import rustdemo
from pyo3_debug_magic.refchecker.engine import RefChecker

inputs = [list(range(n % 40)) for n in range(700)]

def pooled():
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(rustdemo.compute, inputs))

serial = RefChecker(number=5).check(lambda: [rustdemo.compute(values) for values in inputs])
report = RefChecker(number=5).check(pooled)
print(json.dumps({"serial": [serial.counters[1].verdict.name, serial.counters[1].note],
                  "pooled": [[c.verdict.name, c.note] for c in report.counters],
                  "ok": report.ok, "calls": report.total_calls}))
"""


def test_the_native_heap_of_a_call_that_starts_threads_is_not_judged(demo_crate, tmp_path):
    """glibc's per-thread caches move the heap counter for hundreds of calls after threads come
    and go: that is no leak (the confirming rounds that made a slow pooled test run ~90 times).
    A fresh process: what earlier threads left in the heap moves it too."""
    import json

    finished = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    found = json.loads(finished.stdout.strip().splitlines()[-1])
    (python, _), (heap, note) = found["pooled"]
    assert heap == "NOT_MEASURABLE" and "started threads" in note, found
    assert python == "OK" and found["ok"], found
    assert found["calls"] == 3 + 5 + 2, found  # no confirming rounds
    assert found["serial"][0] != "NOT_MEASURABLE" and "threads" not in found["serial"][1], found  # still judged


def test_refcheck_runs_a_thread_pool_test_to_the_end(demo_crate, tmp_path):
    finished, seconds = run_pytest(tmp_path, SUITE, "test_pool.py", "-k", "thread_pool", "--refcheck")
    assert finished.returncode == 0 and "1 passed" in finished.stdout, finished.stdout[-3000:]
    assert "no test grew a process-wide counter on every repetition" in finished.stdout
    print(f"--refcheck on the pooled test: {seconds:.1f} s")


STALLING = textwrap.dedent('''
    from concurrent.futures import ThreadPoolExecutor
    import rustdemo

    RUNS = []

    def test_stalls_when_repeated():
        RUNS.append(1)
        # the repetitions wait on a busy Rust worker, left running when the repetition is stopped and
        # still busy when the session ends: one that came back into Python while the interpreter
        # finalised would abort the process (glibc: "exception not rethrown"; a known limit)
        seconds = 0.0 if len(RUNS) == 1 else 20.0
        with ThreadPoolExecutor(2) as pool:
            assert pool.submit(rustdemo.worker_without_gil, seconds).result() >= 0

    def test_after():
        assert rustdemo.compute([1, 2, 3]) == 42
''')


def test_a_stalled_repetition_fails_with_every_threads_stack_and_the_session_goes_on(demo_crate, tmp_path):
    (tmp_path / "test_stall.py").write_text(STALLING)
    finished, seconds = run_pytest(tmp_path, tmp_path, "-v", "test_stall.py", "--refcheck",
                                   "--refcheck-stall", "2")
    out = finished.stdout
    assert finished.returncode == 1 and "1 failed, 1 passed" in out, out[-4000:]
    assert "test_after PASSED" in out
    failure = out[out.index("--refcheck: test_stall.py::test_stalls_when_repeated made no progress"):]
    assert re.match(r"--refcheck: test_stall.py::test_stalls_when_repeated made no progress for [23] s in "
                    r"repetition 1 \(its plain run took 0\.\d s; --refcheck-stall sets the limit\)", failure), failure
    # every thread's merged stack: the pool worker in Rust, the main thread in the test
    loop = marker_line('worker-loop')
    assert re.search(rf"rustdemo::busy_until\s+at src/lib.rs:({loop - 1}|{loop})", failure), failure
    assert "py test_stalls_when_repeated" in failure or "test_stalls_when_repeated" in failure
    assert seconds < 60, seconds  # stopped at the limit, not after the 8 s worker times the repetitions


@pytest.mark.gdb
def test_native_crash_runs_a_pool_and_names_a_crash_in_a_pool_thread(demo_crate, tmp_path):
    finished, _ = run_pytest(tmp_path, SUITE, "-v", "test_pool.py", "--native-crash", "-p", "xdist", "-n", "2")
    out = finished.stdout
    assert re.search(r"PASSED test_pool.py::test_compute_in_a_thread_pool", out), out[-3000:]
    assert (f"CRASHED examples/native_tests/test_pool.py::test_segfault_in_a_pool_worker: SIGSEGV in "
            f"rustdemo::segfault at src/lib.rs:{marker_line('segfault')}") in out, out[-3000:]


@pytest.mark.gdb
def test_native_break_in_a_pool_pauses_and_quit_lets_the_test_finish(demo_crate, tmp_path):
    line = marker_line("compute-loop")
    child = spawn(tmp_path, "--native-break", f"src/lib.rs:{line}", "test_pool.py", "-k", "thread_pool")
    child.expect_exact("hit in thread")          # the serial run's first call, then the pool's
    child.expect_exact("(native) ")
    child.sendline("q")
    child.expect_exact("deleting native breakpoints [1] and continuing")
    tail = finish(child)
    assert "1 passed" in tail and child.exitstatus == 0, tail


@pytest.mark.gdb
def test_native_pdb_runs_a_pool_and_stops_at_a_crash_in_a_pool_thread(demo_crate, tmp_path):
    child = spawn(tmp_path, "-v", "--native-pdb", "test_pool.py")
    child.expect(r"test_compute_in_a_thread_pool \S*PASSED")  # (colours between the two)
    child.expect_exact(f"SIGSEGV in rustdemo::segfault at src/lib.rs:{marker_line('segfault')}")
    child.expect_exact("(native) ")
    child.sendline("bt")
    child.expect_exact("rustdemo::segfault")
    child.expect_exact("(native) ")
    child.sendline("c")
    child.expect_exact("letting the process die of SIGSEGV")
    finish(child)
    assert child.signalstatus is not None or child.exitstatus != 0


def test_a_repetition_that_keeps_the_gil_forever_still_ends_the_run(demo_crate, tmp_path):
    """No Python thread can run while Rust keeps the GIL: faulthandler's C watchdog prints the
    Python frames and ends the process after twice the limit (plus 5 s) instead of never."""
    (tmp_path / "test_spin.py").write_text(textwrap.dedent('''
        import rustdemo
        RUNS = []

        def test_spins_when_repeated():
            RUNS.append(1)
            if len(RUNS) > 1:
                rustdemo.spin_forever()
    '''))
    finished, seconds = run_pytest(tmp_path, tmp_path, "test_spin.py", "--refcheck", "--refcheck-stall", "2")
    out = finished.stdout + finished.stderr
    assert finished.returncode == 1 and "Timeout (0:00:09)!" in out, out[-3000:]
    assert 'test_spin.py", line 8 in test_spins_when_repeated' in out, out[-3000:]
    assert seconds < 40, seconds
