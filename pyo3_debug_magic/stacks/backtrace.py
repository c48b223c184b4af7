"""The one stack pipeline: every view of threads (``%native_bt``, a pause's stop view, a crash
report, ``%native_core``, a hang) is built here, from one engine's capture, as model objects.

Engines: ``gdb`` (the attached agent: Python frames read from memory, py-spy's frames when
they cannot be), ``gdb core`` (a core file) and ``py-spy`` (``py-spy dump``).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import replace

from pyo3_debug_magic.stacks import merging, sources
from pyo3_debug_magic.model import (CrashRecord, CrashReport, HangReport, HangSeen, Paused, RawSnapshot,
                                    Snapshot, Stop)


def from_raw(raw: RawSnapshot, engine: str = "gdb", names: dict | None = None) -> Snapshot:
    """gdb's capture merged; ``names`` maps thread idents to Python's thread names (gdb only
    knows OS thread names, which Python 3.11 does not set)."""
    threads = merging.merged_threads(raw.threads, raw.python)
    if names:
        # merged_threads keeps gdb's order: each stack sits beside its row
        threads = tuple(t if t.os_thread_id is None else replace(t, name=names.get(row.ident) or t.name)
                        for t, row in zip(threads, raw.threads))
    return Snapshot(engine, threads, raw.python.error, python_source=raw.python.source)


def open_core(core: str, executable: str | None = None, **options):
    """``crash.core.open_core``, imported with nothing from the notebook's folder (a planted
    ``pygdbmi.py`` there was imported into the kernel)."""
    from pyo3_debug_magic.tools import imports_from_installation

    with imports_from_installation():
        from pyo3_debug_magic.crash.core import open_core as read_core
    return read_core(core, executable, **options)


def capture(engine: str, debugger=None, threads: list[int] | None = None, with_locals: bool = False,
            pid: int | None = None, core: str | None = None, executable: str | None = None) -> Snapshot:
    """One snapshot by ``engine``: "gdb" (of ``pid``, default this process, through
    ``debugger``), "py-spy" (of ``pid``) or "gdb core" (of the core file ``core``)."""
    pid = pid or os.getpid()
    if engine == "gdb core":
        record = open_core(core, executable, settings=debugger)
        merged = merging.merged_threads(record.threads, record.python)
        return Snapshot("gdb core", tuple(t for t in merged if not threads or int(t.label) in threads),
                        record.python.error, python_source=record.python.source)
    if engine == "gdb":
        raw = debugger.raw_snapshot(threads, with_locals)
        names = {t.ident: t.name for t in threading.enumerate()} if pid == os.getpid() else None
        snapshot = from_raw(raw, "gdb", names)
        if snapshot.problem:
            note = (f"Python frames could not be read from memory ({snapshot.problem}); "
                    "try `--engine py-spy`")
            return replace(snapshot, notes=(note,))
        return snapshot
    from pyo3_debug_magic.stacks import pyspy

    attached = debugger is not None and debugger.attached
    found = numbered_as_gdb_does(pyspy.dump(pid, nonblocking=attached, py_spy=getattr(debugger, "py_spy", None)), pid,
                                 debugger.thread_numbers() if attached and pid == os.getpid() else None)
    if threads:
        found = [t for t in found if t.label in {str(n) for n in threads}]
    notes = ()
    if attached:
        notes = ("(gdb is attached, so py-spy ran --nonblocking: Python frames only; "
                 "`--engine gdb` shows the Rust frames)",)
    return Snapshot("py-spy", tuple(found), notes=notes)


def numbered_as_gdb_does(threads, pid: int, gdb_numbers: dict[int, int] | None = None):
    """py-spy's threads labelled as gdb numbers them, not by OS thread id: one numbering for
    both engines. ``gdb_numbers`` ({OS thread id: number}) from an attached gdb; without it,
    as gdb would on attaching now (the main thread first, then by OS thread id)."""
    ordered = sorted(threads, key=lambda t: (t.os_thread_id != pid, t.os_thread_id or 0))
    if gdb_numbers:
        after = max(gdb_numbers.values(), default=0)
        numbers = []
        for thread in ordered:  # a thread started since gdb last listed them: after gdb's numbers
            if thread.os_thread_id not in gdb_numbers:
                after += 1
            numbers.append(gdb_numbers.get(thread.os_thread_id, after))
        return [replace(thread, label=str(n)) for n, thread in zip(numbers, ordered)]
    return [replace(thread, label=str(number)) for number, thread in enumerate(ordered, 1)]


def for_view(snapshot: Snapshot, show_all: bool, caller_thread_id: int | None = None,
             main_thread_id: int | None = None) -> Snapshot:
    """What ``%native_bt`` shows: the caller's thread cut at its cell, the main thread first,
    the kernel's own threads hidden (named in a note) unless ``show_all``."""
    shown, hidden = merging.for_display(snapshot.threads, caller_thread_id, main_thread_id, show_all)
    notes = list(snapshot.notes)
    if snapshot.threads and all(thread.holds_gil is False for thread in snapshot.threads):
        notes.append("(no thread held the GIL as the stacks were read: this cell's thread gives it up "
                     "while it waits for them)")
    if snapshot.engine == "py-spy" and not notes and merging.may_lack_rust_frames(shown):
        notes.append("(py-spy can drop Rust frames of a running thread; "
                     "`%native_bt --engine gdb` shows every frame)")
    return replace(snapshot, threads=tuple(shown), hidden=tuple(hidden), notes=tuple(notes))


def stop(event: Paused) -> Stop:
    """A pause as the console shows it: the thread's Python frames are read in this process
    (the paused thread has handed its GIL over, so its frames hold still)."""
    native = merging.native_frames(event.frames)
    python = merging.thread_python_frames(event.ident)
    note = None
    if not event.locals and native and native[0].user:
        note = NO_VARIABLE_INFO
    return Stop(event.thread, event.reason, event.breakpoint, event.handed_off, native,
                merging.merge(native, python), event.locals, locals_note=note, returned=event.returned,
                source_lines=sources.around(native[0] if native else None))


NO_VARIABLE_INFO = ("no locals: this frame has line information but no variable information, as a "
                    "release build with `debug = \"line-tables-only\"` or `debug = 1` has; build with "
                    "`maturin develop` (or `[profile.release] debug = true`) to see them")


def crash_report(record: CrashRecord, path: str | None = None) -> CrashReport:
    """A captured crash (report file or core file) merged for display, the faulting thread first."""
    threads = merging.merged_threads(record.threads, record.python)
    crashed = [t for t in threads if t.label == str(record.thread)]
    others, hidden = merging.for_display([t for t in threads if t.label != str(record.thread)], None,
                                        record.pid, show_all=False)
    origin = _process_that_crashed(record) if record.pid else f"core file {record.core}"
    row = next((r for r in record.threads if r.thread == record.thread), None)
    native = merging.native_frames(row.frames) if row else ()
    source = None
    if record.faulting_user_frame is not None and record.faulting_user_frame < len(native):
        source = native[record.faulting_user_frame]
    return CrashReport(
        signal=record.signal, thread=record.thread, summary=record.summary or "crash", origin=origin,
        fault_address=record.fault_address, stack_pointer=record.stack_pointer,
        stack_depth=record.stack_depth, stack_overflow=record.stack_overflow,
        instruction=record.instruction, threads=tuple(crashed + others), locals=record.locals,
        locals_of=f"{source.function} ({source.where})" if source else None,
        stderr_tail=record.stderr_tail, capture_error=record.capture_error, path=path, source=source,
        source_lines=sources.around(source),
        hidden=tuple(hidden))


def _process_that_crashed(record: CrashRecord) -> str:
    """"pid N", and when it is not this process: that it was an earlier one, and when it died."""
    if record.pid == os.getpid() or not record.time:
        return f"pid {record.pid}"
    seconds = max(time.time() - record.time, 0)
    ago = (f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200
           else f"{seconds / 3600:.0f} h" if seconds < 172800 else f"{seconds / 86400:.0f} days")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.time))
    return f"pid {record.pid}, an earlier process than this one (pid {os.getpid()}), crashed {when} ({ago} ago)"


def hang_report(event: HangSeen) -> HangReport:
    stack = merging.merged_threads((event.row,), event.python)[0]
    return HangReport(event.reason, replace(stack, holds_gil=event.holds_gil), event.note, event.can_pause)
