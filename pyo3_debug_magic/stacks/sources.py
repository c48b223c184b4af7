"""Source lines for the views: read here, when a view's model is built, so that the renderers
stay pure functions of the model."""
from __future__ import annotations

from pyo3_debug_magic.model import NativeFrame, SourceLines

CONTEXT = 5  # lines each side of the frame's line: the most any view shows


def around(frame: NativeFrame | None, context: int = CONTEXT) -> SourceLines | None:
    """The lines around ``frame``'s line, or None when its file cannot be read (built
    elsewhere, removed) or it has no line."""
    if frame is None or not frame.line or not frame.fullname:
        return None
    try:
        with open(frame.fullname, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    if not lines:
        return None
    first = max(frame.line - context, 1)
    return SourceLines(frame.fullname, first, tuple(lines[first - 1:frame.line + context]))
