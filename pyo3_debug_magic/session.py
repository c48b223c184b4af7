"""Kernel side of the agent: starts the helper process and exchanges requests and events.

The helper is a child process connected by an inherited socketpair (never a listening
socket). ``close()`` asks it to detach and exit, then terminates, then kills it, and is
safe to call twice.
"""
from __future__ import annotations

import itertools
import os
import socket
import subprocess
import threading
import time
from typing import Callable

from pyo3_debug_magic import paths, protocol, tools
from pyo3_debug_magic.errors import AgentError, AgentTimeoutError, ProtocolMismatchError, error_from_wire
from pyo3_debug_magic.model import AgentExited, Event
from pyo3_debug_magic.procfs import process_state
from pyo3_debug_magic.protocol import LineReader, Request, encode

# The agent bounds each gdb command (10 s) and gdb each call into the kernel (5 s), and never
# waits past the kernel's wait, which each request carries; an expired wait here means the
# agent itself is stuck (stopped, wedged).
DEFAULT_REQUEST_TIMEOUT = 25.0
STOPPED_GRACE = 1.0  # s a helper may sit stopped (state T) before a request gives up on it
AGENT_LOGS_KEPT = 10
_session_serials = itertools.count(1)


def agent_command(fd: int, target_pid: int, gdb_path: str) -> list[str]:
    """The agent's command line: ``python -I`` (no working directory, no user site, no
    PYTHONPATH on its path: a ``pygdbmi.py`` in the notebook's folder is never imported), with
    the directories this package and its dependencies were imported from put back explicitly."""
    from importlib import metadata

    from pyo3_debug_magic.tools import isolated_python

    roots: tuple[str, ...] = ()
    try:  # where pip installed pygdbmi (never imported here: the kernel's path starts at its cwd)
        roots = (str(metadata.distribution("pygdbmi").locate_file("")),)
    except metadata.PackageNotFoundError:
        pass
    return isolated_python("from pyo3_debug_magic.agent.__main__ import main; main()", "--fd", str(fd),
                           "--target", str(target_pid), "--gdb", gdb_path, roots=roots)


def prune_agent_logs(directory, keep: int = AGENT_LOGS_KEPT) -> None:
    """Old agent logs go: keep the newest ``keep``. Other processes prune at the same time
    (pytest-xdist's workers start their agents together): a log gone meanwhile is skipped."""
    dated = []
    for path in directory.glob("agent-*.log"):
        try:
            dated.append((path.stat().st_mtime, path))
        except OSError:
            continue
    logs = [path for _, path in sorted(dated)]
    for old in logs[:-keep]:
        try:
            old.unlink()
        except OSError:
            pass


class AgentSession:
    """One agent process debugging ``target_pid`` (by default this process)."""

    def __init__(self, target_pid: int | None = None, gdb: str | None = None,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT, tee_stderr: bool = True,
                 terminal: tuple[int, int] | None = None):
        self.target_pid = target_pid or os.getpid()
        self.tee_stderr = tee_stderr  # pytest's capture owns fd 2 there: no tee
        self.terminal = terminal      # (in, out) descriptors the agent may use for a crash
        self.gdb = gdb
        self.request_timeout = request_timeout
        self.process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, dict] = {}
        self._answered = threading.Condition()
        self._listeners: list[Callable[[Event], None]] = []
        self._reader: threading.Thread | None = None
        self.log_path = None
        self._stderr_saved: int | None = None
        self._send_lock = threading.Lock()  # the console thread and the main thread both send
        self.serial = next(_session_serials)  # events carry it: a dead session's pauses are void
        self._closing = False
        self._disconnected = False  # the socket reached end-of-file: this session is over

    @property
    def alive(self) -> bool:
        """The agent runs and its socket is open (it may outlive a broken connection briefly)."""
        return self.process is not None and self.process.poll() is None and not self._disconnected

    def start(self) -> None:
        """Start the agent (finds gdb first, so a missing gdb fails here with its fix) and
        check that it speaks this kernel's protocol."""
        if self.alive:
            return
        self._disconnected = False
        gdb_path = tools.find_gdb(self.gdb)
        tools.check_ptrace_scope(tools.read_ptrace_scope(), is_root=os.geteuid() == 0)
        ours, theirs = socket.socketpair()
        state = paths.state_dir()
        prune_agent_logs(state)
        self.log_path = state / f"agent-{self.target_pid}.log"
        log = paths.open_private(self.log_path)
        command = agent_command(theirs.fileno(), self.target_pid, gdb_path)
        pass_fds = [theirs.fileno()]
        tee = None
        if self.terminal is not None:
            command += ["--terminal-in", str(self.terminal[0]), "--terminal-out", str(self.terminal[1])]
            pass_fds += list(self.terminal)
        if (self.target_pid == os.getpid() and self.tee_stderr
                and not os.environ.get("PYO3_DEBUG_MAGIC_NO_STDERR_TEE")):
            # Native stderr (a Rust panic message before an abort) goes through the agent,
            # which passes it on and keeps its tail for a crash report.
            read_end, write_end = os.pipe()
            forward = os.dup(2)
            tee = (read_end, write_end, forward)
            command += ["--stderr-in", str(read_end), "--stderr-out", str(forward)]
            pass_fds += [read_end, forward]
        try:
            self.process = subprocess.Popen(
                command, pass_fds=pass_fds, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd="/",  # nothing of the notebook's folder is read by the agent or its gdb
                start_new_session=True,  # the kernel's Ctrl-C/SIGINT must not reach it
            )
            if tee is not None:
                self._stderr_saved = os.dup(2)
                os.dup2(tee[1], 2)
        finally:
            theirs.close()
            log.close()
            if tee is not None:
                for descriptor in tee:
                    os.close(descriptor)
        tools.declare_tracer(self.target_pid, self.process.pid)
        self._sock = ours
        self._reader = threading.Thread(target=self._read_loop, name="pyo3-debug-agent-reader",
                                        daemon=True)
        self._reader.start()
        self._greet()

    def _greet(self) -> None:
        try:
            answer = self.request(protocol.Hello(protocol.PROTOCOL_VERSION), timeout=self.request_timeout)
        except AgentError as error:
            self.close()
            if "unknown agent request" in error.message or isinstance(error, ProtocolMismatchError):
                raise ProtocolMismatchError(
                    f"the debugger helper runs another version of pyo3_debug_magic than this kernel "
                    f"({error.message})", "it was upgraded under a running kernel: restart the kernel") from None
            raise
        except Exception:
            self.close()
            raise
        if answer.get("version") != protocol.PROTOCOL_VERSION:
            self.close()
            raise ProtocolMismatchError(
                f"the debugger helper speaks protocol {answer.get('version')}, this kernel "
                f"{protocol.PROTOCOL_VERSION}", "it was upgraded under a running kernel: restart the kernel")

    def _helper_stopped(self) -> bool:
        """The helper is stopped by a signal (state T), so nothing it owes will come."""
        return self.process is not None and process_state(self.process.pid) == "T"

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` for every event the agent pushes (from a reader thread)."""
        self._listeners.append(listener)

    def request(self, request: Request, timeout: float | None = None,
                while_waiting: Callable[[float], None] | None = None):
        """Send one request and wait for its typed answer; raise the agent's error if it failed.
        ``while_waiting(seconds)`` is called about every 0.25 s until the answer comes."""
        timeout = timeout or self.request_timeout
        op = request.op
        if not self.alive or self._sock is None:
            raise AgentError("the debugger helper process is not running",
                             "run `%native_attach` to start it again")
        request_id = next(self._ids)
        with self._answered:
            self._pending[request_id] = {}
        message = {**protocol.request_message(request_id, request), "timeout": timeout}
        try:
            with self._send_lock:
                self._sock.sendall(encode(message))
        except OSError:
            with self._answered:
                self._pending.pop(request_id, None)
            raise AgentError(f"the debugger helper went away before {op!r}",
                             f"see its log {self.log_path}; `%native_attach` starts a new one") from None
        started = time.monotonic()
        stopped_since = None
        with self._answered:
            while True:
                left = started + timeout - time.monotonic()
                answered = self._answered.wait_for(lambda: self._pending[request_id] or not self.alive,
                                                   max(0.0, min(left, 0.25)))
                if answered or time.monotonic() >= started + timeout:
                    break
                # a helper stopped by a signal answers nothing: said at once, not after the timeout
                # (a plain cell waited 25 s on its per-cell request)
                stopped_since = (stopped_since or time.monotonic()) if self._helper_stopped() else None
                if stopped_since is not None and time.monotonic() - stopped_since >= STOPPED_GRACE:
                    break
                if while_waiting is not None:
                    self._answered.release()  # the reader thread delivers meanwhile
                    try:
                        while_waiting(time.monotonic() - started)
                    finally:
                        self._answered.acquire()
            reply = self._pending.pop(request_id)
        if not answered and stopped_since is not None:
            self._abandon()
            raise AgentTimeoutError(
                f"the debugger helper did not answer {op!r}: it is stopped (a SIGSTOP, or a debugger of "
                "its own), so it was ended; gdb gave every paused thread its GIL back and detached",
                f"`%native_attach` starts a new one; see its log {self.log_path}")
        if not answered:
            # A stuck agent must not act later on requests the user has given up on: it is
            # stopped, and gdb, reading EOF, gives every paused thread its GIL back and detaches.
            self._abandon()
            raise AgentTimeoutError(
                f"the debugger helper did not answer {op!r} within {timeout:g} s, so it was stopped; "
                "gdb gave every paused thread its GIL back and detached",
                f"see its log {self.log_path}; `%native_attach` starts a new one")
        if not reply:
            raise AgentError(f"the debugger helper exited during {op!r}",
                             f"see its log {self.log_path}; `%native_attach` starts a new one")
        if not reply.get("ok"):
            error = protocol.from_wire(protocol.ErrorReply, reply.get("error") or {"kind": "agent", "message": ""})
            raise error_from_wire(error.kind, error.message, error.fix)
        return protocol.from_wire(request.reply, reply.get("result"))

    def _abandon(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            try:
                process.kill()
            except OSError:
                pass

    def _notify(self, event: Event) -> None:
        from dataclasses import replace

        event = replace(event, session=self.serial)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one broken listener must not stop the others
                import traceback

                traceback.print_exc()

    def _read_loop(self) -> None:
        assert self._sock is not None
        reader = LineReader(self._sock)
        while not reader.closed:
            for message in reader.read_available():
                if "event" in message:
                    try:
                        event = protocol.event_from_message(message)
                    except (TypeError, ValueError) as error:
                        event = protocol.model.Notice(message=f"unreadable event from the debugger helper: {error}")
                    self._notify(event)
                    continue
                with self._answered:
                    if message.get("id") in self._pending:
                        self._pending[message["id"]] = message
                    self._answered.notify_all()
        self._disconnected = True
        self._restore_stderr()  # the agent is gone: native stderr must not hit a closed pipe
        with self._answered:
            self._answered.notify_all()
        if not self._closing:
            process, code = self.process, None
            try:
                code = process.wait(5) if process is not None else None
            except subprocess.TimeoutExpired:
                # cut off from us, yet running: stop it (gdb's exit hook gives every paused
                # thread its GIL back and detaches)
                process.kill()
                code = process.wait(5)
            what = ("the connection to the debugger helper broke and it exited" if code == 0 else
                    f"the debugger helper exited unexpectedly ({_describe_exit(code)})")
            self._notify(AgentExited(message=(
                f"{what}; gdb gave every paused thread its GIL back and detached. See {self.log_path}; "
                "the next native magic starts a new one")))

    def _restore_stderr(self) -> None:
        saved, self._stderr_saved = self._stderr_saved, None
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)

    def close(self, timeout: float = 10.0, wait: bool = True) -> str:
        """Stop the agent; returns how: 'exited', 'terminated', 'killed' or 'not running';
        'asked' when not ``wait``-ing for it (it detaches and exits on its own)."""
        self._closing = True
        self._restore_stderr()
        process, self.process = self.process, None
        sock, self._sock = self._sock, None
        if process is None:
            return "not running"
        how = "exited"
        try:
            if sock is not None and process.poll() is None:
                try:
                    with self._send_lock:
                        sock.sendall(encode(protocol.request_message(0, protocol.Shutdown())))
                except OSError:
                    pass
            if not wait:
                return "asked"
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                how = "terminated"
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    how = "killed"
                    process.kill()
                    process.wait()
        finally:
            if sock is not None:
                sock.close()
            tools.declare_tracer(self.target_pid, None)  # revoke: no process may trace the kernel any more
        return how


def _describe_exit(code) -> str:
    if code is None:
        return "still running"
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"
