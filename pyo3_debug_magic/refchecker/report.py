"""What a refcheck measured (rows, counters, the report) and the verdict a PyO3 author reads:
which findings are reported and the advice that goes with each. Standard library only."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pyo3_debug_magic.model import signed_bytes


class Verdict(enum.Enum):
    OK = "OK"
    LEAK = "LEAK"
    OVER_RELEASE = "OVER-RELEASE"
    NOT_MEASURABLE = "NOT MEASURABLE"
    UNCONFIRMED = "UNCONFIRMED"  # grew on every call, but the time budget ended the re-measuring


@dataclass(frozen=True)
class BoundaryRow:
    """One object (or one container's elements) that crossed the boundary."""

    name: str
    type_name: str
    refcount_before: int | None
    refcount_after: int | None
    per_call: float | None
    verdict: Verdict
    note: str = ""

    @property
    def verdict_text(self) -> str:
        if self.verdict is Verdict.LEAK:
            return f"LEAK +{_fmt(self.per_call)}/call"
        if self.verdict is Verdict.OVER_RELEASE:
            return f"OVER-RELEASE {_fmt(self.per_call)}/call"
        return self.verdict.value


@dataclass(frozen=True)
class CounterRow:
    """A process-wide counter (Python blocks, native heap bytes, tracemalloc bytes)."""

    name: str
    unit: str
    per_call: float
    verdict: Verdict
    deltas: tuple[float, ...] = ()
    note: str = ""


@dataclass
class RefcheckReport:
    """What one refcheck measured; ``ok``, ``leaks``, ``verdict`` and ``table`` summarise it."""

    label: str
    warmup: int
    measured_calls: int
    objects: list[BoundaryRow]
    result: BoundaryRow | None
    counters: list[CounterRow]
    growing_types: list[tuple[str, float]] = field(default_factory=list)
    exception: str | None = None
    raised_calls: int = 0
    stopped_early: str | None = None
    total_calls: int = 0  # every call made (warm-up, settling, measured, confirming): what refs before/after span

    @property
    def problems(self) -> list[BoundaryRow | CounterRow]:
        rows: list = [*self.objects, *([self.result] if self.result else []), *self.counters]
        return [row for row in rows if row.verdict in (Verdict.LEAK, Verdict.OVER_RELEASE)]

    @property
    def leaks(self) -> list[BoundaryRow | CounterRow]:
        """Every row judged LEAK or OVER-RELEASE."""
        return self.problems

    @property
    def ok(self) -> bool:
        return not self.problems and (self.exception is None or self.measured_calls > 0)

    @property
    def confidence(self) -> float:
        """Chance that a flagged counter is not noise (all ``n`` deltas of one sign)."""
        return 1.0 - 2.0 ** -self.measured_calls if self.measured_calls else 0.0

    @property
    def verdict(self) -> str:
        return verdict_sentence(self)

    @property
    def table(self) -> str:
        from pyo3_debug_magic.render.refcheck_text import refcheck_table

        return refcheck_table(self)

    def __repr__(self) -> str:
        return self.table

    def _repr_html_(self) -> str:
        from pyo3_debug_magic.render.html import refcheck_html

        return refcheck_html(self)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


# ----- what can be measured ----------------------------------------------------------
def verdict_sentence(report: "RefcheckReport") -> str:
    """One sentence a PyO3 author can act on: which findings are reported, with what advice."""
    if report.exception and report.measured_calls == 0:
        last = report.exception.strip().splitlines()[-1]
        return (f"the call raised {last}; nothing was measured "
                "(use --allow-raise to measure leaks on the error path)")
    findings = []
    for row in report.objects:
        calls = "reference" if abs(row.per_call or 0) == 1 else "references"
        if row.verdict.name == "LEAK":
            findings.append(
                f"`{row.name}` gains {row.per_call:g} {calls} per call: something takes a new "
                "reference and never releases it, e.g. `into_ptr()` / `Py_IncRef` / a leaked `Py<T>`")
        elif row.verdict.name == "OVER_RELEASE":
            findings.append(
                f"`{row.name}` loses {-row.per_call:g} {calls} per call: a borrowed reference is "
                "released as if owned (e.g. `Py_DecRef` on a `&Bound`, `from_owned_ptr` on a borrowed "
                "pointer); it would be freed while still in use")
    if report.result and report.result.verdict.name == "LEAK":
        findings.append(
            f"the result is returned with {report.result.per_call:g} extra reference(s) and is never "
            "freed (e.g. `Py_IncRef` before returning, or `from_borrowed_ptr` on a new reference)")
    counters = {c.name: c for c in report.counters}
    python = counters.get("Python allocations")
    native = next((c for c in report.counters if c.unit == "bytes" and c.name != "tracemalloc"), None)
    if python and python.verdict.name == "LEAK":
        kinds = ", ".join(name for name, _ in report.growing_types) or "objects"
        findings.append(f"{python.per_call:g} Python allocations per call stay alive ({kinds})")
    if native and native.verdict.name == "LEAK":
        if python and python.verdict.name == "LEAK":
            findings.append(f"the native heap grows by {signed_bytes(native.per_call)[1:]} per call")
        else:
            findings.append(
                f"the native heap grows by {signed_bytes(native.per_call)[1:]} per call with no Python objects "
                "growing: Rust memory is allocated and never freed (e.g. `mem::forget`, `Box::leak`, "
                "a collection in a static that only grows)")
    findings += [f"{c.name} grew on every call, but the time budget ended its re-measuring: not confirmed "
                 "as a leak (a cache filling up looks the same at first)"
                 for c in report.counters if c.verdict.name == "UNCONFIRMED"]
    if report.stopped_early:
        findings.append(report.stopped_early)
    raised = (f" (the call raised on {report.raised_calls} calls; the error path was measured)"
              if report.raised_calls else "")
    if not findings:
        return (f"no leaks: refcounts, Python allocations and native heap are stable over "
                f"{report.measured_calls} calls{raised}")
    odds = f"each finding held on all {report.measured_calls} measured calls (chance of noise <= 2^-{report.measured_calls})"
    return "; ".join(findings) + f". [{odds}]"
