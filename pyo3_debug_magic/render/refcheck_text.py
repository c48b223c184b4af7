"""A refcheck report as text: its table of boundary rows, the process-wide counters, the calls
measured. (``render/html.py`` lays the same rows out as a table.)"""
from __future__ import annotations

from pyo3_debug_magic.model import signed_bytes


def _num(value) -> str:
    if value is None:
        return "-"
    return f"{value:+.0f}" if float(value).is_integer() else f"{value:+.2f}"


def refcheck_rows(report) -> list[tuple[str, str, str, str, str, str]]:
    """(object, type, refcount before, after, change/call, verdict + note) for each row."""
    rows = []
    for row in [*report.objects, *([report.result] if report.result else [])]:
        before = "-" if row.refcount_before is None else str(row.refcount_before)
        after = "-" if row.refcount_after is None else (
            str(row.refcount_after) if row.refcount_after > 0 else "<=0")
        verdict = row.verdict_text + (f" ({row.note})" if row.note else "")
        rows.append((row.name, row.type_name, before, after, _num(row.per_call), verdict))
    return rows


def counter_lines(report) -> list[str]:
    lines = []
    for counter in report.counters:
        amount = signed_bytes(counter.per_call) if counter.unit == "bytes" else f"{_num(counter.per_call)} {counter.unit}"
        note = f" ({counter.note})" if counter.note else ""
        if counter.verdict.name == "OK" and counter.per_call and not counter.note:
            grew = sum(delta > 0 for delta in counter.deltas)
            note = (f" (the median; it grew on {grew} of {len(counter.deltas)} calls, not on every one: "
                    "a cache filling up or noise, not a leak)")
        lines.append(f"{counter.name}: {amount}/call -> {counter.verdict.value}{note}")
    if report.growing_types:
        grown = ", ".join(f"{name} {_num(rate)}/call" for name, rate in report.growing_types)
        lines.append(f"growing types: {grown}")
    return lines


def refcheck_calls(report) -> str:
    """How often the call ran; refs before/after span every call, not only the measured ones."""
    calls = f"{report.warmup} warm-up + {report.measured_calls} measured calls"
    if report.total_calls > report.warmup + report.measured_calls:
        calls += f" ({report.total_calls} calls in all; refs before/after span them)"
    return calls


def refcheck_table(report) -> str:
    """The whole report as plain text (terminal IPython, and the HTML's text twin)."""
    header = ("object", "type", "refs before", "after", "change/call", "verdict")
    rows = refcheck_rows(report)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    lines = [f"refcheck {report.label}: {refcheck_calls(report)}"]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header[:5], widths)) + "  " + header[5])
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row[:5], widths)) + "  " + row[5])
    lines += counter_lines(report)
    if report.exception:
        lines.append(f"the call raised on {report.raised_calls} call(s); first traceback:")
        lines += ["  " + line for line in report.exception.rstrip().splitlines()]
    lines.append("verdict: " + report.verdict)
    return "\n".join(lines)


# ----- breakpoints and pauses ----------------------------------------------------------
