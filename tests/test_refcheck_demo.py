"""The refcheck engine on the demo crate's seeded bugs (in-process, real extension)."""
from __future__ import annotations

import sys

import pytest

from pyo3_debug_magic import RefChecker, refcheck
from pyo3_debug_magic.refchecker.engine import Verdict

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def rustdemo(demo_crate):
    import rustdemo

    return rustdemo


def row(report, name):
    return next(r for r in report.objects if r.name == name)


def test_reference_leak_is_flagged_on_the_right_argument(rustdemo):
    data, other = [object(), "payload" * 3], {"k": object()}
    report = RefChecker().check(lambda d, o: rustdemo.leak_reference(d), data, other,
                                arg_names=["data", "other"])
    assert row(report, "data").verdict is Verdict.LEAK and row(report, "data").per_call == 1
    assert row(report, "other").verdict is Verdict.OK
    assert not report.ok and "`data` gains 1 reference per call" in report.verdict
    assert "into_ptr()" in report.verdict
    # refs before/after span every call made with the argument, and the title says how many
    flagged = row(report, "data")
    assert flagged.refcount_after - flagged.refcount_before == report.total_calls
    assert f"({report.total_calls} calls in all; refs before/after span them)" in report.table


def test_over_release_is_flagged_and_stops_before_the_object_is_freed(rustdemo):
    victim = {"still": "here"}
    before = sys.getrefcount(victim)
    report = RefChecker(number=200).check(rustdemo.over_release, victim, arg_names=["victim"])
    assert row(report, "victim").verdict is Verdict.OVER_RELEASE
    assert row(report, "victim").per_call == -1
    assert report.stopped_early and report.measured_calls < 200
    # the object is intact and keeps at least the references it had
    assert victim == {"still": "here"} and sys.getrefcount(victim) >= before
    assert "loses 1 reference per call" in report.verdict


@pytest.mark.parametrize("nbytes", [1000, 4096, 65536, 1_000_000])
def test_native_heap_leak_bytes_per_call_within_20_percent(rustdemo, nbytes):
    report = RefChecker().check(rustdemo.leak_native, nbytes)
    native = next(c for c in report.counters if c.unit == "bytes")
    assert native.verdict is Verdict.LEAK
    assert abs(native.per_call - nbytes) <= 0.2 * nbytes, native
    assert "Rust memory is allocated and never freed" in report.verdict


def test_clean_computation_is_ok(rustdemo):
    values = [10**6, 2 * 10**6, 3]
    report = refcheck(rustdemo.compute, values)
    assert report.ok, report.table
    assert all(r.verdict in (Verdict.OK, Verdict.NOT_MEASURABLE) for r in report.objects)
    assert report.verdict.startswith("no leaks")


def test_leaked_result_is_flagged_on_the_result_row(rustdemo):
    report = RefChecker().check(rustdemo.leak_result, 7)
    assert report.result.verdict is Verdict.LEAK and report.result.per_call == 1
    assert "result is returned with 1 extra reference" in report.verdict
    assert ("list", 1.0) in report.growing_types


def test_a_fresh_result_without_extra_references_is_ok(rustdemo):
    report = RefChecker().check(lambda n: list(range(n)), 50)
    assert report.result.verdict is Verdict.OK and report.ok, report.table


def test_cached_result_is_judged_by_its_own_refcount(rustdemo):
    cache = {"value": ["cached"]}
    report = RefChecker().check(lambda: cache["value"])
    assert "cached" in report.result.note and report.result.verdict is Verdict.OK


def test_exception_is_reported_with_its_traceback(rustdemo):
    report = RefChecker().check(rustdemo.panic_now, "boom")
    assert report.measured_calls == 0 and report.exception
    assert "rustdemo panicked: boom" in report.exception
    assert "leaks.py" not in report.exception  # the repeat loop's own frames are not the user's
    assert "--allow-raise" in report.verdict


def test_allow_raise_measures_the_error_path(rustdemo):
    # a PyErr travelling back through Rust (the callback raises inside call_python)
    def failing_callback(value):
        raise ValueError(f"bad value {value}")

    report = RefChecker(allow_raise=True, number=5).check(rustdemo.call_python, failing_callback, 3)
    assert report.measured_calls == 5 and report.raised_calls >= 5
    assert "ValueError: bad value 3" in report.exception
    assert report.exception.startswith("Traceback") and "in failing_callback" in report.exception
    assert report.ok, report.table
    assert "the call raised on" in report.verdict


def test_options_are_honoured(rustdemo):
    report = RefChecker(number=4, warmup=1, native_heap=False, use_tracemalloc=True).check(
        rustdemo.compute, [1])
    assert report.measured_calls == 4 and report.warmup == 1
    assert [c.name for c in report.counters] == ["Python allocations", "tracemalloc"]


def test_too_few_calls_is_refused():
    with pytest.raises(ValueError, match="at least 3"):
        RefChecker(number=2)
