"""Post-mortem of a core file: the same merged report as a live crash, without a process.

gdb runs in-process here (the kernel is not the target, so the GIL is not in the way);
Python frames are read from the core's memory by the same reader the agent uses.
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path

from . import tools
from .agent.gdbmi import GdbCommandError, GdbMI, mi_quote
from .agent.gdb_session import start_gdb
from .agent.server import THREAD_IDENT, crash_summary, frames_from_mi, looks_like_stack_overflow
from .errors import UsageProblem
from .locations import first_user_level


def open_core(core: str, executable: str | None = None, timeout: float = 60.0) -> dict:
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
    gdb = start_gdb(tools.find_gdb(), live=False).gdb
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
        rows = []
        for thread in gdb.command("-thread-info", timeout).payload.get("threads", []):
            number = int(thread["id"])
            match = THREAD_IDENT.search(thread.get("target-id", ""))
            stack = gdb.command(f"-stack-list-frames --thread {number} 0 63", timeout).payload.get("stack", [])
            rows.append({"thread": number, "name": thread.get("name"),
                         "ident": int(match.group(1), 16) if match else None,
                         "lwp": int(match.group(2)) if match else None,
                         "frames": frames_from_mi(stack)})
        gdb.console_command("python emit_python_stacks()")
        python = gdb.take_message("python-stacks") or {"error": "no answer from gdb"}
        number = _value(gdb, "$_siginfo.si_signo")
        fault = _value(gdb, "(long)$_siginfo._sifields._sigfault.si_addr")
        sp = _value(gdb, "(long)$sp")
        faulting = rows[0] if rows else {"frames": []}
        user = first_user_level(faulting["frames"])
        local_values = []
        if user is not None:
            try:
                local_values = [{"name": v.get("name"), "value": v.get("value", "")} for v in gdb.command(
                    f"-stack-list-variables --thread 1 --frame {user} --all-values", timeout
                ).payload.get("variables", [])]
            except GdbCommandError:
                pass
        name = signal.Signals(int(number)).name if number and number.isdigit() else "unknown signal"
        report = {"signal": name, "thread": faulting.get("thread", 1), "pid": None, "threads": rows,
                  "python": python, "locals": local_values, "faulting_user_frame": user,
                  "fault_address": hex(int(fault)) if fault and fault.lstrip("-").isdigit() else None,
                  "stack_pointer": hex(int(sp)) if sp and sp.lstrip("-").isdigit() else None,
                  "stack_overflow": looks_like_stack_overflow(name, fault, sp, faulting["frames"]),
                  "core": str(core_path)}
        report["summary"] = crash_summary(report)
        return report
    finally:
        gdb.close()


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long, a loop of links
        return False


def _value(gdb: GdbMI, expression: str) -> str | None:
    try:
        return gdb.command(f"-data-evaluate-expression --language c {mi_quote(expression)}", 20).payload.get("value")
    except GdbCommandError:
        return None
