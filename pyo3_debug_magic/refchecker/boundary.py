"""The objects refcheck measures: which can be measured at all (immortal and shared ones
cannot), the pad of extra references that makes an over-release safe, the preallocated
series a measuring loop writes into, and the verdicts read from those series. Standard
library only."""
from __future__ import annotations

import ctypes
import statistics
import sys
from array import array
from dataclasses import dataclass, field
from typing import Any

from pyo3_debug_magic.refchecker.report import BoundaryRow, Verdict

REFERENCE_PAD = 64          # extra references held on each measurable object during a run
PAD_RESERVE = 16            # stop repeating when fewer pad references than this remain
SHARED_REFCOUNT = 10**8     # above this a refcount is immortal (3.12+) or process-wide (3.11 small ints)


def _is_interned(text: str) -> bool:
    """CPython's PyASCIIObject.state.interned bits (offset 32 on 64-bit, 3.10 to 3.14)."""
    if sys.implementation.name != "cpython" or ctypes.sizeof(ctypes.c_void_p) != 8:
        return False
    return bool(ctypes.c_uint.from_address(id(text) + 32).value & 3)


def not_measurable_reason(obj: Any) -> str | None:
    """Why ``obj``'s refcount says nothing about the call, or None if it can be measured."""
    if obj is None or obj is True or obj is False or obj is Ellipsis or obj is NotImplemented:
        return "singleton shared by the whole process"
    if type(obj) is int and -5 <= obj <= 256:
        return "small int cached by the interpreter"
    if type(obj) in (tuple, bytes, frozenset) and len(obj) == 0:
        return "empty immutable singleton"
    if type(obj) is str and (len(obj) <= 1 or _is_interned(obj)):
        return "interned string shared by the whole process"
    if sys.getrefcount(obj) >= SHARED_REFCOUNT:
        return "immortal or shared by the whole process (refcount pinned)"
    return None


class _Series:
    """Per-call deltas of one loop, in preallocated arrays: the loop allocates no Python objects
    per call, so its own bookkeeping does not show up in the counters it measures."""

    def __init__(self, count: int, tracked: int):
        zeros = bytes(8 * max(count, 0))
        self.calls = 0
        self.refs = [array("q", zeros) for _ in range(tracked)]
        self.blocks, self.heap, self.traced = array("q", zeros), array("q", zeros), array("q", zeros)
        self.result_refcount, self.result_unexplained = array("q", zeros), array("q", zeros)
        self.result_same = array("b", bytes(max(count, 0)))  # same object as the previous call
        self.result_measurable = array("b", bytes(max(count, 0)))
        self.result_type = ""
        self.raised = 0
        self.exception: str | None = None
        self.stopped: str | None = None
        self.threads_started = 0  # threads started through `threading` during the loop

    def trim(self) -> "_Series":
        n = self.calls
        self.refs = [column[:n] for column in self.refs]
        for name in ("blocks", "heap", "traced", "result_refcount", "result_unexplained",
                     "result_same", "result_measurable"):
            setattr(self, name, getattr(self, name)[:n])
        return self


class _PadGuard:
    """Says when an over-release has eaten most of the reference pad, so we must stop."""

    def __init__(self, measurable: list[_Tracked], start_refcounts: list[int]):
        self.measurable = measurable
        self.start = start_refcounts

    def check(self) -> str | None:
        for item, start in zip(self.measurable, self.start):
            lost = start - item.refcount()
            if lost > REFERENCE_PAD * len(item.members) - PAD_RESERVE:
                return (f"stopped after {lost} references of {item.name} were released that "
                        "the call did not own (the object was kept intact)")
        return None


@dataclass
class _Tracked:
    """A boundary object, or the measurable elements of a container argument."""

    name: str
    type_name: str
    members: list[Any]
    reason: str | None = None
    pad: list[Any] = field(default_factory=list)

    def refcount(self) -> int:
        return sum(sys.getrefcount(member) for member in self.members)


def _track(name: str, obj: Any) -> list[_Tracked]:
    tracked = [_Tracked(name, type(obj).__name__, [obj], not_measurable_reason(obj))]
    if isinstance(obj, (list, tuple, set, frozenset, dict)):
        elements = list(obj.values()) if isinstance(obj, dict) else list(obj)
        measurable = [e for e in elements if not_measurable_reason(e) is None]
        kinds = sorted({type(e).__name__ for e in elements}) or ["-"]
        label = f"{name}[*] ({len(elements)} {'/'.join(kinds)})"
        if measurable:
            tracked.append(_Tracked(label, "/".join(kinds), measurable))
        elif elements:
            tracked.append(_Tracked(label, "/".join(kinds), [], "elements are shared objects (small ints, interned strings)"))
    return tracked


# ----- verdicts over the measured series ---------------------------------------------
def _judge(deltas: list[float], noise: float = 0.0, outliers: int = 0) -> tuple[Verdict, float]:
    """LEAK if every delta (but ``outliers``) is above ``noise``; OVER-RELEASE if every one is
    below ``-noise``; otherwise OK."""
    per_call = statistics.median(deltas) if deltas else 0.0
    needed = len(deltas) - outliers
    if deltas and sum(d > noise for d in deltas) >= needed and per_call > noise:
        return Verdict.LEAK, per_call
    if deltas and sum(d < -noise for d in deltas) >= needed and per_call < -noise:
        return Verdict.OVER_RELEASE, per_call
    return Verdict.OK, per_call


def result_row(series: _Series) -> BoundaryRow | None:
    if not series.calls:
        return None
    if not all(series.result_measurable):
        return BoundaryRow("result", series.result_type, None, None, None,
                           Verdict.NOT_MEASURABLE,
                           "shared object (None, small int, interned string...)")
    if not any(series.result_same[1:]):
        # a new object every call: references beyond the caller's are a leak
        verdict, per_call = _judge(list(series.result_unexplained))
        note = ("new object returned with references nobody holds: it is never freed"
                if verdict is Verdict.LEAK else "new object each call")
        return BoundaryRow("result", series.result_type, None, None, per_call, verdict, note)
    # the same object again (a cache): judge by how its refcount moves between calls
    counts = series.result_refcount
    verdict, per_call = _judge([b - a for a, b in zip(counts, counts[1:])])
    return BoundaryRow("result", series.result_type, counts[0], counts[-1], per_call,
                       verdict, "same object returned each call (cached)")

def boundary_rows(tracked, measurable, series, start_refcounts=()) -> list[BoundaryRow]:
    rows = []
    columns = {id(item): index for index, item in enumerate(measurable)}
    for item in tracked:
        if item.reason is not None:
            rows.append(BoundaryRow(item.name, item.type_name, None, None, None,
                                    Verdict.NOT_MEASURABLE, item.reason))
            continue
        index = columns.get(id(item))
        deltas = list(series[index]) if index is not None and series else []
        # less the pad and our own holders (the members list and refcount()'s temporaries)
        ours = (REFERENCE_PAD + 3) * len(item.members)
        before = start_refcounts[index] - ours if start_refcounts else None
        after = item.refcount() - ours if start_refcounts else None
        verdict, per_call = _judge(deltas) if deltas else (Verdict.OK, None)
        note = ""
        if verdict is Verdict.OVER_RELEASE and after is not None and after <= 0:
            note = "would have been freed while still in use; kept alive instead"
        rows.append(BoundaryRow(item.name, item.type_name, before, after, per_call, verdict, note))
    return rows
