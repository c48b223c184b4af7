"""The kernel's native debugger: one agent shared by every gdb feature, usable without IPython."""
from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass

from .errors import NotAttachedError
from .session import AgentSession


@dataclass(frozen=True)
class AttachStatus:
    """What the agent reports about its gdb and the kernel it debugs."""

    attached: bool
    target_pid: int
    gdb_version: str
    attach_seconds: float | None
    thread_count: int

    @classmethod
    def from_agent(cls, result: dict) -> "AttachStatus":
        return cls(attached=result["attached"], target_pid=result["target_pid"],
                   gdb_version=result["gdb_version"], attach_seconds=result["attach_seconds"],
                   thread_count=len(result["threads"]))


class NativeDebugger:
    """Attaches gdb (through the agent) to ``target_pid``, by default this process."""

    def __init__(self, target_pid: int | None = None):
        self.target_pid = target_pid
        self._session: AgentSession | None = None

    @property
    def attached(self) -> bool:
        return self._session is not None and self._session.alive

    def attach(self) -> AttachStatus:
        """Start the agent if needed and attach in non-stop mode (threads keep running)."""
        if self._session is None or not self._session.alive:
            self._session = AgentSession(self.target_pid)
            self._session.start()
        try:
            return AttachStatus.from_agent(self._session.request("attach"))
        except Exception:
            self.close()
            raise

    def status(self) -> AttachStatus:
        if not self.attached:
            raise NotAttachedError()
        return AttachStatus.from_agent(self._session.request("status"))

    def detach(self) -> str:
        """Detach gdb and stop the agent; returns how the agent ended."""
        if not self.attached:
            raise NotAttachedError()
        return self.close()

    def close(self) -> str:
        """Detach and stop the agent if it runs; safe to call twice."""
        session, self._session = self._session, None
        return session.close() if session is not None else "not running"


_process_debugger: NativeDebugger | None = None
_lock = threading.Lock()


def get_debugger() -> NativeDebugger:
    """The debugger of this process (created on first use, closed at interpreter exit)."""
    global _process_debugger
    with _lock:
        if _process_debugger is None:
            _process_debugger = NativeDebugger()
            atexit.register(_process_debugger.close)
        return _process_debugger
