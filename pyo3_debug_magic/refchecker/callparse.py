"""Turning the text of ``%refcheck CALL`` into a function, argument objects and their names."""
from __future__ import annotations

import ast
import linecache
from dataclasses import dataclass, field
from typing import Any

from pyo3_debug_magic.errors import UsageProblem


@dataclass
class ParsedCall:
    func: Any
    args: list[Any] = field(default_factory=list)
    arg_names: list[str] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    kwarg_names: dict[str, str] = field(default_factory=dict)


def split_options(line: str, takes_value: set[str]) -> tuple[str, str]:
    """Split ``-n 5 --quiet f(x)`` into (``-n 5 --quiet``, ``f(x)``) without touching the call text."""
    rest = line.strip()
    options = []
    while rest.startswith("-"):
        token, _, tail = rest.partition(" ")
        options.append(token)
        rest = tail.lstrip()
        if token in takes_value:
            value, _, rest = rest.partition(" ")
            options.append(value)
            rest = rest.lstrip()
    return " ".join(options), rest


def check_statements(cell: str) -> str:
    """``%%refcheck``'s cell when it parses; its syntax error as the user's, not a traceback
    through refcheck."""
    try:
        compile(cell, "<refcheck>", "exec")
    except SyntaxError as error:
        raise UsageProblem(f"the cell does not parse: {error.msg} (line {error.lineno})",
                           "fix the statement and run the cell again") from None
    return cell


def evaluate_call(source: str, namespace: dict) -> ParsedCall:
    """Evaluate the callee and each argument expression once, in ``namespace``."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as error:
        raise UsageProblem(f"not a Python expression: {source.strip()[:200]!r} ({error.msg})",
                           "write one call, e.g. `%refcheck mymod.process(data, key=k)`") from None
    except (RecursionError, MemoryError):
        raise UsageProblem("the call is nested too deeply to parse",
                           "assign parts of it to variables first") from None
    call = tree.body
    # a traceback through the user's expression shows its text, as a cell's does
    linecache.cache["<refcheck>"] = (len(source), None, source.strip().splitlines(True), "<refcheck>")
    if not isinstance(call, ast.Call):
        raise UsageProblem(f"{source.strip()!r} is not a call",
                           "write one call, e.g. `%refcheck mymod.process(data)`, or use `%%refcheck` for statements")

    def value(node: ast.AST) -> Any:
        try:
            return eval(compile(ast.Expression(node), "<refcheck>", "eval"), namespace)
        except Exception as error:  # the user's own error, shown as a cell shows it
            raise error.with_traceback(_from_user_code(error.__traceback__)) from None

    def text(node: ast.AST) -> str:
        return ast.get_source_segment(source.strip(), node) or ast.unparse(node)

    parsed = ParsedCall(func=value(call.func))
    if not callable(parsed.func):
        raise UsageProblem(f"{text(call.func)[:80]!r} is a {type(parsed.func).__name__}, not something to call",
                           "write one call, e.g. `%refcheck mymod.process(data)`")
    for node in call.args:
        if isinstance(node, ast.Starred):
            items = list(value(node.value))
            parsed.args += items
            parsed.arg_names += [f"{text(node.value)}[{i}]" for i in range(len(items))]
        else:
            parsed.args.append(value(node))
            parsed.arg_names.append(text(node))
    for keyword in call.keywords:
        if keyword.arg is None:
            mapping = dict(value(keyword.value))
            parsed.kwargs.update(mapping)
            parsed.kwarg_names.update({key: f"{key}= (from **{text(keyword.value)})" for key in mapping})
        else:
            parsed.kwargs[keyword.arg] = value(keyword.value)
            parsed.kwarg_names[keyword.arg] = f"{keyword.arg}={text(keyword.value)}"
    return parsed


def _from_user_code(traceback):
    """The traceback without this module's own frames (it starts at the user's expression)."""
    while traceback is not None and traceback.tb_frame.f_code.co_filename == __file__:
        traceback = traceback.tb_next
    return traceback
