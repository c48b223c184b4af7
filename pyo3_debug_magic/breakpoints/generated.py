"""Code PyO3's macros generate in the user's own files.

``#[pyfunction]`` and ``#[pymethods]`` wrap each function in code that converts its arguments
and catches panics; ``#[pyclass]`` adds a type object. gdb places that code on the user's lines
(the attribute's, the signature's), but its locals are PyO3's (``function = 0x...``, ``output =``):
a breakpoint or a step that stops there shows values the user never wrote."""
from __future__ import annotations

import re

from pyo3_debug_magic.breakpoints.locations import is_user_source

GENERATED = re.compile(
    r"(^|::)(__pyfunction_\w+|__pymethod_\w+|__pyo3_\w+|_PYO3_DEF)(::|$)"
    # #[pymethods]' and #[pyclass]'s trait impls (PyMethods, PyClassImpl, PyTypeInfo): {impl#N} to gdb
    r"|::\{impl#\d+\}::(py_methods|doc|items_iter|lazy_type_object|type_object_raw)(::|$)")
WRAPPER = re.compile(r"^(?P<path>(?:\w+::)*)(?:__pyfunction_(?P<function>\w+)|__pymethod_(?P<method>\w+?)__)$")


def is_generated(function: str | None) -> bool:
    """``function`` (as gdb names it) is code PyO3's macros wrote, not the user."""
    return bool(function) and GENERATED.search(function) is not None


def is_users_code(fullname: str | None, function: str | None) -> bool:
    """A frame of code the user wrote: in their crate's files, and not PyO3's generated code."""
    return is_user_source(fullname) and not is_generated(function)


def first_user_level(frames) -> int | None:
    """The level of the innermost frame (``model.GdbFrame``) of the user's own code, if any."""
    return next((f.level for f in frames if is_users_code(f.fullname, f.func)), None)


def wrapped(function: str | None) -> str | None:
    """The user's function a PyO3 wrapper calls: ``m::__pyfunction_compute`` -> ``m::compute``,
    ``m::Basket::__pymethod_describe__`` -> ``m::Basket::describe``; None when not known
    (``#[new]``'s wrapper is named for ``__new__``, not for the function)."""
    found = WRAPPER.match(function or "")
    if not found:
        return None
    name = found.group("function") or found.group("method")
    if not name or name.startswith("_"):
        return None
    return found.group("path") + name


def generated_only_problem(location: str, functions) -> tuple[str, str]:
    """What to say (message, fix) of a breakpoint whose line only PyO3's generated code has."""
    targets = sorted({w for w in map(wrapped, functions) if w})
    message = (f"{location} holds only code PyO3 generated (the wrapper that converts the arguments): "
               "a pause there shows PyO3's locals, not yours")
    if targets:
        more = f" (and {len(targets) - 4} more)" if len(targets) > 4 else ""
        return message, ("break in the function itself: " +
                         ", ".join(f"`%native_break {name}`" for name in targets[:4]) + more +
                         " (or a line inside its body)")
    return message, "break on a line inside the function's body, or on its name (`%native_break crate::function`)"
