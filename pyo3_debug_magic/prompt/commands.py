"""The ``(native)`` prompt's commands, one interpreter for every front end: the notebook's input
box, terminal IPython, pytest's ``--native-break`` and the helper's own terminal prompt after a
crash (``--native-pdb``) or for a hung thread that keeps the GIL.

It is a ``cmd.Cmd``, as pdb is: a ``do_*`` method per command, aliases beside it, ``help`` built
from the docstrings. Lines come from the caller (a reader the Interrupt can cancel), never from
``cmdloop``; ``onecmd`` answers whether the thread was let go.
"""
from __future__ import annotations

import cmd
import sys
from dataclasses import replace

from pyo3_debug_magic.errors import DebugMagicError
from pyo3_debug_magic.model import BreakpointRequest, Stop
from pyo3_debug_magic.prompt.reader import CommandReader, InputCancelled
from pyo3_debug_magic.render import text as render_text
from pyo3_debug_magic.stacks import sources
from pyo3_debug_magic.userinput import ASSIGNMENT

ASSIGNED = ("  (assigned where gdb sees the variable; code that already read it into a register keeps "
            "the old value, so the result may not change)")
NO_INPUT = (InputCancelled, EOFError, KeyboardInterrupt, RuntimeError)


class PauseState:
    """One pause as the prompt sees it: what is shown (``stop``, its frame selection) and the
    names the agent's events use for it."""

    def __init__(self, stop: Stop, key: tuple, ident: int | None):
        self.stop = stop
        self.key = key        # (agent session, pause id)
        self.ident = ident    # the paused thread's Python ident (for `py`)


class NativeCommands(cmd.Cmd):
    """The commands of one pause over ``target`` (a ``NativeDebugger``, or the helper's own gdb
    after a crash): ``resume``, ``quit``, ``breakpoints``, ``locals``, ``evaluate``,
    ``breakpoints_suspended``, ``set_breakpoint``. ``show(text)`` prints; ``on_step(thread)``
    is told before a step lets the thread go."""

    prompt = "(native) "
    ORDER = ("next", "step", "finish", "continue", "bt", "up", "list", "locals", "p", "py", "break",
             "quit", "help")

    def __init__(self, target, state: PauseState, show, on_step=lambda thread: None):
        super().__init__()
        self.target, self.state, self.show, self.on_step = target, state, show, on_step

    # ----- the interpreter's shape -------------------------------------------------------
    def parseline(self, line: str):
        """``NAME ARGUMENT``, split at the first space (``p/r EXPR`` is ``p`` with ``/r``)."""
        line = line.strip()
        name, _, argument = line.partition(" ")
        if name.endswith("/r"):
            name, argument = name[:-2], ("/r " + argument).strip()
        name = "help" if name == "?" else name
        return (name if name.isidentifier() else None), argument.strip(), line

    def onecmd(self, line: str) -> bool:
        return bool(super().onecmd(line))

    def emptyline(self) -> bool:
        return self.do_help("")

    def default(self, line: str) -> bool:
        self.show(f"unknown command {line.partition(' ')[0]!r}; `help` lists them")
        return False

    def do_help(self, argument: str) -> bool:
        """help             this text"""
        method = getattr(self, f"do_{argument}", None) if argument.isidentifier() else None
        if method is not None and method.__doc__:
            self.show(_help_line(method))
        else:
            self.show("(native) commands:\n" + "\n".join(_help_line(getattr(self, f"do_{name}"))
                                                        for name in self.ORDER))
        return False

    # ----- running on ----------------------------------------------------------------------
    def do_next(self, argument: str) -> bool:
        """n, next          run to the next line (over calls)"""
        return self._step("next")

    def do_step(self, argument: str) -> bool:
        """s, step          step into calls"""
        return self._step("step")

    def do_finish(self, argument: str) -> bool:
        """finish           run until the current frame returns"""
        return self._step("finish")

    def _step(self, how: str) -> bool:
        stop = self.state.stop
        self.on_step(stop.thread)
        self.target.resume(stop.thread, how, frame=stop.selected if how == "finish" else 0)
        return True

    def do_continue(self, argument: str) -> bool:
        """c, continue      let the thread run on"""
        # said before the thread runs on: a thread that runs on holding the GIL (a loop in
        # Rust) keeps this console from printing anything after
        self.show("continuing")
        self.target.resume(self.state.stop.thread, "continue")
        return True

    def do_quit(self, argument: str) -> bool:
        """q, quit          delete all native breakpoints and continue"""
        numbers = sorted(info.number for info in self.target.breakpoints())
        self.show(f"deleting native breakpoints {numbers} and continuing")
        self.target.quit()
        return True

    # ----- looking around ------------------------------------------------------------------
    def do_bt(self, argument: str) -> bool:
        """bt               merged Rust + Python backtrace"""
        self.show(render_text.backtrace(self.state.stop.stack, self.state.stop.selected))
        return False

    def do_up(self, argument: str) -> bool:
        """up, down         select the caller / callee frame;  frame N  select frame N"""
        return self._select(min(self.state.stop.selected + 1, len(self.state.stop.native) - 1))

    def do_down(self, argument: str) -> bool:
        return self._select(max(self.state.stop.selected - 1, 0))
    do_down.__doc__ = do_up.__doc__

    def do_frame(self, argument: str) -> bool:
        count = len(self.state.stop.native)
        if not argument.isdigit() or int(argument) >= count:
            raise DebugMagicError(f"no frame {argument!r}", f"frames are 0..{count - 1}")
        return self._select(int(argument))
    do_frame.__doc__ = do_up.__doc__

    def _select(self, level: int) -> bool:
        self.state.stop = replace(self.state.stop, selected=level)
        frame = self.state.stop.frame
        self.show(f"#{level} {frame.function} at {frame.where}" if frame else "no frame")
        return False

    def do_list(self, argument: str) -> bool:
        """list             source around the selected frame"""
        frame = self.state.stop.frame
        self.show(render_text.source_snippet(frame, sources.around(frame), context=5))
        return False

    def do_locals(self, argument: str) -> bool:
        """locals           locals of the selected frame (locals --raw: std internals unfolded)"""
        variables = self.target.locals(self.state.stop.thread, self.state.stop.selected)
        self.show(render_text.locals_table(variables, raw=argument == "--raw"))
        return False

    def do_p(self, argument: str) -> bool:
        """p EXPR           evaluate a Rust/C expression in the selected frame (PyO3 values as
                   Python values); p/r EXPR shows the raw form"""
        raw = argument.startswith("/r")
        expression = argument[2:].strip() if raw else argument
        if not expression:
            self.show("usage: p EXPR")
            return False
        value = self.target.evaluate(self.state.stop.thread, self.state.stop.selected, expression, raw=raw)
        self.show(f"{expression}{ASSIGNED}" if ASSIGNMENT.search(expression) else f"{expression} = {value}")
        return False

    def do_py(self, argument: str) -> bool:
        """py EXPR          evaluate Python in the frame that called into Rust (breakpoints are off meanwhile)"""
        # the console's thread runs it: at a breakpoint it would pause itself, and no one would
        # be left to show the pause
        with self.target.breakpoints_suspended():
            self.show(self._python_eval(argument))
        return False

    def _python_eval(self, expression: str) -> str:
        """Evaluate in the innermost Python frame of the paused thread (the one that called Rust)."""
        if not expression:
            return "usage: py EXPR"
        frame = sys._current_frames().get(self.state.ident) if self.state.ident else None
        if frame is None:
            return "this thread has no Python frames (a native worker thread)"
        try:
            return repr(eval(expression, frame.f_globals, frame.f_locals))  # noqa: S307 - the user's own kernel
        except Exception as error:  # noqa: BLE001 - shown to the user
            return f"{type(error).__name__}: {error}"

    def do_break(self, argument: str) -> bool:
        """break LOCATION   set a breakpoint (FILE:LINE or crate::function, as %native_break)"""
        if not argument:
            self.show("usage: break FILE:LINE (or crate::function)")
        else:
            self.show(render_text.breakpoint_created(self.target.set_breakpoint(BreakpointRequest(argument))))
        return False

    do_n, do_s, do_c, do_cont, do_q = do_next, do_step, do_continue, do_continue, do_quit
    do_backtrace = do_where = do_bt
    do_f, do_l, do_print, do_b, do_h = do_frame, do_list, do_p, do_break, do_help


class CrashCommands(NativeCommands):
    """The prompt of a thread that cannot run Python, on gdb's view of it: a crash (``c`` or
    ``q`` lets the signal kill the process) or a hung thread that keeps the GIL outside the
    user's crate (``c`` lets it run on). ``ending`` is said at ``c``/``q``, ``stuck`` at a step."""

    def __init__(self, *args, ending: str, stuck: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.ending, self.stuck = ending, stuck

    def _step(self, how: str) -> bool:
        self.show(self.stuck)
        return False

    def do_continue(self, argument: str) -> bool:
        self.show(self.ending)
        return True
    do_continue.__doc__ = NativeCommands.do_continue.__doc__
    do_quit = do_c = do_cont = do_q = do_continue

    def do_py(self, argument: str) -> bool:
        self.show("`py` needs the process's interpreter, which the crash stopped; `bt` shows the Python frames")
        return False


def crash_prompt(stop: Stop, target, show, reader: CommandReader, ending: str, stuck: str) -> None:
    """Show a stopped thread and read commands until ``c``/``q`` or the end of input."""
    show(render_text.stop_view(stop))
    commands = CrashCommands(target, PauseState(stop, ("crash", 0), None), show, ending=ending, stuck=stuck)
    while True:
        try:
            line = reader.read(commands.prompt)
        except NO_INPUT as error:
            show(f"no input ({type(error).__name__}): continuing")  # the process dies as it would have
            return
        try:
            if commands.onecmd(line):
                return
        except DebugMagicError as error:
            show(f"error: {error}")


def _help_line(method) -> str:
    lines = method.__doc__.splitlines()
    return "\n".join(["  " + lines[0]] + [line.rstrip() for line in lines[1:]])
