"""Hang timers: an Interrupt the kernel does not honour, or a cell running past
``%native_watch``, makes the main thread show where it is. Threads are never killed.

Nothing is called in a thread interrupted at an arbitrary instruction (it may be inside libc,
the allocator or the interpreter): its stacks and whether it holds the GIL are read from
memory. If it holds the GIL the kernel cannot show anything until it lets go, so it runs on
to a safe point in the user's crate (the next line, or the return into the crate's frame)
and hands the GIL over there.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from pyo3_debug_magic import model
from pyo3_debug_magic.breakpoints.generated import first_user_level
from pyo3_debug_magic.stacks.merging import python_thread_for
from pyo3_debug_magic.agent import handoff
from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.agent.context import AgentContext
from pyo3_debug_magic.gdb.mi import GdbCommandError, GdbTimeoutError
from pyo3_debug_magic.agent.pauses import Pause, Pauses

MAIN_THREAD = 1
HANG_SHOWN_FOR = 60.0  # s a hung thread stays held (handed off) while the cell shows the report and asks


@dataclass
class HangInProgress:
    """A hang being diagnosed: the main thread runs to a safe point before it hands off its GIL."""

    reason: str
    row: model.ThreadRow
    python: model.PythonStacks
    deadline: float
    interrupted: bool = False


class HangWatchdog:
    def __init__(self, context: AgentContext, pauses: Pauses, terminal=None):
        self.context = context
        self.pauses = pauses
        self.terminal = terminal  # a terminal IPython's: a prompt there needs no Python in the kernel
        self.check_at: float | None = None       # an Interrupt not honoured by then is a hang
        self.watch_after: float | None = None    # %native_watch: report cells running longer
        self.watch_deadline: float | None = None
        self.shown: Pause | None = None          # the main thread, handed off to show a hang
        self.release_at: float | None = None
        self.in_progress: HangInProgress | None = None
        # between a cell's start and end (at first: the attaching cell may still be running);
        # an Interrupt of an idle kernel is no hang
        self.cell_running = True

    @property
    def hang_after(self) -> float:
        return self.context.settings.hang_after

    # ----- the cell's timers ------------------------------------------------------------
    def cell_starts(self) -> None:
        self.cell_running = True
        self.check_at = None
        self.watch_deadline = time.monotonic() + self.watch_after if self.watch_after else None

    def cell_done(self) -> None:
        self.cell_running = False
        self.check_at = self.watch_deadline = None

    def watch(self, seconds: float | None) -> float | None:
        self.watch_after = float(seconds) if seconds else None
        return self.watch_after

    def interrupt_seen(self) -> None:
        if self.cell_running and not self.pauses.active and self.check_at is None:
            self.check_at = time.monotonic() + self.hang_after

    def next_timer_in(self) -> float:
        """How long the loop may wait for input: until the nearest timer, at most 0.5 s."""
        now = time.monotonic()
        timers = [t for t in (self.check_at, self.watch_deadline, self.release_at,
                              self.in_progress and self.in_progress.deadline) if t]
        return max(0.0, min([0.5] + [t - now for t in timers]))

    def due(self) -> str | None:
        """Run the timers; the reason to report a hang now, if one is due."""
        now = time.monotonic()
        hang = self.in_progress
        if hang is not None and not hang.interrupted and now >= hang.deadline:
            hang.interrupted = True  # its stop record ends the diagnosis without a hand-off
            try:
                self.context.gdb.command(f"-exec-interrupt --thread {hang.row.thread}")
            except GdbCommandError:
                pass
        if self.shown is not None and self.release_at and now >= self.release_at:
            self.hang_done()
        if not self.context.attached or self.shown is not None or self.pauses.active or self.in_progress:
            return None
        if self.check_at is not None and now >= self.check_at:
            self.check_at = None
            return f"the Interrupt was not honoured within {self.hang_after:g} s"
        if self.watch_deadline is not None and now >= self.watch_deadline:
            self.watch_deadline = None
            return f"the cell has run longer than {self.watch_after:g} s (%native_watch)"
        return None

    # ----- the report ---------------------------------------------------------------------
    def report(self, reason: str) -> None:
        gdb = self.context.gdb
        if gdb.thread_state(MAIN_THREAD) == "running":
            gdb.stop_threads([MAIN_THREAD])
            gdb.drop_stop_records([MAIN_THREAD])
        ident, lwp = gdb.thread_identity(MAIN_THREAD)
        row = model.ThreadRow(MAIN_THREAD, "main", ident, lwp, False, gdb.frames(MAIN_THREAD))
        python = self.context.readable_python(gdb.python_stacks())
        holds = holds_gil(python, row)
        user_level = first_user_level(row.frames)
        unsafe = self.pauses.calls_unsafe
        if holds is False or user_level is None or unsafe:
            if holds and user_level is None and self.terminal is not None and self.terminal.available:
                self.terminal.held_prompt(reason, row, python)  # keeps the GIL, none of the user's frames
            gdb.continue_thread(MAIN_THREAD)
            note = None
            if holds:
                note = unsafe or "it holds the GIL outside your crate, so this was shown when it let go"
            self._send(reason, row, python, holds, note)
            return
        self.in_progress = HangInProgress(reason, row, python,
                                          time.monotonic() + self.context.settings.safe_point_bound)
        if user_level == 0:
            gdb.command(f"-exec-next --thread {MAIN_THREAD}")
        else:
            gdb.command(f"-exec-finish --thread {MAIN_THREAD} --frame {user_level - 1}")

    def safe_point_reached(self) -> None:
        """The hung thread stopped again: at a safe point (hand off, then show), or because the
        bound passed (show without a hand-off)."""
        gdb = self.context.gdb
        hang, self.in_progress = self.in_progress, None
        frames = gdb.frames(hang.row.thread)
        tstate, note, row = None, None, hang.row
        if not hang.interrupted and handoff.is_safe_point(frames[0] if frames else None):
            try:
                tstate = self.pauses.hand_off(hang.row.thread)
                row = model.ThreadRow(row.thread, row.name, row.ident, row.lwp, False, frames)
            except (GdbCommandError, GdbTimeoutError, ValueError) as error:
                note = f"the GIL hand-off failed ({error}), so this was shown when it let go"
        else:
            note = (f"it holds the GIL and reached no line of your crate within "
                    f"{self.context.settings.safe_point_bound:g} s, so this was shown when it let go")
        if tstate is None:
            if self.terminal is not None and self.terminal.available and hang.interrupted:
                # no Python can run in the kernel (this thread keeps the GIL): the helper asks
                # on the terminal itself, reading only what needs no call into the process
                self.terminal.held_prompt(hang.reason, model.ThreadRow(row.thread, row.name, row.ident, row.lwp,
                                                                       False, frames or row.frames), hang.python)
            gdb.continue_thread(hang.row.thread)
        else:
            self.shown = Pause(hang.row.thread, tstate, None, row=row)
            self.release_at = time.monotonic() + HANG_SHOWN_FOR
        self._send(hang.reason, row, hang.python, True, note, can_pause=tstate is not None)

    def pause_here(self) -> dict:
        """The user chose to debug the hung thread in place: where it waits for the hang to be
        shown (a safe point, its GIL handed over) it becomes a pause with the (native) prompt."""
        pause, self.shown = self.shown, None
        self.release_at = None
        if pause is None:
            raise UsageProblem("the stuck thread is no longer held (it was let go, or it ended)",
                               "run the watch again: `%native_watch --after S` before the cell")
        self.pauses.adopt(pause, "hang")
        return {"thread": pause.thread}

    def cancel(self) -> None:
        """A breakpoint of the user's comes first: the stop is a pause, not the hang's."""
        self.in_progress = None

    def hang_done(self) -> None:
        """The kernel has shown the hang: give the GIL back and let the thread run on."""
        pause, self.shown = self.shown, None
        self.release_at = None
        if pause is not None:
            self.pauses.give_back_and_continue(pause)

    def _send(self, reason, row, python, holds, note, can_pause: bool = False) -> None:
        self.context.send_event(model.HangSeen(reason=reason, row=row, python=python,
                                               holds_gil=holds, note=note, can_pause=can_pause))


def holds_gil(python: model.PythonStacks, row: model.ThreadRow) -> bool | None:
    """Whether the thread of ``row`` holds the GIL (None when that cannot be known)."""
    if not python.gil_known:
        return None
    thread = python_thread_for(row, python)
    return bool(thread.holds_gil) if thread is not None else False
