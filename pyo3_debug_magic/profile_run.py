"""Run a cell's code under py-spy and build its Profile: the agent steps aside while py-spy
samples, the code runs whatever happens to the profiler, and nothing is left sampling."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from . import profiles, pyspy
from .native_sampler import NativeThreadRecording
from .errors import DebugMagicError, UsageProblem
from .model import Profile


# Python frames of the profiler and of IPython, above the profiled code in every sample
MACHINERY = (os.path.dirname(os.path.abspath(__file__)) + os.sep, "/IPython/", "/ipykernel/")


@dataclass(frozen=True)
class ProfileOptions:
    rate: int = 100
    gil: bool = False
    idle: bool = False
    threads: bool = False
    top: int = 20


@dataclass
class ProfiledRun:
    """What a profiled run gives: the code's result (or its exception) and the profile, or why
    there is none (the code ran anyway)."""

    result: Any = None
    error: BaseException | None = None
    profile: Profile | None = None
    problem: DebugMagicError | None = None
    aside: tuple[float, float | None] | None = None   # the agent's step aside: (away, back) seconds
    ran: bool = False


def run_profiled(code: Callable[[], Any], options: ProfileOptions, debugger=None,
                 py_spy: str | None = None) -> ProfiledRun:
    """Call ``code`` while py-spy samples this process. Exceptions of ``code`` (also
    KeyboardInterrupt) are caught into the run, so the caller shows the profile, then raises."""
    run = ProfiledRun()
    debugger_attached = debugger is not None and debugger.attached
    try:
        aside = debugger.stepped_aside() if debugger_attached else _nothing()
        with aside:
            tracer = debugger.helper_pid if debugger is not None else None
            recording = pyspy.Recording(os.getpid(), options.rate, options.gil, options.idle, py_spy,
                                        tracer_after=tracer)
            clock, workers = _start_thread_samplers(options, tracer)
            try:
                recording.start()
            except BaseException:
                _stop_thread_samplers(clock, workers)
                raise
            _run(code, options, recording, run, clock, workers)
    except UsageProblem as problem:  # a paused thread: gdb cannot step aside
        run.problem = DebugMagicError(f"no profile: {problem.message}", problem.fix)
    except DebugMagicError as problem:
        run.problem = problem
    if run.problem is not None and not run.ran:
        _call(code, run)
    if debugger_attached:
        run.aside = debugger.aside_seconds
    return run


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _call(code: Callable[[], Any], run: ProfiledRun) -> None:
    run.ran = True
    try:
        run.result = code()
    except BaseException as error:  # noqa: BLE001 - re-raised by the caller after the profile
        run.error = error


def _start_thread_samplers(options: ProfileOptions, tracer: int | None):
    """With ``--threads``: the CPU clock of every thread and the sampler of threads without
    Python, both started before py-spy so their start is not in the profile."""
    if not options.threads:
        return None, None
    clock = profiles.ThreadClock()
    clock.start()
    python_threads = {t.native_id for t in threading.enumerate() if t.native_id is not None}
    try:
        return clock, NativeThreadRecording(os.getpid(), options.rate, python_threads, tracer)
    except BaseException:
        clock.stop(set())
        raise


def _stop_thread_samplers(clock, workers) -> None:
    if workers is not None:
        workers.stop()
    if clock is not None:
        clock.stop(set())


def _run(code, options: ProfileOptions, recording: pyspy.Recording, run: ProfiledRun, clock, workers) -> None:
    started = time.monotonic()
    try:
        _call(code, run)
    finally:
        seconds = time.monotonic() - started
        results = recording.stop()
        worker_text, missed, worker_problem = workers.stop() if workers is not None else ("", 0, None)
    native_text, samples, errors = results["native"]
    python_text, python_samples, _ = results.get("python", ("", 0, 0))
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    stacks = profiles.trim_to_code(profiles.parse_collapsed(native_text, pyspy.demangle_all), MACHINERY)
    if not options.idle:
        stacks = [s for s in stacks if not profiles.waiting(s)]
    python_only = profiles.trim_to_code(profiles.parse_collapsed(python_text), MACHINERY)
    native_threads, notes = (), []
    if clock is not None:
        seen = set(names) | {s.thread for s in stacks if s.thread is not None}
        native_threads = clock.stop(seen)
        # threads py-spy sampled are its; the rest come from the native sampler
        worker_stacks = [s for s in profiles.parse_collapsed(worker_text, pyspy.demangle_all) if s.thread not in seen]
        names.update({u.os_thread_id: u.name for u in native_threads})
        names.update({tid: name for tid, name in profiles.thread_names(worker_text).items() if tid not in names})
        stacks += worker_stacks
        samples += sum(s.count for s in worker_stacks)
        if worker_problem:
            notes.append(f"threads without Python were not sampled: {worker_problem}")
        elif missed:
            notes.append(f"threads without Python: {missed} samples missed (py-spy held the thread at that moment)")
    run.profile = profiles.build(
        stacks, samples, errors, options.rate, seconds, python_only=python_only,
        python_only_samples=python_samples, native_threads=native_threads, thread_names=names,
        by_thread=options.threads, top=options.top, extra_notes=tuple(notes))
