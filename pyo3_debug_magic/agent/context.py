"""What every part of the agent shares: the kernel's pid and identity, the current gdb session,
the settings, and the one way to push an event to the kernel."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from pyo3_debug_magic import model
from pyo3_debug_magic.stacks.pyspy import python_stacks_nonblocking
from pyo3_debug_magic.gdb.session import GdbSession, require


@dataclass
class AgentContext:
    target_pid: int
    send_event: Callable[[model.Event], None]
    settings: model.AgentSettings = field(default_factory=model.AgentSettings)
    session: GdbSession | None = None
    attached: bool = False
    kernel_id: str | None = None
    report_dir: str | None = None
    crash: model.CrashHandling = field(default_factory=model.CrashHandling)

    @property
    def gdb(self) -> GdbSession:
        """The attached gdb; NotAttachedError when there is none."""
        return require(self.session)

    def notify(self, message: str) -> None:
        self.send_event(model.Notice(message=message))

    def readable_python(self, python: model.PythonStacks) -> model.PythonStacks:
        """``python`` as read from memory, or, when libpython has no debug info, the Python
        frames from ``py-spy dump --nonblocking``: the agent's one py-spy fallback."""
        if not python.error:
            return python
        return python_stacks_nonblocking(self.target_pid, python.error, self.settings.py_spy)
