"""What the user types, checked before anything acts on it.

Text must be plain, printable text (no lone surrogates: an error message that echoes one stops
ipykernel from sending its reply, so the cell never completes). Expressions that gdb evaluates
(``--if``, ``--log``, the ``(native)`` prompt's ``p``) may not name gdb's own convenience
variables and functions (``$_shell``, ``$_as_string``, ...): they can run shell commands.
"""
from __future__ import annotations

import re

from pyo3_debug_magic.errors import UsageProblem

MAX_TEXT = 10_000
GDB_INTERNAL = re.compile(r"\$_\w*")
# a function or method call: a name, `]`, `)` or `>` (a generic) right before `(`; a cast's
# `(long)x` is not one
CALL = re.compile(r"[\w\])>]\s*\(")
# `=` that is not part of ==, !=, <=, >=, nor a compound assignment
ASSIGNMENT = re.compile(r"(?<![=!<>+\-*/%&|^])=(?!=)|\+=|-=|\*=|/=|%=|&=|\|=|\^=|<<=|>>=|\+\+|--(?!>)")


def printable(text: str) -> str:
    """``text`` safe to show and to send as UTF-8 (lone surrogates become ``\\udcxx``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_text(text: str, what: str, one_line: bool = True) -> str:
    """``text`` when it is plain text; a UsageProblem naming what is wrong otherwise."""
    if len(text) > MAX_TEXT:
        raise UsageProblem(f"{what} is {len(text):,} characters long", f"keep it under {MAX_TEXT:,}")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise UsageProblem(f"{what} contains characters that are not text (lone surrogates)",
                           "retype it")
    bad = next((ch for ch in text if (ord(ch) < 0x20 and (one_line or ch not in "\n\t\r"))
                or ord(ch) == 0x7F), None)
    if bad is not None:
        raise UsageProblem(f"{what} contains the control character {bad!r}",
                           "type it on one line, as plain text")
    return text


def check_breakpoint_expression(text: str, what: str) -> str:
    """A ``--if`` condition or ``--log`` expression: gdb evaluates it in the stopped thread at
    every hit, so it may neither call a function (a call into a function with a breakpoint
    recursed and froze the kernel) nor assign (gdb would change the program each hit)."""
    check_expression(text, what)
    if CALL.search(text):
        raise UsageProblem(f"{what} calls a function, which runs code in the stopped thread at every hit "
                           "(and recurses if that function has a breakpoint)",
                           "compare values instead (`value > 10`), or pause there and call it with `p`")
    if ASSIGNMENT.search(text):
        raise UsageProblem(f"{what} assigns ({text!r}): it would change your program at every hit",
                           "compare with `==`")
    return text


def check_expression(text: str, what: str = "the expression") -> str:
    """An expression for gdb to evaluate: plain one-line text without gdb's convenience names."""
    check_text(text, what)
    found = GDB_INTERNAL.search(text)
    if found:
        raise UsageProblem(f"{what} uses gdb's {found.group()}, which is not allowed "
                           "(gdb's convenience functions can run shell commands)",
                           "use your program's own variables and functions")
    return text
