"""The GIL hand-off's rules, as pure functions: which calls, and where a call is safe.

Every call into libpython carries its type, so gdb can make it on a Python without libpython
debug info (Debian's, conda's, Docker's): gdb refuses an untyped call to a function it has no
type for ("'PyGILState_Check' has unknown return type").

A call is made only at a safe point: a stop on a line of Rust code (a breakpoint, the end of a
step) or code of the user's crate. A thread interrupted at an arbitrary instruction may be
inside libc, the allocator or the interpreter, where a call can corrupt or deadlock it.
"""
from __future__ import annotations

from pyo3_debug_magic.breakpoints.generated import is_users_code
from pyo3_debug_magic.breakpoints.locations import is_user_source

STEP_REASONS = ("end-stepping-range", "function-finished")

CHECK_GIL = "((int (*)(void))PyGILState_Check)()"
SAVE_THREAD = "(long)((void *(*)(void))PyEval_SaveThread)()"
# what SaveThread will return, read first: if another thread stops during SaveThread, gdb
# abandons the call and its return value is lost (never aborts, unlike PyThreadState_Get)
THIS_THREAD_STATE = "(long)((void *(*)(void))PyGILState_GetThisThreadState)()"
SET_INTERRUPT = "((int (*)(int))PyErr_SetInterruptEx)(2)"  # flags SIGINT as its handler would


def restore_thread(tstate: int) -> str:
    """The call that gives a thread back the GIL it handed over (``tstate`` from SAVE_THREAD)."""
    return f"((void (*)(void *))PyEval_RestoreThread)((void *){int(tstate):#x})"


def parse_tstate(value: str) -> int:
    """SAVE_THREAD's result; a thread state is never 0 (ValueError when it is not one)."""
    tstate = int(value.split()[0], 0)
    if tstate <= 0:
        raise ValueError(f"PyEval_SaveThread returned {value!r}")
    return tstate


def is_rust_line(frame) -> bool:
    """A stop on a line of Rust source (a breakpoint, a step's end): not libc, not C."""
    name = (frame.fullname or frame.file or "") if frame is not None else ""
    return name.endswith(".rs") and bool(frame.line)


def is_safe_point(frame) -> bool:
    """May we call into the process from a thread whose innermost frame (``model.GdbFrame``,
    None when gdb has none) is ``frame``?"""
    return frame is not None and (is_rust_line(frame) or is_user_source(frame.fullname))


def way_back_to_users_code(frames) -> tuple[str, int | None]:
    """Where a step that ended at a safe point (``frames`` innermost first) goes on, as
    debuggers' "just my code" does: ("pause", None) in the user's code; ("finish", level) out
    of library code (std, pyo3, a dependency) to the user's Rust frame that called it;
    ("leave", None) when the user's Rust code has returned to PyO3's wrapper, which hands the
    value to Python: native stepping ends there."""
    if frames and is_users_code(frames[0].fullname, frames[0].func):
        return "pause", None
    for frame in frames[1:]:
        if is_users_code(frame.fullname, frame.func):
            return "finish", frame.level - 1
        if not is_rust_line(frame) or is_user_source(frame.fullname):  # Python's C code, or PyO3's wrapper
            break
    return "leave", None

