"""The kernel's native debugger: one agent shared by every gdb feature, usable without IPython."""
from __future__ import annotations

import atexit
import os
import re
import threading
from dataclasses import dataclass

from pathlib import Path
from typing import Callable

from . import locations, userinput
from .errors import NotAttachedError, UsageProblem
from .session import AgentSession


@dataclass(frozen=True)
class AttachStatus:
    """What the agent reports about its gdb and the kernel it debugs."""

    attached: bool
    target_pid: int
    gdb_version: str
    attach_seconds: float | None
    thread_count: int
    printers: str = "loaded"  # Rust pretty-printers: "loaded", or why Rust values print raw

    @classmethod
    def from_agent(cls, result: dict) -> "AttachStatus":
        return cls(attached=result["attached"], target_pid=result["target_pid"],
                   gdb_version=result["gdb_version"], attach_seconds=result["attach_seconds"],
                   thread_count=len(result["threads"]), printers=result.get("printers") or "loaded")


@dataclass(frozen=True)
class BreakpointRequest:
    """``%native_break`` options, already parsed."""

    location: str
    condition: str | None = None
    ignore: int = 0
    temporary: bool = False
    log: bool = False
    expressions: tuple[str, ...] = ()
    backtrace: bool = False
    crate: str | None = None
    force: bool = False


@dataclass(frozen=True)
class BreakpointInfo:
    number: int
    kind: str               # "pause" or "log"
    location: str
    enabled: bool
    hits: int
    condition: str | None
    pending: bool
    resolved: tuple[str, ...]   # "file:line" of each active location
    note: str = ""


@dataclass(frozen=True)
class LogHit:
    number: int
    hit: int
    location: str
    function: str | None
    file: str | None
    line: int | None
    values: tuple[tuple[str, str], ...]
    backtrace: tuple[str, ...] = ()
    unattended: bool = False
    error: str | None = None


SLOW_REQUEST_TIMEOUT = 60.0  # requests the agent itself bounds at 30-40 s (attach, reading symbols)


def _where(row: dict) -> str:
    return f"{row.get('fullname') or row.get('func') or '?'}:{row.get('line') or '?'}"


class NativeDebugger:
    """Attaches gdb (through the agent) to ``target_pid``, by default this process."""

    def __init__(self, target_pid: int | None = None):
        self.target_pid = target_pid
        self._session: AgentSession | None = None
        self._listeners: list[Callable[[dict], None]] = [self._on_event]
        self._gdb_gone = False

    @property
    def attached(self) -> bool:
        return self._session is not None and self._session.alive and not self._gdb_gone

    def _on_event(self, event: dict) -> None:
        if event.get("event") == "gdb-died":
            self._gdb_gone = True  # the agent lives on; the next attach starts a new gdb

    def add_listener(self, listener: Callable[[dict], None]) -> None:
        """Receive the agent's events (paused, interrupted, error, crash) from a reader thread."""
        self._listeners.append(listener)
        if self._session is not None:
            self._session.add_listener(listener)

    def attach(self) -> AttachStatus:
        """Start the agent if needed and attach in non-stop mode (threads keep running)."""
        if self._session is None or not self._session.alive:
            self._session = AgentSession(self.target_pid)
            for listener in self._listeners:
                self._session.add_listener(listener)
            self._session.start()
        from . import crashes

        self._gdb_gone = False
        identity = {"kernel_id": crashes.kernel_identity() if self.target_pid in (None, os.getpid()) else None,
                    "report_dir": str(crashes.report_dir())}
        try:
            # the agent bounds attaching at 2 x 20 s: the kernel waits longer
            return AttachStatus.from_agent(self._session.request("attach", timeout=SLOW_REQUEST_TIMEOUT,
                                                                 identity=identity))
        except Exception:
            self.close()
            raise

    def ensure_attached(self) -> AttachStatus | None:
        """Attach if not attached yet; the new status then, else None."""
        return None if self.attached else self.attach()

    def _request(self, op: str, timeout: float | None = None, **args):
        if not self.attached:
            raise NotAttachedError()
        if timeout is not None:
            return self._session.request(op, timeout=timeout, **args)
        return self._session.request(op, **args)

    # ----- breakpoints --------------------------------------------------------------
    def sources(self) -> list[locations.SourceFile]:
        return [locations.SourceFile(s["objfile"], s["fullname"]) for s in self._request("sources", timeout=SLOW_REQUEST_TIMEOUT)
                if s.get("fullname")]

    def set_breakpoint(self, request: BreakpointRequest) -> BreakpointInfo:
        """Resolve ``request.location`` to the user's crate and insert it (attaching if needed)."""
        userinput.check_text(request.location, "the location")
        if request.condition is not None:
            userinput.check_expression(request.condition, "the --if condition")
        for expression in request.expressions:
            userinput.check_expression(expression, "a --log expression")
        if request.crate is not None and not re.fullmatch(r"[A-Za-z0-9_\-]{1,200}", request.crate):
            raise UsageProblem(f"not a crate name: {userinput.printable(request.crate)[:80]!r}",
                               "--crate takes the crate's name, e.g. --crate my_crate")
        parsed = locations.parse_location(request.location)
        attached_now = self.ensure_attached()
        resolved = locations.resolve(parsed, self.sources(), crate=request.crate)
        notes = []
        if attached_now and attached_now.printers != "loaded":
            notes.append(attached_now.printers)
        if resolved.objfile and resolved.source and not request.force:
            stale = locations.stale_build(resolved.source, resolved.objfile)
            if stale:
                raise UsageProblem(f"{stale}",
                                   "restart the kernel to load the current build (or pass --force)")
        created = self._request(
            "break_insert", kind="log" if request.log else "pause", source=resolved.source,
            line=parsed.line, function=resolved.function, condition=request.condition,
            ignore=request.ignore, temporary=request.temporary,
            expressions=list(request.expressions), backtrace=request.backtrace,
            user_only=True, location=request.location)
        if created.get("pending"):
            if not resolved.pending:  # the module is loaded, yet gdb found no code there
                self.delete_breakpoints([created["number"]])
                functions = self._request("functions", timeout=SLOW_REQUEST_TIMEOUT, crate=parsed.function.split("::")[0]) if parsed.function else []
                raise locations.unresolved(parsed, resolved, functions)
            notes.insert(0, resolved.note)
        lines = sorted({loc["line"] for loc in created["locations"] if loc.get("line")})
        if parsed.line and lines and parsed.line not in lines:
            notes.append(f"line {parsed.line} has no code; the breakpoint is on line {lines[0]}")
        return BreakpointInfo(created["number"], "log" if request.log else "pause", request.location,
                              True, 0, request.condition, bool(created.get("pending")),
                              tuple(_where(loc) for loc in created["locations"]), "; ".join(notes))

    def breakpoints(self) -> list[BreakpointInfo]:
        if not self.attached:
            return []
        return [BreakpointInfo(r["number"], r["kind"], r["location"], r["enabled"], r["hits"],
                               r["condition"], r["pending"], tuple(_where(l) for l in r["locations"]))
                for r in self._request("break_list")]

    def delete_breakpoints(self, numbers: list[int] | None = None) -> list[int]:
        """Delete the given breakpoints, or all of them."""
        return self._request("break_delete", numbers=numbers)

    def enable_breakpoints(self, numbers: list[int], enabled: bool = True) -> list[int]:
        return self._request("break_enable", numbers=numbers, enabled=enabled)

    def take_log_hits(self) -> list[LogHit]:
        """Log-breakpoint hits recorded since the last call (and unattended pauses)."""
        if not self.attached:
            return []
        hits = []
        for raw in self._request("logs"):
            where = raw.get("where") or {}
            hits.append(LogHit(int(raw.get("number") or 0), int(raw.get("hit") or 0),
                               raw.get("location", ""), where.get("func"), where.get("file"),
                               where.get("line"), tuple(tuple(v) for v in raw.get("values", [])),
                               tuple(_where({"fullname": f.get("file"), "func": f.get("func"),
                                             "line": f.get("line")}) + f" {f.get('func')}"
                                     for f in raw.get("backtrace") or []),
                               bool(raw.get("unattended")), raw.get("error")))
        return hits

    def set_pausing_allowed(self, allowed: bool) -> None:
        """A cell starts: tell the agent whether it can answer a pause (no stdin: log only)."""
        if self.attached:
            self._request("cell", pausing_allowed=allowed)

    def cell_done(self) -> None:
        if self.attached:
            self._request("cell_done")

    def watch(self, seconds: float | None) -> None:
        """Report where the main thread is when a cell runs longer than ``seconds`` (None: off)."""
        self.ensure_attached()
        self._request("watch", seconds=seconds)

    def hang_shown(self) -> None:
        if self.attached:
            self._request("hang_done")

    # ----- snapshots ------------------------------------------------------------------
    def snapshot(self, threads: list[int] | None = None, with_locals: bool = False):
        """Every thread's merged stack through gdb (threads stopped for ~0.3 s, then resumed)."""
        from . import stacks

        import os
        import threading

        result = self._request("snapshot", threads=threads, with_locals=with_locals)
        python = result.get("python") or {}
        if self.target_pid in (None, os.getpid()):
            # gdb only knows OS thread names, which Python 3.11 does not set
            names = {thread.ident: thread.name for thread in threading.enumerate()}
            for row in result["threads"]:
                row["name"] = names.get(row.get("ident"), row.get("name"))
        by_ident = {t["thread_id"]: t for t in python.get("threads", [])}
        problem = python.get("error")
        fallback: dict = {}
        if problem:
            fallback, problem = self._python_frames_from_py_spy(problem)
        snapshot = []
        for row in result["threads"]:
            memory = by_ident.get(row.get("ident"), {})
            frames = stacks.python_frames_from_memory(memory.get("frames", []))
            holds = memory.get("holds_gil") if python.get("gil_known") else None
            if row.get("lwp") in fallback:
                frames, holds = fallback[row["lwp"]]
            snapshot.append(stacks.from_gdb(row, frames, holds))
        return snapshot, problem

    def _python_frames_from_py_spy(self, problem: str):
        """libpython without debug info: Python frames from `py-spy dump --nonblocking`
        (it reads memory without ptrace, which gdb holds). Returns ({lwp: (frames, gil)}, note)."""
        from . import pyspy, stacks
        from .errors import DebugMagicError

        try:
            threads = pyspy.dump(self.target_pid or os.getpid(), nonblocking=True)
        except DebugMagicError as error:
            return {}, f"{problem}; the py-spy fallback failed too: {error}"
        frames = {}
        for thread in threads:
            if thread.os_thread_id is None:
                continue  # cannot be matched to a gdb thread
            frames[thread.os_thread_id] = ([stacks.PythonFrame(e.file or "?", e.line or 0, e.function, e.is_cell)
                                            for e in thread.entries if e.kind == "python"], thread.holds_gil)
        if threads and not frames:
            return {}, f"{problem}; py-spy did not say which OS thread runs which Python thread"
        return frames, None

    # ----- a paused thread ------------------------------------------------------------
    def frames(self, thread: int) -> list[dict]:
        return self._request("frames", thread=thread)

    def locals(self, thread: int, frame: int = 0) -> list[dict]:
        return self._request("locals", thread=thread, frame=frame)

    def evaluate(self, thread: int, frame: int, expression: str) -> str:
        userinput.check_expression(expression)
        return self._request("evaluate", thread=thread, frame=frame, expression=expression)

    def resume(self, thread: int, how: str = "continue", frame: int = 0) -> None:
        """next, step, finish or continue; the agent gives the thread its GIL back first."""
        self._request("resume", thread=thread, how=how, frame=frame)

    def quit(self) -> dict:
        """Delete every breakpoint and resume every paused thread."""
        return self._request("quit")

    def status(self) -> AttachStatus:
        if not self.attached:
            raise NotAttachedError()
        return AttachStatus.from_agent(self._session.request("status"))

    def detach(self) -> str:
        """Detach gdb and stop the agent; returns how the agent ended."""
        if not self.attached:
            raise NotAttachedError()
        return self.close()

    def close(self) -> str:
        """Detach and stop the agent if it runs; safe to call twice."""
        session, self._session = self._session, None
        return session.close() if session is not None else "not running"


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
