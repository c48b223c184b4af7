"""The agent's request loop: owns gdb, answers the kernel, pushes events, cleans up on every exit.

Every exit path (``shutdown`` request, the kernel closing its end of the socket, SIGTERM,
an exception) runs ``_cleanup``, which detaches gdb so the kernel keeps running.
"""
from __future__ import annotations

import select
import signal
import socket
import sys
import time
import traceback

from ..errors import AttachError, DebugMagicError, NotAttachedError
from ..protocol import LineReader, encode
from ..tools import explain_attach_failure
from .gdbmi import GdbCommandError, GdbExitedError, GdbMI, GdbTimeoutError

CRASH_SIGNALS = ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGILL", "SIGFPE")
# Signals the kernel uses for itself: gdb must neither stop on nor swallow them
# (SIGINT is the Interrupt button).
PASS_THROUGH_SIGNALS = ("SIGINT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGPIPE", "SIGTERM",
                        "SIGHUP", "SIGQUIT", "SIGPROF", "SIGVTALRM", "SIGWINCH", "SIGCHLD",
                        "SIGIO", "SIGURG")
ATTACH_TIMEOUT = 20.0
DETACH_TIMEOUT = 5.0


class Agent:
    """Serves one kernel: ``attach``, ``detach``, ``status``, ``shutdown``."""

    def __init__(self, sock: socket.socket, target_pid: int, gdb_path: str):
        self.sock = sock
        self.target_pid = target_pid
        self.gdb_path = gdb_path
        self.gdb: GdbMI | None = None
        self.attached = False
        self.attach_seconds: float | None = None
        self.gdb_version = ""
        self._running = True

    # ----- loop -----------------------------------------------------------------
    def serve(self) -> None:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel's Ctrl-C is not for us
        reader = LineReader(self.sock)
        try:
            while self._running:
                watched = [self.sock] + ([self.gdb.fileno()] if self.gdb and self.gdb.alive else [])
                ready, _, _ = select.select(watched, [], [], 1.0)
                if self.sock in ready:
                    for request in reader.read_available():
                        self._handle(request)
                    if reader.closed:
                        break  # the kernel went away
                if self.gdb and self.gdb.alive and self.gdb.fileno() in ready:
                    self.gdb.read(0)
        finally:
            self._cleanup()

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
        except (GdbTimeoutError, GdbExitedError) as error:
            reply.update(ok=False, error={"type": "AgentError", "message": str(error),
                                          "fix": "run `%native_detach` and `%native_attach` again"})
        except Exception as error:  # noqa: BLE001 - reported with its traceback
            reply.update(ok=False, error={"type": "AgentError",
                                          "message": f"internal agent error: {error!r}",
                                          "fix": "please report this with the traceback:\n"
                                                 + traceback.format_exc()})
        self._send(reply)

    # ----- gdb events -----------------------------------------------------------
    def _on_gdb_event(self, record: dict) -> None:
        if record.get("message") == "stopped":
            self._on_stopped(record.get("payload") or {})

    def _on_stopped(self, stop: dict) -> None:
        thread = stop.get("thread-id")
        if stop.get("reason") == "signal-received" and stop.get("signal-name") in CRASH_SIGNALS:
            self._send({"event": "crash", "signal": stop.get("signal-name"), "thread": thread,
                        "frame": stop.get("frame")})
        # Nothing else may keep a thread of the kernel stopped: let it go on (a crash signal
        # is delivered, so the process dies as it would have without us).
        if thread and self.gdb:
            try:
                self.gdb.command(f"-exec-continue --thread {int(thread)}", timeout=5)
            except (GdbCommandError, GdbTimeoutError, GdbExitedError):
                pass

    # ----- requests -------------------------------------------------------------
    def _ensure_gdb(self) -> GdbMI:
        if self.gdb is None or not self.gdb.alive:
            self.gdb = GdbMI(self.gdb_path, on_event=self._on_gdb_event)
            version = self.gdb.console_command("show version", timeout=10).console_text
            self.gdb_version = version.splitlines()[0] if version else ""
            self.gdb.console_command("set unwindonsignal on")
            self.gdb.console_command(f"handle {' '.join(PASS_THROUGH_SIGNALS)} nostop noprint pass")
            self.gdb.console_command(f"handle {' '.join(CRASH_SIGNALS)} stop print pass")
        return self.gdb

    def op_attach(self) -> dict:
        if self.attached:
            return self.op_status()
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
            info = self.gdb.command("-thread-info", timeout=5).payload
            threads = [{"id": t.get("id"), "name": t.get("name"), "state": t.get("state")}
                       for t in info.get("threads", [])]
        return {"attached": self.attached, "target_pid": self.target_pid,
                "gdb_pid": self.gdb.pid if self.gdb else None, "gdb_version": self.gdb_version,
                "attach_seconds": self.attach_seconds, "threads": threads}

    def op_shutdown(self) -> dict:
        self._running = False
        return {"detached": self.attached}

    # ----- exit path --------------------------------------------------------------
    def _detach(self) -> None:
        if self.gdb and self.attached:
            try:
                self.gdb.command("-target-detach", timeout=DETACH_TIMEOUT)
            finally:
                self.attached = False

    def _cleanup(self) -> None:
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
