"""The stack engine: gdb's native frames and the interpreter's Python frames of the same
thread merged into the model's ``ThreadStack``; which frames fold, which threads are the
kernel's own machinery. Decisions only: ``render/`` formats the result."""
from __future__ import annotations

import re
import sys
from dataclasses import replace
from types import FrameType

from pyo3_debug_magic.breakpoints.generated import is_users_code
from pyo3_debug_magic.gdb.pystack import EVAL_FUNCTIONS, eval_frame_runs
from pyo3_debug_magic.stacks import pyframes
from pyo3_debug_magic.model import (GdbFrame, MergedStack, NativeFrame, PythonFrame, PythonStacks,
                                    PythonThread, StackEntry, ThreadRow, ThreadStack)

CPYTHON_SOURCE_DIRS = {"Python", "Objects", "Modules", "Include", "Parser", "Programs"}
RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
PYTHON_RUNTIME = re.compile(r"^(_?Py|_PyEval|cfunction_|method_vectorcall|vectorcall|slot_tp|call_function)")


def demangle(name: str) -> str:
    """gdb demangles Rust names already; drop the legacy hash suffix it leaves."""
    return RUST_HASH.sub("", name or "??")


def in_python_runtime(function: str, file: str | None, library: str | None) -> bool:
    """A frame of the interpreter itself (libpython, by library, name or CPython source path)."""
    if library and "libpython" in library:
        return True
    if file:
        parts = [part for part in file.split("/") if part not in (".", "")]
        if parts and parts[0] in CPYTHON_SOURCE_DIRS:
            return True
    return bool(PYTHON_RUNTIME.match(function))


def native_frames(raw: tuple[GdbFrame, ...]) -> tuple[NativeFrame, ...]:
    frames = []
    for frame in raw:
        function = demangle(frame.func or "??")
        frames.append(NativeFrame(frame.level, function, frame.file, frame.fullname, frame.line,
                                  frame.library, user=is_users_code(frame.fullname, function),
                                  runtime=in_python_runtime(function, frame.file, frame.library)))
    return tuple(frames)


CELL_FILE = re.compile(r"(^<ipython-input-\d+-|/ipykernel_\d+/\d+\.py$)")


def is_cell_file(filename: str) -> bool:
    """IPython names cells <ipython-input-N-...>; ipykernel 6+ writes them to /tmp/ipykernel_PID/."""
    return bool(CELL_FILE.search(filename))


def python_frames(frame: FrameType | None, limit: int = 50) -> tuple[PythonFrame, ...]:
    """Innermost first; frames of IPython's and ipykernel's own machinery are left out."""
    frames = []
    while frame is not None and len(frames) < limit:
        filename = frame.f_code.co_filename
        frames.append(PythonFrame(filename, frame.f_lineno, frame.f_code.co_name, is_cell_file(filename)))
        frame = frame.f_back
    return _through_outermost_cell(frames)


IPYTHON_MACHINERY = re.compile(r"/(IPython|ipykernel)/")


def _through_outermost_cell(frames) -> tuple[PythonFrame, ...]:
    """Innermost first, cut after the outermost cell frame when IPython ran that cell (its own
    frames below are noise); a thread whose target is a function of a cell keeps its own
    ``Thread.run`` and ``_bootstrap`` frames."""
    cells = [i for i, f in enumerate(frames) if f.is_cell]
    if not cells or not any(IPYTHON_MACHINERY.search(f.file or "") for f in frames[cells[-1] + 1:]):
        return tuple(frames)
    return tuple(frames[:cells[-1] + 1])


def thread_python_frames(ident: int | None, limit: int = 50) -> tuple[PythonFrame, ...]:
    """The Python frames of another thread of this process (it must hold still: paused, its
    GIL handed over): read by the stack reader, which says where each was entered from C (so
    the merge can place them), else from the interpreter's own frame objects."""
    if ident is None:
        return ()
    read = pyframes.own_thread_frames(ident)
    if read is None:
        return python_frames(sys._current_frames().get(ident), limit)
    return _through_outermost_cell([PythonFrame(file, line, name, is_cell_file(file), entered)
                                    for name, file, line, entered in read[:limit]])


def merge(native: tuple[NativeFrame, ...], python: tuple[PythonFrame, ...]) -> MergedStack:
    """Native frames up to the first interpreter frame; past it, only the user's own Rust
    frames (an outer Rust call on a Rust -> Python -> Rust stack). Each Python frame goes where
    it runs when the frames say where they were entered from C: every interpreter eval frame
    (walking out from the innermost) takes the Python frames up to that one, so a callback from
    Rust sits above the Rust that called it. Otherwise (py-spy's frames) they all go last."""
    evals = [f.function in EVAL_FUNCTIONS for f in native]
    ordered = bool(python) and all(f.entered is not None for f in python) and any(evals)
    kept, in_runtime, kept_before = [], False, []
    for frame in native:
        kept_before.append(len(kept))
        in_runtime = in_runtime or frame.runtime
        if not in_runtime or (not frame.runtime and frame.user):
            kept.append(frame)
    kept_before.append(len(kept))  # an unwinder that stopped early: what is left goes outermost
    at = tuple(kept_before[run] for run in eval_frame_runs(evals, [f.entered for f in python])) if ordered else ()
    return MergedStack(tuple(kept), tuple(python), hidden_runtime_frames=len(native) - len(kept), python_at=at)


IDLE_FUNCTIONS = re.compile(r"(futex|poll|epoll_wait|select|nanosleep|clock_nanosleep|sem_wait|"
                            r"pthread_cond|__libc_recv|recv|accept|read$|__GI___poll|do_futex_wait)")
DISAMBIGUATOR = re.compile(r"\[[0-9a-f]+\]")
LLVM_SUFFIX = re.compile(r"\.llvm\.\d+$")
HEX_NAME = re.compile(r"^0x[0-9a-f]+$")  # a sampler's name for an address without a symbol


LEGACY_ESCAPES = {"$LT$": "<", "$GT$": ">", "$u20$": " ", "$RF$": "&", "$BP$": "*", "$C$": ",",
                  "$u27$": "'", "$u5b$": "[", "$u5d$": "]", "$u7b$": "{", "$u7d$": "}", "$u3b$": ";",
                  "$u7e$": "~", "$u21$": "!", "$u2b$": "+", "$LP$": "(", "$RP$": ")"}


def clean_rust_name(name: str) -> str:
    """Demangled names keep legacy hashes (::h0123...), v0 crate disambiguators ([3c1c0]),
    LLVM's ``.llvm.123`` suffixes and, when half-demangled (py-spy), legacy escapes ($LT$, ..)."""
    name = DISAMBIGUATOR.sub("", demangle(LLVM_SUFFIX.sub("", name)))
    if "$" in name or ".." in name:
        for escape, char in LEGACY_ESCAPES.items():
            name = name.replace(escape, char)
        name = name.replace("..", "::").replace("::_<", "::<").replace("::_{", "::{")
        if name.startswith("_<"):
            name = name[1:]
    return name


def looks_idle(function_names: list[str]) -> bool:
    """A thread blocked in a wait (futex, poll, recv...) near the top of its stack."""
    return any(IDLE_FUNCTIONS.search(name or "") for name in function_names[:4])


def _python_entry(frame: PythonFrame) -> StackEntry:
    return StackEntry("python", frame.function, frame.file, frame.line, frame.is_cell)


def entries_of(merged: MergedStack) -> list[StackEntry]:
    """A merged stack as the lines of a thread's view, innermost first."""
    return [_python_entry(f) if isinstance(f, PythonFrame) else
            StackEntry("native", f.function, f.file, f.line, user=f.user, level=f.level) for f in merged.in_order()]


def from_gdb(row: ThreadRow, python: tuple[PythonFrame, ...], holds_gil: bool | None) -> ThreadStack:
    native = native_frames(row.frames)
    entries = entries_of(merge(native, python))
    return ThreadStack(str(row.thread), row.name, row.lwp, holds_gil,
                       looks_idle([f.function for f in native]), tuple(entries), row.paused,
                       row.locals, demangle(row.locals_of) if row.locals_of else None)


def through_test_file(items, test_file: str, python=lambda item: True):
    """``items`` (innermost first) through the outermost Python one in ``test_file`` (a path
    relative to pytest's rootdir): the test and its helpers, not pytest's own frames below."""
    inside = [i for i, item in enumerate(items)
              if python(item) and test_file and (item.file or "").endswith("/" + test_file)]
    return tuple(items[:inside[-1] + 1]) if inside else tuple(items)


def python_frames_from_memory(frames: tuple[PythonFrame, ...]) -> tuple[PythonFrame, ...]:
    """The reader's frames with cells recognised, cut after the outermost cell."""
    return _through_outermost_cell([replace(f, is_cell=is_cell_file(f.file or "")) for f in frames])


def python_thread_for(row: ThreadRow, python: PythonStacks | None) -> PythonThread | None:
    """The Python thread (from memory or py-spy) of a gdb thread row: by ident, else by LWP."""
    for thread in (python.threads if python else ()):
        if (thread.thread_id is not None and thread.thread_id == row.ident) or (
                thread.native_thread_id is not None and thread.native_thread_id == row.lwp):
            return thread
    return None


def merged_threads(rows: tuple[ThreadRow, ...], python: PythonStacks) -> tuple[ThreadStack, ...]:
    """gdb's threads, each merged with its Python thread: the one merge every gdb view uses."""
    stacks = []
    for row in rows:
        thread = python_thread_for(row, python)
        frames = python_frames_from_memory(thread.frames) if thread else ()
        holds = thread.holds_gil if thread is not None and python.gil_known else None
        stacks.append(from_gdb(row, frames, holds))
    return tuple(stacks)


# the entry point of a thread of the kernel's own machinery lives in one of these packages
KERNEL_MACHINERY = re.compile(r"/(ipykernel|zmq|jupyter_client|IPython|tornado|pyo3_debug_magic)/")


def is_kernel_machinery(thread: ThreadStack, main_thread_id: int | None) -> bool:
    """A thread of the kernel's own (ZMQ sockets, IOPub, heartbeat, history, this tool), judged
    by the function the thread was started with; never the main thread or one in user code."""
    if thread.os_thread_id == main_thread_id or thread.paused or any(e.user for e in thread.entries):
        return False
    started_with = [e for e in thread.entries if e.kind == "python" and not (e.file or "").endswith("/threading.py")]
    if started_with:
        return bool(KERNEL_MACHINERY.search(started_with[-1].file or ""))
    return (thread.name or "").startswith("ZMQbg/")


def may_lack_rust_frames(threads) -> bool:
    """A running thread in native code with none of the user's frames: py-spy may have dropped
    them (it loses middle Rust frames when unwinding without gdb)."""
    return any(not t.idle and any(e.kind == "native" for e in t.entries) and not any(e.user for e in t.entries)
               for t in threads)


def cut_at_cell(thread: ThreadStack) -> ThreadStack:
    """The thread running the snapshot's own cell, from the cell's line to the outermost cell
    frame: the frames above are the tool waiting for its own answer, those below are IPython."""
    cells = [i for i, entry in enumerate(thread.entries) if entry.is_cell]
    entries = thread.entries[cells[0]:cells[-1] + 1] if cells else thread.entries
    return replace(thread, entries=tuple(entries), current=True, idle=False, locals=None, locals_of=None)


def for_display(threads, caller_thread_id: int | None, main_thread_id: int | None,
                show_all: bool) -> tuple[list[ThreadStack], list[ThreadStack]]:
    """(shown, hidden): the caller's thread cut at its cell, the main thread first, and the
    kernel's machinery threads hidden unless ``show_all``."""
    shown, hidden = [], []
    for thread in threads:
        if caller_thread_id is not None and thread.os_thread_id == caller_thread_id:
            thread = cut_at_cell(thread)
        if not show_all and is_kernel_machinery(thread, main_thread_id):
            hidden.append(thread)
        else:
            shown.append(thread)
    shown.sort(key=lambda thread: thread.os_thread_id != main_thread_id)
    return shown, hidden
