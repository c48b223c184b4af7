"""Kernel side of a pause: a console thread renders the stop and reads ``(native)`` commands.

The thread that hit the breakpoint is stopped by gdb (and has given up the GIL through the
agent), so the console runs in its own Python thread. It shows everything with
``display()`` (ipykernel 6 routes a thread's ``print`` by where the thread was started,
``display`` reaches the running cell) and reads commands with ``input()``, which the kernel
routes to the running cell's input box (``prompt.reader``: the Interrupt can end that wait); the commands are
``prompt.commands``, shared with pytest and the helper's terminal prompt..
"""
from __future__ import annotations

import queue
import threading
import time
import traceback
from dataclasses import replace

from pyo3_debug_magic.stacks import backtrace
from pyo3_debug_magic.debugger import NativeDebugger
from pyo3_debug_magic.errors import DebugMagicError
from pyo3_debug_magic.notebook.output import show
from pyo3_debug_magic.model import (AgentExited, CrashSeen, Event, GdbDied, HangSeen, Interrupted, Notice, Paused,
                                    Stop)
from pyo3_debug_magic.prompt.commands import NO_INPUT, NativeCommands, PauseState
from pyo3_debug_magic.prompt.reader import CommandReader
from pyo3_debug_magic.render import html as render_html
from pyo3_debug_magic.render import text as render_text

RAN_ON_NOTED = 2.0  # s a cell ran on after the Interrupt that is worth a word
HANG_QUESTION = "(native) p pauses the stuck thread here, Enter lets it run on: "


class PauseConsole:
    """Owns the console thread; ``handle(event)`` is the debugger's event listener."""

    def __init__(self, debugger: NativeDebugger, can_prompt=lambda: True, show=show,
                 reader: CommandReader | None = None, shape_stop=lambda stop: stop):
        self.debugger = debugger
        self.can_prompt = can_prompt
        self.show = show  # (text, html) -> None: the running cell by default, a terminal in pytest
        self.shape_stop = shape_stop  # pytest: the Python frames down to the test only
        self._events: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stepping: set[int] = set()
        self._gil_explained = False          # the hand-off paragraph was shown once: a marker after
        self.interrupted = threading.Event()
        self._ended: set[tuple] = set()      # (session, pause id) the agent ended: never prompted
        self._dead_sessions: set = set()     # the agent went away: all its pauses ended
        self.reader = reader or CommandReader()
        self.notes: list[str] = []  # shown at the end of the cell (kernel_hooks._post_run_cell)
        self._prompting = threading.Event()  # a pause is on screen, waiting for a command
        self._interrupted_at: float | None = None  # when (time.time()) the Interrupt ended this cell's pauses
        self._cell_ending = threading.Event()  # between a cell's end and its after-cell block

    def handle(self, event: Event) -> None:
        if isinstance(event, (Interrupted, AgentExited, GdbDied)):
            # Handled at once: the console thread may be waiting for input for a pause that
            # no longer exists, and pauses queued behind it have ended too.
            # the agent lives on after gdb died (pause ids go on counting): only its pauses ended
            self._ended.update((event.session, pause) for pause in getattr(event, "ended", ()))
            if isinstance(event, Interrupted):
                # Rust code holding the GIL keeps this thread from running: this is said only
                # once it lets go, and the cell's end says how long after the Interrupt that was
                self._interrupted_at = event.resumed_at or time.time()
                self.show("native pause ended by the Interrupt button: the GIL was given back and the thread "
                          "resumed; Rust code cannot be stopped midway: KeyboardInterrupt is raised when it "
                          "returns to Python or calls `py.check_signals()`"
                          + ("; the (native) box above has closed: what is typed there goes nowhere"
                             if self._prompting.is_set() else "")
                          + "".join(f"; {p}" for p in event.problems))
            else:
                if isinstance(event, AgentExited):
                    self._dead_sessions.add(event.session)
                self.show(f"native debugger: {event.message}")
            self.interrupted.set()
            self.reader.cancel()
            return
        if isinstance(event, Notice) and self._cell_ending.is_set():
            self.notes.append(f"native debugger: {event.message}")  # shown in the after-cell block
            return
        self._events.put(event)
        self.start()

    def start(self) -> None:
        """Start the console thread now, while gdb is not yet attached or can answer: a thread
        created while gdb is stopped waits in its clone event for gdb, holding the GIL."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="pyo3-native-console", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            event = self._events.get()
            try:
                self._dispatch(event)
            except KeyboardInterrupt:
                pass  # a late cancel() of an input that had already ended; nothing is waiting
            except Exception:  # noqa: BLE001 - a console bug must not leave the kernel stopped
                self.show("pyo3_debug_magic: internal error in the pause console:\n" + traceback.format_exc())
                if isinstance(event, Paused):
                    self._resume_quietly(event.thread)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, Paused):
            if event.session in self._dead_sessions or (event.session, event.pause_id) in self._ended:
                return  # ended before the user saw it
            self._pause(backtrace.stop(event), (event.session, event.pause_id), event.ident)
        elif isinstance(event, HangSeen):
            self._hang(event)
        elif isinstance(event, Notice):
            self.show(f"native debugger: {event.message}")
        elif isinstance(event, CrashSeen):
            self.show(f"native debugger: {event.signal} in thread {event.thread}; the process is going down")

    def _hang(self, event: HangSeen) -> None:
        paused = False
        try:
            report = backtrace.hang_report(event)
            if not self.can_prompt():
                report = replace(report, can_pause=False)  # nobody can answer the question
            self.show(render_text.hang_report(report), render_html.hang_report(report))
            if report.can_pause:
                answer = self.reader.read(HANG_QUESTION).strip().lower()
                if answer in ("p", "pause"):
                    self.debugger.pause_hung()  # its Paused event comes next, with the prompt
                    paused = True
        except NO_INPUT:
            pass  # no answer: it runs on
        except DebugMagicError as error:
            self.show(f"native debugger: {error}")
        finally:
            if not paused:
                try:
                    self.debugger.hang_shown()
                except DebugMagicError:
                    pass

    def _resume_quietly(self, thread: int) -> None:
        try:
            self.debugger.resume(thread, "continue")
        except DebugMagicError:
            pass

    # ----- one pause ----------------------------------------------------------------
    def cell_ending(self) -> None:
        """The cell has ended: a notice from now on (the helper reads what gdb said during the
        cell before it answers its end) joins the after-cell block instead of the next cell."""
        self._cell_ending.set()

    def take_notes(self, settle: float = 2.0) -> list[str]:
        """Notes for the cell that just ended. A cell can only end while its pause is on screen
        if the agent ended that pause (Interrupt, agent gone); its event may still be on its
        way, so wait up to ``settle`` seconds for the prompt to close before taking them."""
        deadline = time.monotonic() + settle
        while self._prompting.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        notes, self.notes = self.notes, []
        self._cell_ending.clear()
        if self._interrupted_at is not None:
            ran_on = time.time() - self._interrupted_at
            self._interrupted_at = None
            if ran_on >= RAN_ON_NOTED:
                notes.append(f"the cell ran on for {ran_on:.1f} s after the Interrupt ended its pause: "
                             "Rust code is interrupted only where it calls `py.check_signals()?` (put one "
                             "in long loops) or when it returns to Python")
        return notes

    def _pause(self, stop: Stop, key: tuple, ident: int | None) -> None:
        stop = self.shape_stop(stop)
        self.interrupted.clear()
        compact = stop.thread in self._stepping
        self._stepping.discard(stop.thread)
        if stop.handed_off and not compact:
            stop, self._gil_explained = replace(stop, gil_explained=self._gil_explained), True
        view = render_text.stop_view(stop, compact=compact)
        self.show(view, render_html.stop_view(stop, compact=compact))
        if not self.can_prompt():
            self.show("no input available in this cell (unattended run): not pausing, continuing")
            self.debugger.resume(stop.thread, "continue")
            return
        self._prompting.set()
        try:
            self._prompt(PauseState(stop, key, ident))
        finally:
            self._prompting.clear()

    def _prompt(self, state: PauseState) -> None:
        commands = NativeCommands(self.debugger, state, self.show, on_step=self._stepping.add)
        while True:
            try:
                line = self.reader.read(commands.prompt)
            except NO_INPUT as error:
                if self.interrupted.is_set():
                    self.interrupted.clear()
                else:
                    self.show(f"no input ({type(error).__name__}): continuing")
                    self._resume_quietly(state.stop.thread)
                return
            if self.interrupted.is_set():
                self.interrupted.clear()
                return  # the agent already resumed the thread; this answer is stale
            try:
                if commands.onecmd(line):
                    return
            except DebugMagicError as error:
                if self._ended_meanwhile(state):
                    return  # the Interrupt (or the agent's end) got there first: no stale prompt
                self.show(f"error: {error}")

    def _ended_meanwhile(self, state: PauseState) -> bool:
        return state.key in self._ended or state.key[0] in self._dead_sessions
