"""Showing a view from any thread: text for terminals and logs, HTML where the front end renders it."""
from __future__ import annotations


_progress = None  # the display an attach's progress line updates


def show_attach_progress(seconds: float, doing: str, finished: bool) -> None:
    """One line in the running cell, updated in place, while an attach takes over a second."""
    global _progress
    from IPython.display import display

    from pyo3_debug_magic.render import text

    bundle = {"text/plain": text.attach_progress(seconds, doing, finished)}
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
