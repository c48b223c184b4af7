"""Events the agent pushes; each names the agent session it came from."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyo3_debug_magic.model.stacks import GdbFrame, PythonStacks, ThreadRow, Variable


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = ""
    session: int = 0


@dataclass(frozen=True)
class Paused(Event):
    kind: ClassVar[str] = "paused"
    thread: int = 0
    reason: str = ""
    breakpoint: int | None = None
    handed_off: bool = False
    pause_id: int = 0
    frames: tuple[GdbFrame, ...] = ()
    locals: tuple[Variable, ...] = ()
    ident: int | None = None
    lwp: int | None = None
    returned: str | None = None     # the value a `finish` returned


@dataclass(frozen=True)
class Interrupted(Event):
    kind: ClassVar[str] = "interrupted"
    ended: tuple[int, ...] = ()
    problems: tuple[str, ...] = ()
    resumed_at: float = 0.0  # time.time() as the pauses ended (the kernel may see the event only later)


@dataclass(frozen=True)
class Notice(Event):
    """Something the user should read now (a refused pause, gdb stopped, a failed diagnosis)."""

    kind: ClassVar[str] = "notice"
    message: str = ""


@dataclass(frozen=True)
class AttachProgress(Event):
    """What an attach is doing now (the kernel shows it when the attach takes over a second)."""

    kind: ClassVar[str] = "attach-progress"
    doing: str = ""


@dataclass(frozen=True)
class GdbDied(Event):
    kind: ClassVar[str] = "gdb-died"
    message: str = ""
    ended: tuple[int, ...] = ()


@dataclass(frozen=True)
class AgentExited(Event):
    kind: ClassVar[str] = "agent-exited"
    message: str = ""


@dataclass(frozen=True)
class CrashSeen(Event):
    kind: ClassVar[str] = "crash"
    signal: str = ""
    thread: int = 0
    summary: str = ""
    path: str | None = None


@dataclass(frozen=True)
class HangSeen(Event):
    kind: ClassVar[str] = "hang"
    reason: str = ""
    row: ThreadRow | None = None
    python: PythonStacks = PythonStacks()
    holds_gil: bool | None = None
    note: str | None = None
    can_pause: bool = False    # stopped at a safe point with its GIL handed over: it can become a pause


EVENT_TYPES: dict[str, type[Event]] = {cls.kind: cls for cls in (
    Paused, Interrupted, Notice, AttachProgress, GdbDied, AgentExited, CrashSeen, HangSeen)}
