"""What every magic does with what was typed: plain text checked, IPython's argument parser,
quotes and lists, our errors shown as IPython's one-line UsageError."""
from __future__ import annotations

import dis
import functools
import os
import re
import sys

from IPython.core.error import UsageError
from IPython.core.magic_arguments import parse_argstring

from pyo3_debug_magic import userinput
from pyo3_debug_magic.errors import DebugMagicError
from pyo3_debug_magic.stacks.merging import is_cell_file


PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
USER_TEXT_FILES = ("<refcheck>",)  # what the magics compile from what was typed, besides cells


def user_errors_as_usage(method):
    """Our errors become IPython's one-line UsageError; an error of the user's own code that a
    magic ran (its expression, its cell) is shown as a cell would show it, with the user's
    frames only, as %timeit does; anything else keeps its whole traceback."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except DebugMagicError as error:
            raise UsageError(userinput.printable(str(error))) from None
        except UsageError as error:  # argparse's messages may echo what was typed
            raise UsageError(userinput.printable(str(error))) from None
        except BaseException as error:  # noqa: BLE001 - re-raised: only its traceback is cut
            users = users_frames(error.__traceback__)
            if users is None:
                raise
            __tracebackhide__ = True  # noqa: F841 - IPython leaves this frame out of what it shows
            raise error.with_traceback(users)

    return wrapper


def users_frames(traceback):
    """The part of ``traceback`` that is the user's code run by a magic: what follows our own
    frames, when it starts in a cell or in text the magic compiled; None when it does not
    (an error of ours, or of a library we called, keeps every frame)."""
    while traceback is not None and traceback.tb_frame.f_code.co_filename.startswith(PACKAGE):
        traceback = traceback.tb_next
    if traceback is None:
        return None
    filename = traceback.tb_frame.f_code.co_filename
    return traceback if is_cell_file(filename) or filename in USER_TEXT_FILES else None


def parse_args(magic, line: str):
    """``parse_argstring`` for plain text: unbalanced quotes and non-text become UsageErrors."""
    userinput.check_text(line, f"the arguments of %{magic.__name__}", one_line=False)
    try:
        return parse_argstring(magic, line)
    except ValueError as error:  # shlex: "No closing quotation", "No escaped character"
        raise UsageError(f"%{magic.__name__}: {str(error).lower()} in the arguments; "
                         "close the quote, or escape it") from None


REFCHECK_VALUE_OPTIONS = {"-n", "--number", "--warmup"}


def value_shown_as_output() -> bool:
    """Will IPython show the calling magic's return value as ``Out[n]``? Only when the cell
    statement that called it is an expression compiled to print its value ('single' mode)."""
    frame = sys._getframe(1)
    while frame is not None and not is_cell_file(frame.f_code.co_filename):
        frame = frame.f_back
    return frame is not None and any(
        instruction.opname == "PRINT_EXPR" or instruction.argrepr == "INTRINSIC_PRINT"  # 3.12+
        for instruction in dis.get_instructions(frame.f_code))


def unquote(text: str | None) -> str | None:
    """IPython's argument splitter keeps quotes: ``--if "x > 1"`` arrives as ``"x > 1"``."""
    if text and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def split_expressions(text: str) -> tuple[str, ...]:
    """``"total, f(a, b)"`` -> ("total", "f(a, b)"): commas inside brackets do not split."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth = max(depth - 1, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return tuple(p for p in parts if p)


def breakpoint_numbers(text: str, magic: str) -> list[int] | None:
    """``"1 3"`` -> [1, 3]; ``"all"`` -> None (every breakpoint)."""
    words = text.replace(",", " ").split()
    if words == ["all"]:
        return None
    if not words or not all(re.fullmatch(r"[0-9]{1,9}", word) for word in words):
        raise UsageError(f"%{magic} takes breakpoint numbers or `all`, e.g. `%{magic} 2`")
    return [int(word) for word in words]
