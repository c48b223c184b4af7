"""Post-mortem of a core file: the same merged report as a live crash, without a process.

gdb runs in-process here (the kernel is not the target, so the GIL is not in the way);
Python frames are read from the core's memory by the same reader the agent uses.
"""
from __future__ import annotations

import signal
import sys
from dataclasses import replace
from pathlib import Path

from pyo3_debug_magic import tools
from pyo3_debug_magic.crash.summary import crash_summary, hex_or_none, looks_like_stack_overflow
from pyo3_debug_magic.gdb.session import GdbSession, start_gdb
from pyo3_debug_magic.gdb.mi import GdbCommandError, mi_quote
from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.breakpoints.generated import first_user_level
from pyo3_debug_magic.model import CrashRecord


def open_core(core: str, executable: str | None = None, timeout: float = 60.0,
              settings=None) -> CrashRecord:
    """Everything a crash report holds, read from ``core`` (``executable`` defaults to this Python)."""
    try:
        core_path, exe_path = Path(core).expanduser(), Path(executable or sys.executable).expanduser()
    except RuntimeError as error:  # ~someone who is not a user here
        raise UsageProblem(f"cannot expand the path: {error}", "give an absolute path") from None
    for path in (core_path, exe_path):
        if any(ch in str(path) for ch in '"\\') or any(ord(ch) < 0x20 for ch in str(path)):
            raise UsageProblem(f"unsupported characters in {str(path)[:200]!r}", "rename or link the file")
    if not _is_file(core_path):
        raise UsageProblem(f"no core file at {str(core_path)[:200]}", "give the path of a core dump")
    if not _is_file(exe_path):
        raise UsageProblem(f"no executable at {str(exe_path)[:200]}", "pass the Python that crashed with --exe")
    # the agent's own set-up: a core's Rust values pretty-print as a live pause's do
    gdb_path = tools.find_gdb(getattr(settings, "gdb", None) or None)
    started = start_gdb(gdb_path, live=False, debug_file_directory=getattr(settings, "debug_file_directory", ""),
                        rustc=getattr(settings, "rustc", ""))
    session, gdb = GdbSession(started, timeout), started.gdb
    try:
        try:
            gdb.command(f"-file-exec-and-symbols {mi_quote(str(exe_path))}", timeout)
        except GdbCommandError as error:
            raise UsageProblem(f"gdb cannot load {exe_path} as the executable: {error}",
                               "pass the Python that crashed with --exe") from None
        try:
            gdb.console_command(f"core-file {core_path}", timeout)  # the rest of the line is the name
        except GdbCommandError as error:
            raise UsageProblem(f"gdb cannot read {core_path}: {error}",
                               "check that it is a core file of this executable (--exe)") from None
        rows = tuple(session.thread_row(thread) for thread in session.threads())
        python = session.python_stacks()
        number = _value(session, "$_siginfo.si_signo")
        fault = _value(session, "(long)$_siginfo._sifields._sigfault.si_addr")
        sp = _value(session, "(long)$sp")
        faulting = rows[0] if rows else None
        frames = faulting.frames if faulting else ()
        user = first_user_level(frames)
        variables = session.locals(faulting.thread, user, frames) if user is not None else ()
        name = signal.Signals(int(number)).name if number and number.isdigit() else "unknown signal"
        record = CrashRecord(signal=name, thread=faulting.thread if faulting else 1, core=str(core_path),
                             threads=rows, python=python, locals=variables, faulting_user_frame=user,
                             fault_address=hex_or_none(fault), stack_pointer=hex_or_none(sp),
                             stack_overflow=looks_like_stack_overflow(name, fault, sp, frames))
        return replace(record, summary=crash_summary(record))
    finally:
        gdb.close()


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long, a loop of links
        return False


def _value(session: GdbSession, expression: str) -> str | None:
    try:
        return session.command(f"-data-evaluate-expression --language c {mi_quote(expression)}",
                               20).payload.get("value")
    except GdbCommandError:
        return None
