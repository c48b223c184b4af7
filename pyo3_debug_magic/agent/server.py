"""The agent's request loop: owns gdb, answers the kernel, pushes events, cleans up on every exit.

Every exit path (``shutdown`` request, the kernel closing its end of the socket, SIGTERM,
an exception) runs ``_cleanup``: breakpoints deleted, the GIL given back to every paused
thread, paused threads resumed, gdb detached, so the kernel keeps running.

gdb's async records are queued by the MI driver and handled here, in the main loop, never in
the middle of another command.
"""
from __future__ import annotations

import base64
import json
import os
import re
import select
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..errors import AttachError, DebugMagicError, NotAttachedError, UsageProblem
from ..locations import first_user_level, is_user_source
from ..protocol import LineReader, encode
from ..tools import calls_unsafe_reason, cpu_has_amx, explain_attach_failure
from . import handoff
from .gdb_session import CRASH_SIGNALS, PYSTACK, start_gdb
from .gdbmi import GdbCommandError, GdbExitedError, GdbMI, GdbTimeoutError, MIResult, mi_quote
from .memory import remove_breakpoint_instructions, remove_every_breakpoint_instruction
from .procfs import ignores_signal, target_alive
from .stalls import StallWatch

PAUSE_REASONS = ("breakpoint-hit", "end-stepping-range", "function-finished", "location-reached")
ATTACH_TIMEOUT = 20.0
INTERRUPT_GRACE = 0.3  # s for the thread that took a SIGINT to run its C handler
DETACH_TIMEOUT = 5.0
GDB_DEATH_GRACE = 1.0  # s to see whether the kernel dies of a SIGTRAP after gdb's death
THREAD_IDENT = re.compile(r"Thread (0x[0-9a-f]+) \(LWP (\d+)\)")


def wait_until(condition, seconds: float, step: float = 0.02) -> bool:
    """Poll ``condition`` for up to ``seconds``; whether it came true."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True


def frames_from_mi(stack: list[dict]) -> list[dict]:
    """``-stack-list-frames`` rows as the plain dicts every consumer uses."""
    return [{"level": int(f.get("level", 0)), "func": f.get("func") or "??",
             "file": f.get("file"), "fullname": f.get("fullname"),
             "line": int(f.get("line") or 0) or None, "from": f.get("from"),
             "addr": f.get("addr")} for f in stack]


def _as_int(text: str | None) -> int | None:
    return int(text) if text and text.lstrip("-").isdigit() else None


def looks_like_stack_overflow(signal_name: str, fault: str | None, stack_pointer: str | None,
                              frames: list[dict]) -> bool:
    """A SIGSEGV just below the stack pointer (the guard page), or a stack of one recursing function."""
    if signal_name != "SIGSEGV":
        return False
    fault_address, sp = _as_int(fault), _as_int(stack_pointer)
    near_stack = fault_address is not None and sp is not None and 0 <= sp - fault_address < (1 << 20)
    top = [f.get("func") for f in frames[:32]]
    return near_stack or (len(top) >= 32 and len(set(top[4:])) <= 2)


def crash_summary(report: dict) -> str:
    """`SIGSEGV in rustdemo::segfault at src/lib.rs:57, called from cell line 3`."""
    from ..stacks import is_cell_file, python_thread_for

    what = "stack overflow (SIGSEGV)" if report.get("stack_overflow") else report.get("signal", "crash")
    thread = next((t for t in report.get("threads", []) if t["thread"] == report.get("thread")), None)
    where = ""
    if thread:
        frame = next((f for f in thread["frames"] if is_user_source(f.get("fullname"))), None)
        if frame:
            where = f" in {frame.get('func')} at {frame.get('file')}:{frame.get('line')}"
        python = python_thread_for(thread, report.get("python"))
        cell = next((f for f in python.get("frames", []) if is_cell_file(f.get("file") or "")), None)
        if cell:
            where += f", called from cell line {cell.get('line')}"
        elif report.get("thread") != 1:
            where += f" (thread {report.get('thread')})"
    return what + where


class StderrTee:
    """Passes the kernel's native stderr through and keeps its tail (a Rust panic message)."""

    def __init__(self, read_fd: int, write_fd: int, keep: int = 8192):
        import threading

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


@dataclass
class Pause:
    """A kernel thread stopped for the user: its saved thread state if we took its GIL."""

    thread: int
    tstate: int | None
    breakpoint: int | None
    where: tuple | None = None  # (function, file, line) at the stop
    serial: int = 0             # names this pause to the kernel: an ended pause is never prompted
    row: dict | None = None     # its stack as a report's thread row (frames, ident, lwp)


@dataclass
class HangInProgress:
    """A hang being diagnosed: the main thread runs to a safe point before it hands off its GIL."""

    reason: str
    thread: int
    frames: list
    python: dict
    ident: dict
    deadline: float
    interrupted: bool = False


class Agent:
    """Serves one kernel: attach/detach, breakpoints, pauses, log hits."""

    def __init__(self, sock: socket.socket, target_pid: int, gdb_path: str,
                 stderr_tee: "StderrTee | None" = None):
        self.sock = sock
        self.stderr_tee = stderr_tee
        self.identity: dict = {}
        self.target_pid = target_pid
        self.gdb_path = gdb_path
        self.gdb: GdbMI | None = None
        self.attached = False
        self.attach_seconds: float | None = None
        self.gdb_version = ""
        self.printers = "not loaded"
        self.timeout = float(os.environ.get("PYO3_DEBUG_MAGIC_GDB_TIMEOUT", "10"))
        self.breakpoints: dict[int, dict] = {}
        self.pauses: dict[int, Pause] = {}
        self.log_hits: list[dict] = []
        self.stepping_from: dict[int, tuple] = {}  # thread -> (function, file, line) before next/step
        self.pausing_allowed = True
        self.hang_bound = float(os.environ.get("PYO3_DEBUG_MAGIC_HANG_AFTER", "2"))
        self.hang_check_at: float | None = None   # an Interrupt not honoured by then is a hang
        self.watch_after: float | None = None     # %native_watch: report cells running longer
        self.watch_deadline: float | None = None
        self.hang_pause: Pause | None = None       # the main thread, stopped to show a hang
        self.hang_release_at: float | None = None
        self.hang_in_progress: HangInProgress | None = None
        self.safe_point_bound = float(os.environ.get("PYO3_DEBUG_MAGIC_SAFE_POINT_BOUND", "1"))
        self.calls_unsafe: str | None = None  # why gdb may not call into the kernel, if it may not
        self.steps_out: dict[int, int] = {}   # thread -> `finish`es made to leave C code after a step
        self.breakpoint_addresses: set[int] = set()  # where gdb has put int3 instructions
        self.refusals_shown: set[str] = set()
        self.pause_serial = 0
        self.sources_cache: list[dict] | None = None
        self.needs_handoff: set[int] = set()        # paused threads that hold the GIL again
        self.stalled: dict[int, tuple] = {}         # hits whose hand-off gdb has not answered yet
        self.late_tstates: dict[int, int] = {}      # SaveThread results that came after our wait
        self.stalls = StallWatch()
        self._running = True

    # ----- loop -----------------------------------------------------------------
    def serve(self) -> None:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel's Ctrl-C is not for us
        reader = LineReader(self.sock)
        self.stalls.start()
        try:
            while self._running:
                watched = [self.sock] + ([self.gdb.fileno()] if self.gdb and self.gdb.alive else [])
                ready, _, _ = select.select(watched, [], [], self._next_timer_in())
                self._notice_stalls()
                if self.gdb and self.gdb.alive and self.gdb.fileno() in ready:
                    self.gdb.read(0)
                self._process_gdb_events()
                if self.attached and self.gdb is not None and not self.gdb.alive:
                    self._on_gdb_died()  # first: the kernel may have died of it (the report says why)
                if self.sock in ready:
                    for request in reader.read_available():
                        self._handle(request)
                        self._process_gdb_events()
                    if reader.closed:
                        break  # the kernel went away
                if (self.needs_handoff or self.stalled) and self.gdb is not None and self.gdb.answering:
                    self._retry_handoffs()
                self._check_hang_timers()
        finally:
            self._cleanup()

    def _notice_stalls(self) -> None:
        messages = [self.stalls.agent_stopped()]
        if self.attached and self.gdb is not None and self.gdb.alive:
            gdb = self.gdb
            messages.append(self.stalls.gdb_state(lambda: gdb.stopped_by_signal, gdb.pid))
        for message in filter(None, messages):
            self._send({"event": "error", "message": message})

    def _next_timer_in(self) -> float:
        """How long the loop may wait for input: until the nearest hang timer, at most 0.5 s."""
        now = time.monotonic()
        timers = [t for t in (self.hang_check_at, self.watch_deadline, self.hang_release_at,
                              self.hang_in_progress and self.hang_in_progress.deadline) if t]
        return max(0.0, min([0.5] + [t - now for t in timers]))

    def _on_sigterm(self, signum, frame):
        raise SystemExit(0)

    def _send(self, message: dict) -> None:
        try:
            self.sock.sendall(encode(message))
        except OSError:
            self._running = False

    def _handle(self, request: dict) -> None:
        handler = getattr(self, "op_" + str(request.get("op")), None)
        reply: dict = {"id": request.get("id")}
        try:
            if handler is None:
                raise DebugMagicError(f"unknown agent request {request.get('op')!r}")
            reply.update(ok=True, result=handler(**request.get("args", {})))
        except DebugMagicError as error:
            reply.update(ok=False, error={"type": type(error).__name__, "message": error.message,
                                          "fix": error.fix})
        except GdbCommandError as error:
            reply.update(ok=False, error={"type": "UsageProblem", "message": f"gdb: {error}",
                                          "fix": "check the expression or location"})
        except ValueError as error:  # text gdb must never see (control characters, surrogates)
            reply.update(ok=False, error={"type": "UsageProblem", "message": str(error),
                                          "fix": "type it on one line, as plain text"})
        except (GdbTimeoutError, GdbExitedError) as error:
            what, fix = self._recover_from_stuck_gdb(str(error), notify=False)
            reply.update(ok=False, error={"type": "AgentError", "message": what, "fix": fix})
        except Exception as error:  # noqa: BLE001 - reported with its traceback
            reply.update(ok=False, error={"type": "AgentError",
                                          "message": f"internal agent error: {error!r}",
                                          "fix": "please report this with the traceback:\n"
                                                 + traceback.format_exc()})
        self._send(reply)

    def _mi(self, command: str, timeout: float | None = None):
        if self.gdb is None:
            raise NotAttachedError()
        return self.gdb.command(command, timeout or self.timeout)

    def _console(self, command: str) -> "MIResult":
        """A gdb CLI command (our own text only), bounded like every other command."""
        if self.gdb is None:
            raise NotAttachedError()
        return self.gdb.console_command(command, self.timeout)

    def _evaluate_c(self, thread: int, expression: str, timeout: float | None = None,
                    on_late=None) -> str:
        """An inferior call in ``thread``, parsed as C (Rust's parser rejects C casts)."""
        if self.gdb is None:
            raise NotAttachedError()
        result = self.gdb.command(f"-data-evaluate-expression --thread {thread} --frame 0 --language c "
                                  f"{mi_quote(expression)}", timeout or self.timeout, on_late=on_late)
        return result.payload.get("value", "")

    # ----- gdb events -----------------------------------------------------------
    def _process_gdb_events(self) -> None:
        if not self.gdb:
            return
        replies = []
        while self.gdb.messages:
            message = self.gdb.messages.popleft()
            if message.get("kind") == "log-hit":
                self._record_log_hit(message)
            elif message.get("kind") == "log-error":
                self._record_log_hit({**message, "error": message.get("error")})
            else:
                replies.append(message)  # a reply a request may still take; keep only the newest
        self.gdb.messages.extend(replies[-20:])
        while self.gdb.events:
            record = self.gdb.events.popleft()
            try:
                if record.get("message") in ("library-loaded", "library-unloaded"):
                    self.sources_cache = None
                elif record.get("message") == "stopped":
                    self._on_stopped(record.get("payload") or {})
                elif record.get("message") == "breakpoint-modified":
                    self._on_breakpoint_modified((record.get("payload") or {}).get("bkpt") or {})
            except (GdbTimeoutError, GdbExitedError) as error:
                self._recover_from_stuck_gdb(str(error))
            except GdbCommandError as error:
                self._send({"event": "error", "message": f"gdb: {error}"})

    def _record_log_hit(self, hit: dict) -> None:
        spec = self.breakpoints.get(int(hit.get("number", 0)), {})
        hit["location"] = spec.get("location", "")
        self.log_hits.append(hit)
        if len(self.log_hits) > 10_000:
            del self.log_hits[:5_000]

    def _on_stopped(self, stop: dict) -> None:
        thread = int(stop.get("thread-id") or 0)
        reason = stop.get("reason")
        if not thread:
            return
        hang = self.hang_in_progress
        if hang is not None and thread == hang.thread and reason != "breakpoint-hit":
            self._hang_safe_point_reached(stop)
            return
        if hang is not None and thread == hang.thread:
            self.hang_in_progress = None  # a breakpoint of the user's comes first: a pause
        if reason == "signal-received":
            signal_name = stop.get("signal-name")
            if signal_name == "SIGINT":
                self._deliver_interrupt(thread)
                if not self.pauses and self.hang_check_at is None:
                    self.hang_check_at = time.monotonic() + self.hang_bound
                self._on_interrupt()
                return
            if signal_name in CRASH_SIGNALS:
                self._capture_crash(thread, signal_name)
            self._continue(thread)  # the signal is delivered ("pass"): the process dies as it would have
            return
        if reason not in PAUSE_REASONS:
            self._continue(thread)
            return
        number = int(stop.get("bkptno") or 0) or None
        frame = stop.get("frame") or {}
        where = (frame.get("func"), frame.get("fullname"), frame.get("line"))
        started_at = self.stepping_from.pop(thread, None)
        if reason == "end-stepping-range" and started_at and started_at[0] == where and not started_at[1]:
            # Rust line tables can make `next` stop on the line it started from: step once more
            self.stepping_from[thread] = (where, True, started_at[2])
            self._mi(f"{started_at[2]} --thread {thread}")
            return
        if reason == "breakpoint-hit" and not self.pausing_allowed:
            frame = stop.get("frame") or {}
            spec = self.breakpoints.get(number or 0, {})
            spec["unattended_hits"] = spec.get("unattended_hits", 0) + 1
            self._record_log_hit({"number": number, "hit": spec["unattended_hits"], "thread": thread,
                                  "unattended": True, "values": [],
                                  "where": {"func": frame.get("func"), "file": frame.get("file"),
                                            "fullname": frame.get("fullname"),
                                            "line": int(frame.get("line") or 0) or None}})
            self._continue(thread)
            return
        self._pause(thread, reason, number, where)

    def _refresh_breakpoint_addresses(self) -> None:
        """Remember where gdb's int3 instructions are, for the day gdb dies with them inserted."""
        body = self._mi("-break-list").payload.get("BreakpointTable", {}).get("body", [])
        addresses = set()
        for bkpt in body:
            for row in bkpt.get("locations") or [bkpt]:
                try:
                    addresses.add(int(row.get("addr", ""), 16))
                except ValueError:
                    pass  # <PENDING>, <MULTIPLE>
        self.breakpoint_addresses = addresses

    def _on_breakpoint_modified(self, bkpt: dict) -> None:
        """A pending breakpoint resolved: disable locations outside the user's crates."""
        self._refresh_breakpoint_addresses()
        number = int(str(bkpt.get("number", "0")).split(".")[0] or 0)
        spec = self.breakpoints.get(number)
        if not spec or spec.get("kind") != "pause" or not spec.get("user_only"):
            return
        for location in bkpt.get("locations") or []:
            if location.get("enabled") == "y" and not is_user_source(location.get("fullname")):
                self._mi(f"-break-disable {location['number']}")

    def _pause(self, thread: int, reason: str, number: int | None, where: tuple | None = None) -> None:
        # Everything that could go wrong in gdb happens before the hand-off.
        frames = self.op_frames(thread)
        top = frames[0] if frames else {}
        if not handoff.is_safe_point(top):
            # stopped in C code (the interpreter, libc): never call into it. A step that ended
            # there finishes out to the Rust code that called it.
            steps_out = self.steps_out.get(thread, 0)
            if reason in ("end-stepping-range", "function-finished") and steps_out < 8:
                self.steps_out[thread] = steps_out + 1
                self._mi(f"-exec-finish --thread {thread}")
                return
            self.steps_out.pop(thread, None)
            self._refuse_pause(thread, number, top, "it stopped outside Rust code, where calling "
                                                    "into the process is not safe")
            return
        self.steps_out.pop(thread, None)
        if self.calls_unsafe:
            self._refuse_pause(thread, number, top, self.calls_unsafe)
            return
        details = {"frames": frames, "locals": self._locals(thread, 0, frames),
                   **self._thread_ident(thread)}
        try:
            tstate = self._hand_off(thread)
        except GdbTimeoutError:
            # gdb is stopped or stuck: queue nothing more for this thread (a queued continue
            # could run after a late SaveThread); retry once gdb answers again
            self.stalled[thread] = (reason, number, where)
            raise
        except (GdbCommandError, ValueError) as error:
            self._refuse_pause(thread, number, top, f"the GIL hand-off failed ({error})")
            return
        self.pause_serial += 1
        row = {"thread": thread, "name": "", "frames": frames, **self._thread_ident(thread)}
        self.pauses[thread] = Pause(thread, tstate, number, where, self.pause_serial, row)
        self._send({"event": "paused", "thread": thread, "reason": reason, "breakpoint": number,
                    "handed_off": tstate is not None, "pause_id": self.pause_serial, **details})

    def _hand_off(self, thread: int) -> int | None:
        """If ``thread`` (stopped at a safe point) holds the GIL, release it (an implicit
        allow_threads at this line) so the kernel's Python threads run while it waits; the saved
        thread state, or None. gdb remembers it too, for its exit path."""
        if thread in self.late_tstates:  # an earlier SaveThread that gdb answered late
            tstate = self.late_tstates.pop(thread)
            self._console(f"python note_handoff({int(thread)}, {tstate})")
            return tstate
        if self._evaluate_c(thread, handoff.CHECK_GIL) != "1":
            return None

        def saved_late(record: dict) -> None:
            if record.get("message") == "done":
                self.late_tstates[thread] = handoff.parse_tstate((record.get("payload") or {}).get("value", "0"))

        expected = handoff.parse_tstate(self._evaluate_c(thread, handoff.THIS_THREAD_STATE))
        try:
            tstate = handoff.parse_tstate(self._evaluate_c(thread, handoff.SAVE_THREAD, on_late=saved_late))
        except GdbCommandError as error:
            if "stopped while in a function called from GDB" not in str(error) or not expected:
                raise
            # SaveThread let a thread waiting for the GIL run, and it reached a breakpoint
            # before gdb saw SaveThread return; gdb abandoned the call. SaveThread still ends:
            # gdb stops the thread silently where the call began; its result is the state read first.
            self._finish_suspended_call(thread)
            tstate = expected
        self._console(f"python note_handoff({int(thread)}, {tstate})")
        return tstate

    def _retry_handoffs(self) -> None:
        """gdb answers again after a stall: hand the GIL over where a late answer left a thread
        holding it, and finish pauses whose hand-off was cut short."""
        for thread in list(self.needs_handoff):
            self.needs_handoff.discard(thread)
            pause = self.pauses.get(thread)
            if pause is not None and pause.tstate is None:
                try:
                    pause.tstate = self._hand_off(thread)
                except (GdbCommandError, GdbTimeoutError, ValueError) as error:
                    self._send({"event": "error", "message": f"thread {thread} could not hand its GIL "
                                                             f"over again ({error}); the kernel waits for it"})
        for thread, (reason, number, where) in list(self.stalled.items()):
            del self.stalled[thread]
            try:
                self._pause(thread, reason, number, where)
            except (GdbCommandError, GdbTimeoutError) as error:
                self._send({"event": "error", "message": f"pausing thread {thread} failed: {error}"})

    def _refuse_pause(self, thread: int, number: int | None, top: dict, why: str) -> None:
        """A pause that cannot be made safely: the thread runs on as it was, and the user is told."""
        self._continue(thread)
        where = f"{top.get('file') or top.get('func') or '?'}:{top.get('line') or '?'}"
        self._record_log_hit({"number": number, "hit": 0, "thread": thread, "values": [],
                              "error": f"not paused: {why}",
                              "where": {"func": top.get("func"), "file": top.get("file"),
                                        "fullname": top.get("fullname"), "line": top.get("line")}})
        if why not in self.refusals_shown:  # once per cell, not once per hit
            self.refusals_shown.add(why)
            self._send({"event": "error", "message": f"thread {thread} was not paused at {where}: {why}; "
                                                     "it runs on (later hits in this cell are logged)"})

    def _thread_ident(self, thread: int) -> dict:
        info = self._mi(f"-thread-info {thread}").payload.get("threads") or [{}]
        match = THREAD_IDENT.search(info[0].get("target-id", ""))
        return {"ident": int(match.group(1), 16), "lwp": int(match.group(2))} if match else {}

    def _locals(self, thread: int, frame: int, frames: list[dict] | None = None) -> list[dict]:
        frames = frames if frames is not None else self.op_frames(thread)
        row = frames[frame] if 0 <= frame < len(frames) else {}
        # full values (pretty-printed) for the user's code; macro-generated and library frames
        # get simple values only (gdb 13 has crashed printing pyo3's wrapper locals)
        user = is_user_source(row.get("fullname")) and not str(row.get("func", "")).split("::")[-1].startswith("__py")
        mode = "--all-values" if user else "--simple-values"
        try:
            payload = self._mi(f"-stack-list-variables --thread {thread} --frame {frame} {mode}").payload
        except GdbCommandError as error:
            return [{"name": "<error>", "value": str(error)}]
        return [{"name": v.get("name"), "value": v.get("value", "")[:2000], "arg": v.get("arg") == "1"}
                for v in payload.get("variables", [])]

    def _continue(self, thread: int) -> None:
        try:
            self._mi(f"-exec-continue --thread {thread}")
        except GdbCommandError:
            pass  # already running or gone

    def _give_back_gil(self, pause: Pause) -> None:
        """RestoreThread in the paused thread. It waits while a running thread holds the GIL
        (bounded by gdb's call timeout); if gdb answers only after our wait (gdb was stopped),
        the late answer still records that the thread has its GIL again."""
        if pause.tstate is None:
            return
        blocker = self._stopped_gil_holder(pause.thread)
        if blocker is not None:  # RestoreThread would wait for a GIL that cannot come free
            raise UsageProblem(f"thread {pause.thread} cannot take its GIL back: thread {blocker} holds "
                               "it and is stopped", f"let thread {blocker} run on first")

        def restored_late(record: dict) -> None:
            if record.get("message") == "done":
                # the thread holds its GIL again but is still stopped: the kernel is frozen
                # until it hands the GIL over again (the main loop does, at once)
                pause.tstate = None
                self.needs_handoff.add(pause.thread)

        try:
            self._evaluate_c(pause.thread, handoff.restore_thread(pause.tstate), on_late=restored_late)
        except GdbCommandError as error:
            if "Invalid thread id" in str(error):
                pass  # the thread is gone (the process is exiting): nothing to give back
            elif "stopped while in a function called from GDB" in str(error):
                # another thread stopped during the call: RestoreThread still ends, and gdb
                # stops this thread silently where the call began
                self._finish_suspended_call(pause.thread)
            else:
                raise
        pause.tstate = None
        self._python_quiet(f"note_restored({int(pause.thread)})")

    def _finish_suspended_call(self, thread: int) -> None:
        """A call gdb abandoned (another thread stopped meanwhile) still runs to its end; gdb
        then stops the thread silently where the call began, its registers restored (a
        ``*stopped`` record without payload). Wait for that; never continue the thread, which
        would run on from its breakpoint with the GIL given away."""
        deadline = time.monotonic() + self.timeout
        wanted = str(thread)
        while time.monotonic() < deadline:
            self.gdb.read(0.02)
            if self._thread_state(thread) == "stopped":
                for record in list(self.gdb.events):  # its stop is ours, not a new one
                    payload = record.get("payload") or {}
                    if record.get("message") == "stopped" and payload.get("thread-id") == wanted:
                        self.gdb.events.remove(record)
                return
        raise GdbTimeoutError(f"thread {thread} did not return from the call gdb abandoned")

    def _thread_state(self, thread: int) -> str | None:
        rows = self._mi(f"-thread-info {int(thread)}").payload.get("threads") or []
        return rows[0].get("state") if rows else None

    def _stopped_gil_holder(self, thread: int) -> int | None:
        """The gdb number of another thread that holds the GIL while stopped, read from memory
        (None when the GIL is free, held by a running thread, or libpython has no debug info)."""
        self._console("python emit_python_stacks()")
        python = self.gdb.take_message("python-stacks") or {}
        holder = next((t for t in python.get("threads", []) if t.get("holds_gil")), None)
        if not python.get("gil_known") or holder is None or not holder.get("native_thread_id"):
            return None
        for row in self._mi("-thread-info").payload.get("threads", []):
            match = THREAD_IDENT.search(row.get("target-id", ""))
            if match and int(match.group(2)) == holder["native_thread_id"]:
                number = int(row["id"])
                return number if number != thread and row.get("state") == "stopped" else None
        return None

    def _python_quiet(self, call: str) -> None:
        try:
            self.gdb.console_command(f"python {call}", timeout=2)
        except (GdbCommandError, GdbTimeoutError, GdbExitedError):
            pass

    def _end_pauses(self) -> tuple[list[int], list[str]]:
        """Give every paused thread its GIL back and let it run, one thread at a time (each
        RestoreThread waits for the GIL the previous thread took); (ended pause ids, problems)."""
        resumed, problems = [], []
        if not self.pauses:
            return resumed, problems
        # No thread may stop at a breakpoint while another's RestoreThread runs: gdb would
        # abandon that call halfway. Pausing breakpoints are off until every pause has ended.
        disabled = self._disable_pausing_breakpoints()
        try:
            resumed, problems = self._end_pauses_one_by_one()
        finally:
            self._enable_breakpoints(disabled)
        return resumed, problems

    def _enable_breakpoints(self, numbers: list[int]) -> None:
        if numbers and self.gdb is not None and self.gdb.alive:
            try:
                self._mi("-break-enable " + " ".join(map(str, numbers)))
            except GdbCommandError:
                pass  # deleted meanwhile (q)

    def _disable_pausing_breakpoints(self) -> list[int]:
        body = self._mi("-break-list").payload.get("BreakpointTable", {}).get("body", [])
        enabled = [int(b["number"]) for b in body if b.get("enabled") == "y"
                   and self.breakpoints.get(int(b["number"]), {}).get("kind") == "pause"]
        if enabled:
            self._mi("-break-disable " + " ".join(map(str, enabled)))
        return enabled

    def _end_pauses_one_by_one(self) -> tuple[list[int], list[str]]:
        resumed, problems = [], []
        for pause in list(self.pauses.values()):
            try:
                self._give_back_gil(pause)
            except (GdbCommandError, GdbTimeoutError, UsageProblem) as error:
                problems.append(f"thread {pause.thread} keeps waiting for its GIL ({error})")
                continue
            self._continue(pause.thread)
            self.pauses.pop(pause.thread, None)
            resumed.append(pause.serial)
        return resumed, problems

    def _deliver_interrupt(self, thread: int) -> None:
        """Let the SIGINT that ``thread`` took become the cell's KeyboardInterrupt: deliver it
        first, so its C handler (in that thread) flags the interrupt before a paused main
        thread runs on; the short grace lets that thread be scheduled on a busy machine."""
        self._continue(thread)
        if self.pauses:
            time.sleep(INTERRUPT_GRACE)

    def _is_main_thread(self, thread: int) -> bool:
        return self._thread_ident(thread).get("lwp") == self.target_pid

    def _on_interrupt(self) -> None:
        """The kernel's Interrupt button: end every pause cleanly; Python raises KeyboardInterrupt."""
        if not self.pauses:
            return
        self.pausing_allowed = False  # the rest of this cell only logs; the next cell resets it
        main = next((t for t in self.pauses if self._is_main_thread(t)), None)
        if main is not None:
            # Python raises KeyboardInterrupt in the main thread once some thread's C handler
            # has flagged the signal; the thread that took it may run only after the resumed
            # main thread has finished the cell (seen in full-suite runs). Flag it from the
            # paused main thread too: signal-safe, no GIL needed, merged with the real one.
            try:
                self._evaluate_c(main, handoff.SET_INTERRUPT)
            except (GdbCommandError, GdbTimeoutError):
                pass  # the real signal still arrives
        ended, problems = self._end_pauses()
        if main is not None and ignores_signal(self.target_pid):
            problems.append("this process ignores SIGINT (it was started with SIGINT ignored, e.g. in "
                            "the background), so no KeyboardInterrupt is raised: the cell runs to its end")
        self._send({"event": "interrupted", "ended": ended, "problems": problems})

    def _recover_from_stuck_gdb(self, what: str, notify: bool = True) -> tuple[str, str]:
        """gdb did not answer; (what happened, what to do), also sent as an event if ``notify``.

        A stopped gdb (SIGSTOP) answers later: paused threads stay paused (their GIL is free,
        the kernel runs) and late answers are matched by token. A busy gdb has its command
        abandoned (SIGINT; calls unwind), then every pause ends. A gdb that exited meanwhile
        can do neither: its death is handled (breakpoint bytes, crash report) instead."""
        if self.attached and self.gdb is not None and not self.gdb.alive:
            self._on_gdb_died()  # sends its own event
            return f"{what}: gdb exited", "`%native_attach` starts it again"
        if self.gdb and self.gdb.stopped_by_signal:
            message = (f"{what}: gdb (pid {self.gdb.pid}) is stopped (SIGSTOP?); paused threads stay "
                       "paused and the kernel keeps running")
            fix = f"continue gdb (`kill -CONT {self.gdb.pid}`) and try again, or run `%native_detach`"
        else:
            if self.gdb and self.gdb.alive:
                self.gdb.interrupt()
                self.gdb.wait_for(lambda r: r.get("type") == "result", 5)
            _, problems = self._end_pauses()
            message = f"{what}; the command was abandoned and paused threads were resumed" + (
                f" ({'; '.join(problems)})" if problems else "")
            fix = "try again; `%native_detach` resets the debugger"
        if notify:
            self._send({"event": "error", "message": f"{message}: {fix}"})
        return message, fix

    def _on_gdb_died(self) -> None:
        """gdb is gone (killed). Its int3 instructions would kill the kernel with SIGTRAP at the
        next hit: put the original bytes back. A thread stopped at a breakpoint when gdb died
        (paused, or in the instant of a log hit) gets that SIGTRAP at once: such a kernel cannot
        be saved, and the crash report says why."""
        status = self.gdb.exit_status if self.gdb else None
        gdb_pid = self.gdb.pid if self.gdb else None
        # the user's breakpoints first (the next hit may be close), then whatever else gdb left
        removed = remove_breakpoint_instructions(self.target_pid, self.breakpoint_addresses)
        removed += remove_every_breakpoint_instruction(self.target_pid)
        message = (f"gdb exited unexpectedly ({status}); {removed} breakpoint instruction(s) it left were "
                   "removed from the kernel's memory; breakpoints are gone. `%native_attach` starts again")
        ended = [pause.serial for pause in self.pauses.values()]
        if self._target_dies_within(GDB_DEATH_GRACE):
            self._report_death_with_gdb(gdb_pid)
        self.attached = False
        self.pauses.clear()
        self.breakpoints.clear()
        self.breakpoint_addresses.clear()
        self.gdb = None
        self._send({"event": "gdb-died", "message": message, "ended": ended})

    def _target_dies_within(self, seconds: float) -> bool:
        return wait_until(lambda: not target_alive(self.target_pid), seconds)

    def _report_death_with_gdb(self, gdb_pid: int | None) -> None:
        """The kernel died right after gdb: a thread was stopped at one of its breakpoints."""
        pause = next(iter(self.pauses.values()), None)
        if pause is not None:
            function, file, line = pause.where or ("?", "?", "?")
            stopped = f"thread {pause.thread} was paused at breakpoint {pause.breakpoint} in {function} at {file}:{line}"
        elif self.breakpoints:
            numbers = ", ".join(str(n) for n in sorted(self.breakpoints))
            stopped = f"a thread was stopped for an instant at log breakpoint {numbers}"
        else:
            stopped = "a thread was stopped for an instant at one of gdb's own breakpoints"
        summary = (f"SIGTRAP: gdb (pid {gdb_pid}) was killed while {stopped}; a thread stopped by a "
                   "debugger gets its breakpoint's SIGTRAP when the debugger dies, so no kernel survives "
                   "that (keep gdb alive while a thread is paused; `%native_detach` ends it cleanly)")
        self._write_report({"signal": "SIGTRAP", "thread": pause.thread if pause else None, "summary": summary,
                            "threads": [pause.row] if pause is not None and pause.row else [], "python": {}})

    # ----- requests: attach ------------------------------------------------------
    def _ensure_gdb(self) -> GdbMI:
        if self.gdb is None or not self.gdb.alive:
            started = start_gdb(self.gdb_path, live=True)
            self.gdb, self.gdb_version, self.printers = started.gdb, started.version, started.printers
            self.calls_unsafe = calls_unsafe_reason(self.gdb_version, cpu_has_amx())
        return self.gdb

    def _python(self, function: str, argument, raw: bool = False):
        """Call a gdb_side function with one argument, base64-encoded unless ``raw`` (trusted)."""
        encoded = argument if raw else base64.b64encode(json.dumps(argument).encode()).decode()
        return self._console(f"python {function}({encoded!r})")

    def op_attach(self, identity: dict | None = None) -> dict:
        self.identity = identity or self.identity
        if self.attached:
            return self.op_status()
        self.sources_cache = None
        gdb = self._ensure_gdb()
        started = time.monotonic()
        try:
            gdb.console_command(f"attach {int(self.target_pid)}&", timeout=ATTACH_TIMEOUT)
        except GdbCommandError as error:
            message, fix = explain_attach_failure(str(error), self.target_pid)
            raise AttachError(message, fix) from None
        running = gdb.wait_for(lambda r: r.get("message") == "running", ATTACH_TIMEOUT)
        if running is None:
            raise AttachError(f"gdb attached to {self.target_pid} but the threads did not resume",
                              "run `%native_detach`; if the kernel is frozen, restart it")
        self.attached = True
        self.attach_seconds = time.monotonic() - started
        return self.op_status()

    def op_detach(self) -> dict:
        if not self.attached:
            raise NotAttachedError()
        self._detach()
        return self.op_status()

    def op_status(self) -> dict:
        threads = []
        if self.attached and self.gdb:
            info = self._mi("-thread-info", 5).payload
            threads = [{"id": t.get("id"), "name": t.get("name"), "state": t.get("state")}
                       for t in info.get("threads", [])]
        return {"attached": self.attached, "target_pid": self.target_pid,
                "gdb_pid": self.gdb.pid if self.gdb else None, "gdb_version": self.gdb_version,
                "attach_seconds": self.attach_seconds, "threads": threads,
                "printers": self.printers, "paused_threads": sorted(self.pauses),
                "calls_unsafe": self.calls_unsafe}

    def op_shutdown(self) -> dict:
        self._running = False
        return {"detached": self.attached}

    # ----- requests: breakpoints -------------------------------------------------
    def _require_attached(self) -> None:
        if not self.attached:
            raise NotAttachedError()

    def op_sources(self) -> list[dict]:
        """Every source file with line info in the loaded shared objects (read again only
        after a library was loaded or unloaded: gdb takes 0.1 s or more to list them)."""
        self._require_attached()
        if self.sources_cache is None:
            self.sources_cache = self._read_sources()
        return self.sources_cache

    def _read_sources(self) -> list[dict]:
        payload = self._mi("-file-list-exec-source-files --group-by-objfile", 30).payload
        found = []
        for group in payload.get("files", []):
            for source in group.get("sources", []):
                found.append({"objfile": group.get("filename"), "fullname": source.get("fullname"),
                              "filename": source.get("filename")})
        return found

    def op_functions(self, crate: str) -> list[str]:
        """Names of the functions with debug info in ``crate`` (for "did you mean")."""
        self._require_attached()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", crate):
            raise UsageProblem(f"not a crate name: {crate!r}", "crate names are Rust identifiers")
        payload = self._mi(f"-symbol-info-functions --name {mi_quote('^' + crate + '::')} --max-results 2000",
                           30).payload
        return sorted({symbol.get("name", "") for group in payload.get("symbols", {}).get("debug", [])
                       for symbol in group.get("symbols", [])} - {""})

    def op_break_insert(self, kind: str, source: str | None = None, line: int | None = None,
                        function: str | None = None, condition: str | None = None, ignore: int = 0,
                        temporary: bool = False, expressions: list[str] | None = None,
                        backtrace: bool = False, user_only: bool = False, location: str = "") -> dict:
        self._require_attached()
        if kind == "log":
            spec = {"source": source, "line": line, "function": function, "condition": condition,
                    "ignore": ignore, "temporary": temporary, "expressions": expressions or [],
                    "backtrace": backtrace}
            self._python("add_log_breakpoint", spec)
            created = self.gdb.take_message("log-created") or {"error": "gdb did not answer"}
            if created.get("error"):
                raise UsageProblem(f"cannot set a log breakpoint at {location}: {created['error']}",
                                   "check the location (file:line or crate::function)")
            number = int(created["number"])
            self.breakpoints[number] = {"kind": "log", "location": location, "condition": condition,
                                        "expressions": expressions or []}
            self._refresh_breakpoint_addresses()
            return {"number": number, "pending": created.get("pending"),
                    "locations": created.get("locations", [])}
        command = ["-break-insert", "-f"]
        if temporary:
            command.append("-t")
        if condition:
            command += ["-c", mi_quote(condition)]
        if ignore:
            command += ["-i", str(int(ignore))]
        if function:
            command += ["--function", mi_quote(function)]
        else:
            command += ["--source", mi_quote(source or ""), "--line", str(int(line or 0))]
        bkpt = self._mi(" ".join(command)).payload.get("bkpt", {})
        number = int(bkpt.get("number", 0))
        self.breakpoints[number] = {"kind": "pause", "location": location, "condition": condition,
                                    "user_only": user_only}
        self._on_breakpoint_modified(bkpt)
        return {"number": number, "pending": bkpt.get("addr") == "<PENDING>",
                "locations": self._bkpt_locations(bkpt)}

    @staticmethod
    def _bkpt_locations(bkpt: dict) -> list[dict]:
        rows = bkpt.get("locations") or ([bkpt] if bkpt.get("addr") not in (None, "<PENDING>") else [])
        return [{"address": r.get("addr"), "fullname": r.get("fullname"),
                 "line": int(r.get("line") or 0) or None, "func": r.get("func"),
                 "enabled": r.get("enabled", "y") == "y"} for r in rows]

    def op_break_list(self) -> list[dict]:
        self._require_attached()
        body = self._mi("-break-list").payload.get("BreakpointTable", {}).get("body", [])
        logs = [n for n, spec in self.breakpoints.items() if spec["kind"] == "log"]
        counts = {}
        if logs:
            self._python("log_breakpoint_hits", logs)
            counts = (self.gdb.take_message("log-counts") or {}).get("counts", {})
        rows = []
        for bkpt in body:
            number = int(bkpt.get("number", 0))
            spec = self.breakpoints.get(number)
            if spec is None:
                continue
            hits = counts.get(str(number), int(bkpt.get("times", 0) or 0))
            rows.append({"number": number, "kind": spec["kind"], "location": spec["location"],
                         "enabled": bkpt.get("enabled") == "y", "hits": hits,
                         "condition": spec.get("condition"), "pending": bkpt.get("addr") == "<PENDING>",
                         "locations": [loc for loc in self._bkpt_locations(bkpt) if loc["enabled"]]})
        return rows

    def _known(self, numbers: list[int]) -> list[int]:
        unknown = [n for n in numbers if n not in self.breakpoints]
        if unknown:
            raise UsageProblem(f"no breakpoint number {unknown[0]}",
                               "`%native_break` with no argument lists them")
        return numbers

    def op_break_delete(self, numbers: list[int] | None = None) -> list[int]:
        """Delete the given breakpoints; None deletes every breakpoint gdb has, known or not."""
        self._require_attached()
        if numbers is None:
            numbers = sorted(self.breakpoints)
            self._mi("-break-delete")
        elif self._known(numbers):
            self._mi("-break-delete " + " ".join(str(int(n)) for n in numbers))
        for number in numbers:
            if self.breakpoints.pop(number, {}).get("kind") == "log":
                self._console(f"python forget_log_breakpoint({int(number)})")
        self._refresh_breakpoint_addresses()
        return numbers

    def op_break_enable(self, numbers: list[int], enabled: bool) -> list[int]:
        self._require_attached()
        numbers = self._known(numbers)
        verb = "-break-enable" if enabled else "-break-disable"
        self._mi(f"{verb} " + " ".join(str(int(n)) for n in numbers))
        return numbers

    def op_cell(self, pausing_allowed: bool) -> dict:
        """A cell starts: can it answer a pause (no stdin: breakpoints only log)? Arms %native_watch."""
        self.pausing_allowed = bool(pausing_allowed)
        self.refusals_shown.clear()
        self.hang_check_at = None
        self.watch_deadline = time.monotonic() + self.watch_after if self.watch_after else None
        return {"pausing_allowed": self.pausing_allowed}

    def op_cell_done(self) -> dict:
        """The cell ended: no hang to report."""
        self.hang_check_at = self.watch_deadline = None
        return {}

    def op_watch(self, seconds: float | None) -> dict:
        self.watch_after = float(seconds) if seconds else None
        return {"watch_after": self.watch_after}

    # ----- hangs --------------------------------------------------------------------
    def _check_hang_timers(self) -> None:
        now = time.monotonic()
        hang = self.hang_in_progress
        if hang is not None and not hang.interrupted and now >= hang.deadline:
            hang.interrupted = True  # its stop record ends the diagnosis without a hand-off
            try:
                self._mi(f"-exec-interrupt --thread {hang.thread}")
            except GdbCommandError:
                pass
        if self.hang_pause is not None and self.hang_release_at and now >= self.hang_release_at:
            self.op_hang_done()
        if not self.attached or self.hang_pause is not None or self.pauses or self.hang_in_progress:
            return
        reason = None
        if self.hang_check_at is not None and now >= self.hang_check_at:
            reason = f"the Interrupt was not honoured within {self.hang_bound:g} s"
            self.hang_check_at = None
        elif self.watch_deadline is not None and now >= self.watch_deadline:
            reason = f"the cell has run longer than {self.watch_after:g} s (%native_watch)"
            self.watch_deadline = None
        if reason:
            try:
                self._report_hang(reason)
            except (GdbTimeoutError, GdbExitedError) as error:
                self._recover_from_stuck_gdb(str(error))
            except GdbCommandError as error:
                self._send({"event": "error", "message": f"hang diagnosis failed: {error}"})

    def _report_hang(self, reason: str) -> None:
        """Stop the main thread just long enough to show where it is; it is never killed.

        Nothing is called in it where it was interrupted (it may be inside libc, the allocator
        or the interpreter). Its stacks and whether it holds the GIL are read from memory. If it
        holds the GIL, the kernel cannot show anything until it lets go: it runs on to a safe
        point in the user's crate (the next line, or the return into the crate's frame) and
        hands the GIL over there."""
        main = 1
        state = (self._mi(f"-thread-info {main}").payload.get("threads") or [{}])[0].get("state")
        if state == "running":
            self._stop_threads([main])
            self._drop_stop_records([main])
        frames = self.op_frames(main)
        self._console("python emit_python_stacks()")
        python = self.gdb.take_message("python-stacks") or {}
        if python.get("error"):
            python = self._python_stacks_from_py_spy(python["error"])
        ident = self._thread_ident(main)
        holds = self._holds_gil(python, ident)
        user_level = first_user_level(frames)
        if holds is False or user_level is None or self.calls_unsafe:
            self._continue(main)
            note = None
            if holds:
                note = ("it holds the GIL outside your crate, so this was shown when it let go"
                        if not self.calls_unsafe else self.calls_unsafe)
            self._send_hang(reason, main, frames, python, ident, holds, note)
            return
        self.hang_in_progress = HangInProgress(reason, main, frames, python, ident,
                                               time.monotonic() + self.safe_point_bound)
        if user_level == 0:
            self._mi(f"-exec-next --thread {main}")
        else:
            self._mi(f"-exec-finish --thread {main} --frame {user_level - 1}")

    @staticmethod
    def _holds_gil(python: dict, ident: dict) -> bool | None:
        if not python.get("gil_known"):
            return None
        for row in python.get("threads", []):
            if row.get("thread_id") == ident.get("ident") or (
                    row.get("native_thread_id") and row.get("native_thread_id") == ident.get("lwp")):
                return bool(row.get("holds_gil"))
        return False

    def _hang_safe_point_reached(self, stop: dict) -> None:
        """The hung thread stopped again: at a safe point (hand off, then show), or because the
        bound passed (show without a hand-off)."""
        hang, self.hang_in_progress = self.hang_in_progress, None
        frames = self.op_frames(hang.thread)
        top = frames[0] if frames else {}
        tstate = None
        note = None
        if not hang.interrupted and handoff.is_safe_point(top):
            try:
                tstate = self._hand_off(hang.thread)
                hang.frames = frames
            except (GdbCommandError, GdbTimeoutError, ValueError) as error:
                note = f"the GIL hand-off failed ({error}), so this was shown when it let go"
        else:
            note = (f"it holds the GIL and reached no line of your crate within {self.safe_point_bound:g} s, "
                    "so this was shown when it let go")
        if tstate is None:
            self._continue(hang.thread)
        else:
            self.hang_pause = Pause(hang.thread, tstate, None)
            self.hang_release_at = time.monotonic() + 10
        self._send_hang(hang.reason, hang.thread, hang.frames, hang.python, hang.ident, True, note)

    def _send_hang(self, reason, thread, frames, python, ident, holds, note) -> None:
        self._send({"event": "hang", "reason": reason, "thread": thread, "frames": frames,
                    "python": python, "holds_gil": holds, "note": note, **ident})

    def op_hang_done(self) -> dict:
        """The kernel has shown the hang: give the GIL back and let the thread run on."""
        pause, self.hang_pause = self.hang_pause, None
        self.hang_release_at = None
        if pause is not None:
            self._give_back_gil(pause)
            self._continue(pause.thread)
        return {}

    def op_logs(self) -> list[dict]:
        hits, self.log_hits = self.log_hits, []
        return hits

    # ----- crashes ------------------------------------------------------------------
    def _capture_crash(self, thread: int, signal_name: str) -> None:
        """Record everything about a crash before the process dies; never raises."""
        report = {"version": 1, "uid": os.getuid(), "pid": self.target_pid, "time": time.time(),
                  "kernel_id": self.identity.get("kernel_id"), "signal": signal_name, "thread": thread}
        try:
            report.update(self._crash_details(thread, signal_name))
        except Exception as error:  # noqa: BLE001 - a partial report beats none
            report["capture_error"] = f"{type(error).__name__}: {error}"
        if self.stderr_tee is not None:
            report["stderr_tail"] = self.stderr_tee.tail()
        report["summary"] = crash_summary(report)
        self._write_report(report)
        self._send({"event": "crash", "signal": signal_name, "thread": thread,
                    "summary": report["summary"], "path": report.get("path")})

    def _write_report(self, report: dict) -> None:
        """A 0600 report in the kernel's report directory, tied to the process that died."""
        report.setdefault("version", 1)
        report.setdefault("uid", os.getuid())
        report.setdefault("pid", self.target_pid)
        report.setdefault("time", time.time())
        report.setdefault("kernel_id", self.identity.get("kernel_id"))
        directory = self.identity.get("report_dir")
        if not directory:
            return
        path = Path(directory) / f"crash-{self.target_pid}-{int(report['time'])}.json"
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(report, handle, indent=1)
            report["path"] = str(path)
        except OSError as error:
            print(f"pyo3_debug_magic agent: cannot write {path}: {error}", file=sys.stderr)

    def _crash_details(self, thread: int, signal_name: str) -> dict:
        def c_value(expression: str) -> str | None:
            try:
                return self._mi(f"-data-evaluate-expression --thread {thread} --frame 0 --language c "
                                f"{mi_quote(expression)}", 5).payload.get("value")
            except (GdbCommandError, GdbTimeoutError):
                return None

        fault = c_value("(long)$_siginfo._sifields._sigfault.si_addr") if signal_name != "SIGABRT" else None
        stack_pointer = c_value("(long)$sp")
        instruction = ""
        try:
            instruction = self.gdb.command(f"-interpreter-exec --thread {thread} console {mi_quote('x/i $pc')}",
                                           5).console_text.strip()
        except (GdbCommandError, GdbTimeoutError):
            pass
        depth = None
        try:
            depth = int(self._mi(f"-stack-info-depth --thread {thread} 5000", 10).payload.get("depth", 0))
        except (GdbCommandError, GdbTimeoutError, ValueError):
            pass
        snapshot = self.op_snapshot()
        if (snapshot.get("python") or {}).get("error"):
            snapshot["python"] = self._python_stacks_from_py_spy(snapshot["python"]["error"])
        faulting = next((row for row in snapshot["threads"] if row["thread"] == thread), {"frames": []})
        user_level = first_user_level(faulting["frames"])
        local_values = self._locals(thread, user_level, faulting["frames"]) if user_level is not None else []
        return {"fault_address": hex(_as_int(fault)) if _as_int(fault) is not None else None,
                "stack_pointer": hex(_as_int(stack_pointer)) if _as_int(stack_pointer) is not None else None,
                "instruction": instruction, "stack_depth": depth,
                "stack_overflow": looks_like_stack_overflow(signal_name, fault, stack_pointer,
                                                            faulting["frames"]),
                "threads": snapshot["threads"], "python": snapshot["python"],
                "faulting_user_frame": user_level, "locals": local_values}

    def _python_stacks_from_py_spy(self, problem: str) -> dict:
        """libpython without debug info: `py-spy dump --nonblocking` works while gdb holds ptrace."""
        from ..errors import DebugMagicError
        from ..pyspy import dump

        try:
            threads = dump(self.target_pid, nonblocking=True)
        except DebugMagicError as error:
            return {"error": f"{problem}; py-spy fallback: {error}"}
        return {"source": "py-spy", "gil_known": True, "threads": [
            {"thread_id": None, "native_thread_id": t.os_thread_id, "holds_gil": t.holds_gil,
             "frames": [{"file": e.file, "function": e.function, "line": e.line}
                        for e in t.entries if e.kind == "python"]} for t in threads]}

    # ----- requests: snapshots ----------------------------------------------------
    def op_snapshot(self, threads: list[int] | None = None, with_locals: bool = False) -> dict:
        """Every thread's native frames and Python frames (read from memory), then resume.

        Threads paused by the user stay paused; only the threads this snapshot stopped are
        resumed, and their stop records are not mistaken for anything else.
        """
        self._require_attached()
        info = self._mi("-thread-info").payload.get("threads", [])
        stopped_here = []
        try:
            stopped_here = self._stop_threads([int(t["id"]) for t in info if t.get("state") == "running"])
            rows = []
            for thread in info:
                number = int(thread["id"])
                if threads and number not in threads:
                    continue
                match = THREAD_IDENT.search(thread.get("target-id", ""))
                frames = self.op_frames(number)
                row = {"thread": number, "name": thread.get("name"),
                       "ident": int(match.group(1), 16) if match else None,
                       "lwp": int(match.group(2)) if match else None,
                       "paused": number in self.pauses, "frames": frames}
                if with_locals and frames:
                    level = first_user_level(frames) or 0  # the user's own frame says the most
                    row["locals"] = self._locals(number, level, frames)
                    row["locals_of"] = f"#{level} {frames[level].get('func', '??')}"
                rows.append(row)
            self._console("python emit_python_stacks()")
            python = self.gdb.take_message("python-stacks") or {"error": "no answer from gdb"}
        finally:
            for thread in stopped_here:
                self._continue(thread)
            self._drop_stop_records(stopped_here)
        return {"threads": rows, "python": python}

    def _stop_threads(self, threads: list[int]) -> list[int]:
        """Interrupt ``threads`` and wait until gdb reports them stopped (by state, since
        their stop records may already have been read); returns those interrupted."""
        interrupted = []
        for thread in threads:
            self._mi(f"-exec-interrupt --thread {thread}")
            interrupted.append(thread)
        pending = set(interrupted)
        deadline = time.monotonic() + self.timeout
        while pending and time.monotonic() < deadline:
            states = self._mi("-thread-info").payload.get("threads", [])
            pending = {int(t["id"]) for t in states if t.get("state") == "running"} & pending
            if pending:
                self.gdb.read(0.02)
        return interrupted

    def _drop_stop_records(self, threads: list[int]) -> None:
        if not self.gdb:
            return
        self.gdb.read(0)
        wanted = {str(t) for t in threads}
        kept = [r for r in self.gdb.events if not (
            r.get("message") == "stopped" and (r.get("payload") or {}).get("thread-id") in wanted
            and (r.get("payload") or {}).get("reason") in (None, "signal-received")
            and (r.get("payload") or {}).get("signal-name") in (None, "0", "SIGINT"))]
        self.gdb.events.clear()
        self.gdb.events.extend(kept)

    # ----- requests: a paused thread ----------------------------------------------
    def _paused(self, thread: int) -> Pause:
        pause = self.pauses.get(int(thread))
        if pause is None:
            raise UsageProblem(f"thread {thread} is not paused", "it was resumed or has exited")
        return pause

    def op_frames(self, thread: int) -> list[dict]:
        return frames_from_mi(self._mi(f"-stack-list-frames --thread {int(thread)} 0 63").payload.get("stack", []))

    def op_locals(self, thread: int, frame: int = 0) -> list[dict]:
        self._paused(thread)
        return self._locals(int(thread), int(frame))

    def op_evaluate(self, thread: int, frame: int, expression: str) -> str:
        self._paused(thread)
        result = self._mi(f"-data-evaluate-expression --thread {int(thread)} --frame {int(frame)} "
                          f"{mi_quote(expression)}")
        return result.payload.get("value", "")

    def op_resume(self, thread: int, how: str, frame: int = 0) -> dict:
        """next / step / finish / continue: give the GIL back first, then let the thread go."""
        commands = {"next": "-exec-next", "step": "-exec-step", "finish": "-exec-finish",
                    "continue": "-exec-continue"}
        if how not in commands:
            raise UsageProblem(f"unknown resume mode {how!r}", "use next, step, finish or continue")
        pause = self._paused(thread)
        try:
            self._give_back_gil(pause)
        except GdbCommandError as error:
            raise UsageProblem(f"thread {pause.thread} could not take its GIL back ({error})",
                               "it stays paused; try again in a moment") from None
        del self.pauses[pause.thread]
        if how in ("next", "step") and pause.where:
            self.stepping_from[pause.thread] = (pause.where, False, commands[how])
        frame_option = f" --frame {int(frame)}" if how == "finish" else ""
        self._mi(f"{commands[how]} --thread {pause.thread}{frame_option}")
        return {"thread": pause.thread, "how": how}

    def op_quit(self) -> dict:
        """Delete every breakpoint and let every paused thread run."""
        self.op_hang_done()
        deleted = self.op_break_delete(None) if self.attached else []
        resumed, problems = self._end_pauses()
        if problems:
            raise UsageProblem("; ".join(problems), "run `q` again in a moment")
        return {"deleted": deleted, "resumed": resumed}

    # ----- exit path --------------------------------------------------------------
    def _detach(self) -> None:
        if not (self.gdb and self.attached):
            return
        try:
            deadline = time.monotonic() + DETACH_TIMEOUT * 4
            while True:
                try:
                    self.op_quit()  # no breakpoint may outlive us: the kernel would die of SIGTRAP
                    break
                except UsageProblem as problem:  # a thread still waits for its GIL: retry, bounded
                    if time.monotonic() > deadline:
                        print(f"pyo3_debug_magic agent: detaching anyway: {problem}", file=sys.stderr)
                        break
                    time.sleep(0.2)
                except Exception as error:  # noqa: BLE001 - detach anyway
                    print(f"pyo3_debug_magic agent: cleanup before detach failed: {error}", file=sys.stderr)
                    break
            self.gdb.command("-target-detach", timeout=DETACH_TIMEOUT)
        finally:
            self.attached = False
            self.breakpoints.clear()

    def _cleanup(self) -> None:
        if self.attached and self.gdb is not None and not target_alive(self.target_pid):
            # the kernel died; if gdb died just before, that is why (its SIGTRAP): say so
            gdb = self.gdb
            if wait_until(lambda: not gdb.alive, 0.5):
                self._on_gdb_died()
        try:
            self._detach()
        except Exception as error:  # noqa: BLE001 - keep going: gdb must still exit
            print(f"pyo3_debug_magic agent: detach failed: {error}", file=sys.stderr)
        if self.gdb:
            self.gdb.close()
            self.gdb = None
        try:
            self.sock.close()
        except OSError:
            pass
