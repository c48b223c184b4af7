"""gdb's async MI records as typed events, and what a stop means: pure functions, no gdb.

``parse_record`` turns one record into an event; ``decide`` turns a ``Stopped`` event and the
agent's state into a ``Decision``. Both are tested by tables (``tests/test_agent_events.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pyo3_debug_magic.gdb.rust_values import readable

CRASH_SIGNALS = ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGILL", "SIGFPE")
PAUSE_REASONS = ("breakpoint-hit", "end-stepping-range", "function-finished", "location-reached")


@dataclass(frozen=True)
class Stopped:
    thread: int                 # 0 when gdb named none (an all-stop record)
    reason: str | None
    signal: str | None = None
    breakpoint: int | None = None
    func: str | None = None
    file: str | None = None
    fullname: str | None = None
    line: int | None = None
    return_value: str | None = None  # what a `finish` returned

    @property
    def where(self) -> tuple:
        """(function, fullname, line): where a step started or ended."""
        return (self.func, self.fullname, self.line)


@dataclass(frozen=True)
class BreakpointChanged:
    bkpt: dict                  # gdb's breakpoint tuple (number, locations, ...)


@dataclass(frozen=True)
class LibrariesChanged:
    loaded: bool
    path: str = ""


@dataclass(frozen=True)
class Running:
    thread: str


@dataclass(frozen=True)
class Other:
    message: str | None


def parse_record(record: dict):
    """One async MI record (pygdbmi's dict) as an event."""
    message = record.get("message")
    payload = record.get("payload") or {}
    if message == "stopped":
        frame = payload.get("frame") or {}
        return Stopped(thread=int(payload.get("thread-id") or 0), reason=payload.get("reason"),
                       signal=payload.get("signal-name"),
                       breakpoint=int(payload.get("bkptno") or 0) or None, func=frame.get("func"),
                       file=frame.get("file"), fullname=frame.get("fullname"),
                       line=int(frame.get("line") or 0) or None, return_value=readable(payload["return-value"]) if "return-value" in payload else None)
    if message == "breakpoint-modified":
        return BreakpointChanged(payload.get("bkpt") or {})
    if message in ("library-loaded", "library-unloaded"):
        return LibrariesChanged(message == "library-loaded", payload.get("target-name") or payload.get("id") or "")
    if message == "running":
        return Running(str(payload.get("thread-id", "")))
    return Other(message)


@dataclass(frozen=True)
class StopContext:
    """What of the agent's state a stop's meaning depends on."""

    hang_thread: int | None = None          # the thread a hang diagnosis runs to a safe point
    pausing_allowed: bool = True            # the cell can answer a prompt
    step_started_at: tuple | None = None    # (where, retried, command) of this thread's step
    paused_threads: int = 0
    foreign_location: bool = False          # the hit location is outside the user's crate (for --crate)


Action = Literal["ignore", "hang-safe-point", "interrupt", "crash", "continue", "step-again",
                 "log-unattended", "pause"]


@dataclass(frozen=True)
class Decision:
    """What to do with one stop.

    ``action``: ``ignore``, ``hang-safe-point`` (the hung thread reached a safe point or its
    bound), ``interrupt`` (the kernel's Interrupt: deliver it, end pauses), ``crash`` (capture,
    then deliver), ``continue`` (deliver and run on), ``step-again`` (Rust line tables made a
    step stop on its own line), ``log-unattended`` (no stdin: record the hit, run on), ``pause``.
    """

    action: Action
    signal: str | None = None
    command: str | None = None
    cancels_hang: bool = False              # a user's breakpoint overrides a hang diagnosis
    arms_hang_check: bool = False           # an Interrupt with nothing paused may be a hang


def decide(stop: Stopped, context: StopContext) -> Decision:
    if not stop.thread:
        return Decision("ignore")
    on_hung_thread = context.hang_thread is not None and stop.thread == context.hang_thread
    if on_hung_thread and stop.reason != "breakpoint-hit":
        return Decision("hang-safe-point")
    cancels = on_hung_thread
    if stop.reason == "signal-received":
        if stop.signal == "SIGINT":
            return Decision("interrupt", signal="SIGINT", cancels_hang=cancels,
                            arms_hang_check=context.paused_threads == 0)
        if stop.signal in CRASH_SIGNALS:
            return Decision("crash", signal=stop.signal, cancels_hang=cancels)
        return Decision("continue", signal=stop.signal, cancels_hang=cancels)
    if stop.reason not in PAUSE_REASONS:
        return Decision("continue", cancels_hang=cancels)
    started = context.step_started_at
    if stop.reason == "end-stepping-range" and started and started[0] == stop.where and not started[1]:
        return Decision("step-again", command=started[2], cancels_hang=cancels)
    if stop.reason == "breakpoint-hit" and context.foreign_location:
        return Decision("continue", cancels_hang=cancels)
    if stop.reason == "breakpoint-hit" and not context.pausing_allowed:
        return Decision("log-unattended", cancels_hang=cancels)
    return Decision("pause", cancels_hang=cancels)
