"""gdb/MI driver: one gdb process, commands matched to their result records by token.

pygdbmi does the process and the MI parsing; we add what it lacks: each command carries
a numeric token and we wait exactly for the ``^done``/``^error`` record with that token
(never for a fixed timeout), while async records (``*stopped``, ``=library-loaded``) and
``@@PDM`` lines written by our code inside gdb are queued for the caller's main loop, never
handled in the middle of another command.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from pygdbmi.gdbcontroller import GdbController

from pyo3_debug_magic.procfs import process_state

GDB_STARTUP_SETTINGS = (
    "set non-stop on",
    "set mi-async on",
    "set pagination off",
    "set confirm off",
    "set width 0",
    "set print pretty off",
    "set style enabled off",      # gdb 14+ colours messages, and they reach the user as text
    "set debuginfod enabled off",  # never download symbols while the kernel waits
)


class GdbCommandError(Exception):
    """gdb answered a command with ``^error``."""


class GdbTimeoutError(Exception):
    """gdb did not answer a command within its bound."""


class GdbExitedError(Exception):
    """The gdb process is gone."""


@dataclass
class MIResult:
    """The result record of one command, with the console text it printed on the way."""

    message: str
    payload: dict
    console: list[str] = field(default_factory=list)

    @property
    def console_text(self) -> str:
        return "".join(self.console)


def mi_quote(text: str) -> str:
    """Quote ``text`` as an MI c-string; refuse characters that could end the command."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise ValueError("control characters and lone surrogates are not allowed in a gdb argument")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class GdbMI:
    """A gdb process in MI mode, non-stop, driven with tokens.

    Async/notify records queue up in ``events`` and ``@@PDM`` JSON lines in ``messages``
    (pygdbmi dicts and decoded objects); the owner drains both from its main loop.
    Close with ``close()``; it is safe to call twice.
    """

    MESSAGE_MARK = "@@PDM "
    TRACE = bool(os.environ.get("PYO3_DEBUG_MAGIC_AGENT_TRACE"))  # every command and record, to stderr

    def __init__(self, gdb_path: str):
        command = [gdb_path, "--nx", "--quiet", "--interpreter=mi3"]
        for setting in GDB_STARTUP_SETTINGS:
            command += ["-iex", setting]
        self._controller: GdbController | None = GdbController(
            command=command, time_to_check_for_additional_output_sec=0.001
        )
        self.events: deque[dict] = deque()
        self.messages: deque[dict] = deque()
        self._partial: str | None = None
        self._next_token = 100
        self.stderr: list[str] = []
        # commands that outlived their wait: token -> what to do when gdb answers after all
        self._late: dict[int, Callable[[dict], None]] = {}

    @property
    def pid(self) -> int | None:
        process = self._controller and self._controller.gdb_process
        return process.pid if process else None

    @property
    def exit_status(self) -> str:
        process = self._controller and self._controller.gdb_process
        code = process.poll() if process else None
        if code is None:
            return "running"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    @property
    def alive(self) -> bool:
        process = self._controller and self._controller.gdb_process
        return bool(process) and process.poll() is None

    def fileno(self) -> int:
        """gdb's stdout, for select() in the agent's main loop."""
        assert self._controller is not None
        return self._controller.io_manager.stdout_fileno

    def command(self, mi_command: str, timeout: float = 10.0,
                on_late: Callable[[dict], None] | None = None) -> MIResult:
        """Send one MI command and wait for its own result record (or raise).

        When the wait times out, gdb may still run the command later (a stopped gdb answers
        when it continues): ``on_late(record)`` is then called with its result record, so
        the caller's state can follow what really happened."""
        if not self.alive:
            raise GdbExitedError("gdb has exited")
        token = self._next_token
        self._next_token += 1
        assert self._controller is not None
        if self.TRACE:
            print(f"[gdb <-] {token}{mi_command}", file=sys.stderr, flush=True)
        self._controller.write(f"{token}{mi_command}", read_response=False)
        console: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if on_late is not None:
                    self._late[token] = on_late
                raise GdbTimeoutError(f"gdb did not answer {mi_command.split()[0]} within {timeout:g} s")
            for record in self.read(remaining):
                if record["type"] == "result" and record.get("token") == token:
                    payload = record.get("payload") or {}
                    if record["message"] == "error":
                        raise GdbCommandError(payload.get("msg", "unknown gdb error"))
                    return MIResult(record["message"], payload, console)
                if record["type"] in ("console", "log") and not record.get("_pdm"):
                    console.append(record.get("payload") or "")
            if not self.alive:
                raise GdbExitedError("gdb exited while running " + mi_command.split()[0])

    def console_command(self, cli_command: str, timeout: float = 10.0) -> MIResult:
        """Run a gdb CLI command through MI (the command text is MI-quoted)."""
        return self.command(f"-interpreter-exec console {mi_quote(cli_command)}", timeout)

    def read(self, timeout: float) -> list[dict]:
        """Read what gdb has written within ``timeout`` s; async records go to the callback."""
        assert self._controller is not None
        io = self._controller.io_manager
        ready, _, _ = select.select(io.read_list, [], [], max(timeout, 0))
        if not ready:
            return []
        records = io.get_gdb_response(timeout_sec=0, raise_error_on_timeout=False)
        for record in records:
            if self.TRACE:
                print(f"[gdb ->] {str(record)[:300]}", file=sys.stderr, flush=True)
            payload = record.get("payload")
            late = self._late.pop(record.get("token"), None) if record["type"] == "result" else None
            if late is not None:
                late(record)
            if record.get("stream") == "stderr":
                self.stderr.append(str(payload))
            elif record["type"] == "console" and isinstance(payload, str) and (
                    self._partial is not None or payload.startswith(self.MESSAGE_MARK)):
                # one @@PDM line may arrive split over several console records
                record["_pdm"] = True
                self._partial = (self._partial or "") + payload
                if self._partial.endswith("\n"):
                    for line in self._partial.splitlines():
                        if line.startswith(self.MESSAGE_MARK):
                            try:
                                self.messages.append(json.loads(line[len(self.MESSAGE_MARK):]))
                            except ValueError as error:
                                self.stderr.append(f"unreadable @@PDM line: {error}")
                    self._partial = None
            elif record["type"] in ("notify", "notification", "output") or (
                record["type"] == "result" and record.get("token") is None
            ):
                self.events.append(record)
        return records

    def take_message(self, kind: str) -> dict | None:
        """Remove and return the oldest queued ``@@PDM`` message of ``kind``."""
        for message in list(self.messages):
            if message.get("kind") == kind:
                self.messages.remove(message)
                return message
        return None

    @property
    def answering(self) -> bool:
        """gdb runs and owes no answer to a command that outlived its wait."""
        return self.alive and not self._late and not self.stopped_by_signal

    @property
    def stopped_by_signal(self) -> bool:
        """Is gdb itself stopped (SIGSTOP, a debugger on gdb)? It answers nothing until SIGCONT."""
        return self.pid is not None and process_state(self.pid) in ("T", "t")

    def interrupt(self) -> None:
        """SIGINT to gdb: abandons a hung inferior call (``set unwindonsignal on``)."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float) -> dict | None:
        """Read until a record satisfies ``predicate`` or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            for record in self.read(remaining):
                if predicate(record):
                    return record
        return None

    def close(self) -> None:
        """Stop gdb (it detaches from anything still attached when it exits)."""
        controller, self._controller = self._controller, None
        process = controller.gdb_process if controller is not None else None
        if process is not None and process.poll() is None:
            # a stopped gdb (SIGSTOP) would never act on pygdbmi's SIGTERM, whose wait has no
            # bound: continue it first (its exit hook then detaches), and kill it if it lingers
            try:
                process.send_signal(signal.SIGCONT)
                process.terminate()
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
            except OSError:
                pass
        if controller is not None:
            try:
                controller.exit()
            except Exception:  # noqa: BLE001 - best effort on the exit path
                pass
