"""Pure units: call parsing, judging rules, what is measurable, and the renderers."""
from __future__ import annotations

import pytest

from pyo3_debug_magic.refchecker.callparse import evaluate_call, split_options
from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.refchecker.engine import (BoundaryRow, CounterRow, RefcheckReport, Verdict, _judge,
                                              not_measurable_reason)
from pyo3_debug_magic.render.html import refcheck_html
from pyo3_debug_magic.render.refcheck_text import refcheck_table
from pyo3_debug_magic.refchecker.report import verdict_sentence as refcheck_verdict

OPTS = {"-n", "--number", "--warmup"}


@pytest.mark.parametrize("line, options, call", [
    ("f(x)", "", "f(x)"),
    ("-n 5 f(x)", "-n 5", "f(x)"),
    ("--quiet --warmup 2 mod.f(a, b='x y')", "--quiet --warmup 2", "mod.f(a, b='x y')"),
    ("--number=7 f(-1)", "--number=7", "f(-1)"),
])
def test_split_options_leaves_the_call_untouched(line, options, call):
    assert split_options(line, OPTS) == (options, call)


def test_evaluate_call_evaluates_each_argument_once_and_names_it():
    calls = []
    namespace = {"f": print, "data": [1], "k": "key", "make": lambda: calls.append(1) or "made"}
    parsed = evaluate_call("f(data, make(), *[3, 4], key=k, **{'z': 0})", namespace)
    assert parsed.func is print and parsed.args[0] is namespace["data"]
    assert parsed.arg_names == ["data", "make()", "[3, 4][0]", "[3, 4][1]"]
    assert parsed.kwarg_names["key"] == "key=k" and parsed.kwargs == {"key": "key", "z": 0}
    assert calls == [1]


@pytest.mark.parametrize("source, message", [("1 + 2", "is not a call"), ("f(", "not a Python expression")])
def test_evaluate_call_rejects_non_calls(source, message):
    with pytest.raises(UsageProblem, match=message):
        evaluate_call(source, {"f": print})


@pytest.mark.parametrize("deltas, verdict", [
    ([1, 1, 1], Verdict.LEAK), ([2, 1, 3], Verdict.LEAK), ([1, 0, 1], Verdict.OK),
    ([-1, -1, -1], Verdict.OVER_RELEASE), ([1, -1, 1], Verdict.OK), ([0, 0, 0], Verdict.OK),
])
def test_a_counter_leaks_only_if_it_moves_on_every_call(deltas, verdict):
    assert _judge(deltas)[0] is verdict


def test_noise_bound_is_respected():
    assert _judge([3, 3, 3], noise=3)[0] is Verdict.OK
    assert _judge([4, 4, 4], noise=3)[0] is Verdict.LEAK


@pytest.mark.parametrize("obj, reason", [
    (None, "singleton"), (True, "singleton"), (7, "small int"), ("", "interned"),
    ("identifier_like", "interned"), ((), "empty"),
])
def test_shared_objects_are_not_measurable(obj, reason):
    assert reason in not_measurable_reason(obj)


@pytest.mark.parametrize("obj", [[1], {"a": 1}, 10**12, "not interned " * 3, object()])
def test_ordinary_objects_are_measurable(obj):
    assert not_measurable_reason(obj) is None


def hand_built_report(**changes) -> RefcheckReport:
    fields = dict(
        label="mod.f(data)", warmup=3, measured_calls=10,
        objects=[BoundaryRow("data", "list", 2, 12, 1.0, Verdict.LEAK),
                 BoundaryRow("n", "int", None, None, None, Verdict.NOT_MEASURABLE, "small int cached by the interpreter")],
        result=BoundaryRow("result", "list", None, None, 0.0, Verdict.OK, "new object each call"),
        counters=[CounterRow("Python allocations", "blocks", 0.0, Verdict.OK),
                  CounterRow("native heap (malloc in use)", "bytes", 4096.0, Verdict.LEAK)])
    fields.update(changes)
    return RefcheckReport(**fields)


def test_text_table_has_every_row_and_the_verdict():
    table = refcheck_table(hand_built_report())
    assert "data" in table and "LEAK +1/call" in table and "NOT MEASURABLE (small int" in table
    assert "native heap (malloc in use): +4.0 KiB/call -> LEAK" in table
    assert table.splitlines()[-1].startswith("verdict: `data` gains 1 reference per call")


def test_html_twin_escapes_and_colours():
    html = refcheck_html(hand_built_report(label="f(<b>)"))
    assert "<table>" in html and "f(&lt;b&gt;)" in html and "LEAK +1/call" in html
    assert "color:#cf222e" in html
    # the verdict's `code` spans are code in the page, not literal backticks
    assert "<code>data</code> gains 1 reference per call" in html and "`" not in html


def test_verdict_for_a_clean_report():
    clean = hand_built_report(objects=[BoundaryRow("data", "list", 2, 2, 0.0, Verdict.OK)],
                              counters=[CounterRow("Python allocations", "blocks", 0.0, Verdict.OK)])
    assert clean.ok and refcheck_verdict(clean).startswith("no leaks")


def test_an_ok_counter_with_growth_says_it_was_not_on_every_call():
    settling = CounterRow("native heap (malloc in use)", "bytes", 248.0, Verdict.OK,
                          (576.0, 576.0, 576.0, 544.0, 496.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    report = RefcheckReport("f()", 3, 10, [], None, [settling])
    assert ("native heap (malloc in use): +248 B/call -> OK (the median; it grew on 5 of 10 calls, "
            "not on every one") in refcheck_table(report)
