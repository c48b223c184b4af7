"""Run a cell's code under the samplers and build its Profile: the agent steps aside while
they sample, the code runs whatever happens to them, and nothing is left sampling."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from pyo3_debug_magic.profiling import profiles
from pyo3_debug_magic.stacks import pyspy
from pyo3_debug_magic.profiling.sampler import NativeThreadRecording
from pyo3_debug_magic.errors import DebugMagicError, UsageProblem
from pyo3_debug_magic.model import Profile


# Python frames of this package (the magic's own wrapper runs the code) and of IPython, above
# the profiled code in every sample
MACHINERY = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep, "/IPython/", "/ipykernel/")


@dataclass(frozen=True)
class ProfileOptions:
    rate: int = 100
    gil: bool = False
    idle: bool = False
    threads: bool = False
    top: int = 20
    engine: str = "auto"        # "elfutils" (the native sampler for every thread), "py-spy", or "auto"


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
    """Call ``code`` while this process is sampled. Exceptions of ``code`` (also
    KeyboardInterrupt) are caught into the run, so the caller shows the profile, then raises."""
    run = ProfiledRun()
    options, why_py_spy = resolve_engine(options)
    debugger_attached = debugger is not None and debugger.attached
    try:
        aside = debugger.stepped_aside() if debugger_attached else _nothing()
        with aside:
            tracer = debugger.helper_pid if debugger is not None else None
            samplers = Samplers(options, tracer, py_spy, why_py_spy)
            samplers.start()
            started = time.monotonic()
            try:
                _call(code, run)
            finally:
                seconds = time.monotonic() - started
                run.profile = samplers.stop(seconds)
    except UsageProblem as problem:  # a paused thread: gdb cannot step aside
        run.problem = DebugMagicError(f"no profile: {problem.message}", problem.fix)
    except DebugMagicError as problem:
        run.problem = problem
    if run.problem is not None and not run.ran:
        _call(code, run)
    if debugger_attached:
        run.aside = debugger.aside_seconds
    return run


def resolve_engine(options: ProfileOptions) -> tuple[ProfileOptions, str | None]:
    """"auto": the native sampler when this interpreter's frames can be read and libdw loads,
    else py-spy (and why)."""
    if options.engine != "auto":
        return options, None
    reason = None
    if options.gil:
        reason = "--gil"
    else:
        try:
            import ctypes

            from pyo3_debug_magic.stacks import pyframes

            pyframes.discover()
            ctypes.CDLL("libdw.so.1")
        except (pyframes.UnsupportedLayout, OSError) as error:
            reason = str(error)
    return replace(options, engine="py-spy" if reason else "elfutils"), reason


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


class Samplers:
    """The samplers of one run: py-spy (with a Python-only py-spy alongside) and, with
    ``--threads``, the native sampler for threads without Python; or, for ``--engine
    elfutils``, the native sampler alone reading every thread's native and Python frames."""

    def __init__(self, options: ProfileOptions, tracer: int | None, py_spy: str | None, why_py_spy: str | None = None):
        self.options, self.tracer, self.why_py_spy = options, tracer, why_py_spy
        self.recording = None if options.engine == "elfutils" else pyspy.Recording(
            os.getpid(), options.rate, options.gil, options.idle, py_spy, tracer_after=tracer)
        self.clock = profiles.ThreadClock() if options.threads else None
        self.native = None

    def start(self) -> None:
        """The native sampler and the CPU clock first, so their start is not sampled."""
        if self.clock is not None:
            self.clock.start()
        try:
            if self.recording is None:
                self.native = NativeThreadRecording(os.getpid(), self.options.rate, set(), self.tracer,
                                                    python=True, idle=self.options.idle)
            elif self.options.threads:
                python_threads = {t.native_id for t in threading.enumerate() if t.native_id is not None}
                self.native = NativeThreadRecording(os.getpid(), self.options.rate, python_threads, self.tracer,
                                                    idle=self.options.idle)
            if self.recording is not None:
                self.recording.start()
        except BaseException:
            self._stop_quietly()
            raise

    def _stop_quietly(self) -> None:
        if self.recording is not None:
            self.recording.stop()  # its samplers, if any started, and its temporary folder
        if self.native is not None:
            self.native.stop()
        if self.clock is not None:
            self.clock.stop(set())

    def stop(self, seconds: float) -> Profile:
        options = self.options
        results = self.recording.stop() if self.recording is not None else {}
        sampled = self.native.stop() if self.native is not None else None
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
        notes = [f"py-spy samples, not the native sampler: {self.why_py_spy}"] if self.why_py_spy else []
        unmatched = 0
        if self.recording is not None:
            native_text, samples, errors = results["native"]
            python_text, python_samples, _ = results.get("python", ("", 0, 0))
            stacks = _shown(_parsed(native_text), options)
            python_only = profiles.trim_to_code(profiles.parse_collapsed(python_text), MACHINERY)
        else:
            sampled_stacks = _parsed(sampled.text)
            stacks, python_only, python_samples = _shown(sampled_stacks, options), [], 0
            samples, errors = sum(s.count for s in sampled_stacks), sampled.missed
            notes += _native_notes(sampled)
            unmatched = sampled.mismatched
        native_threads = ()
        if self.clock is not None:
            python_threads = set(names)
            if self.recording is not None:  # and the threads py-spy sampled
                python_threads |= {s.thread for s in stacks if s.thread is not None}
            native_threads = self.clock.stop(python_threads)
            names.update({u.os_thread_id: u.name for u in native_threads})
            if self.recording is not None:  # the threads py-spy sampled are its; the rest are the native sampler's
                workers = [s for s in _shown(_parsed(sampled.text), options) if s.thread not in python_threads]
                stacks += workers
                samples += sum(s.count for s in workers)
                if sampled.problem:
                    notes.append(f"threads without Python were not sampled: {sampled.problem}")
                elif sampled.missed:
                    notes.append(f"threads without Python: {sampled.missed} samples missed "
                                 "(py-spy held the thread at that moment)")
        if sampled is not None:
            names.update({tid: name for tid, name in profiles.thread_names(sampled.text).items() if tid not in names})
        return profiles.build(
            stacks, samples, errors, options.rate, seconds, python_only=python_only,
            python_only_samples=python_samples, native_threads=native_threads, thread_names=names,
            by_thread=options.threads, top=options.top, extra_notes=tuple(notes), engine=options.engine,
            unmatched=unmatched)


def _parsed(text: str) -> list:
    return profiles.parse_collapsed(text, pyspy.demangle_all)


def _shown(stacks: list, options: ProfileOptions) -> list:
    """The stacks from the profiled code on; waiting threads only with ``--idle``."""
    stacks = profiles.trim_to_code(stacks, MACHINERY)
    return stacks if options.idle else [s for s in stacks if not profiles.waiting(s)]


def _native_notes(sampled) -> list[str]:
    notes = []
    if sampled.problem:
        notes.append(f"the native sampler failed: {sampled.problem}; `--engine py-spy` samples with py-spy")
    if sampled.python_problem:
        notes.append(f"Python frames could not be read ({sampled.python_problem}): native frames only")
    return notes
