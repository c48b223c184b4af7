"""The debugger's state as the user sees it: status, settings, breakpoints, log hits, a stop."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pyo3_debug_magic.model.stacks import MergedStack, NativeFrame, SourceLines, Variable

BreakpointKind = Literal["pause", "log"]


@dataclass(frozen=True)
class AgentSettings:
    """What the agent applies of the user's settings (``config.DebuggerSettings``)."""

    gdb_timeout: float = 10.0
    hang_after: float = 2.0
    safe_point_bound: float = 1.0
    debug_file_directory: str = ""
    rustc: str = ""
    py_spy: str = ""


@dataclass(frozen=True)
class ThreadInfo:
    id: str
    name: str | None = None
    state: str | None = None
    lwp: int | None = None  # the OS thread id


@dataclass(frozen=True)
class AgentStatus:
    """What the agent reports about its gdb and the kernel it debugs."""

    attached: bool
    target_pid: int
    gdb_pid: int | None = None
    gdb_version: str = ""
    attach_seconds: float | None = None
    threads: tuple[ThreadInfo, ...] = ()
    printers: str = "loaded"         # Rust pretty-printers: "loaded", or why values print raw
    paused_threads: tuple[int, ...] = ()
    calls_unsafe: str | None = None
    settings: AgentSettings = AgentSettings()
    crash_capture: str | None = None  # why a crash could not be recorded (no room), or None


@dataclass(frozen=True)
class AttachStatus:
    attached: bool
    target_pid: int
    gdb_version: str
    attach_seconds: float | None
    thread_count: int
    printers: str = "loaded"
    crash_capture: str | None = None
    notes: tuple[str, ...] = ()

    @classmethod
    def from_agent(cls, status: AgentStatus) -> "AttachStatus":
        return cls(status.attached, status.target_pid, status.gdb_version, status.attach_seconds,
                   len(status.threads), status.printers or "loaded", status.crash_capture)


@dataclass(frozen=True)
class SourceRecord:
    objfile: str | None
    fullname: str | None
    filename: str | None = None


@dataclass(frozen=True)
class FunctionMatch:
    """A function in the user's crates that what the user typed names."""

    name: str            # gdb's name (my_pkg::{impl#0}::scale, my_pkg::largest<i64>)
    spelled: str         # as the user reads it (<my_pkg::Meter as my_pkg::Scale>::scale)
    fullname: str        # its source file
    line: int            # the line of its `fn` (or closure)


@dataclass(frozen=True)
class BreakpointLocation:
    address: str | None = None
    fullname: str | None = None
    line: int | None = None
    func: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class BreakpointCreated:
    number: int
    pending: bool
    locations: tuple[BreakpointLocation, ...] = ()
    pending_note: str = ""    # why it waits (the module is not imported yet, ...)
    moved_note: str = ""      # the line moved off a signature, an attribute or a comment
    line_note: str = ""       # gdb put it on a later line with code


@dataclass(frozen=True)
class BreakpointInfo:
    """One breakpoint as the helper lists it and the views show it."""

    number: int
    kind: BreakpointKind
    location: str             # as the user typed it
    enabled: bool
    hits: int
    condition: str | None
    pending: bool
    locations: tuple[BreakpointLocation, ...] = ()  # the active ones, in the user's crates
    note: str = ""            # what the set-up said (a moved line, why it waits)

    @property
    def resolved(self) -> tuple[str, ...]:
        """``file:line`` of the active locations, each place once (a line of a generic or of
        PyO3's generated code has a location per instance)."""
        return tuple(dict.fromkeys(f"{loc.fullname or loc.func or '?'}:{loc.line or '?'}" for loc in self.locations))


@dataclass(frozen=True)
class HitPlace:
    func: str | None = None
    file: str | None = None
    fullname: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class LogHit:
    """A log-breakpoint hit, an unattended pause or a refused pause, as the helper recorded it."""

    number: int | None
    hit: int = 0
    thread: int | None = None
    location: str = ""
    where: HitPlace | None = None
    values: tuple[tuple[str, str], ...] = ()
    backtrace: tuple[HitPlace, ...] = ()
    unattended: bool = False
    error: str | None = None
    not_paused_because: str = ""   # an unattended hit: "no stdin", or the Interrupt that ended the cell's pauses

    @property
    def function(self) -> str | None:
        return self.where.func if self.where else None

    @property
    def file(self) -> str | None:
        return self.where.file if self.where else None

    @property
    def line(self) -> int | None:
        return self.where.line if self.where else None

    @property
    def backtrace_lines(self) -> tuple[str, ...]:
        """``file:line function`` of each frame of a ``--backtrace`` log breakpoint."""
        return tuple(f"{f.file or f.func or '?'}:{f.line or '?'} {f.func}" for f in self.backtrace)


@dataclass(frozen=True)
class QuitResult:
    deleted: tuple[int, ...]
    resumed: tuple[int, ...]


@dataclass(frozen=True)
class Stop:
    """One stop of one thread as the pause console shows it."""

    thread: int
    reason: str
    breakpoint: int | None
    handed_off: bool
    native: tuple[NativeFrame, ...]   # every native frame: `frame N` numbers these
    stack: MergedStack                # what the backtrace shows
    locals: tuple[Variable, ...]
    selected: int = 0
    locals_note: str | None = None    # why there are no locals, when that says something
    returned: str | None = None       # the value a `finish` returned
    signal: str | None = None         # a crash: the signal it stopped with (the thread cannot run on)
    source_lines: SourceLines | None = None  # the selected frame's source when the stop was built
    gil_explained: bool = False       # an earlier stop said what the hand-off does: a short marker now

    @property
    def frame(self) -> NativeFrame | None:
        return self.native[self.selected] if 0 <= self.selected < len(self.native) else None


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
    source_dir: str | None = None
