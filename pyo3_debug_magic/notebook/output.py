"""Showing a view from any thread: text for terminals and logs, HTML where the front end renders it."""
from __future__ import annotations

import sys

_progress = None  # the display an attach's progress line updates


def show_attach_progress(seconds: float, doing: str, finished: bool, verb: str = "attach") -> None:
    """One line in the running cell, updated in place, while an attach (or a detach) takes
    over a second: a display updated in a notebook, a line redrawn (``\r``) in a terminal."""
    global _progress
    from IPython import get_ipython
    from IPython.display import display

    from pyo3_debug_magic.render import text

    line = text.attach_progress(seconds, doing, finished, verb)
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is None and sys.stdout.isatty():
        # terminal IPython prints every display update as a new line: redraw one line instead
        sys.stdout.write("\r\033[K" + line + ("\n" if finished else ""))
        sys.stdout.flush()
        return
    bundle = {"text/plain": line}
    if _progress is None:
        _progress = display(bundle, raw=True, display_id=True)
    else:
        _progress.update(bundle, raw=True)
    if finished:
        _progress = None


def show_bundle(data: dict) -> None:
    """Display a whole mimebundle (a widget with its HTML and text fallbacks)."""
    from IPython.display import display

    display(data, raw=True)


def show(plain: str, html: str | None = None) -> None:
    """Display into the running cell (``display`` reaches the running cell from any thread,
    where ipykernel 6 routes a thread's ``print`` by where the thread was started)."""
    from IPython.display import display

    bundle = {"text/plain": plain}
    if html:
        bundle["text/html"] = html
    display(bundle, raw=True)
