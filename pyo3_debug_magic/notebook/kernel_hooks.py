"""IPython event hooks: the pause console, per-cell stdin policy, and log hits after each cell."""
from __future__ import annotations

import os
import sys
from dataclasses import replace

from pyo3_debug_magic.notebook.console import PauseConsole
from pyo3_debug_magic.debugger import get_debugger
from pyo3_debug_magic.errors import DebugMagicError
from pyo3_debug_magic.notebook.output import show
from pyo3_debug_magic.render import html as render_html
from pyo3_debug_magic.render import text as render_text

_console: PauseConsole | None = None
SHOWN_HITS = 20  # log hits shown below a cell at each end; every one goes to a file past twice that


def _shown_hits(hits: list, notes: list[str]) -> list:
    """At most the first and last SHOWN_HITS of ``hits`` (20,000 hits of `--log --bt` were
    63 MB below one cell); all of them go to a file the note names."""
    if len(hits) <= 2 * SHOWN_HITS:
        return hits
    from pyo3_debug_magic import paths

    path = paths.state_dir() / f"log-hits-{os.getpid()}-{hits[-1].number}-{hits[-1].hit}.txt"
    try:
        with paths.open_private(path, "w") as file:
            file.write(render_text.log_hits(hits) + "\n")
        where = f"every one is in {path}"
    except DebugMagicError as error:
        where = f"the others could not be written: {error}"
    notes.append(f"{len(hits)} log hits: the first {SHOWN_HITS} and the last {SHOWN_HITS} are shown; {where}")
    return hits[:SHOWN_HITS] + hits[-SHOWN_HITS:]


def stdin_allowed(shell) -> bool:
    """Can the running cell answer input()? (nbclient/papermill send allow_stdin=False.)"""
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        return bool(getattr(kernel, "_allow_stdin", False))
    return bool(sys.stdin) and sys.stdin.isatty()


def install(shell) -> None:
    global _console
    debugger = get_debugger()
    if getattr(shell, "kernel", None) is None and debugger.setup.terminal is None and stdin_allowed(shell):
        # terminal IPython: the helper may ask on the terminal itself when no Python can run
        # (a hung thread that keeps the GIL outside the user's crate)
        debugger.setup = replace(debugger.setup, terminal=(os.dup(0), os.dup(1)))
    if _console is None:
        _console = PauseConsole(debugger, can_prompt=lambda: stdin_allowed(shell))
        debugger.add_listener(_console.handle)
        _console.start()
    else:
        _console.can_prompt = lambda: stdin_allowed(shell)
    shell.events.register("pre_run_cell", _pre_run_cell)
    shell.events.register("post_run_cell", _post_run_cell)
    _pre_run_cell.shell = shell


def uninstall(shell) -> None:
    for name, callback in (("pre_run_cell", _pre_run_cell), ("post_run_cell", _post_run_cell)):
        try:
            shell.events.unregister(name, callback)
        except ValueError:
            pass


def _pre_run_cell(info=None) -> None:
    debugger = get_debugger()
    if debugger.attached:
        try:
            debugger.set_pausing_allowed(stdin_allowed(_pre_run_cell.shell))
        except DebugMagicError as error:
            show(f"native debugger: {error}")


def _post_run_cell(result=None) -> None:
    if _console is not None:
        _console.cell_ending()  # notices the helper sends from here on are this cell's
    notes, hits = [], []
    debugger = get_debugger()
    if debugger.attached:
        try:
            notes += [f"native debugger: {note}" for note in debugger.cell_done()]
            hits = _shown_hits(debugger.take_log_hits(), notes)
        except DebugMagicError as error:
            notes.append(f"native debugger: {error}")
    notes = (_console.take_notes() if _console is not None else []) + notes
    if notes or hits:  # one titled block, not messages scattered below the result
        show(render_text.after_cell(notes, hits), render_html.after_cell(notes, hits))
