"""Leak measurement across the Python/Rust boundary; usable from the magic, pytest and plain code.

How a call is judged (the approach of CPython's ``regrtest -R`` refleak hunter):

* The call is made ``warmup`` times first (caches, lazy type objects and interned strings
  settle), then ``number`` measured times with the *same* argument objects.
* Between calls: ``gc.collect()``, then a snapshot of every boundary object's refcount,
  ``sys.getallocatedblocks()`` and the C heap's in-use bytes (glibc ``mallinfo2``).
* A boundary object's refcount leaks only if it moves on **every** measured call. A
  process-wide counter (Python blocks, native heap) is compared with what the same loop
  around a no-op measures in the same run; it must grow on every call but one (another
  thread may free memory meanwhile), and then again in up to ``CONFIRM_ROUNDS`` more loops,
  so a cache that fills up (CPython and PyO3 have some of a few dozen entries) is not
  reported. Noise goes both ways, so the chance that noise alone looks like a leak is
  about ``2**-number`` per loop; that is the confidence we report.
* Over-release is dangerous (the object can be freed while in use), so every measurable
  object gets a pad of extra references for the duration; the run stops long before the pad
  is used up, and references an over-releasing call destroyed are replaced for good, so the
  object stays intact (it is then kept alive until the process ends).

Immortal and process-wide shared objects (None, True, small ints, interned strings, Python
3.12+ immortal objects whose refcount is pinned) are NOT MEASURABLE: their refcount is
either fixed or moved by unrelated code. Python 3.14 may pass borrowed references on the
stack; that shifts refcounts by a constant, which the per-call deltas cancel.
"""
from __future__ import annotations

import ast
import gc
import statistics
import sys
import time
import traceback
import tracemalloc
from dataclasses import dataclass
from typing import Any, Callable

from pyo3_debug_magic.refchecker.boundary import (REFERENCE_PAD, _judge, _PadGuard, _Series, _track, _Tracked,
                                                boundary_rows, not_measurable_reason, result_row)
from pyo3_debug_magic.refchecker.native_heap import (_native_heap_reader, _saturate_freelists, _TcacheDrain,
                                                   _ThreadStarts, _type_counts)
from pyo3_debug_magic.refchecker.report import BoundaryRow, CounterRow, RefcheckReport, Verdict  # noqa: F401

MIN_MEASURED_CALLS = 3
MAX_CALLS = 100_000        # a bound on -n and --warmup: 2**31 calls never end
SETTLING_CALLS = 2         # unrecorded calls at the start of each measuring loop
CONFIRM_ROUNDS = 12        # extra loops before a growing process-wide counter is called a leak: a
                           # cache may fill over a hundred calls (nh3.clean_text, in some process states)
_KEPT_ALIVE: list[Any] = []  # references replaced after an over-release, so nothing is freed early
THREADS_MOVE_THE_HEAP = (
    "not judged: the code started threads ({n} in {calls} calls), and glibc's per-thread caches and arenas move this "
    "counter for hundreds of calls after threads come and go; refcheck the function the threads "
    "run on its own to judge its native heap")


# ----- process-wide counters -----------------------------------------------------------
def _traceback_from_the_call(error: BaseException) -> str:
    """The traceback without this module's own frames (the repeat loop and its wrappers)."""
    frames = error.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename == __file__:
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames))


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


class RefcheckInterrupted(BaseException):
    """Stops a refcheck run from outside (a watchdog): never taken for the call's own error."""


# ----- the engine ----------------------------------------------------------------------
@dataclass
class RefChecker:
    """Options for a refcheck run; ``check`` (a call) and ``check_code`` (statements) run it."""

    number: int = 10
    warmup: int = 3
    native_heap: bool = True
    use_tracemalloc: bool = False
    allow_raise: bool = False
    # seconds the re-measuring of a growing counter may take (None: every round); what the
    # budget cuts short is UNCONFIRMED, never a LEAK
    confirm_budget: float | None = None
    # called after every call of the measured code (a watchdog's sign of progress)
    on_call: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        if self.number < MIN_MEASURED_CALLS:
            raise ValueError(f"number must be at least {MIN_MEASURED_CALLS}: a leak is a counter "
                             "that grows on every one of several calls")
        if self.warmup < 0:
            raise ValueError("warmup must be 0 or more")
        if max(self.number, self.warmup) > MAX_CALLS:
            raise ValueError(f"number and warmup take at most {MAX_CALLS:,} calls (a leak shows in 10)")

    def check(self, func: Callable, *args: Any, label: str | None = None,
              arg_names: list[str] | None = None, kwarg_names: dict[str, str] | None = None,
              **kwargs: Any) -> RefcheckReport:
        """Measure ``func(*args, **kwargs)``; rows are named by ``arg_names``/``kwarg_names``."""
        names = arg_names or [f"arg{i}" for i in range(len(args))]
        tracked = [t for name, obj in zip(names, args) for t in _track(name, obj)]
        kwarg_names = kwarg_names or {}
        tracked += [t for key, obj in kwargs.items()
                    for t in _track(kwarg_names.get(key, f"{key}="), obj)]
        label = label or f"{getattr(func, '__qualname__', func)!s}(...)"
        return self._run(lambda: func(*args, **kwargs), lambda: _noop(*args, **kwargs),
                         tracked, label, watch_result=True)

    def check_code(self, code: str, namespace: dict, label: str | None = None) -> RefcheckReport:
        """Measure statements run repeatedly in ``namespace``; rows are the variables they read."""
        compiled = compile(code, "<refcheck>", "exec")
        tree = ast.parse(code)
        stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        loaded = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
        tracked = []
        for name in dict.fromkeys(loaded):
            if name in stored or name not in namespace:
                continue
            value = namespace[name]
            if callable(value) or type(value).__name__ == "module":
                continue
            tracked += _track(name, value)
        return self._run(lambda: exec(compiled, namespace), lambda: exec("pass", namespace),
                         tracked, label or code.strip(), watch_result=False)

    # -- internals --
    def _run(self, call: Callable[[], Any], baseline_call: Callable[[], Any],
             tracked: list[_Tracked], label: str, watch_result: bool) -> RefcheckReport:
        heap = _native_heap_reader() if self.native_heap else None
        measurable = [t for t in tracked if t.reason is None]
        for item in measurable:
            item.pad = [member for member in item.members for _ in range(REFERENCE_PAD)]
        # [object, refcount]; read the same way at the end so temporaries cancel out
        start_members = [[m, 0] for t in measurable for m in t.members]
        for entry in start_members:
            entry[1] = sys.getrefcount(entry[0])
        start_refcounts = [t.refcount() for t in measurable]
        calls_made = 0

        def counted_call():
            nonlocal calls_made
            calls_made += 1
            try:
                return call()
            finally:
                if self.on_call is not None:
                    self.on_call(calls_made)

        try:
            report = self._measure(counted_call, baseline_call, tracked, measurable, start_refcounts,
                                   label, watch_result, heap)
            report.total_calls = calls_made
            return report
        finally:
            for entry in start_members:
                deficit = entry[1] - sys.getrefcount(entry[0])
                if deficit > 0:
                    # An over-release destroyed references: keep the object alive for good. The
                    # net change can hide more (a call that stores the object *and* releases it
                    # looks like -1 but destroyed 2), so add a whole pad on top.
                    _KEPT_ALIVE.extend(entry[0] for _ in range(deficit + REFERENCE_PAD))
            for item in measurable:
                item.pad = []

    def _measure(self, call, baseline_call, tracked, measurable, start_refcounts, label,
                 watch_result, heap) -> RefcheckReport:
        gc.collect()
        guard = _PadGuard(measurable, start_refcounts)
        warm = _Series(0, 0)
        for _ in range(self.warmup):
            ok, _result = self._one_call(call, warm)
            del _result
            if not ok:
                break
            if stop := guard.check():
                warm.stopped = stop
                break
        if warm.raised and not self.allow_raise:
            return RefcheckReport(label, self.warmup, 0, boundary_rows(tracked, measurable, []), None,
                                  [], exception=warm.exception, raised_calls=warm.raised)
        # the same loop around a no-op measures what the loop itself costs, in this run
        baseline = self._loop(baseline_call, self.number, measurable, heap, watch_result, None)
        if self.use_tracemalloc:
            tracemalloc.start()
        try:
            series = (self._loop(call, self.number, measurable, heap, watch_result, guard)
                      if not warm.stopped else _Series(0, len(measurable)))
        finally:
            if self.use_tracemalloc:
                tracemalloc.stop()
        series.stopped = series.stopped or warm.stopped
        measured = series.calls
        counters = self._counters(series, baseline, heap)
        if any(c.verdict is Verdict.LEAK for c in counters) and not series.stopped:
            counters = self._confirm(call, measurable, heap, watch_result, baseline, counters, guard)
        growing = []
        if counters[0].verdict is Verdict.LEAK and measured and not series.stopped:
            growing = self._growing_types(call, measured, guard)
        return RefcheckReport(
            label, self.warmup, measured, boundary_rows(tracked, measurable, series.refs, start_refcounts),
            result_row(series) if watch_result else None, counters, growing,
            warm.exception or series.exception, warm.raised + series.raised, series.stopped)

    def _one_call(self, call, series: _Series) -> tuple[bool, Any]:
        """Call once: (False, None) if it raised and raising is not allowed."""
        try:
            return True, call()
        except (KeyboardInterrupt, SystemExit, RefcheckInterrupted):
            raise
        except BaseException as error:  # noqa: BLE001 - reported with its traceback (PanicException is a BaseException)
            series.raised += 1
            if series.exception is None:
                series.exception = _traceback_from_the_call(error)
            return self.allow_raise, None

    def _loop(self, call, count, measurable, heap, watch_result, guard) -> _Series:
        """One settling call, then ``count`` calls, each followed by gc.collect() and a snapshot.

        The settling call's deltas are not kept: whatever the loop itself leaves alive the
        first time round (locals, the snapshot it replaces) would otherwise look like a leak.
        """
        series = _Series(count, len(measurable))
        # generation 0 only: a full collection also empties CPython's freelists, and refilling
        # them would look like growth (the full pass runs before warm-up)
        gc.collect(0)
        _saturate_freelists()
        was_enabled = gc.isenabled()
        # With automatic collection off, everything a call creates stays in generation 0, so
        # collecting that generation alone frees its cyclic garbage (a full pass is ~50x slower).
        gc.disable()
        try:
            with _TcacheDrain(), _ThreadStarts() as threads:
                self._steps(call, count, measurable, heap, watch_result, guard, series)
            series.threads_started = threads.count
        finally:
            if was_enabled:
                gc.enable()
        return series.trim()

    def _steps(self, call, count, measurable, heap, watch_result, guard, series) -> None:
        """Two settling calls, then ``count`` recorded ones, all through the same code path.

        The settling calls record into slot 0 (overwritten later): whatever the path leaves
        alive the first time round (locals, the snapshot it replaces, lazily created internals)
        must not show up as growth in the first recorded call.
        """
        previous_address = address = id(series)
        column = now = then = stop = None
        before = self._snapshot(measurable, heap)
        if count <= 0:
            return
        for step in range(-SETTLING_CALLS, count):
            slot = max(step, 0)
            ok, result = self._one_call(call, series)
            if not ok:
                break
            if watch_result:
                address = id(result)
                series.result_same[slot] = address == previous_address
                previous_address = address
                self._inspect_result(result, series, slot)
            del result
            gc.collect(0)
            after = self._snapshot(measurable, heap)
            for column, now, then in zip(series.refs, after[0], before[0]):
                column[slot] = now - then
            series.blocks[slot] = after[1] - before[1]
            series.heap[slot] = after[2] - before[2]
            series.traced[slot] = after[3] - before[3]
            series.calls = step + 1 if step >= 0 else 0
            before = after
            if guard and (stop := guard.check()):
                series.stopped = stop
                break

    def _counters(self, series: _Series, baseline: _Series, heap) -> list[CounterRow]:
        counters = [self._counter("Python allocations", "blocks", series.blocks, baseline.blocks)]
        if heap:
            counter = self._counter(heap[0], "bytes", series.heap, baseline.heap)
            if series.threads_started:
                counter = CounterRow(counter.name, counter.unit, counter.per_call, Verdict.NOT_MEASURABLE,
                                     counter.deltas, THREADS_MOVE_THE_HEAP.format(n=series.threads_started,
                                                                                 calls=series.calls + SETTLING_CALLS))
            counters.append(counter)
        if self.use_tracemalloc:
            counters.append(self._counter("tracemalloc", "bytes", series.traced, []))
        return counters

    def _confirm(self, call, measurable, heap, watch_result, baseline, counters,
                 guard: "_PadGuard") -> list[CounterRow]:
        """Re-measure a growing process-wide counter: a bounded cache filling up (CPython's
        and PyO3's internals have some of a few dozen entries) stops growing, a leak does not.
        Up to CONFIRM_ROUNDS more loops; a counter stays LEAK only if it grew on every call of
        every round. A round that would end past ``confirm_budget`` is not started: what was
        still growing then is UNCONFIRMED."""
        suspects = {c.name for c in counters if c.verdict is Verdict.LEAK}
        settled_after: dict[str, int] = {}
        calls = self.warmup + self.number
        started = time.monotonic()
        rounds = 0
        for _ in range(CONFIRM_ROUNDS):
            spent = time.monotonic() - started
            if (self.confirm_budget is not None and rounds
                    and spent + spent / rounds > self.confirm_budget) or self.confirm_budget == 0:
                break
            again = self._counters(self._loop(call, self.number, measurable, heap, watch_result,
                                              guard), baseline, heap)
            rounds += 1
            calls += self.number + SETTLING_CALLS
            for counter in again:
                if counter.name in suspects and counter.verdict is not Verdict.LEAK:
                    suspects.discard(counter.name)
                    settled_after[counter.name] = calls
            if not suspects:
                break
        result = []
        for c in counters:
            if c.name in settled_after:
                c = CounterRow(c.name, c.unit, 0.0, Verdict.OK, c.deltas,
                               f"grew during the first calls, then stopped within {settled_after[c.name]} "
                               "calls (a cache filling up, not a leak)")
            elif c.name in suspects and rounds < CONFIRM_ROUNDS:
                c = CounterRow(c.name, c.unit, c.per_call, Verdict.UNCONFIRMED, c.deltas,
                               f"grew on every call of {rounds + 1} loop(s) ({calls} calls); the time "
                               f"budget ({self.confirm_budget:g} s) ended the re-measuring before a cache "
                               "filling up could be told from a leak")
            result.append(c)
        return result

    def _growing_types(self, call, calls: int, guard: "_PadGuard") -> list[tuple[str, float]]:
        """Which types gain live objects per call (only run once Python allocations leaked)."""
        _type_counts()  # the first count creates a few objects of its own (weakrefs, sets)
        gc.collect()
        before = _type_counts()
        for _ in range(calls):
            ok, result = self._one_call(call, _Series(0, 0))
            del result
            if not ok or guard.check():
                break
        gc.collect()
        grown = _type_counts() - before
        grown.subtract({"Counter": 1})  # `before` itself
        return [(name, count / calls) for name, count in grown.most_common(3) if count >= calls]

    @staticmethod
    def _snapshot(measurable, heap) -> tuple[list[int], int, int, int]:
        refs = [item.refcount() for item in measurable]
        blocks = sys.getallocatedblocks()
        in_use = heap[1]() if heap else 0
        traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
        return refs, blocks, in_use, traced

    @staticmethod
    def _counter(name: str, unit: str, values: list[int], baseline: list[int]) -> CounterRow:
        offset = statistics.median(baseline) if baseline else 0
        noise = max((abs(b - offset) for b in baseline), default=0)
        corrected = [v - offset for v in values]
        # another thread may free memory during one call (a finished thread, an I/O buffer):
        # one outlier is tolerated here, and _confirm re-measures before anything is a leak
        verdict, per_call = _judge(corrected, noise, outliers=1 if len(corrected) >= 5 else 0)
        return CounterRow(name, unit, per_call, verdict, tuple(corrected))

    @staticmethod
    def _inspect_result(result: Any, series: _Series, index: int) -> None:
        """Record the returned value's references right after the call."""
        series.result_type = type(result).__name__
        if not_measurable_reason(result) is not None:
            return
        frame_type = type(sys._getframe())
        visible = len([r for r in gc.get_referrers(result) if not isinstance(r, frame_type)])
        # held by: the loop's `result`, this parameter, getrefcount's argument
        refcount = sys.getrefcount(result)
        series.result_measurable[index] = 1
        series.result_refcount[index] = refcount - 3
        series.result_unexplained[index] = refcount - 3 - visible

def refcheck(func: Callable, *args: Any, **kwargs: Any) -> RefcheckReport:
    """Measure ``func(*args, **kwargs)`` with default options (see ``RefChecker`` for more)."""
    return RefChecker().check(func, *args, **kwargs)
