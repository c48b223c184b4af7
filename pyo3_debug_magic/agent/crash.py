"""Crash capture: everything about a crash recorded before the kernel dies, in a 0600 report
file the next kernel finds (``crash/report_files.py``); and the report of a kernel killed by gdb's death."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from pyo3_debug_magic import model
from pyo3_debug_magic.breakpoints.generated import first_user_level
from pyo3_debug_magic.protocol import to_wire
from pyo3_debug_magic.crash.summary import crash_summary, hex_or_none, looks_like_stack_overflow
from pyo3_debug_magic.agent.context import AgentContext
from pyo3_debug_magic.agent.crash_terminal import CrashTerminal, read_running
from pyo3_debug_magic.gdb.mi import GdbCommandError, GdbTimeoutError, mi_quote


class StderrTee:
    """Passes the kernel's native stderr through and keeps its tail (a Rust panic message)."""

    def __init__(self, read_fd: int, write_fd: int, keep: int = 8192):
        self.read_fd, self.write_fd, self.keep = read_fd, write_fd, keep
        self._tail = b""
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, name="stderr-tee", daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = os.read(self.read_fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self._tail = (self._tail + chunk)[-self.keep:]
            try:
                os.write(self.write_fd, chunk)
            except OSError:
                pass

    def tail(self) -> str:
        time.sleep(0.05)  # let a message written just before the signal arrive
        with self._lock:
            return self._tail.decode(errors="replace")


RESERVED_BYTES = 1 << 20  # held at attach for the report, given back just before it is written


class CrashRecorder:
    def __init__(self, context: AgentContext, stderr_tee: StderrTee | None, paused_threads,
                 terminal: CrashTerminal | None = None):
        self.context = context
        self.stderr_tee = stderr_tee
        self.paused_threads = paused_threads   # () -> the threads paused by the user
        self.terminal = terminal or CrashTerminal(context, None, None)
        self.captured = False
        self.problem: str | None = None        # why a crash could not be recorded (said at attach)

    def _reserve_path(self) -> Path | None:
        directory = self.context.report_dir
        return Path(directory) / f".reserve-{self.context.target_pid}" if directory else None

    def reserve(self) -> str | None:
        """Hold the report's room on disk from the attach on (a full disk wrote reports of 0
        bytes); why a crash could not be recorded, or None."""
        path = self._reserve_path()
        if path is None:
            self.problem = None
            return None
        for stale in path.parent.glob(".reserve-*"):  # left by a helper that was killed
            pid = stale.name.rpartition("-")[2]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                with contextlib.suppress(OSError):
                    stale.unlink()
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.posix_fallocate(descriptor, 0, RESERVED_BYTES)
            finally:
                os.close(descriptor)
            self.problem = None
        except OSError as error:
            with contextlib.suppress(OSError):
                path.unlink()
            self.problem = (f"crash capture is not armed: no room for a report in {path.parent} "
                            f"({error.strerror}); free some space there or point PYO3_DEBUG_MAGIC_STATE elsewhere")
        return self.problem

    def release(self) -> None:
        path = self._reserve_path()
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    def capture(self, thread: int, signal_name: str) -> None:
        """Record everything about a crash before the process dies; never raises. Once per
        process: a signal handler that re-raises (Python's faulthandler, which pytest enables)
        stops the thread again with the same signal, in the handler."""
        if self.captured:
            return
        self.captured = True
        record = model.CrashRecord(signal=signal_name, thread=thread,
                                   running=read_running(self.context.crash.running_file))
        try:
            record = self._details(record)
        except Exception as error:  # noqa: BLE001 - a partial report beats none
            record = replace(record, capture_error=f"{type(error).__name__}: {error}")
        if self.stderr_tee is not None:
            record = replace(record, stderr_tail=self.stderr_tee.tail())
        record = self.stamped(replace(record, summary=crash_summary(record)))
        path = self.write(record)
        self.context.send_event(model.CrashSeen(signal=signal_name, thread=thread,
                                                summary=record.summary, path=path))
        try:
            self.terminal.after_capture(record, path)
        except Exception as error:  # noqa: BLE001 - the report file is written; the process must die as it would
            self.terminal.write(f"pyo3_debug_magic: the crash's terminal report failed: {error}")

    def stamped(self, record: model.CrashRecord) -> model.CrashRecord:
        """``record`` tied to the process that died: its user, pid, kernel identity and time."""
        return replace(record, uid=os.getuid(), pid=self.context.target_pid,
                       time=record.time or time.time(), kernel_id=self.context.kernel_id)

    def write(self, record: model.CrashRecord) -> str | None:
        """A 0600 report in the kernel's report directory, tied to the process that died."""
        record = self.stamped(record)
        directory = self.context.report_dir
        if not directory:
            return None
        path = Path(directory) / f"crash-{self.context.target_pid}-{int(record.time)}.json"
        part = path.with_name(path.name + ".part")
        self.release()  # the room held since the attach is this report's
        try:
            # whole or not at all: written aside, then renamed (a full disk left truncated JSON)
            descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(to_wire(record), handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(part, path)
            return str(path)
        except OSError as error:
            with contextlib.suppress(OSError):
                part.unlink()
            print(f"pyo3_debug_magic agent: cannot write {path}: {error}", file=sys.stderr)
            return None

    def _details(self, record: model.CrashRecord) -> model.CrashRecord:
        gdb = self.context.gdb
        thread, signal_name = record.thread, record.signal

        def c_value(expression: str) -> str | None:
            try:
                return gdb.command(f"-data-evaluate-expression --thread {thread} --frame 0 --language c "
                                   f"{mi_quote(expression)}", 5).payload.get("value")
            except (GdbCommandError, GdbTimeoutError):
                return None

        fault = c_value("(long)$_siginfo._sifields._sigfault.si_addr") if signal_name != "SIGABRT" else None
        stack_pointer = c_value("(long)$sp")
        instruction = ""
        try:
            instruction = gdb.command(f"-interpreter-exec --thread {thread} console {mi_quote('x/i $pc')}",
                                      5).console_text.strip()
        except (GdbCommandError, GdbTimeoutError):
            pass
        depth = None
        try:
            depth = int(gdb.command(f"-stack-info-depth --thread {thread} 5000", 10).payload.get("depth", 0))
        except (GdbCommandError, GdbTimeoutError, ValueError):
            pass
        snapshot = gdb.snapshot(set(self.paused_threads()))
        python = self.context.readable_python(snapshot.python)
        faulting = next((row for row in snapshot.threads if row.thread == thread), None)
        frames = faulting.frames if faulting else ()
        user_level = first_user_level(frames)
        variables = gdb.locals(thread, user_level, frames) if user_level is not None else ()
        return replace(record, fault_address=hex_or_none(fault), stack_pointer=hex_or_none(stack_pointer),
                       instruction=instruction, stack_depth=depth,
                       stack_overflow=looks_like_stack_overflow(signal_name, fault, stack_pointer, frames),
                       threads=snapshot.threads, python=python, faulting_user_frame=user_level,
                       locals=variables)

    def report_death_with_gdb(self, gdb_pid: int | None, pause, numbers: list[int]) -> None:
        """The kernel died right after gdb: a thread was stopped at one of its breakpoints."""
        if pause is not None:
            function, file, line = pause.where or ("?", "?", "?")
            stopped = (f"thread {pause.thread} was paused at breakpoint {pause.breakpoint} in {function} "
                       f"at {file}:{line}")
        elif numbers:
            stopped = f"a thread was stopped for an instant at log breakpoint {', '.join(map(str, numbers))}"
        else:
            stopped = "a thread was stopped for an instant at one of gdb's own breakpoints"
        summary = (f"SIGTRAP: gdb (pid {gdb_pid}) was killed while {stopped}; a thread stopped by a "
                   "debugger gets its breakpoint's SIGTRAP when the debugger dies, so no kernel survives "
                   "that (keep gdb alive while a thread is paused; `%native_detach` ends it cleanly)")
        self.write(model.CrashRecord(signal="SIGTRAP", thread=pause.thread if pause else None, summary=summary,
                                     threads=(pause.row,) if pause is not None and pause.row else ()))
