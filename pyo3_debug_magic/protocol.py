"""The kernel <-> agent protocol: typed, versioned messages, one JSON object per line.

Requests ``{"id", "op", "args"}`` carry one request class below (its ``op`` and its ``reply``
type); replies are ``{"id", "ok": true, "result"}`` or ``{"id", "ok": false, "error": {"kind",
"message", "fix"}}``; events ``{"event": kind, ...}`` are ``model.Event`` classes. The first
request of every session is ``Hello``: a kernel and an agent of different versions (a
``pip install -U`` under a running kernel) refuse to talk, with the fix.
"""
from __future__ import annotations

import dataclasses
import json
import socket
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Literal

from pyo3_debug_magic import model

PROTOCOL_VERSION = 5


# ----- encoding -------------------------------------------------------------------------------
def to_wire(value: Any) -> Any:
    """Model objects (dataclasses, tuples) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_wire(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_wire(item) for key, item in value.items()}
    return value


def from_wire(kind: Any, value: Any) -> Any:
    """``value`` (plain JSON) as an instance of ``kind``: a dataclass, ``tuple[X, ...]``,
    ``X | None`` or a plain type. Unknown keys are ignored; missing ones take their default."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [option for option in typing.get_args(kind) if option is not type(None)]
        return from_wire(options[0], value)
    if origin is tuple:
        arguments = typing.get_args(kind)
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(from_wire(arguments[0], item) for item in value or ())
        return tuple(from_wire(argument, item) for argument, item in zip(arguments, value))
    if origin in (list, dict) or kind in (Any, dict, list):
        return value
    if dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            return value
        hints = _hints(kind)
        known = {f.name for f in dataclasses.fields(kind) if f.init}
        return kind(**{name: from_wire(hints[name], item) for name, item in (value or {}).items()
                       if name in known})
    if origin is Literal:  # a tag: only the values the model names
        if value not in typing.get_args(kind):
            raise ValueError(f"{value!r} is not one of {typing.get_args(kind)}")
        return value
    if kind is float and isinstance(value, int):
        return float(value)
    return value


_HINTS: dict[type, dict] = {}


def _hints(kind: type) -> dict:
    if kind not in _HINTS:
        _HINTS[kind] = typing.get_type_hints(kind)
    return _HINTS[kind]


def encode(message: dict) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode()


def event_message(event: model.Event) -> dict:
    return {"event": event.kind, **to_wire(event)}


def event_from_message(message: dict) -> model.Event:
    """An event as its model class; one of an unknown kind becomes a Notice."""
    kind = model.EVENT_TYPES.get(message.get("event", ""))
    if kind is None:
        return model.Notice(message=f"unknown event from the debugger helper: {message.get('event')!r}")
    return from_wire(kind, {key: item for key, item in message.items() if key != "event"})


class LineReader:
    """Splits a socket's byte stream into decoded JSON messages; a line that is not JSON is
    dropped (``bad_lines`` counts them), never raised into the reading thread."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._buffer = b""
        self.closed = False
        self.bad_lines = 0

    def read_available(self) -> Iterator[dict]:
        """Read once from the socket and yield every complete message; sets ``closed`` at EOF."""
        try:
            chunk = self._sock.recv(65536)
        except (ConnectionResetError, OSError):
            chunk = b""
        if not chunk:
            self.closed = True
            return
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(message, dict):
                yield message


# ----- requests: one class per operation --------------------------------------------------------
@dataclass(frozen=True)
class Request:
    op: ClassVar[str] = ""
    reply: ClassVar[Any] = dict


@dataclass(frozen=True)
class Hello(Request):
    op: ClassVar[str] = "hello"
    reply: ClassVar[Any] = dict
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Configure(Request):
    op: ClassVar[str] = "configure"
    reply: ClassVar[Any] = model.AgentSettings
    settings: model.AgentSettings = model.AgentSettings()


@dataclass(frozen=True)
class Attach(Request):
    op: ClassVar[str] = "attach"
    reply: ClassVar[Any] = model.AgentStatus
    kernel_id: str | None = None
    report_dir: str | None = None
    crash: model.CrashHandling | None = None
    defer_symbols: bool = False  # read no library's symbols until something needs them (crash capture only)
    python_layout: str = ""      # the kernel's own stack layout and _PyRuntime address (JSON), for gdb's
                                 # reader when libpython has no debug info ("" when not found)


@dataclass(frozen=True)
class Status(Request):
    op: ClassVar[str] = "status"
    reply: ClassVar[Any] = model.AgentStatus


@dataclass(frozen=True)
class Detach(Request):
    op: ClassVar[str] = "detach"
    reply: ClassVar[Any] = model.AgentStatus
    keep_breakpoints: bool = False   # step aside (for py-spy): gdb keeps them for the next attach


@dataclass(frozen=True)
class Shutdown(Request):
    op: ClassVar[str] = "shutdown"


@dataclass(frozen=True)
class SetBreakpoint(Request):
    """A ``%native_break``: the helper resolves the location against the loaded modules' debug
    info (``breakpoints.resolver``) and inserts it, in one request."""

    op: ClassVar[str] = "set_breakpoint"
    reply: ClassVar[Any] = model.BreakpointCreated
    location: str = ""                    # what the user typed: src/lib.rs:42, crate::function
    kind: model.BreakpointKind = "pause"
    crate: str | None = None              # bind only to this crate's files
    force: bool = False                   # a stale build or a rebuilt module: insert anyway
    condition: str | None = None
    ignore: int = 0
    temporary: bool = False
    expressions: tuple[str, ...] = ()
    backtrace: bool = False
    source_dir: str | None = None         # the user's checkout of a crate built elsewhere
    # a FILE:LINE in no loaded module: inserted only once the kernel has checked it against what
    # it can import (else the reply has number 0, and nothing was inserted)
    insert_pending: bool = False


@dataclass(frozen=True)
class BreakInsert(Request):
    op: ClassVar[str] = "break_insert"
    reply: ClassVar[Any] = model.BreakpointCreated
    kind: model.BreakpointKind = "pause"
    source: str | None = None
    line: int | None = None
    function: str | None = None
    condition: str | None = None
    ignore: int = 0
    temporary: bool = False
    expressions: tuple[str, ...] = ()
    backtrace: bool = False
    user_only: bool = False
    crate: str | None = None              # bind only to this crate's files
    location: str = ""
    source_dir: str | None = None         # the user's checkout of a crate built elsewhere


@dataclass(frozen=True)
class BreakList(Request):
    op: ClassVar[str] = "break_list"
    reply: ClassVar[Any] = tuple[model.BreakpointInfo, ...]


@dataclass(frozen=True)
class BreakDelete(Request):
    op: ClassVar[str] = "break_delete"
    reply: ClassVar[Any] = tuple[int, ...]
    numbers: tuple[int, ...] | None = None   # None: every breakpoint


@dataclass(frozen=True)
class BreakEnable(Request):
    op: ClassVar[str] = "break_enable"
    reply: ClassVar[Any] = tuple[int, ...]
    numbers: tuple[int, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class SuspendBreakpoints(Request):
    """Every enabled breakpoint off while code runs on the user's behalf (``py`` at a pause),
    so that code never stops at one; the numbers turned off (``BreakEnable`` turns them on)."""

    op: ClassVar[str] = "suspend_breakpoints"
    reply: ClassVar[Any] = tuple[int, ...]


@dataclass(frozen=True)
class BreakCondition(Request):
    op: ClassVar[str] = "break_condition"
    reply: ClassVar[Any] = dict
    number: int = 0
    condition: str | None = None  # None or "": no condition


@dataclass(frozen=True)
class CellStarts(Request):
    op: ClassVar[str] = "cell"
    pausing_allowed: bool = True
    not_pausing_because: str = "no stdin"


@dataclass(frozen=True)
class CellDone(Request):
    op: ClassVar[str] = "cell_done"


@dataclass(frozen=True)
class Watch(Request):
    op: ClassVar[str] = "watch"
    seconds: float | None = None


@dataclass(frozen=True)
class HangShown(Request):
    op: ClassVar[str] = "hang_done"


@dataclass(frozen=True)
class PauseHung(Request):
    """The hung thread, held at its safe point while the hang is shown, becomes a pause."""
    op: ClassVar[str] = "pause_hung"


@dataclass(frozen=True)
class TakeLogs(Request):
    op: ClassVar[str] = "logs"
    reply: ClassVar[Any] = tuple[model.LogHit, ...]


@dataclass(frozen=True)
class TakeSnapshot(Request):
    op: ClassVar[str] = "snapshot"
    reply: ClassVar[Any] = model.RawSnapshot
    threads: tuple[int, ...] | None = None
    with_locals: bool = False


@dataclass(frozen=True)
class Frames(Request):
    op: ClassVar[str] = "frames"
    reply: ClassVar[Any] = tuple[model.GdbFrame, ...]
    thread: int = 0


@dataclass(frozen=True)
class Locals(Request):
    op: ClassVar[str] = "locals"
    reply: ClassVar[Any] = tuple[model.Variable, ...]
    thread: int = 0
    frame: int = 0


@dataclass(frozen=True)
class Evaluate(Request):
    op: ClassVar[str] = "evaluate"
    reply: ClassVar[Any] = str
    thread: int = 0
    frame: int = 0
    expression: str = ""
    raw: bool = False                     # gdb's print/r: no pretty-printers


@dataclass(frozen=True)
class Resume(Request):
    op: ClassVar[str] = "resume"
    thread: int = 0
    how: Literal["continue", "next", "step", "finish"] = "continue"
    frame: int = 0


@dataclass(frozen=True)
class Quit(Request):
    op: ClassVar[str] = "quit"
    reply: ClassVar[Any] = model.QuitResult


REQUEST_TYPES: dict[str, type[Request]] = {cls.op: cls for cls in (
    Hello, Configure, Attach, Status, Detach, Shutdown, SetBreakpoint, BreakInsert, BreakList,
    BreakDelete, BreakEnable, SuspendBreakpoints, BreakCondition, CellStarts, CellDone, Watch, HangShown, PauseHung, TakeLogs, TakeSnapshot,
    Frames, Locals, Evaluate, Resume, Quit)}


def request_message(request_id: int, request: Request) -> dict:
    return {"id": request_id, "op": request.op, "args": to_wire(request)}


def request_from_message(message: dict) -> Request:
    """The request a message carries; KeyError for an unknown operation."""
    kind = REQUEST_TYPES[str(message.get("op"))]
    args = message.get("args")
    return from_wire(kind, args if isinstance(args, dict) else {})


@dataclass(frozen=True)
class ErrorReply:
    """An error crossing the boundary: ``kind`` names its class (``errors.WIRE_KINDS``)."""

    kind: str = "agent"
    message: str = "unknown agent error"
    fix: str = ""
