"""Noticing that the agent or its gdb was stopped (SIGSTOP, a debugger on them), so a cell
that waited for them is told why afterwards: a thread at a breakpoint (a log hit included)
cannot go on until gdb, and gdb's output until the agent, runs again."""
from __future__ import annotations

import threading
import time
from typing import Callable

OVERSLEPT = 3.0   # s a tick may come late before the agent counts as having been stopped
GDB_STALL = 2.0   # s gdb must have been stopped before its return is reported
TICK = 0.5        # s between the ticker thread's looks at the clock


class StallWatch:
    """Asked once per turn of the agent's loop; returns the messages to send, if any.

    The agent's own stop is seen by a ticker thread: every thread of a stopped process stops,
    so on SIGCONT the ticker finds a gap in its ticks (the main loop cannot tell a stop from a
    long gdb command)."""

    def __init__(self) -> None:
        self.gdb_stopped_since: float | None = None
        self._gdb_looked_at = float("-inf")
        self._gap: float | None = None
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="stall-ticker", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        last = time.monotonic()
        while True:
            time.sleep(TICK)
            now = time.monotonic()
            if now - last > TICK + OVERSLEPT:
                self._gap = now - last
            last = now

    def agent_stopped(self) -> str | None:
        """Once after this process was stopped: how long, and what waited for it."""
        gap, self._gap = self._gap, None
        return describe_agent_stop(gap) if gap else None

    def gdb_state(self, is_stopped: Callable[[], bool], gdb_pid: int | None,
                  now: float | None = None) -> str | None:
        """Called each turn; looks whether gdb is stopped at most once a tick (the loop turns
        for every log hit): a message when it stops and when it comes back after a noticeable time."""
        now = time.monotonic() if now is None else now
        if now - self._gdb_looked_at < TICK:
            return None
        self._gdb_looked_at = now
        stopped = is_stopped()
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


def describe_agent_stop(seconds: float) -> str:
    return (f"the debugger helper was stopped for {seconds:.0f} s (SIGSTOP?); threads that reached a "
            "breakpoint meanwhile waited for it, and run on now")
