"""pytest's native options on the demo crate's small suite (examples/native_tests), each run in
a real pytest subprocess: --native-crash plain, under pytest-forked and under xdist with 2
workers (node id, signal, Rust line, JUnit XML), --native-break in a pseudo-terminal and
without one, --native-pdb at a crash and with --pdb, and the native_debugger fixture."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pexpect
import pytest
from harness import ROOT, marker_line

pytestmark = [pytest.mark.gdb, pytest.mark.timeout(180)]

SUITE = ROOT / "examples" / "native_tests"
NODE = "examples/native_tests/test_demo.py::"
CALLS = {name: n for n, line in enumerate((SUITE / "test_demo.py").read_text().splitlines(), 1)
         for name in ("segfault", "abort") if line.strip() == f"rustdemo.{name}()"}


def environment(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYO3_DEBUG_MAGIC"))}
    env["PYO3_DEBUG_MAGIC_STATE"] = str(tmp_path / "state")
    env["COLUMNS"] = "160"
    return env


def run_suite(tmp_path: Path, *options: str, select: str = "compute or segfault or square or abort"):
    junit = tmp_path / "junit.xml"
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "test_demo.py", "-k", select,
         f"--junitxml={junit}", *options],
        cwd=SUITE, env=environment(tmp_path), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=150)
    return finished, junit


def junit_cases(path: Path) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in ET.parse(path).getroot().iter("testcase")}


def failure_text(case: ET.Element) -> str:
    """The failure's text (xdist's report of a crashed worker's test is an <error>)."""
    failure = case.find("failure") if case.find("failure") is not None else case.find("error")
    assert failure is not None, ET.tostring(case, encoding="unicode")
    return (failure.get("message") or "") + "\n" + (failure.text or "")


def segfault_line() -> str:
    return f"SIGSEGV in rustdemo::segfault at src/lib.rs:{marker_line('segfault')}"


def test_plain_run_prints_the_crash_named_by_test_and_writes_junit(demo_crate, tmp_path):
    finished, junit = run_suite(tmp_path, "--native-crash")
    out = finished.stdout + finished.stderr
    assert finished.returncode == -signal.SIGSEGV, out[-3000:]
    assert "test_demo.py::test_compute PASSED" in out
    assert f" native crash in {NODE}test_segfault " in out
    assert segfault_line() in out
    assert f"called from {NODE.split('::')[0]}:{CALLS['segfault']}" in out
    report = out.split("native crash in", 1)[1].split("the tests after this one did not run", 1)[0]
    assert "py test_segfault" in report and "pytest_pyfunc_call" not in report  # pytest's frames left out
    assert "locals of rustdemo::segfault (src/lib.rs:" in report and "target = 0x0" in report
    assert "test_square_after" not in out.split("native crash in")[1]
    cases = junit_cases(junit)
    assert segfault_line() in failure_text(cases["test_segfault"])


@pytest.mark.parametrize("runner", [["--forked"], ["-p", "xdist", "-n", "2"]], ids=["forked", "xdist"])
def test_the_run_goes_on_and_each_crash_is_its_tests_failure(demo_crate, tmp_path, runner):
    finished, junit = run_suite(tmp_path, "--native-crash", *runner)
    out = finished.stdout + finished.stderr
    assert finished.returncode == 1, out[-3000:]
    assert "2 failed, 2 passed" in out
    assert f"CRASHED {NODE}test_segfault: {segfault_line()}" in out
    assert f"CRASHED {NODE}test_abort: SIGABRT in rustdemo::abort at src/lib.rs:{marker_line('abort')}" in out
    cases = junit_cases(junit)
    assert cases["test_compute"].find("failure") is None and cases["test_square_after"].find("failure") is None
    segfault = failure_text(cases["test_segfault"])
    assert segfault_line() in segfault and f"test_demo.py:{CALLS['segfault']}" in segfault
    assert "rustdemo::segfault  at src/lib.rs" in segfault  # the merged stack itself
    assert f"called from {NODE.split('::')[0]}:{CALLS['abort']}" in failure_text(cases["test_abort"])


def spawn(tmp_path: Path, *arguments: str) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "pytest", "-p", "no:cacheprovider", *arguments],
                          cwd=str(SUITE), env=environment(tmp_path), encoding="utf-8", timeout=60,
                          dimensions=(50, 200))
    child.logfile_read = open(tmp_path / "terminal.log", "w")
    return child


def finish(child: pexpect.spawn) -> str:
    child.expect(pexpect.EOF)
    child.close()
    return child.before


@pytest.mark.parametrize("capture", [[], ["-s"]], ids=["captured", "capture-off"])
def test_native_break_pauses_in_a_terminal_and_the_test_passes(demo_crate, tmp_path, capture):
    line = marker_line("compute-loop")
    child = spawn(tmp_path, *capture, "--native-break", f"src/lib.rs:{line}", "test_demo.py", "-k", "compute")
    child.expect_exact(f"native breakpoint 1 at src/lib.rs:{line}")
    child.expect_exact("native breakpoint 1 hit in thread 1:")
    child.expect_exact("py  test_compute")
    child.expect_exact("(native) ")
    child.sendline("n")
    child.expect_exact(f"stepped to rustdemo::compute at src/lib.rs:{line + 1}")
    child.expect_exact("(native) ")
    child.sendline("p term")
    child.expect_exact("term = 3")
    child.expect_exact("(native) ")
    child.sendline("c")
    child.expect_exact("native breakpoint 1 hit in thread 1:")  # the loop's next round
    child.expect_exact("(native) ")
    child.sendline("q")
    child.expect_exact("deleting native breakpoints [1] and continuing")
    tail = finish(child)
    assert "1 passed" in tail and child.exitstatus == 0, tail


def test_native_break_without_a_terminal_logs_into_the_report(demo_crate, tmp_path):
    line = marker_line("compute-loop")
    finished, junit = run_suite(tmp_path, "--native-break", f"src/lib.rs:{line}", "-rA", select="compute")
    out = finished.stdout
    assert finished.returncode == 0, out[-3000:]
    assert "native breakpoint hits" in out
    hit = f"[breakpoint (no terminal: not paused) 1 hit 3] rustdemo::compute at src/lib.rs:{line}"
    assert hit in out
    properties = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert hit in properties["native breakpoint hits"]


def test_native_pdb_opens_the_prompt_at_the_faulting_rust_frame(demo_crate, tmp_path):
    child = spawn(tmp_path, "--native-pdb", "test_demo.py", "-k", "segfault")
    child.expect_exact(f"{NODE}test_segfault crashed: {segfault_line()}")
    child.expect_exact(f"SIGSEGV in thread 1, stopped before the process dies, at rustdemo::segfault at "
                       f"src/lib.rs:{marker_line('segfault')}")
    child.expect_exact("(native) ")
    child.sendline("bt")
    child.expect_exact(f">#1   rustdemo::segfault  at src/lib.rs:{marker_line('segfault')}")
    child.expect_exact("py  test_segfault")
    child.expect_exact("(native) ")
    child.sendline("p target")
    child.expect_exact("target = 0x0")
    child.expect_exact("(native) ")
    child.sendline("n")
    child.expect_exact("it cannot run on")
    child.expect_exact("(native) ")
    child.sendline("c")
    child.expect_exact("letting the process die of SIGSEGV")
    finish(child)
    assert child.signalstatus == signal.SIGSEGV


def test_pdb_native_bt_shows_the_rust_frames_of_the_failing_call(demo_crate, tmp_path):
    child = spawn(tmp_path, "--native-pdb", "--pdb", "test_demo.py", "-k", "callback or panic")
    child.expect_exact("ZeroDivisionError")
    child.expect_exact("(Pdb) ")
    child.sendline("native bt")
    child.expect_exact("PyO3 took a Python exception (a call into Python raised)")
    child.expect_exact(f"rustdemo::call_python  at src/lib.rs:{marker_line('call-python')}")
    child.expect_exact("(Pdb) ")
    child.sendline("c")
    child.expect_exact("PanicException")
    child.expect_exact("(Pdb) ")
    child.sendline("native bt")
    child.expect_exact("a Rust panic")
    child.expect_exact(f"rustdemo::panic_now  at src/lib.rs:{marker_line('panic')}")
    child.expect_exact("(Pdb) ")
    child.sendline("c")
    tail = finish(child)
    assert "2 failed" in tail, tail


@pytest.mark.parametrize("options", [[], ["--native-crash"]], ids=["own", "with-native-crash"])
def test_native_debugger_fixture(demo_crate, tmp_path, options):
    finished = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_fixture.py", *options],
                              cwd=SUITE, env=environment(tmp_path), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=150)
    assert finished.returncode == 0 and "2 passed" in finished.stdout, finished.stdout[-3000:]
