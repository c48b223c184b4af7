"""What a crash was, in one line and a few facts: the summary a report opens with, whether it
was a stack overflow. Pure functions over ``model.CrashRecord``: the helper's capture and
``%native_core`` both use them."""
from __future__ import annotations

from pyo3_debug_magic import model
from pyo3_debug_magic.breakpoints.generated import is_users_code
from pyo3_debug_magic.stacks.merging import (entries_of, merge, native_frames, python_frames_from_memory,
                                             python_thread_for)


def _as_int(text: str | None) -> int | None:
    return int(text) if text and text.lstrip("-").isdigit() else None


def looks_like_stack_overflow(signal_name: str, fault: str | None, stack_pointer: str | None,
                              frames) -> bool:
    """A SIGSEGV just below the stack pointer (the guard page), or a stack of one recursing function."""
    if signal_name != "SIGSEGV":
        return False
    fault_address, sp = _as_int(fault), _as_int(stack_pointer)
    near_stack = fault_address is not None and sp is not None and 0 <= sp - fault_address < (1 << 20)
    top = [f.func for f in frames[:32]]
    return near_stack or (len(top) >= 32 and len(set(top[4:])) <= 2)


def crash_summary(record: model.CrashRecord) -> str:
    """`SIGSEGV in rustdemo::segfault at src/lib.rs:57, called from cell line 3`."""
    what = "stack overflow (SIGSEGV)" if record.stack_overflow else record.signal or "crash"
    thread = next((t for t in record.threads if t.thread == record.thread), None)
    where = ""
    if thread:
        frame = next((f for f in thread.frames if is_users_code(f.fullname, f.func)), None)
        if frame:
            where = f" in {frame.func} at {frame.file}:{frame.line}"
        python = python_thread_for(thread, record.python)
        callers = _python_callers(thread, python_frames_from_memory(python.frames) if python else ())
        cell = next((f for f in callers if f.is_cell), None)
        if cell:
            where += f", called from cell line {cell.line}"
        elif callers and record.running:  # a test: the line of the test that called into Rust
            where += f", called from {_test_path(callers[0].file or '?', record.running)}:{callers[0].line}"
        elif record.thread != 1:
            where += f" (thread {record.thread})"
    return what + where


def _python_callers(thread: model.ThreadRow, frames: tuple[model.PythonFrame, ...]) -> list:
    """The Python frames outward of the faulting Rust frame, innermost first: a callback that
    Rust called (and that called the Rust that crashed) is not what called into Rust."""
    entries = entries_of(merge(native_frames(thread.frames), frames))  # unplaced: all after the native
    fault = next((i for i, e in enumerate(entries) if e.kind == "native" and e.user), -1)
    return [e for e in entries[fault + 1:] if e.kind == "python"]


def _test_path(file: str, node_id: str) -> str:
    """``file`` as the node id spells it (relative to pytest's rootdir) when it is the test's file."""
    node_path = node_id.partition("::")[0]
    return node_path if node_path and file.endswith("/" + node_path) else file


def hex_or_none(text: str | None) -> str | None:
    value = _as_int(text)
    return hex(value) if value is not None else None
