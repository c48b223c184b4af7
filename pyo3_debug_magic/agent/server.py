"""The agent's request loop and its table of operations; the work lives in the modules it calls.

Every exit path (``shutdown`` request, the kernel closing its end of the socket, SIGTERM,
an exception) runs ``_cleanup``: breakpoints deleted, the GIL given back to every paused
thread, paused threads resumed, gdb detached, so the kernel keeps running.

gdb's async records are queued by the MI driver and handled here, in the main loop, never in
the middle of another command.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import time
import traceback

from pyo3_debug_magic import model
from pyo3_debug_magic import protocol as p
from pyo3_debug_magic.errors import AgentError, DebugMagicError, NotAttachedError, ProtocolMismatchError
from pyo3_debug_magic.agent.breakpoints import Breakpoints
from pyo3_debug_magic.agent.context import AgentContext
from pyo3_debug_magic.agent.crash import CrashRecorder, StderrTee  # noqa: F401 - StderrTee: used by __main__
from pyo3_debug_magic.agent.crash_terminal import CrashTerminal
from pyo3_debug_magic.agent.events import (BreakpointChanged, LibrariesChanged, Stopped, StopContext, decide,
                                           parse_record)
from pyo3_debug_magic.gdb.mi import GdbCommandError, GdbExitedError, GdbTimeoutError
from pyo3_debug_magic.agent.lifecycle import Lifecycle
from pyo3_debug_magic.agent.pauses import RESUME_COMMANDS, Pauses
from pyo3_debug_magic.agent.pending import PendingCheck
from pyo3_debug_magic.agent.stalls import StallWatch
from pyo3_debug_magic.agent.watchdog import HangWatchdog

REQUEST_MARGIN = 2.0  # s of the kernel's wait kept back for the reply to travel


class Agent:
    """Serves one kernel: attach/detach, breakpoints, pauses, log hits, hangs, crashes."""

    def __init__(self, sock: socket.socket, target_pid: int, gdb_path: str,
                 stderr_tee: StderrTee | None = None, terminal: tuple[int | None, int | None] = (None, None)):
        self.sock = sock
        self.context = AgentContext(target_pid, self._send_event)
        self.breakpoints = Breakpoints(self.context)
        self.pending = PendingCheck(self.context, self.breakpoints)
        self.pauses = Pauses(self.context, self.breakpoints)
        self.terminal = CrashTerminal(self.context, *terminal)
        self.watchdog = HangWatchdog(self.context, self.pauses, self.terminal)
        self.crashes = CrashRecorder(self.context, stderr_tee, lambda: self.pauses.active.keys(), self.terminal)
        self.lifecycle = Lifecycle(self.context, gdb_path, self.breakpoints, self.pauses, self.watchdog,
                                   self.crashes)
        self.stalls = StallWatch()
        self.greeted = False
        self._running = True
        self.operations = {
            p.Hello: self.hello, p.Configure: self.configure,
            p.Attach: self.lifecycle.attach, p.Detach: self.lifecycle.detach,
            p.Status: lambda r: self.lifecycle.status(), p.Shutdown: self.shutdown,
            p.SetBreakpoint: self.breakpoints.set,
            p.BreakInsert: self.breakpoints.insert,
            p.BreakList: lambda r: self.breakpoints.rows(),
            p.BreakDelete: lambda r: self.breakpoints.delete(r.numbers),
            p.BreakEnable: lambda r: self.breakpoints.enable(r.numbers, r.enabled),
            p.SuspendBreakpoints: lambda r: tuple(self.breakpoints.disable_all()),
            p.BreakCondition: lambda r: self.breakpoints.set_condition(r.number, r.condition),
            p.CellStarts: self.cell_starts, p.CellDone: self.cell_done,
            p.Watch: lambda r: {"watch_after": self.watchdog.watch(r.seconds)},
            p.HangShown: lambda r: self.watchdog.hang_done() or {},
            p.PauseHung: lambda r: self.watchdog.pause_here(),
            p.TakeLogs: lambda r: self.breakpoints.take_log(),
            p.TakeSnapshot: self.snapshot,
            p.Frames: lambda r: self.context.gdb.frames(r.thread),
            p.Locals: lambda r: self.pauses.locals(r.thread, r.frame),
            p.Evaluate: lambda r: self.pauses.evaluate(r.thread, r.frame, r.expression, r.raw),
            p.Resume: lambda r: self.pauses.resume(r.thread, r.how, r.frame) or {"thread": r.thread},
            p.Quit: lambda r: self.lifecycle.quit(),
        }
        self.need_attached = {p.SetBreakpoint, p.BreakInsert, p.BreakList, p.BreakDelete,
                              p.BreakEnable, p.SuspendBreakpoints, p.BreakCondition, p.TakeSnapshot, p.Frames, p.Locals, p.Evaluate, p.Resume}
        self.need_symbols = self.need_attached | {p.Watch}  # an attach that deferred them reads them first

    # ----- loop -----------------------------------------------------------------------
    def serve(self) -> None:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel's Ctrl-C is not for us
        reader = p.LineReader(self.sock)
        self.stalls.start()
        try:
            while self._running:
                gdb = self.context.session
                live = gdb is not None and gdb.alive
                watched = [self.sock] + ([gdb.mi.fileno()] if live else [])
                ready, _, _ = select.select(watched, [], [], self.watchdog.next_timer_in())
                self._notice_stalls()
                if live and gdb.mi.fileno() in ready:
                    gdb.mi.read(0)
                self._process_gdb_events()
                if self.context.attached and gdb is not None and not gdb.alive:
                    self.lifecycle.on_gdb_died()  # first: the kernel may have died of it
                if self.sock in ready:
                    for message in reader.read_available():
                        self._handle(message)
                        self._process_gdb_events()
                    if reader.closed:
                        break  # the kernel went away
                gdb = self.context.session
                if (self.pauses.needs_handoff or self.pauses.stalled) and gdb is not None and gdb.mi.answering:
                    self.pauses.retry_handoffs()
                self._run_timers()
        finally:
            self.lifecycle.cleanup()
            try:
                self.sock.close()
            except OSError:
                pass

    def _notice_stalls(self) -> None:
        messages = [self.stalls.agent_stopped()]
        gdb = self.context.session
        if self.context.attached and gdb is not None and gdb.alive:
            messages.append(self.stalls.gdb_state(lambda: gdb.mi.stopped_by_signal, gdb.mi.pid))
        for message in filter(None, messages):
            self.context.notify(message)

    def _send(self, message: dict) -> None:
        try:
            self.sock.sendall(p.encode(message))
        except OSError:
            self._running = False

    def _send_event(self, event: model.Event) -> None:
        self._send(p.event_message(event))

    def _handle(self, message: dict) -> None:
        reply: dict = {"id": message.get("id")}
        try:
            request = self._request(message)
            session = self.context.session
            if session is not None and message.get("timeout"):
                session.deadline = time.monotonic() + float(message["timeout"]) - REQUEST_MARGIN
            if type(request) in self.need_symbols and self.context.attached:
                session.symbols.read_deferred(session)
            reply.update(ok=True, result=p.to_wire(self.operations[type(request)](request)))
        except DebugMagicError as error:
            reply.update(ok=False, error=p.to_wire(p.ErrorReply(error.wire_kind or "agent", error.message,
                                                                error.fix)))
        except GdbCommandError as error:
            reply.update(ok=False, error=p.to_wire(p.ErrorReply("usage", f"gdb: {error}",
                                                                "check the expression or location")))
        except ValueError as error:  # text gdb must never see (control characters, surrogates)
            reply.update(ok=False, error=p.to_wire(p.ErrorReply("usage", str(error),
                                                                "type it on one line, as plain text")))
        except (GdbTimeoutError, GdbExitedError) as error:
            what, fix = self.lifecycle.recover_from_stuck_gdb(str(error), notify=False)
            reply.update(ok=False, error=p.to_wire(p.ErrorReply("gdb-stuck", what, fix)))
        except Exception as error:  # noqa: BLE001 - reported with its traceback
            reply.update(ok=False, error=p.to_wire(p.ErrorReply(
                "agent", f"internal agent error: {error!r}",
                "please report this with the traceback:\n" + traceback.format_exc())))
        finally:
            if self.context.session is not None:
                self.context.session.deadline = None
        self._send(reply)

    def _request(self, message: dict) -> p.Request:
        try:
            request = p.request_from_message(message)
        except KeyError:
            raise AgentError(f"unknown agent request {message.get('op')!r}",
                             "the kernel and its helper disagree: restart the kernel") from None
        if not self.greeted and not isinstance(request, (p.Hello, p.Shutdown)):
            raise AgentError("the kernel did not say hello first", "restart the kernel")
        if type(request) in self.need_attached and not self.context.attached:
            raise NotAttachedError()
        return request

    # ----- gdb events -----------------------------------------------------------------
    def _process_gdb_events(self) -> None:
        gdb = self.context.session
        if gdb is None:
            return
        replies = []
        while gdb.mi.messages:
            message = gdb.mi.messages.popleft()
            if message.get("kind") in ("log-hit", "log-error"):
                self.breakpoints.record_hit({k: v for k, v in message.items() if k != "kind"})
            else:
                replies.append(message)  # a reply a request may still take; keep only the newest
        gdb.mi.messages.extend(replies[-20:])
        while gdb.mi.events:
            event = parse_record(gdb.mi.events.popleft())
            try:
                if isinstance(event, LibrariesChanged):
                    self.breakpoints.debug_info.forget()
                    if event.loaded:
                        self.pending.library_loaded(event.path)
                elif isinstance(event, Stopped):
                    self._on_stopped(event)
                elif isinstance(event, BreakpointChanged):
                    self.breakpoints.on_changed(event.bkpt)
            except (GdbTimeoutError, GdbExitedError) as error:
                self.lifecycle.recover_from_stuck_gdb(str(error))
            except GdbCommandError as error:
                self.context.notify(f"gdb: {error}")
        if self.pending.loaded:
            try:
                self.pending.check()
            except (GdbTimeoutError, GdbExitedError) as error:
                self.lifecycle.recover_from_stuck_gdb(str(error))

    def _on_stopped(self, stop: Stopped) -> None:
        pauses, gdb = self.pauses, self.context.gdb
        gdb.symbols.read_deferred(gdb)  # a crash's report (or any stop) needs every library's
        hang = self.watchdog.in_progress
        started_at = pauses.stepping_from.pop(stop.thread, None) if stop.thread else None
        pauses.skip_libraries(False)  # a `s` that ended (or anything else that stopped)
        decision = decide(stop, StopContext(hang.row.thread if hang else None, pauses.pausing_allowed,
                                            started_at, len(pauses.active),
                                            self.breakpoints.foreign(stop.breakpoint, stop.fullname, stop.func)))
        if decision.cancels_hang:
            self.watchdog.cancel()
        action = decision.action
        if action == "hang-safe-point":
            self.watchdog.safe_point_reached()
        elif action == "interrupt":
            had_pauses = bool(pauses.active)
            if not had_pauses:
                self.watchdog.interrupt_seen()
            pauses.on_interrupt(stop.thread)
        elif action == "crash":
            self.crashes.capture(stop.thread, decision.signal)
            gdb.continue_thread(stop.thread)  # the signal is delivered: the process dies as it would have
        elif action == "continue":
            gdb.continue_thread(stop.thread)
        elif action == "step-again":
            pauses.stepping_from[stop.thread] = (stop.where, True, decision.command)
            pauses.skip_libraries(decision.command == RESUME_COMMANDS["step"])
            gdb.command(f"{decision.command} --thread {stop.thread}")
        elif action == "log-unattended":
            self.breakpoints.record_unattended(stop.breakpoint, stop.thread, {
                "func": stop.func, "file": stop.file, "fullname": stop.fullname, "line": stop.line},
                pauses.no_pause_reason or "no stdin")
            gdb.continue_thread(stop.thread)
        elif action == "pause":
            pauses.pause(stop.thread, stop.reason, stop.breakpoint, stop.where, stop.return_value)

    def _run_timers(self) -> None:
        try:
            reason = self.watchdog.due()
            if reason:
                self.watchdog.report(reason)
        except (GdbTimeoutError, GdbExitedError) as error:
            self.lifecycle.recover_from_stuck_gdb(str(error))
        except GdbCommandError as error:
            self.context.notify(f"hang diagnosis failed: {error}")

    # ----- requests handled here --------------------------------------------------------
    def hello(self, request: p.Hello) -> dict:
        if request.version != p.PROTOCOL_VERSION:
            raise ProtocolMismatchError(
                f"the debugger helper speaks protocol {p.PROTOCOL_VERSION}, this kernel {request.version}",
                "pyo3_debug_magic was upgraded under a running kernel: restart the kernel")
        self.greeted = True
        return {"version": p.PROTOCOL_VERSION, "pid": os.getpid()}

    def configure(self, request: p.Configure) -> model.AgentSettings:
        self.context.settings = request.settings
        if self.context.session is not None:
            self.context.session.timeout = request.settings.gdb_timeout
        return self.context.settings

    def shutdown(self, request: p.Shutdown) -> dict:
        self._running = False
        return {"detached": self.context.attached}

    def cell_starts(self, request: p.CellStarts) -> dict:
        """A cell starts: can it answer a pause (no stdin: breakpoints only log)? Arms %native_watch."""
        self.pauses.pausing_allowed = bool(request.pausing_allowed)
        self.pauses.no_pause_reason = "" if request.pausing_allowed else request.not_pausing_because
        self.pauses.refusals_shown.clear()
        self.watchdog.cell_starts()
        return {"pausing_allowed": self.pauses.pausing_allowed}

    def cell_done(self, request: p.CellDone) -> dict:
        """A cell ended: its timers stop. While a breakpoint waits for a module, what gdb said
        during the cell (a module it imported) is read first, so the notes about it are this cell's."""
        gdb = self.context.session
        if gdb is not None and self.context.attached and self.breakpoints.awaiting_modules():
            try:
                gdb.command("-list-features")  # answered after every record gdb wrote before it
                self._process_gdb_events()
            except (GdbCommandError, GdbTimeoutError, GdbExitedError):
                pass
        self.watchdog.cell_done()
        return {"notes": self.pending.take()}

    def snapshot(self, request: p.TakeSnapshot) -> model.RawSnapshot:
        """Every thread's native and Python frames (threads stopped for it are resumed); Python
        frames from py-spy when libpython has no debug info."""
        raw = self.context.gdb.snapshot(set(self.pauses.active), list(request.threads or ()),
                                        request.with_locals)
        return model.RawSnapshot(raw.threads, self.context.readable_python(raw.python))


def _exit_on_sigterm(signum, frame):
    raise SystemExit(0)

