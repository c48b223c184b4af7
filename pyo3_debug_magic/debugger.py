"""The kernel's native debugger: one agent shared by every gdb feature, usable without IPython."""
from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import sys
import threading
import time
from dataclasses import replace
from typing import Callable

from pyo3_debug_magic import protocol as p
from pyo3_debug_magic import userinput
from pyo3_debug_magic.breakpoints import locations, preimport, source_paths
from pyo3_debug_magic.config import DebuggerSettings
from pyo3_debug_magic.errors import DebugMagicError, NotAttachedError, UsageProblem
from pyo3_debug_magic.model import (AttachProgress, AttachStatus, BreakpointInfo, BreakpointRequest, HelperSetup,
                                    Event, GdbDied, LogHit, RawSnapshot, Snapshot)
from pyo3_debug_magic.session import AgentSession
from pyo3_debug_magic.stacks import pyframes


INTERPRETER_FUNCTION = re.compile(r"_?Py[A-Z_][A-Za-z0-9_]*")  # CPython's C API and internals
SLOW_REQUEST_TIMEOUT = 60.0  # requests the agent itself bounds at 30-40 s (attach, reading symbols)
SET_BREAKPOINT_TIMEOUT = 120.0  # the helper reads sources and functions (30 s each at most), then inserts


class NativeDebugger(DebuggerSettings):
    """Attaches gdb (through the agent) to ``target_pid``, by default this process. Its
    settings are traitlets (``%config NativeDebugger``); a change reaches a running agent."""

    def __init__(self, target_pid: int | None = None, setup: HelperSetup | None = None, **settings):
        super().__init__(**settings)
        self.target_pid = target_pid
        self.setup = setup or HelperSetup()  # a test run's crash identity, terminal, ... (frozen)
        self._session: AgentSession | None = None
        self._listeners: list[Callable[[Event], None]] = [self._on_event]
        self._gdb_gone = False
        self._gdb_attached = False
        self._attach_doing = ""
        self._aside_seconds: tuple[float, float | None] | None = None
        # called as (seconds, what it does, finished) while an attach has taken over a second
        self.attach_progress: Callable[..., None] | None = None  # (seconds, doing, finished, verb)
        self.observe(self._settings_changed)

    @property
    def aside_seconds(self) -> tuple[float, float | None] | None:
        """The last step aside (``stepped_aside``): seconds to let go, and to attach again."""
        return self._aside_seconds

    @property
    def attached(self) -> bool:
        return (self._session is not None and self._session.alive and not self._gdb_gone
                and self._gdb_attached)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, AttachProgress):
            self._attach_doing = event.doing
        if isinstance(event, GdbDied):
            self._gdb_gone = True  # the agent lives on; the next attach starts a new gdb

    def _settings_changed(self, change) -> None:
        if self._session is not None and self._session.alive:
            self._session.request(p.Configure(self.agent_settings()), timeout=self.request_wait)
            self._session.request_timeout = self.request_wait

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Receive the agent's events (paused, interrupted, error, crash) from a reader thread;
        an attach's progress goes to ``attach_progress`` instead."""
        def deliver(event: Event) -> None:
            if not isinstance(event, AttachProgress):
                listener(event)

        self._listeners.append(deliver)
        if self._session is not None:
            self._session.add_listener(deliver)

    def attach(self) -> AttachStatus:
        """Start the agent if needed and attach in non-stop mode (threads keep running)."""
        from pyo3_debug_magic.crash import report_files

        try:
            if self._session is None or not self._session.alive:
                self._session = AgentSession(self.target_pid, self.gdb or None, self.request_wait,
                                             tee_stderr=self.setup.tee_stderr, terminal=self.setup.terminal)
                for listener in self._listeners:
                    self._session.add_listener(listener)
                self._session.start()
                self._session.request(p.Configure(self.agent_settings()))
            self._gdb_gone = False
            kernel_id = self.setup.crash_identity or (
                report_files.kernel_identity() if self.target_pid in (None, os.getpid()) else None)
            # the agent bounds attaching at 2 x 20 s: the kernel waits longer
            reported = []

            def slow(seconds: float) -> None:
                if seconds >= self.attach_progress_after and self.attach_progress is not None:
                    reported.append(seconds)
                    self.attach_progress(seconds, self._attach_doing, False)

            if self.attach_progress_after <= 0:
                slow(0.0)  # progress asked for on every attach: shown before the first wait
            own = self.target_pid in (None, os.getpid())
            status = AttachStatus.from_agent(self._session.request(
                p.Attach(kernel_id, self.setup.crash_directory or str(report_files.report_dir()),
                         self.setup.crash_handling, self.setup.defer_symbols,
                         pyframes.handed_layout() if own else ""),
                timeout=SLOW_REQUEST_TIMEOUT, while_waiting=slow))
            if reported and self.attach_progress is not None:
                self.attach_progress(status.attach_seconds or reported[-1], "", True)
            self._gdb_attached = True
            return replace(status, notes=preimport.rebuilt_since_import()) if own else status
        except Exception:
            self.close()
            raise

    def ensure_attached(self) -> AttachStatus | None:
        """Attach if not attached yet; the new status then, else None."""
        return None if self.attached else self.attach()

    def _request(self, request: p.Request, timeout: float | None = None):
        if not self.attached:
            raise NotAttachedError()
        return self._session.request(request, timeout=timeout)

    # ----- breakpoints --------------------------------------------------------------
    def set_breakpoint(self, request: BreakpointRequest) -> BreakpointInfo:
        """Check ``request``, then have the helper resolve it to the user's crate and insert
        it (``breakpoints.resolver``), attaching if needed: one request once attached."""
        userinput.check_text(request.location, "the location")
        if request.condition is not None:
            userinput.check_breakpoint_expression(request.condition, "the --if condition")
        for expression in request.expressions:
            userinput.check_breakpoint_expression(expression, "a --log expression")
        if request.crate is not None and not re.fullmatch(r"[A-Za-z0-9_\-]{1,200}", request.crate):
            raise UsageProblem(f"not a crate name: {userinput.printable(request.crate)[:80]!r}",
                               "--crate takes the crate's name, e.g. --crate my_crate")
        parsed = locations.parse_location(request.location)  # said before anything attaches
        if parsed.function and INTERPRETER_FUNCTION.fullmatch(parsed.function) and not request.force:
            raise UsageProblem(f"{parsed.function} is the interpreter's own: every Python call in the process "
                               "passes there (with --log a plain cell took 10 s)",
                               "break in your crate instead, or add --force to break there anyway")
        source_dir = source_paths.checked_source_dir(request.source_dir) if request.source_dir else None
        own = self.target_pid in (None, os.getpid())  # our sys.path: what it can import is checked first
        importable = functools.cache(preimport.importable_extensions)  # walked once, if at all
        renamed = ""
        if own:
            request, renamed = _in_rusts_names(request, parsed, importable)
            parsed = locations.parse_location(request.location)
        attached_now = self.ensure_attached()
        kind = "log" if request.log else "pause"
        asked = p.SetBreakpoint(
            location=request.location, kind=kind, crate=request.crate, force=request.force,
            condition=request.condition, ignore=request.ignore, temporary=request.temporary,
            expressions=tuple(request.expressions), backtrace=request.backtrace, source_dir=source_dir)
        created = self._request(asked, timeout=SET_BREAKPOINT_TIMEOUT)
        found = None
        if created.number == 0:  # a FILE:LINE in no loaded module: checked in what Python can import first
            if own:
                found = preimport.check_before_import(parsed, request.crate, importable())  # may refuse: nothing inserted
            created = self._request(replace(asked, insert_pending=True), timeout=SET_BREAKPOINT_TIMEOUT)
        pending_note = f"{created.pending_note}; {found}" if found else created.pending_note
        notes = [renamed, pending_note if created.pending else "", created.moved_note,
                 attached_now.printers if attached_now and attached_now.printers != "loaded" else "",
                 created.line_note]
        return BreakpointInfo(created.number, kind, request.location, True, 0, request.condition, created.pending,
                              created.locations, "; ".join(n for n in notes if n))

    def log_calls(self, function: str, label: str) -> int:
        """A log breakpoint recording the backtrace of every call of ``function`` (any loaded
        library's, e.g. ``pyo3::err::PyErr::restore`` in each PyO3 extension); its number."""
        return self._request(p.BreakInsert(kind="log", function=function, backtrace=True, location=label)).number

    def breakpoints(self) -> list[BreakpointInfo]:
        if not self.attached:
            return []
        return list(self._request(p.BreakList()))

    def delete_breakpoints(self, numbers: list[int] | None = None) -> list[int]:
        """Delete the given breakpoints, or all of them."""
        return list(self._request(p.BreakDelete(None if numbers is None else tuple(numbers))))

    def enable_breakpoints(self, numbers: list[int], enabled: bool = True) -> list[int]:
        return list(self._request(p.BreakEnable(tuple(numbers), enabled)))

    @contextlib.contextmanager
    def breakpoints_suspended(self):
        """Every breakpoint off while code runs on the user's behalf (``py`` at a pause: the
        console's own thread must never stop at one); on again afterwards."""
        numbers = tuple(self._request(p.SuspendBreakpoints()))
        try:
            yield numbers
        finally:
            if numbers:
                self._request(p.BreakEnable(numbers, True))

    def set_condition(self, number: int, condition: str | None) -> None:
        """Pause (or log) only when ``condition`` holds; None or "" removes the condition."""
        if condition:
            userinput.check_breakpoint_expression(condition, "the condition")
        self._request(p.BreakCondition(int(number), condition or None))

    def take_log_hits(self) -> list[LogHit]:
        """Log-breakpoint hits (and unattended or refused pauses) recorded since the last call."""
        if not self.attached:
            return []
        return list(self._request(p.TakeLogs()))

    def set_pausing_allowed(self, allowed: bool, because: str = "no stdin") -> None:
        """A cell starts: tell the agent whether it can answer a pause (else hits are logged,
        saying ``because``)."""
        if self.attached:
            self._request(p.CellStarts(allowed, because))

    def cell_done(self) -> list[str]:
        """The cell ended; what the helper has to say about it (a pending breakpoint that the
        cell's import did not bind)."""
        if not self.attached:
            return []
        return [str(note) for note in (self._request(p.CellDone()) or {}).get("notes", [])]

    def watch(self, seconds: float | None) -> None:
        """Report where the main thread is when a cell runs longer than ``seconds`` (None: off)."""
        self.ensure_attached()
        self._request(p.Watch(seconds))

    def hang_shown(self) -> None:
        if self.attached:
            self._request(p.HangShown())

    def pause_hung(self) -> None:
        """Debug the hung thread in place: it becomes a pause (a ``Paused`` event follows)."""
        self._request(p.PauseHung())

    # ----- snapshots ------------------------------------------------------------------
    def raw_snapshot(self, threads: list[int] | None = None, with_locals: bool = False) -> RawSnapshot:
        """Every thread's native frames and Python frames through gdb (threads stopped for
        ~0.3 s, then resumed); ``backtrace.capture`` merges them."""
        return self._request(p.TakeSnapshot(tuple(threads) if threads else None, with_locals))

    def snapshot(self, threads: list[int] | None = None, with_locals: bool = False) -> Snapshot:
        """Every thread's merged Rust + Python stack through gdb (the one stack pipeline)."""
        from pyo3_debug_magic.stacks import backtrace

        return backtrace.capture("gdb", self, threads, with_locals, pid=self.target_pid)

    # ----- a paused thread ------------------------------------------------------------
    def frames(self, thread: int):
        return self._request(p.Frames(thread))

    def locals(self, thread: int, frame: int = 0):
        return self._request(p.Locals(thread, frame))

    def evaluate(self, thread: int, frame: int, expression: str, raw: bool = False) -> str:
        userinput.check_expression(expression)
        return self._request(p.Evaluate(thread, frame, expression, raw))

    def resume(self, thread: int, how: str = "continue", frame: int = 0) -> None:
        """next, step, finish or continue; the agent gives the thread its GIL back first."""
        self._request(p.Resume(thread, how, frame))

    def quit(self):
        """Delete every breakpoint and resume every paused thread (``model.QuitResult``)."""
        return self._request(p.Quit())

    def status(self) -> AttachStatus:
        if not self.attached:
            raise NotAttachedError()
        return AttachStatus.from_agent(self._session.request(p.Status()))

    def thread_numbers(self) -> dict[int, int] | None:
        """{OS thread id: gdb's thread number}, for views of other engines to number as gdb
        does; None when gdb cannot answer (stopped, gone): the other engine shows its own."""
        try:
            status = self._request(p.Status())
        except DebugMagicError:
            return None
        return {t.lwp: int(t.id) for t in status.threads if t.lwp and str(t.id).isdigit()}

    def detach(self, stop_helper: bool = False) -> str:
        """Detach gdb. The agent and its gdb stay, idle, with the symbols gdb read, so the next
        attach is quick ("kept"); ``stop_helper`` ends them too (returns how the agent ended)."""
        if not self.attached:
            raise NotAttachedError()
        if stop_helper:
            return self.close()
        reported = []

        def slow(seconds: float) -> None:  # a loaded machine: said, never a failure
            if seconds >= max(self.attach_progress_after, 1.0) and self.attach_progress is not None:
                reported.append(seconds)
                self.attach_progress(seconds, "", False, "detach")

        started = time.monotonic()
        try:
            self._session.request(p.Detach(), timeout=SLOW_REQUEST_TIMEOUT, while_waiting=slow)
        except Exception:
            self.close()
            raise
        if reported and self.attach_progress is not None:
            self.attach_progress(time.monotonic() - started, "", True, "detach")
        self._gdb_attached = False
        return "kept"

    @contextlib.contextmanager
    def stepped_aside(self):
        """gdb lets go of the process for the block (py-spy needs ptrace) and attaches again
        after it, breakpoints intact. Yields the seconds stepping aside took, None when gdb was
        not attached; raises UsageProblem when a paused thread keeps gdb from letting go."""
        if not self.attached:
            yield None
            return
        started = time.monotonic()
        self._session.request(p.Detach(keep_breakpoints=True), timeout=SLOW_REQUEST_TIMEOUT)
        self._gdb_attached = False
        self._aside_seconds = (time.monotonic() - started, None)
        try:
            yield self._aside_seconds[0]
        finally:
            started = time.monotonic()
            self.attach()
            self._aside_seconds = (self._aside_seconds[0], time.monotonic() - started)

    @property
    def helper_pid(self) -> int | None:
        session = self._session
        return session.process.pid if session is not None and session.alive else None

    def close(self, wait: bool = True) -> str:
        """Detach and stop the agent if it runs; safe to call twice. ``wait=False``: ask the
        agent to detach and stop, without waiting for it (a process about to exit)."""
        session, self._session = self._session, None
        self._gdb_attached = False
        if session is None:
            return "not running"
        return session.close(wait=wait)


_process_debugger: NativeDebugger | None = None
_lock = threading.Lock()


def get_debugger() -> NativeDebugger:
    """The debugger of this process (created on first use, closed at interpreter exit)."""
    global _process_debugger
    with _lock:
        if _process_debugger is None:
            _process_debugger = NativeDebugger()
            atexit.register(_process_debugger.close)
        return _process_debugger


def _imported(name: str) -> bool:
    """A module of that name (a crate's, as Rust paths begin) is imported in this process."""
    return any(module.rsplit(".", 1)[-1] == name for module in list(sys.modules))


def _in_rusts_names(request: BreakpointRequest, parsed, importable) -> tuple[BreakpointRequest, str]:
    """The request in the names Rust knows (and what was renamed, said): a crate named by its
    Python package (``my_pkg::double`` for ``[lib] name = "_core"``) becomes the crate's name; a
    crate name close to an extension module's but no module's is refused as the typo it is, which
    would otherwise wait, pending, for a module that never comes. ``importable()``: the
    extension modules on ``sys.path``."""
    first, _, rest = (parsed.function or "").partition("::")
    typed = request.crate or (first if rest and first.isidentifier() else "")  # not `<T as Trait>`
    meant = preimport.misspelt_crate(typed, importable()) if typed and not request.force else None
    if meant and request.crate:
        raise UsageProblem(f"--crate {request.crate}: no extension module Python can import is called that",
                           f"did you mean `--crate {meant}`? (--force sets it anyway)")
    if meant:
        raise UsageProblem(f"{parsed.function}: no extension module Python can import is called {typed}",
                           f"did you mean `{meant}::{rest}`? (--force sets it anyway)")
    behind = preimport.crate_behind_package(first, importable()) if rest and not _imported(first) else None
    if not behind:
        return request, ""
    location = request.location.replace(parsed.function, f"{behind[0]}::{rest}", 1)
    return replace(request, location=location), (
        f"{first}::{rest} is {behind[0]}::{rest} to Rust: {os.path.basename(behind[1])} is crate "
        f"`{behind[0]}` (its [lib] name) in package {first}")

