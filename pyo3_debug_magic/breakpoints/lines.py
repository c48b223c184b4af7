"""Which line a ``FILE:LINE`` means: one on a doc comment, an attribute or a signature moves
to the function's first statement, where the user's code starts."""
from __future__ import annotations

import os
import re
from pathlib import Path

NOT_CODE = re.compile(r"^\s*(//.*|#!?\[.*|)$")          # a comment, an attribute, a blank line
# items with no code of their own between a module's doc comment and its first function
NO_CODE_ITEM = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(use\s[^;]*;|mod\s+\w+\s*;|extern\s+crate\s[^;]*;)\s*(//.*)?$")
FN_SIGNATURE = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+|async\s+|unsafe\s+|extern\s+\"[^\"]*\"\s+)*fn\s+(\w+)")


def user_written_line(path: str | None, line: int | None) -> tuple[int, str] | None:
    """A FILE:LINE on a doc comment, an attribute (``#[pyfunction]``) or a function's signature
    moves to the first statement of that function's body: gdb would put it on the next line
    with code, which for ``#[pyfunction]`` is PyO3's generated trampoline. (new line, why) or
    None when the line stays."""
    if not path or not line or not os.path.isfile(path):
        return None
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    def without_code(text: str) -> bool:
        return bool(NOT_CODE.match(text) or NO_CODE_ITEM.match(text))

    if line > len(lines) or not (without_code(lines[line - 1]) or FN_SIGNATURE.match(lines[line - 1])):
        return None
    index = line - 1
    while index < len(lines) and without_code(lines[index]) and not FN_SIGNATURE.match(lines[index]):
        index += 1
    signature = FN_SIGNATURE.match(lines[index]) if index < len(lines) else None
    if signature is None:
        return None  # not before a function: gdb's next line with code is the user's
    while index < len(lines) and "{" not in lines[index]:  # a signature over several lines
        index += 1
    index += 1
    while index < len(lines) and NOT_CODE.match(lines[index]):
        index += 1
    if index >= len(lines) or lines[index].strip().startswith("}"):
        return None
    text = lines[line - 1].strip()
    what = ("the signature of" if FN_SIGNATURE.match(lines[line - 1]) else "a doc comment of" if text.startswith("///")
            else "an attribute of" if text.startswith("#") else "a comment before" if text else "a blank line before")
    if text.startswith("//!") or NO_CODE_ITEM.match(text):
        what = "before any code: the next function is"
    return index + 1, (f"line {line} is {what} `{signature.group(4)}`: the breakpoint is on line {index + 1}, "
                       "its first statement")
