"""How %native_bt chooses and folds what it shows (pure units on hand-made stacks)."""
from __future__ import annotations

from pyo3_debug_magic.render.text import thread_stacks
from pyo3_debug_magic.stacks.merging import (StackEntry, ThreadStack, for_display, is_kernel_machinery,
                                             may_lack_rust_frames)

SITE = "/venv/lib/python3.11/site-packages"
THREADING = "/usr/lib/python3.11/threading.py"


def thread(os_id, name, entries, **extra):
    return ThreadStack(str(os_id), name, os_id, None, False, entries, **extra)


def py(function, file, line=1, cell=False):
    return StackEntry("python", function, file, line, cell)


def native(function, file=None, line=None, user=False):
    return StackEntry("native", function, file, line, user=user)


HEARTBEAT = thread(11, "Heartbeat", [native("poll"), py("Heartbeat.run", f"{SITE}/ipykernel/heartbeat.py"),
                                     py("Thread._bootstrap", THREADING)])
ZMQ = thread(12, "ZMQbg/IO/0", [native("epoll_wait"), native("??")])
USER_PY_THREAD = thread(13, "Thread-5 (poll_queue)", [py("poll_queue", "/home/me/analysis.py"),
                                                      py("Thread.run", THREADING)])
RAYON = thread(14, "rayon-worker", [native("rustdemo::busy", "/home/me/crate/src/lib.rs", 9, user=True)])
PRINTING_USER_THREAD = thread(15, "Thread-6 (work)", [py("OutStream.write", f"{SITE}/ipykernel/iostream.py"),
                                                      py("work", "/home/me/analysis.py"), py("Thread.run", THREADING)])


def test_kernel_threads_are_known_by_what_they_were_started_with():
    assert is_kernel_machinery(HEARTBEAT, main_thread_id=1)
    assert is_kernel_machinery(ZMQ, main_thread_id=1)
    assert not is_kernel_machinery(USER_PY_THREAD, main_thread_id=1)
    assert not is_kernel_machinery(RAYON, main_thread_id=1)
    assert not is_kernel_machinery(PRINTING_USER_THREAD, main_thread_id=1)  # inside ipykernel, started by the user
    assert not is_kernel_machinery(HEARTBEAT, main_thread_id=11)            # the main thread is always shown


def test_the_callers_thread_is_cut_at_its_cell_and_shown_first():
    caller = thread(1, "MainThread", [
        native("__futex_abstimed_wait_common"), py("Condition.wait", THREADING),
        py("NativeDebugger.snapshot", f"{SITE}/pyo3_debug_magic/debugger.py"),
        py("<module>", "/tmp/ipykernel_1/123.py", 2, cell=True),
        py("InteractiveShell.run_code", f"{SITE}/IPython/core/interactiveshell.py")])
    shown, hidden = for_display([RAYON, HEARTBEAT, caller], caller_thread_id=1, main_thread_id=1, show_all=False)
    assert [t.label for t in shown] == ["1", "14"] and hidden == [HEARTBEAT]
    assert [e.function for e in shown[0].entries] == ["<module>"] and shown[0].current
    shown, hidden = for_display([RAYON, HEARTBEAT, caller], caller_thread_id=1, main_thread_id=1, show_all=True)
    assert len(shown) == 3 and hidden == []


def test_library_frames_are_folded_but_the_top_frame_and_the_users_frames_stay():
    worker = thread(14, "rayon-worker", [
        native("core::cmp::PartialOrd::lt", "/rustc/abc/library/core/src/cmp.rs", 1410),
        native("std::time::Instant::now", "/rustc/abc/library/std/src/time.rs", 20),
        native("rustdemo::busy_until", "src/lib.rs", 169, user=True),
        native("pyo3::marker::Python::allow_threads"), native("pyo3::impl_::trampoline::trampoline"),
        native("rustdemo::worker", "src/lib.rs", 180, user=True), py("Thread.run", THREADING)])
    folded = thread_stacks([worker]).splitlines()
    assert folded[1:] == ["     core::cmp::PartialOrd::lt  at /rustc/abc/library/core/src/cmp.rs:1410",
                          "     ... 1 library frame",
                          "     rustdemo::busy_until  at src/lib.rs:169",
                          "     ... 2 library frames",
                          "     rustdemo::worker  at src/lib.rs:180",
                          f"  py Thread.run  at {THREADING}:1"]
    assert len(thread_stacks([worker], full=True).splitlines()) == 1 + len(worker.entries)


def test_py_spy_names_the_users_sources_as_gdb_does(tmp_path):
    from pyo3_debug_magic.stacks.pyspy import parse_dump

    crate = tmp_path / "mycrate"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text("[package]\n")
    (crate / "src" / "lib.rs").write_text("fn work() {}\n")
    dumped = [{"os_thread_id": 7, "thread_name": "worker", "owns_gil": False, "active": True, "frames": [
        {"name": "mycrate::work", "filename": str(crate / "src" / "lib.rs"), "line": 12, "module": "mycrate.so"},
        {"name": "clock_gettime", "filename": "/usr/lib/x86_64-linux-gnu/libc.so.6", "module": "libc.so.6"}]}]
    entries = parse_dump(dumped)[0].entries
    assert (entries[0].file, entries[0].user) == ("src/lib.rs", True)
    assert (entries[1].file, entries[1].user) == ("/usr/lib/x86_64-linux-gnu/libc.so.6", False)


def test_a_running_native_thread_without_user_frames_may_have_lost_some():
    lost = thread(14, "worker", [native("core::cmp::Ordering::is_lt"), py("Thread.run", THREADING)])
    assert may_lack_rust_frames([lost]) and not may_lack_rust_frames([RAYON, USER_PY_THREAD])


def test_a_stop_in_your_crate_without_locals_says_why_and_one_with_locals_does_not():
    from harness import LIB_RS
    from pyo3_debug_magic.stacks.backtrace import NO_VARIABLE_INFO, stop
    from pyo3_debug_magic.model import GdbFrame, Paused, Variable

    frame = GdbFrame(0, "rustdemo::square", "src/lib.rs", str(LIB_RS), 32)
    assert stop(Paused(thread=1, frames=(frame,))).locals_note == NO_VARIABLE_INFO
    assert stop(Paused(thread=1, frames=(frame,), locals=(Variable("value", "3"),))).locals_note is None
    elsewhere = GdbFrame(0, "memcpy", None, None, None, "libc.so.6")
    assert stop(Paused(thread=1, frames=(elsewhere,))).locals_note is None


# ----- a thread whose Rust calls back into Python: each Python frame where it runs ---------------
def callback_thread():
    """A threading.Thread whose target (a lambda in a cell) calls Rust, which calls a Python
    callback that waits in Event.wait: gdb's frames and the reader's, innermost first."""
    from pyo3_debug_magic.model import GdbFrame, PythonFrame, ThreadRow

    from pathlib import Path

    lib, cell = "/usr/lib/libpython3.11.so", "/tmp/ipykernel_1/2.py"
    crate = str(Path(__file__).resolve().parents[2] / "examples" / "rustdemo" / "src" / "lib.rs")  # on disk: yours
    gdb_frames = [("futex_wait", None, None, "/lib/libc.so.6"), ("PyThread_acquire_lock_timed", None, None, lib),
                  ("_PyEval_EvalFrameDefault", None, None, lib), ("_PyObject_Call", None, None, lib),
                  ("pyo3::types::any::call1", "/cargo/pyo3/src/types/any.rs", None, None),
                  ("mycrate::run_with", crate, crate, None), ("pyo3::impl_::trampoline", "/cargo/pyo3/t.rs", None, None),
                  ("cfunction_vectorcall_O", None, None, lib), ("_PyEval_EvalFrameDefault", None, None, lib),
                  ("thread_run", None, None, lib), ("start_thread", None, None, "/lib/libc.so.6"),
                  ("clone3", None, None, "/lib/libc.so.6")]
    row = ThreadRow(3, "worker", 7, 77, frames=tuple(GdbFrame(i, f, file, full, 40 if full else None, library)
                                                    for i, (f, file, full, library) in enumerate(gdb_frames)))
    python = (PythonFrame(THREADING, 327, "Condition.wait", entered=False),
              PythonFrame(THREADING, 629, "Event.wait", entered=False),
              PythonFrame(cell, 4, "callback", entered=True),
              PythonFrame(cell, 6, "<lambda>", entered=False),
              PythonFrame(THREADING, 982, "Thread.run", entered=False),
              PythonFrame(THREADING, 1045, "Thread._bootstrap_inner", entered=False),
              PythonFrame(THREADING, 1002, "Thread._bootstrap", entered=True))
    return row, python


def test_a_callback_sits_above_the_rust_that_called_it_and_the_threads_own_frames_stay():
    from pyo3_debug_magic.stacks.merging import from_gdb, python_frames_from_memory

    row, python = callback_thread()
    stack = from_gdb(row, python_frames_from_memory(python), None)
    assert [e.function for e in stack.entries] == [
        "futex_wait", "Condition.wait", "Event.wait", "callback", "mycrate::run_with", "<lambda>", "Thread.run",
        "Thread._bootstrap_inner", "Thread._bootstrap"]


def test_a_crash_in_rust_under_a_callback_is_called_from_the_line_that_called_into_rust():
    from dataclasses import replace

    from pyo3_debug_magic.crash.summary import crash_summary
    from pyo3_debug_magic.model import CrashRecord, PythonStacks, PythonThread

    row, python = callback_thread()
    row = replace(row, frames=row.frames[5:])  # the crash is in mycrate::run_with itself
    python = python[3:]                       # the callback has returned
    record = CrashRecord(signal="SIGSEGV", thread=3, threads=(row,),
                         python=PythonStacks((PythonThread(7, 77, None, python),), True))
    assert crash_summary(record) == f"SIGSEGV in mycrate::run_with at {row.frames[0].file}:40, called from cell line 6"
    row2, python2 = callback_thread()
    frames = (replace(row2.frames[5], level=0, func="mycrate::inner", file="src/lib.rs", line=9),) + row2.frames[2:]
    record = CrashRecord(signal="SIGSEGV", thread=3, threads=(replace(row2, frames=frames),),
                         python=PythonStacks((PythonThread(7, 77, None, python2[2:]),), True))
    assert crash_summary(record).endswith("src/lib.rs:9, called from cell line 4")  # the callback called it
