"""Rust values as a Rust author writes them, from gdb's text of them.

gdb names an enum's variant by its whole type path: ``core::option::Option<i64>::Some(7)``,
``core::result::Result<i64, pyo3::err::PyErr>::Ok(3)``. The path of the two enums every
signature uses is dropped: ``Some(7)``, ``Ok(3)``, ``None``. An ``Rc``/``Arc`` says its counts
once: ``Rc(strong=1, weak=0) = {1, 2}``, not again after its value."""
from __future__ import annotations

import re

SHORTENED = ("core::option::Option<", "core::result::Result<")
COUNTED = re.compile(r"^(?P<head>A?rc\(strong=\d+, weak=\d+\)) = \{value = (?P<value>.*), strong = \d+, weak = \d+\}$",
                     re.S | re.I)


def readable(text: str) -> str:
    """``text`` with ``Option<...>::`` and ``Result<...>::`` before their variants dropped."""
    counted = COUNTED.match(text)
    if counted:
        text = f"{counted.group('head')} = {counted.group('value')}"
    shown, start = [], 0
    while True:
        found = [index for index in (text.find(path, start) for path in SHORTENED) if index >= 0]
        if not found:
            return "".join(shown) + text[start:]
        begin = min(found)
        close = _closing_bracket(text, text.index("<", begin))
        if close is None or not text.startswith("::", close + 1):
            shown.append(text[start:begin + 1])  # not a variant's path: kept as it is
            start = begin + 1
            continue
        shown.append(text[start:begin])
        start = close + 3


def _closing_bracket(text: str, opening: int) -> int | None:
    depth = 0
    for index in range(opening, len(text)):
        if text[index] == "<":
            depth += 1
        elif text[index] == ">" and text[index - 1] != "-":  # not a `fn() -> T`'s arrow
            depth -= 1
            if depth == 0:
                return index
    return None
