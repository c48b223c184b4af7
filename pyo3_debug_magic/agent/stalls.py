"""Noticing that the agent or its gdb was stopped (SIGSTOP, a debugger on them), so a cell
that waited for them is told why afterwards: a thread at a breakpoint (a log hit included)
cannot go on until gdb, and gdb's output until the agent, runs again."""
from __future__ import annotations

import time

OVERSLEPT = 3.0   # s beyond its timeout a wait of the agent's loop may take before it counts
GDB_STALL = 2.0   # s gdb must have been stopped before its return is reported


class StallWatch:
    """Fed once per turn of the agent's loop; returns the messages to send, if any."""

    def __init__(self) -> None:
        self.gdb_stopped_since: float | None = None

    @staticmethod
    def agent_overslept(waited: float, timeout: float) -> str | None:
        """The loop's select() took far longer than asked: this process was stopped."""
        if waited < timeout + OVERSLEPT:
            return None
        return (f"the debugger helper was stopped for {waited:.0f} s (SIGSTOP?); threads that reached a "
                "breakpoint meanwhile waited for it, and run on now")

    def gdb_state(self, stopped: bool, gdb_pid: int | None, now: float | None = None) -> str | None:
        """Called each turn with whether gdb is stopped: a message when it stops and when it
        comes back after a noticeable time."""
        now = time.monotonic() if now is None else now
        if stopped and self.gdb_stopped_since is None:
            self.gdb_stopped_since = now
            return (f"gdb (pid {gdb_pid}) is stopped (SIGSTOP?): a thread that reaches a breakpoint, starts "
                    f"a thread or takes a signal waits until it continues (`kill -CONT {gdb_pid}`)")
        if not stopped and self.gdb_stopped_since is not None:
            stopped_for, self.gdb_stopped_since = now - self.gdb_stopped_since, None
            if stopped_for >= GDB_STALL:
                return (f"gdb (pid {gdb_pid}) was stopped for {stopped_for:.0f} s; threads that reached a "
                        "breakpoint meanwhile waited for it, and run on now")
        return None
