"""pytest integration (registered as a pytest11 entry point; inactive unless an option is given).

Native debugging (``native.py``: one agent per test process, attached once):

* ``--native-crash``: a native crash is reported with the test's node id, the signal, the
  faulting Rust line and the merged Rust + Python stack. Under pytest-xdist or pytest-forked
  the run goes on and the crash is that test's failure (terminal summary, JUnit XML); run
  plainly, the report is printed as pytest dies (and written as the JUnit file).
* ``--native-break LOCATION`` (repeatable, ``%native_break``'s syntax): pause there with the
  ``(native)`` prompt on the terminal; without one, hits are logged into the test's report.
* ``--native-pdb``: at a native crash, the ``(native)`` prompt at the faulting frame before
  the process dies (a terminal only); ``--pdb``'s prompt gets a ``native`` command too.
* ``native_debugger`` fixture: the ``NativeDebugger`` API in a test, attached.

Leak checks (``refchecker.engine``):

* ``refcheck`` fixture: ``refcheck(func, *args, **kwargs)`` measures the call and fails the
  test with the report's table if anything leaks; ``refcheck.report(...)`` only returns it.
  ``@pytest.mark.refcheck(number=20, warmup=5)`` sets the options.
* ``--refcheck``: after its normal run passes, every test body is repeated
  (``--refcheck-warmup`` + ``--refcheck-runs`` times), and a test whose process-wide counters
  (Python allocations, native heap) grow on every repetition fails, as ``regrtest -R`` and
  pytest-leaks do. The terminal summary lists the leaking tests with their counters. The
  repetitions are bounded: re-measuring a growing counter stops at ``--refcheck-budget``, and a
  test whose repetitions make no progress for ``--refcheck-stall`` seconds fails with every
  thread's stack while the session goes on.
"""
from __future__ import annotations

import contextlib
import io
import os
import time

import pytest

from pyo3_debug_magic.refchecker.engine import RefChecker, RefcheckReport, Verdict
from pyo3_debug_magic.pytest_plugin.refcheck_stalls import (RepetitionsStalled, StallWatchdog,
                                                            every_threads_stack)

_LEAKS_KEY = pytest.StashKey[list]()
_UNCONFIRMED_KEY = pytest.StashKey[list]()
_TERMINAL_FD_KEY = pytest.StashKey[int]()
STALL_FACTOR, MIN_STALL = 5.0, 60.0     # --refcheck-stall's default: plain run x factor, at least min
BUDGET_FACTOR, MIN_BUDGET = 10.0, 20.0  # --refcheck-budget's default
_NATIVE_RUNS: list = []  # this process's NativeTestRun (pytest_runtest_logreport gets no config)


def pytest_addoption(parser):
    native = parser.getgroup("pyo3_debug_magic native", "native debugging of Rust/PyO3 code (pyo3_debug_magic)")
    native.addoption("--native-crash", action="store_true",
                     help="report a native crash (SIGSEGV, abort...) with the test's node id, the Rust "
                          "line and the merged Rust + Python stack; with -n N or --forked the run goes on")
    native.addoption("--native-break", action="append", default=[], metavar="LOCATION",
                     help="pause at a Rust location (src/lib.rs:42, my_crate::function) with the (native) "
                          "prompt; without a terminal, hits are logged into the test's report (repeatable)")
    native.addoption("--native-pdb", action="store_true",
                     help="at a native crash, open the (native) prompt at the faulting frame before the "
                          "process dies (a terminal only); implies --native-crash")
    group = parser.getgroup("pyo3_debug_magic", "leak checks (pyo3_debug_magic)")
    group.addoption("--refcheck", action="store_true",
                    help="repeat each test and fail tests whose Python allocations or native heap "
                         "grow on every repetition")
    group.addoption("--refcheck-runs", type=int, default=5, metavar="N",
                    help="measured repetitions per test with --refcheck (default 5)")
    group.addoption("--refcheck-warmup", type=int, default=2, metavar="N",
                    help="repetitions before measuring with --refcheck (default 2)")
    group.addoption("--refcheck-stall", type=float, default=None, metavar="SECONDS",
                    help="fail a test whose repetitions make no progress for this long, with every "
                         f"thread's stack (default {STALL_FACTOR:g} x its plain run, at least {MIN_STALL:g} s)")
    group.addoption("--refcheck-budget", type=float, default=None, metavar="SECONDS",
                    help="time a test's growing counter may be re-measured before it is reported as "
                         f"UNCONFIRMED (default {BUDGET_FACTOR:g} x its plain run, at least {MIN_BUDGET:g} s)")


def pytest_configure(config):
    config.addinivalue_line("markers", "refcheck(**options): options for the refcheck fixture "
                                       "(number, warmup, native_heap, use_tracemalloc, allow_raise)")
    config.stash[_LEAKS_KEY] = []
    config.stash[_UNCONFIRMED_KEY] = []
    if config.getoption("refcheck") and not config.getini("faulthandler_timeout"):
        # the terminal's stderr, copied while capture is off: the last resort of a stalled test
        # writes there (pytest's own faulthandler_timeout, when set, owns that watchdog)
        config.stash[_TERMINAL_FD_KEY] = os.dup(2)
    breaks, pdb = config.getoption("native_break"), config.getoption("native_pdb")
    if config.getoption("native_crash") or breaks or pdb:
        from pyo3_debug_magic.pytest_plugin.native import NativeTestRun

        run = NativeTestRun(config, breaks, pdb)
        _NATIVE_RUNS.append(run)
        run.start_early()


def pytest_unconfigure(config):
    run = _native(config)
    if run is not None:
        _NATIVE_RUNS.remove(run)
        run.close()
    own = _FIXTURE_DEBUGGER.pop(os.getpid(), None)
    if own is not None:
        own.close()
    terminal_fd = config.stash.get(_TERMINAL_FD_KEY, None)
    if terminal_fd is not None:
        os.close(terminal_fd)
        del config.stash[_TERMINAL_FD_KEY]


_FIXTURE_DEBUGGER: dict = {}  # pid -> the native_debugger fixture's own (no --native-* option given)


@pytest.fixture
def native_debugger(request):
    """The ``NativeDebugger`` of this test process, attached (the one ``--native-*`` options
    use, else one of the fixture's own). Pausing breakpoints only log here unless the run has
    a terminal and a ``--native-*`` option; breakpoints the test set are deleted after it.

        def test_terms(native_debugger):
            native_debugger.set_breakpoint(BreakpointRequest("src/lib.rs:20", log=True, expressions=("term",)))
            rustdemo.compute([1, 2, 3])
            assert [hit.values for hit in native_debugger.take_log_hits()] == [...]
    """
    run = _native(request.config)
    debugger = run.debugger if run is not None and run.debugger is not None else _own_debugger()
    before = {info.number for info in debugger.breakpoints()}
    yield debugger
    if debugger.attached:
        created = [info.number for info in debugger.breakpoints() if info.number not in before]
        if created:
            debugger.delete_breakpoints(created)


def _own_debugger():
    from pyo3_debug_magic.debugger import NativeDebugger
    from pyo3_debug_magic.model import HelperSetup

    debugger = _FIXTURE_DEBUGGER.get(os.getpid())
    if debugger is None:
        # pytest's capture owns fd 2
        debugger = _FIXTURE_DEBUGGER[os.getpid()] = NativeDebugger(setup=HelperSetup(tee_stderr=False))
    if not debugger.attached:
        debugger.attach()
        debugger.set_pausing_allowed(False, "no terminal (native_debugger fixture)")
    return debugger


def _native(config):
    return next((run for run in _NATIVE_RUNS if run.config is config), None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    run = _native(item.config)
    if run is not None:
        run.test_starts(item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    run = _native(item.config)
    if run is not None and run.forked_child and "_id" in report.__dict__:
        # pytest-forked (1.7.5) marshals the report's __dict__, which holds pytest 9.2's NodeId
        # object, and every forked test fails with "unmarshallable object": send the node id
        # as the text TestReport(**fields) takes on the other side
        report.__dict__["nodeid"] = str(report.__dict__.pop("_id"))
    if run is not None and call.when == "call":
        from pyo3_debug_magic.render import text as render_text

        hits = run.test_hits(item.nodeid)
        if hits:
            logged = render_text.log_hits(hits)
            report.sections.append(("native breakpoint hits", logged))
            item.user_properties.append(("native breakpoint hits", logged))
    return report


def pytest_enter_pdb(config, pdb):
    """``--pdb``'s prompt gets ``native bt``: the Rust frames of the failing call."""
    run = _native(config)
    if run is None or not run.pdb:
        return

    def do_native(argument: str) -> None:
        pdb.message(run.native_command(argument))

    pdb.do_native = do_native
    pdb.help_native = lambda: pdb.message(run.native_command("help"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    """In the process that outlived a crash (xdist's controller, pytest-forked's parent): the
    crashed test's failure carries the native report, before the terminal and JUnit see it."""
    run = _NATIVE_RUNS[-1] if _NATIVE_RUNS else None
    if run is None or not report.failed:
        return
    found = run.crash_report_for(report.nodeid)
    if found is None:
        return
    from pyo3_debug_magic.crash.in_test_run import crash_text

    report.longrepr = f"{crash_text(found.record, str(found.path), title=False)}\n({report.longrepr})"
    run.crashes.append((report.nodeid, found.summary))


class LeakAssertion:
    """The ``refcheck`` fixture's value."""

    def __init__(self, checker: RefChecker):
        self.checker = checker

    def report(self, func, *args, **kwargs) -> RefcheckReport:
        """Measure ``func(*args, **kwargs)`` and return the report."""
        label = f"{getattr(func, '__qualname__', func)}(...)"
        return self.checker.check(func, *args, label=label, **kwargs)

    def __call__(self, func, *args, **kwargs) -> RefcheckReport:
        """Measure the call; fail the test with the table if it leaks or raised."""
        report = self.report(func, *args, **kwargs)
        if not report.ok or (report.exception and not self.checker.allow_raise):
            pytest.fail(f"refcheck of {report.label} failed:\n{report.table}", pytrace=False)
        return report


@pytest.fixture
def refcheck(request) -> LeakAssertion:
    """Assert that a call does not leak: ``refcheck(mymod.process, data)``."""
    marker = request.node.get_closest_marker("refcheck")
    return LeakAssertion(RefChecker(**(marker.kwargs if marker else {})))


class _Sink(io.TextIOBase):
    """A stream that keeps nothing: repeated output must not look like a growing buffer."""

    def write(self, text: str) -> int:
        return len(text)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    config = item.config
    if not config.getoption("refcheck"):
        return (yield)
    started = time.monotonic()
    result = yield  # the normal run first: its own failure, if any, is what the user sees
    plain = time.monotonic() - started
    stall = config.getoption("refcheck_stall") or max(MIN_STALL, STALL_FACTOR * plain)
    budget = config.getoption("refcheck_budget") or max(MIN_BUDGET, BUDGET_FACTOR * plain)
    checker = RefChecker(number=config.getoption("refcheck_runs"), warmup=config.getoption("refcheck_warmup"),
                         confirm_budget=budget)
    repetitions = {"done": 0}

    def describe(seconds: float, stacks: str) -> str:
        return (f"--refcheck: {item.nodeid} made no progress for {seconds:.0f} s in repetition "
                f"{repetitions['done'] + 1} (its plain run took {plain:.1f} s; --refcheck-stall sets the limit): "
                f"stopped, and the session goes on. Every thread's stack when it was stopped:\n{stacks}")

    def progress(calls: int) -> None:
        repetitions["done"] = calls
        watchdog.progress()

    run = _native(config)
    watchdog = StallWatchdog(stall, describe, stacks=lambda: every_threads_stack(run and run.debugger, item.nodeid.partition("::")[0]),
                             give_up=lambda text: _give_up(config, text),
                             backstop_fd=config.stash.get(_TERMINAL_FD_KEY, None))
    checker.on_call = progress
    stalled = None
    try:
        with contextlib.redirect_stdout(_Sink()), contextlib.redirect_stderr(_Sink()), watchdog:
            report = checker.check(item.runtest, label=item.nodeid)
    except RepetitionsStalled as stop:  # raised again while the stalled call unwound: reported once
        stalled = stop.message
    if stalled is not None:
        pytest.fail(stalled, pytrace=False)
    if report.exception is None:
        unconfirmed = [c for c in report.counters if c.verdict is Verdict.UNCONFIRMED]
        if unconfirmed:
            config.stash[_UNCONFIRMED_KEY].append((item.nodeid, unconfirmed))
        grown = [c for c in report.counters if c.verdict is Verdict.LEAK]
        if grown:
            config.stash[_LEAKS_KEY].append((item.nodeid, grown, report.measured_calls))
            details = "; ".join(f"{c.name} +{c.per_call:g} {c.unit}/run (deltas {list(c.deltas)})"
                                for c in grown)
            pytest.fail(f"--refcheck: {item.nodeid} leaks: {details}", pytrace=False)
    return result


def _give_up(config, text: str) -> None:
    """The stalled test's main thread cannot run Python: say why on the terminal, then exit."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)
    writer = config.get_terminal_writer()
    writer.line()
    writer.sep("!", "pyo3_debug_magic --refcheck: a test stalled")
    writer.line(text)
    writer.flush()
    os._exit(1)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    run = _native(config)
    if run is not None:
        _native_summary(terminalreporter, run)
    if config.getoption("refcheck", default=False):
        _refcheck_summary(terminalreporter, config.stash.get(_LEAKS_KEY, []),
                          config.stash.get(_UNCONFIRMED_KEY, []))


def _native_summary(terminalreporter, run) -> None:
    if not (run.crashes or run.hits or run.problem):
        return
    terminalreporter.section("native (pyo3_debug_magic)")
    for node_id, summary in run.crashes:
        terminalreporter.write_line(f"CRASHED {node_id}: {summary}")
    for node_id, count in run.hits:
        terminalreporter.write_line(f"{node_id}: {count} native breakpoint hit(s) logged (in its report's "
                                    "'native breakpoint hits' section; -rA shows it)")
    if run.problem:
        terminalreporter.write_line(run.problem)


def _refcheck_summary(terminalreporter, leaks, unconfirmed=()) -> None:
    terminalreporter.section("refcheck")
    for nodeid, counters in unconfirmed:
        for counter in counters:
            terminalreporter.write_line(
                f"{nodeid}: {counter.name} grew on every repetition, not confirmed within the time budget "
                "(not failed; --refcheck-budget gives it longer)")
    if not leaks:
        terminalreporter.write_line("no test grew a process-wide counter on every repetition")
        return
    for nodeid, counters, runs in leaks:
        for counter in counters:
            terminalreporter.write_line(
                f"{nodeid}: {counter.name} +{counter.per_call:g} {counter.unit} per run "
                f"(grew on all {runs} runs)")
