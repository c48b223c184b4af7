"""Showing a view from any thread: text for terminals and logs, HTML where the front end renders it."""
from __future__ import annotations


def show(plain: str, html: str | None = None) -> None:
    """Display into the running cell (``display`` reaches the running cell from any thread,
    where ipykernel 6 routes a thread's ``print`` by where the thread was started)."""
    from IPython.display import display

    bundle = {"text/plain": plain}
    if html:
        bundle["text/html"] = html
    display(bundle, raw=True)
