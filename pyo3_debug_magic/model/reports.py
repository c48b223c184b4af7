"""Crash and hang reports: as captured, and merged for display."""
from __future__ import annotations

from dataclasses import dataclass

from pyo3_debug_magic.model.stacks import NativeFrame, PythonStacks, SourceLines, ThreadRow, ThreadStack, Variable


@dataclass(frozen=True)
class CrashRecord:
    """A crash as captured (the report file's content): gdb's threads and the Python stacks,
    not merged yet. Written by the agent as the kernel dies, or read from a core file."""

    signal: str
    thread: int | None
    summary: str = ""
    pid: int | None = None
    core: str | None = None
    kernel_id: str | None = None
    uid: int | None = None
    time: float = 0.0
    version: int = 2
    fault_address: str | None = None
    stack_pointer: str | None = None
    stack_depth: int | None = None
    stack_overflow: bool = False
    instruction: str = ""
    threads: tuple[ThreadRow, ...] = ()
    python: PythonStacks = PythonStacks()
    faulting_user_frame: int | None = None
    locals: tuple[Variable, ...] = ()
    stderr_tail: str = ""
    capture_error: str | None = None
    announced_in: int | None = None
    running: str = ""               # what the process was running: a test's node id


@dataclass(frozen=True)
class CrashHandling:
    """What the agent does with a crash besides writing the report (a test run asks for these:
    the process that crashed cannot report itself)."""

    running_file: str | None = None  # its text names what the process runs (a test's node id)
    echo: bool = False               # print the report as text on the terminal the agent was given
    prompt: bool = False             # open the (native) prompt there at the faulting frame first
    junit_xml: str | None = None     # write a JUnit XML file that reports the crashed test
    echo_note: str = ""              # printed after the echoed report


@dataclass(frozen=True)
class HelperSetup:
    """How a process's helper starts when a test run or terminal IPython owns it rather than a
    notebook: applied at the helper's next start."""

    crash_identity: str | None = None          # names its crash reports (a test run's id)
    crash_directory: str | None = None         # where they go
    crash_handling: CrashHandling | None = None
    terminal: tuple[int, int] | None = None    # descriptors the helper may print and prompt on
    tee_stderr: bool = True                    # False where pytest's capture owns fd 2
    defer_symbols: bool = False                # crash capture only: gdb reads symbols at the crash


@dataclass(frozen=True)
class CrashReport:
    """How a process crashed, merged for display."""

    signal: str
    thread: int | None
    summary: str
    origin: str                        # "pid 123" or "core file /tmp/core"
    fault_address: str | None = None
    stack_pointer: str | None = None
    stack_depth: int | None = None
    stack_overflow: bool = False
    instruction: str = ""
    threads: tuple[ThreadStack, ...] = ()   # the faulting thread first
    locals: tuple[Variable, ...] = ()
    locals_of: str | None = None
    stderr_tail: str = ""
    capture_error: str | None = None
    path: str | None = None
    source: NativeFrame | None = None       # the faulting frame of the user's crate (its excerpt)
    source_lines: SourceLines | None = None  # that frame's source, read when the report was built
    hidden: tuple[ThreadStack, ...] = ()    # the kernel's own threads, folded as %native_bt folds them


@dataclass(frozen=True)
class HangReport:
    reason: str
    stack: ThreadStack
    note: str | None = None
    can_pause: bool = False    # the cell can pause it here and get the (native) prompt


def signed_bytes(value: float) -> str:
    """``+1.5 KiB``: a per-call change of a byte counter."""
    size = abs(value)
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{value / scale:+.1f} {unit}"
    return f"{value:+.0f} B"
