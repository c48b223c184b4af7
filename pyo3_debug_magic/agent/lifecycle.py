"""gdb's life in the agent: attach, status, detach, ``q``, and what happens when gdb gets stuck
or dies. The exit path (``cleanup``) leaves no breakpoint, no stopped thread and no GIL behind."""
from __future__ import annotations

import re
import sys
import time

from pyo3_debug_magic import model
from pyo3_debug_magic import protocol as p
from pyo3_debug_magic.errors import AttachError, NotAttachedError, UsageProblem
from pyo3_debug_magic.procfs import target_alive
from pyo3_debug_magic.tools import calls_unsafe_reason, cpu_has_amx, explain_attach_failure
from pyo3_debug_magic.agent.breakpoints import Breakpoints
from pyo3_debug_magic.agent.context import AgentContext
from pyo3_debug_magic.agent.crash import CrashRecorder
from pyo3_debug_magic.gdb.session import GdbSession, start_gdb
from pyo3_debug_magic.gdb.mi import GdbCommandError
from pyo3_debug_magic.agent.memory import remove_breakpoint_instructions, remove_every_breakpoint_instruction
from pyo3_debug_magic.agent.pauses import Pauses
from pyo3_debug_magic.gdb.symbols import LazySymbols
from pyo3_debug_magic.agent.watchdog import HangWatchdog

ATTACH_TIMEOUT = 20.0
DETACH_TIMEOUT = 30.0  # a loaded machine took over 5 s; the kernel shows progress meanwhile
QUIT_RETRIES_FOR = 20.0  # s a thread waiting for its GIL may delay the detach
GDB_DEATH_GRACE = 1.0  # s to see whether the kernel dies of a SIGTRAP after gdb's death


def wait_until(condition, seconds: float, step: float = 0.02) -> bool:
    """Poll ``condition`` for up to ``seconds``; whether it came true."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True


class Lifecycle:
    def __init__(self, context: AgentContext, gdb_path: str, breakpoints: Breakpoints, pauses: Pauses,
                 watchdog: HangWatchdog, crashes: CrashRecorder):
        self.context = context
        self.gdb_path = gdb_path
        self.breakpoints = breakpoints
        self.pauses = pauses
        self.watchdog = watchdog
        self.crashes = crashes
        self.attach_seconds: float | None = None

    # ----- requests -----------------------------------------------------------------------
    def _ensure_gdb(self) -> GdbSession:
        session = self.context.session
        if session is None or not session.alive:
            settings = self.context.settings
            started = start_gdb(self.gdb_path, live=True, timeout=settings.gdb_timeout,
                                debug_file_directory=settings.debug_file_directory, rustc=settings.rustc)
            session = self.context.session = GdbSession(started, settings.gdb_timeout)
            session.symbols = LazySymbols(lambda doing: self.context.send_event(model.AttachProgress(doing=doing)))
            self.pauses.calls_unsafe = calls_unsafe_reason(session.version, cpu_has_amx())
        return session

    def attach(self, request: p.Attach) -> model.AgentStatus:
        self.context.kernel_id = request.kernel_id or self.context.kernel_id
        self.context.report_dir = request.report_dir or self.context.report_dir
        if request.crash is not None:
            self.context.crash = request.crash
        if self.context.attached:
            return self.status()
        self.breakpoints.debug_info.forget()
        self.context.send_event(model.AttachProgress(doing="starting gdb"))
        gdb = self._ensure_gdb()
        self.context.send_event(model.AttachProgress(doing=f"attaching gdb to pid {self.context.target_pid}"))
        started = time.monotonic()
        gdb.console("set auto-solib-add off")  # LazySymbols reads what is needed (most of an attach's time)
        try:
            gdb.mi.console_command(f"attach {int(self.context.target_pid)}&", timeout=ATTACH_TIMEOUT)
        except GdbCommandError as error:
            message, fix = explain_attach_failure(str(error), self.context.target_pid)
            raise AttachError(message, fix) from None
        if gdb.mi.wait_for(lambda r: r.get("message") == "running", ATTACH_TIMEOUT) is None:
            raise AttachError(f"gdb attached to {self.context.target_pid} but the threads did not resume",
                              "run `%native_detach`; if the kernel is frozen, restart it")
        self.context.attached = True
        self.crashes.reserve()
        gdb.symbols.after_attach(gdb, defer_all=request.defer_symbols)
        if request.python_layout:
            gdb.call_python("set_handed_layout", request.python_layout)
        self.attach_seconds = time.monotonic() - started
        return self.status()

    def detach(self, request: p.Detach | None = None) -> model.AgentStatus:
        if not self.context.attached:
            raise NotAttachedError()
        if request is not None and request.keep_breakpoints:
            self._step_aside()
        else:
            self._detach()
        return self.status()

    def _step_aside(self) -> None:
        """Detach and keep the breakpoints in gdb's table (gdb takes its int3s out of the
        process on detach and puts them back on the next attach): only with no thread paused."""
        if self.pauses.active:
            raise UsageProblem(f"thread {min(self.pauses.active)} is paused: gdb cannot step aside",
                               "continue it (`c` at its prompt) first")
        self.watchdog.hang_done()
        session = self.context.session
        try:
            session.mi.command("-target-detach", timeout=DETACH_TIMEOUT)
        finally:
            self.context.attached = False

    def status(self) -> model.AgentStatus:
        session, threads = self.context.session, ()
        if self.context.attached and session is not None:
            threads = tuple(model.ThreadInfo(str(t.get("id")), t.get("name"), t.get("state"), _lwp(t.get("target-id")))
                            for t in session.command("-thread-info", 5).payload.get("threads", []))
        return model.AgentStatus(
            attached=self.context.attached, target_pid=self.context.target_pid,
            gdb_pid=session.mi.pid if session else None, gdb_version=session.version if session else "",
            attach_seconds=self.attach_seconds, threads=threads,
            printers=session.printers if session else "not loaded",
            paused_threads=tuple(sorted(self.pauses.active)), calls_unsafe=self.pauses.calls_unsafe,
            settings=self.context.settings, crash_capture=self.crashes.problem if self.context.attached else None)

    def quit(self) -> model.QuitResult:
        """Delete every breakpoint and let every paused thread run."""
        self.watchdog.hang_done()
        deleted = self.breakpoints.delete(None) if self.context.attached else ()
        resumed, problems = self.pauses.end_all()
        if problems:
            raise UsageProblem("; ".join(problems), "run `q` again in a moment")
        return model.QuitResult(tuple(deleted), tuple(resumed))

    # ----- gdb stuck or gone -----------------------------------------------------------------
    def recover_from_stuck_gdb(self, what: str, notify: bool = True) -> tuple[str, str]:
        """gdb did not answer; (what happened, what to do), also sent as an event if ``notify``.

        A stopped gdb (SIGSTOP) answers later: paused threads stay paused (their GIL is free,
        the kernel runs) and late answers are matched by token. A busy gdb has its command
        abandoned (SIGINT; calls unwind), then every pause ends. A gdb that exited meanwhile
        can do neither: its death is handled (breakpoint bytes, crash report) instead."""
        session = self.context.session
        if self.context.attached and session is not None and not session.alive:
            self.on_gdb_died()  # sends its own event
            return f"{what}: gdb exited", "`%native_attach` starts it again"
        if session is not None and session.mi.stopped_by_signal:
            message = (f"{what}: gdb (pid {session.mi.pid}) is stopped (SIGSTOP?); paused threads stay "
                       "paused and the kernel keeps running")
            fix = f"continue gdb (`kill -CONT {session.mi.pid}`) and try again, or run `%native_detach`"
        else:
            if session is not None and session.alive:
                session.deadline = None  # the recovery gets its own bounds
                session.mi.interrupt()
                session.mi.wait_for(lambda r: r.get("type") == "result", 5)
            _, problems = self.pauses.end_all()
            message = f"{what}; the command was abandoned and paused threads were resumed" + (
                f" ({'; '.join(problems)})" if problems else "")
            fix = "try again; `%native_detach` resets the debugger"
        if notify:
            self.context.notify(f"{message}: {fix}")
        return message, fix

    def on_gdb_died(self) -> None:
        """gdb is gone (killed). Its int3 instructions would kill the kernel with SIGTRAP at the
        next hit: put the original bytes back. A thread stopped at a breakpoint when gdb died
        (paused, or in the instant of a log hit) gets that SIGTRAP at once: such a kernel cannot
        be saved, and the crash report says why."""
        session = self.context.session
        status = session.mi.exit_status if session else None
        gdb_pid = session.mi.pid if session else None
        pid = self.context.target_pid
        # the user's breakpoints first (the next hit may be close), then whatever else gdb left
        removed = remove_breakpoint_instructions(pid, self.breakpoints.addresses)
        removed += remove_every_breakpoint_instruction(pid)
        message = (f"gdb exited unexpectedly ({status}); {removed} breakpoint instruction(s) it left were "
                   "removed from the kernel's memory; breakpoints are gone. `%native_attach` starts again")
        if wait_until(lambda: not target_alive(pid), GDB_DEATH_GRACE):
            self.crashes.report_death_with_gdb(gdb_pid, next(iter(self.pauses.active.values()), None),
                                               sorted(self.breakpoints.specs))
        ended = self.pauses.forget()
        self.context.attached = False
        self.breakpoints.forget()
        self.context.session = None
        self.context.send_event(model.GdbDied(message=message, ended=tuple(ended)))

    # ----- exit path --------------------------------------------------------------------------
    def _detach(self) -> None:
        session = self.context.session
        if not (session and self.context.attached):
            return
        self.crashes.release()
        session.deadline = None
        try:
            deadline = time.monotonic() + QUIT_RETRIES_FOR
            while True:
                try:
                    self.quit()  # no breakpoint may outlive us: the kernel would die of SIGTRAP
                    break
                except UsageProblem as problem:  # a thread still waits for its GIL: retry, bounded
                    if time.monotonic() > deadline:
                        print(f"pyo3_debug_magic agent: detaching anyway: {problem}", file=sys.stderr)
                        break
                    time.sleep(0.2)
                except Exception as error:  # noqa: BLE001 - detach anyway
                    print(f"pyo3_debug_magic agent: cleanup before detach failed: {error}", file=sys.stderr)
                    break
            session.mi.command("-target-detach", timeout=DETACH_TIMEOUT)
        finally:
            self.context.attached = False
            self.breakpoints.specs.clear()

    def cleanup(self) -> None:
        session = self.context.session
        if self.context.attached and session is not None and not target_alive(self.context.target_pid):
            # the kernel died; if gdb died just before, that is why (its SIGTRAP): say so
            if wait_until(lambda: not session.alive, 0.5):
                self.on_gdb_died()
        try:
            self._detach()
        except Exception as error:  # noqa: BLE001 - keep going: gdb must still exit
            print(f"pyo3_debug_magic agent: detach failed: {error}", file=sys.stderr)
        if self.context.session is not None:
            self.context.session.mi.close()
            self.context.session = None


def _lwp(target_id: str | None) -> int | None:
    """``Thread 0x7f... (LWP 1234)`` -> 1234."""
    found = re.search(r"\(LWP (\d+)\)", target_id or "")
    return int(found.group(1)) if found else None
