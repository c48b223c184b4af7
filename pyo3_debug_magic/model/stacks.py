"""Threads and frames: as gdb and the Python-stack reader report them, and merged."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FrameKind = Literal["native", "python"]
Engine = Literal["gdb", "gdb core", "py-spy"]


# ----- what gdb and the Python-stack reader report --------------------------------------------


@dataclass(frozen=True)
class GdbFrame:
    """One native frame as gdb reports it (``-stack-list-frames``)."""

    level: int
    func: str
    file: str | None = None
    fullname: str | None = None
    line: int | None = None
    library: str | None = None  # the shared object, when gdb has no source for the frame
    addr: str | None = None


@dataclass(frozen=True)
class Variable:
    """A local or argument, its value as gdb prints it (through the Rust pretty-printers)."""

    name: str
    value: str
    arg: bool = False


@dataclass(frozen=True)
class PythonFrame:
    file: str
    line: int
    function: str
    is_cell: bool = False
    entered: bool | None = None    # called from C (one interpreter eval frame ends here); None: not known


@dataclass(frozen=True)
class PythonThread:
    """One interpreter thread's Python frames (innermost first), read from memory or by py-spy."""

    thread_id: int | None          # threading.get_ident(); None from py-spy
    native_thread_id: int | None   # the OS thread id (LWP)
    holds_gil: bool | None
    frames: tuple[PythonFrame, ...] = ()


@dataclass(frozen=True)
class PythonStacks:
    """Every interpreter thread's Python frames, or why they could not be read."""

    threads: tuple[PythonThread, ...] = ()
    gil_known: bool = False
    source: str = "memory"         # "memory" (libpython's debug info) or "py-spy"
    error: str | None = None


@dataclass(frozen=True)
class ThreadRow:
    """One thread as gdb sees it: its number, identity, frames and, if asked, locals."""

    thread: int
    name: str | None = None
    ident: int | None = None       # pthread_self(): Python's threading.get_ident()
    lwp: int | None = None
    paused: bool = False
    frames: tuple[GdbFrame, ...] = ()
    locals: tuple[Variable, ...] | None = None
    locals_of: str | None = None   # which frame the locals belong to ("#2 rustdemo::busy")


@dataclass(frozen=True)
class RawSnapshot:
    """gdb's threads and the interpreter's threads, before they are merged."""

    threads: tuple[ThreadRow, ...]
    python: PythonStacks


# ----- merged stacks (the kernel side's view, whatever engine produced them) -----------------


@dataclass(frozen=True)
class NativeFrame:
    level: int
    function: str
    file: str | None
    fullname: str | None
    line: int | None
    library: str | None = None
    user: bool = False             # a frame of the user's own crate
    runtime: bool = False          # a frame of the interpreter itself (libpython)

    @property
    def where(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.library or "??"


@dataclass(frozen=True)
class SourceLines:
    """Lines of one source file around a frame's line, read when the view was built: the
    renderers show them and never read files themselves."""

    fullname: str
    first: int                     # the line number of lines[0]
    lines: tuple[str, ...]


@dataclass(frozen=True)
class MergedStack:
    """Native frames down to the interpreter, and the Python frames, innermost first."""

    native: tuple[NativeFrame, ...]
    python: tuple[PythonFrame, ...] = ()
    hidden_runtime_frames: int = 0
    # for each Python frame, how many of ``native`` run inside it (it goes before native[n]);
    # () when not known: the Python frames all go after the native ones
    python_at: tuple[int, ...] = ()

    def in_order(self) -> list:
        """Native and Python frames innermost first, each Python frame where it runs."""
        at = self.python_at or (len(self.native),) * len(self.python)
        frames, index = [], 0
        for position, frame in enumerate(self.native):
            while index < len(self.python) and at[index] <= position:
                frames.append(self.python[index])
                index += 1
            frames.append(frame)
        return frames + list(self.python[index:])


@dataclass(frozen=True)
class StackEntry:
    """One line of a merged stack: a native (Rust/C) frame or a Python frame."""

    kind: FrameKind
    function: str
    file: str | None
    line: int | None
    is_cell: bool = False
    user: bool = False        # a native frame of the user's own crate: never folded away
    level: int | None = None  # a native frame's number in gdb's backtrace (`frame N` at a prompt)


@dataclass(frozen=True)
class ThreadStack:
    """One thread of a snapshot, merged innermost first."""

    label: str                # gdb's thread number, or the OS thread id for py-spy
    name: str | None
    os_thread_id: int | None
    holds_gil: bool | None
    idle: bool
    entries: tuple[StackEntry, ...]
    paused: bool = False
    locals: tuple[Variable, ...] | None = None
    locals_of: str | None = None
    current: bool = False     # the thread running the snapshot's own cell, cut at the cell's line


@dataclass(frozen=True)
class Snapshot:
    """Every thread's merged stack from one engine, and what could not be read."""

    engine: Engine
    threads: tuple[ThreadStack, ...]
    problem: str | None = None       # e.g. Python frames unreadable
    python_source: str = ""          # where gdb's Python frames came from: "memory" or "py-spy"
    hidden: tuple[ThreadStack, ...] = ()  # the kernel's own machinery, left out of the view
    notes: tuple[str, ...] = ()
