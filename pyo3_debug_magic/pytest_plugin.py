"""pytest integration of the refcheck engine (registered as a pytest11 entry point).

* ``refcheck`` fixture: ``refcheck(func, *args, **kwargs)`` measures the call and fails the
  test with the report's table if anything leaks; ``refcheck.report(...)`` only returns it.
  ``@pytest.mark.refcheck(number=20, warmup=5)`` sets the options.
* ``--refcheck``: every test body is repeated (``--refcheck-warmup`` + ``--refcheck-runs``
  times) before its normal run, and a test whose process-wide counters (Python allocations,
  native heap) grow on every repetition fails, as ``regrtest -R`` and pytest-leaks do. The
  terminal summary lists the leaking tests with their counters.
"""
from __future__ import annotations

import contextlib
import io

import pytest

from .leaks import RefChecker, RefcheckReport, Verdict

_LEAKS_KEY = pytest.StashKey[list]()


def pytest_addoption(parser):
    group = parser.getgroup("pyo3_debug_magic", "leak checks (pyo3_debug_magic)")
    group.addoption("--refcheck", action="store_true",
                    help="repeat each test and fail tests whose Python allocations or native heap "
                         "grow on every repetition")
    group.addoption("--refcheck-runs", type=int, default=5, metavar="N",
                    help="measured repetitions per test with --refcheck (default 5)")
    group.addoption("--refcheck-warmup", type=int, default=2, metavar="N",
                    help="repetitions before measuring with --refcheck (default 2)")


def pytest_configure(config):
    config.addinivalue_line("markers", "refcheck(**options): options for the refcheck fixture "
                                       "(number, warmup, native_heap, use_tracemalloc, allow_raise)")
    config.stash[_LEAKS_KEY] = []


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
    checker = RefChecker(number=config.getoption("refcheck_runs"),
                         warmup=config.getoption("refcheck_warmup"))
    with contextlib.redirect_stdout(_Sink()), contextlib.redirect_stderr(_Sink()):
        report = checker.check(item.runtest, label=item.nodeid)
    result = yield  # the normal run: its own failure, if any, is what the user sees
    if report.exception is None:
        grown = [c for c in report.counters if c.verdict is Verdict.LEAK]
        if grown:
            config.stash[_LEAKS_KEY].append((item.nodeid, grown, report.measured_calls))
            details = "; ".join(f"{c.name} +{c.per_call:g} {c.unit}/run (deltas {list(c.deltas)})"
                                for c in grown)
            pytest.fail(f"--refcheck: {item.nodeid} leaks: {details}", pytrace=False)
    return result


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    leaks = config.stash.get(_LEAKS_KEY, [])
    if not config.getoption("refcheck", default=False):
        return
    terminalreporter.section("refcheck")
    if not leaks:
        terminalreporter.write_line("no test grew a process-wide counter on every repetition")
        return
    for nodeid, counters, runs in leaks:
        for counter in counters:
            terminalreporter.write_line(
                f"{nodeid}: {counter.name} +{counter.per_call:g} {counter.unit} per run "
                f"(grew on all {runs} runs)")
