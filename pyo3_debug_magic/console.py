"""Kernel side of a pause: a console thread renders the stop and reads ``(native)`` commands.

The thread that hit the breakpoint is stopped by gdb (and has given up the GIL through the
agent), so the console runs in its own Python thread. It shows everything with
``display()`` (ipykernel 6 routes a thread's ``print`` by where the thread was started,
``display`` reaches the running cell) and reads commands with ``input()``, which the kernel
routes to the running cell's input box (``console_input``: the Interrupt can end that wait).
"""
from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
from dataclasses import replace

from . import backtrace
from .console_input import CommandReader, InputCancelled
from .debugger import BreakpointRequest, NativeDebugger
from .errors import DebugMagicError
from .output import show
from .model import (AgentExited, CrashSeen, Event, GdbDied, HangSeen, Interrupted, Notice, Paused,
                    Stop)
from .render import html as render_html
from .render import text as render_text
from .userinput import ASSIGNMENT

ASSIGNED = ("  (assigned where gdb sees the variable; code that already read it into a register keeps "
            "the old value, so the result may not change)")

HANG_QUESTION = "(native) p pauses the stuck thread here, Enter lets it run on: "
HELP = """(native) commands:
  n, next          run to the next line (over calls)
  s, step          step into calls
  finish           run until the current frame returns
  c, continue      let the thread run on
  bt               merged Rust + Python backtrace
  up, down         select the caller / callee frame;  frame N  select frame N
  list             source around the selected frame
  locals           locals of the selected frame (locals --raw: std internals unfolded)
  p EXPR           evaluate a Rust/C expression in the selected frame (PyO3 values as
                   Python values); p/r EXPR shows the raw form
  py EXPR          evaluate Python in the frame that called into Rust (breakpoints are off meanwhile)
  break LOCATION   set a breakpoint (FILE:LINE or crate::function, as %native_break)
  q, quit          delete all native breakpoints and continue
  help             this text"""


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
        self.interrupted = threading.Event()
        self._ended: set[tuple] = set()      # (session, pause id) the agent ended: never prompted
        self._dead_sessions: set = set()     # the agent went away: all its pauses ended
        self.reader = reader or CommandReader()
        self.notes: list[str] = []  # shown at the end of the cell (kernel_hooks._post_run_cell)
        self._prompting = threading.Event()  # a pause is on screen, waiting for a command

    def handle(self, event: Event) -> None:
        if isinstance(event, (Interrupted, AgentExited, GdbDied)):
            # Handled at once: the console thread may be waiting for input for a pause that
            # no longer exists, and pauses queued behind it have ended too.
            # the agent lives on after gdb died (pause ids go on counting): only its pauses ended
            self._ended.update((event.session, pause) for pause in getattr(event, "ended", ()))
            if isinstance(event, Interrupted):
                self.notes.append("native pause ended by the Interrupt button: the GIL was given back "
                                  "and the thread resumed" + "".join(f"; {p}" for p in event.problems))
            else:
                if isinstance(event, AgentExited):
                    self._dead_sessions.add(event.session)
                self.show(f"native debugger: {event.message}")
            self.interrupted.set()
            self.reader.cancel()
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
        except (InputCancelled, EOFError, KeyboardInterrupt, RuntimeError):
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
    def take_notes(self, settle: float = 2.0) -> list[str]:
        """Notes for the cell that just ended. A cell can only end while its pause is on screen
        if the agent ended that pause (Interrupt, agent gone); its event may still be on its
        way, so wait up to ``settle`` seconds for the prompt to close before taking them."""
        deadline = time.monotonic() + settle
        while self._prompting.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        notes, self.notes = self.notes, []
        return notes

    def _pause(self, stop: Stop, key: tuple, ident: int | None) -> None:
        stop = self.shape_stop(stop)
        self.interrupted.clear()
        compact = stop.thread in self._stepping
        self._stepping.discard(stop.thread)
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

    def _prompt(self, state: "PauseState") -> None:
        while True:
            try:
                line = self.reader.read("(native) ")
            except (InputCancelled, EOFError, KeyboardInterrupt, RuntimeError) as error:
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
                if self._command(state, line.strip()):
                    return
            except DebugMagicError as error:
                if self._ended_meanwhile(state):
                    return  # the Interrupt (or the agent's end) got there first: no stale prompt
                self.show(f"error: {error}")

    def _ended_meanwhile(self, state: "PauseState") -> bool:
        return state.key in self._ended or state.key[0] in self._dead_sessions

    def _command(self, state: "PauseState", line: str) -> bool:
        """Run one command; True when the thread was resumed."""
        name, _, argument = line.partition(" ")
        argument = argument.strip()
        if name in ("n", "next", "s", "step", "finish"):
            how = {"n": "next", "s": "step"}.get(name, name)
            self._stepping.add(state.stop.thread)
            self.debugger.resume(state.stop.thread, how, frame=state.stop.selected if how == "finish" else 0)
            return True
        # said before the thread runs on: a thread that runs on holding the GIL (a loop in Rust)
        # keeps this console from printing anything after
        if name in ("c", "continue", "cont"):
            self.show("continuing")
            self.debugger.resume(state.stop.thread, "continue")
            return True
        if name in ("q", "quit"):
            numbers = sorted(info.number for info in self.debugger.breakpoints())
            self.show(f"deleting native breakpoints {numbers} and continuing")
            self.debugger.quit()
            return True
        if name in ("bt", "backtrace", "where"):
            self.show(render_text.backtrace(state.stop.stack, state.stop.selected))
        elif name in ("up", "down", "frame", "f"):
            state.stop = replace(state.stop, selected=self._select(state.stop, name, argument))
            frame = state.stop.frame
            self.show(f"#{state.stop.selected} {frame.function} at {frame.where}" if frame else "no frame")
        elif name in ("list", "l"):
            self.show(render_text.source_snippet(state.stop.frame, context=5))
        elif name == "locals":
            variables = self.debugger.locals(state.stop.thread, state.stop.selected)
            self.show(render_text.locals_table(variables, raw=argument == "--raw"))
        elif name in ("p", "print", "p/r", "print/r"):
            if not argument:
                self.show(f"usage: {name} EXPR")
            else:
                value = self.debugger.evaluate(state.stop.thread, state.stop.selected, argument,
                                               raw=name.endswith("/r"))
                self.show(f"{argument}{ASSIGNED}" if ASSIGNMENT.search(argument) else f"{argument} = {value}")
        elif name == "py":
            # the console's thread runs it: at a breakpoint it would pause itself, and no one
            # would be left to show the pause
            with self.debugger.breakpoints_suspended():
                self.show(self._python_eval(state, argument))
        elif name in ("break", "b"):
            if not argument:
                self.show("usage: break FILE:LINE (or crate::function)")
            else:
                created = self.debugger.set_breakpoint(BreakpointRequest(argument))
                self.show(render_text.breakpoint_created(created))
        elif name in ("help", "h", "?", ""):
            self.show(HELP)
        else:
            self.show(f"unknown command {name!r}; `help` lists them")
        return False

    @staticmethod
    def _select(state: Stop, name: str, argument: str) -> int:
        if name == "up":
            return min(state.selected + 1, len(state.native) - 1)
        if name == "down":
            return max(state.selected - 1, 0)
        if not argument.isdigit() or int(argument) >= len(state.native):
            raise DebugMagicError(f"no frame {argument!r}", f"frames are 0..{len(state.native) - 1}")
        return int(argument)

    @staticmethod
    def _python_eval(state: "PauseState", expression: str) -> str:
        """Evaluate in the innermost Python frame of the paused thread (the one that called Rust)."""
        if not expression:
            return "usage: py EXPR"
        frame = sys._current_frames().get(state.ident) if state.ident else None
        if frame is None:
            return "this thread has no Python frames (a native worker thread)"
        try:
            return repr(eval(expression, frame.f_globals, frame.f_locals))  # noqa: S307 - the user's own kernel
        except Exception as error:  # noqa: BLE001 - shown to the user
            return f"{type(error).__name__}: {error}"


class PauseState:
    """The console's state for one pause: what is shown (``stop``, its frame selection) and
    the names the agent's events use for it."""

    def __init__(self, stop: Stop, key: tuple, ident: int | None):
        self.stop = stop
        self.key = key        # (agent session, pause id)
        self.ident = ident    # the paused thread's Python ident (for `py`)


class CrashConsole(PauseConsole):
    """The ``(native)`` prompt of a thread that cannot run Python, run by the agent on the
    terminal it was given: a crash (``pytest --native-pdb``: ``c`` or ``q`` lets the signal
    kill the process) or a hung thread that keeps the GIL outside the user's crate (``c``
    lets it run on). Everything here reads gdb's view of the stopped thread."""

    STUCK = ("n", "next", "s", "step", "finish")

    def __init__(self, *args, ending: str, stuck: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.ending = ending  # said at `c` / `q`
        self.stuck = stuck    # said at a step
    def run(self, stop: Stop) -> None:
        """Show the stop and read commands until ``c``/``q`` (or the end of input)."""
        self.show(render_text.stop_view(stop))
        self._prompt(PauseState(stop, ("crash", 0), None))

    def _resume_quietly(self, thread: int) -> None:
        pass  # the end of input: the process dies as it would have

    def _command(self, state: "PauseState", line: str) -> bool:
        name = line.partition(" ")[0]
        if name in self.STUCK:
            self.show(self.stuck)
            return False
        if name in ("c", "continue", "cont", "q", "quit"):
            self.show(self.ending)
            return True
        if name == "py":
            self.show("`py` needs the process's interpreter, which the crash stopped; "
                      "`bt` shows the Python frames")
            return False
        return super()._command(state, line)
