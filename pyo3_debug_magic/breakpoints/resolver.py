"""Where a ``%native_break`` location goes: the one resolver from what the user typed to what
gdb is given, and the checks gdb would only make after taking a breakpoint number.

It runs in the helper, beside gdb's debug info, over a small ``DebugInfo`` interface (the
loaded modules' sources and functions) that tests can fake. The target's working directory
and memory map are passed in: the helper's own are not the kernel's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from pyo3_debug_magic import model
from pyo3_debug_magic.breakpoints import locations
from pyo3_debug_magic.breakpoints.builds import stale_build
from pyo3_debug_magic.breakpoints.lines import user_written_line
from pyo3_debug_magic.errors import UsageProblem

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DebugInfo(Protocol):
    """What the loaded extension modules' debug info holds."""

    def sources(self) -> tuple[model.SourceRecord, ...]:
        """Every source file with line info, by shared object."""

    def functions(self, crate: str = "", name: str = "") -> tuple[str, ...]:
        """The functions of ``crate``, or called ``name`` in any of the user's crates."""

    def find_function(self, text: str, crate: str = "") -> tuple[model.FunctionMatch, ...]:
        """The functions of the user's crates that ``text`` names."""


@dataclass(frozen=True)
class Placement:
    """What to give gdb: the resolved location, its line (moved off a signature or an
    attribute: ``moved_note`` says so)."""

    parsed: locations.Location
    resolved: locations.Resolved
    line: int | None
    moved_note: str = ""


class Resolver:
    """Resolves one location against ``info``; the target's ``cwd`` finds files before import
    and its ``maps`` tell a rebuilt module."""

    def __init__(self, info: DebugInfo, cwd: Path | None = None, maps: str | None = None):
        self.info, self.cwd, self.maps = info, cwd, maps
        self._functions: dict[tuple[str, str], tuple[str, ...]] = {}

    def functions(self, crate: str = "", name: str = "") -> tuple[str, ...]:
        if (crate, name) not in self._functions:
            self._functions[crate, name] = tuple(self.info.functions(crate, name))
        return self._functions[crate, name]

    def place(self, text: str, crate: str | None = None, force: bool = False) -> Placement:
        """Resolve ``text`` before insert; raises what the user must change."""
        parsed = locations.parse_location(text)
        sources = [locations.SourceFile(s.objfile, s.fullname) for s in self.info.sources() if s.fullname]
        resolved = locations.resolve(parsed, sources, crate=crate, cwd=self.cwd)
        line, unknown_function = parsed.line, False
        if parsed.function:
            searched = resolved
            resolved, line = self._function_in_loaded_crates(parsed, resolved, crate)
            unknown_function = resolved is searched  # none of the user's loaded crates has it
        moved_note = ""
        moved = user_written_line(resolved.source, line) if parsed.line else None
        if moved:
            line, moved_note = moved
        if resolved.objfile and resolved.source and not force:
            stale = stale_build(resolved.source, resolved.objfile, self.maps)
            if stale:
                raise UsageProblem(stale, "restart the kernel to load the current build (or pass --force)")
        self._check_before_insert(parsed, resolved, line, crate, unknown_function)
        return Placement(parsed, resolved, line, moved_note)

    def after_insert(self, placement: Placement, created: model.BreakpointCreated, crate: str | None) -> str:
        """The note of a pending breakpoint; raises (the caller deletes it) when its module is
        loaded and gdb still found no code there."""
        if not created.pending:
            return ""
        parsed, resolved = placement.parsed, placement.resolved
        functions: tuple[str, ...] = ()
        crate_name, name = (parsed.function or "").split("::")[0], (parsed.function or "").split("::")[-1]
        if parsed.function and IDENTIFIER.fullmatch(crate_name):
            # the crate's own debug info says whether it is loaded: its Python module may have
            # another name (maturin's mixed projects: crate my_pkg, module my_pkg._core)
            functions = self.functions(crate_name)
            if functions:
                resolved = replace(resolved, pending=False, objfile=resolved.objfile or crate_name)
            elif not resolved.pending and IDENTIFIER.fullmatch(name):
                # a loaded module of that name has no such crate: say which crates have the
                # function (the module's name was used for the crate's)
                functions = self.functions(name=name)
        if not resolved.pending:  # the module is loaded, yet gdb found no code there
            raise locations.unresolved(parsed, resolved, list(functions))
        return resolved.note

    def _check_before_insert(self, parsed, resolved, line, crate, unknown_function) -> None:
        """Raise what gdb would only say after taking a breakpoint number: a line past the end
        of a loaded file; a function its loaded crate does not have."""
        if parsed.line and resolved.source and not resolved.pending and line:
            try:
                length = len(Path(resolved.source).read_text(errors="replace").splitlines())
            except OSError:
                length = None
            if length is not None and line > length:
                raise locations.unresolved(parsed, resolved, [])
        if unknown_function:
            crate_name = crate or parsed.function.split("::")[0]
            if IDENTIFIER.fullmatch(crate_name):
                functions = self.functions(crate_name)
                if functions and not any(f == parsed.function or f.endswith("::" + parsed.function)
                                         for f in functions):  # the crate is loaded, without it
                    raise locations.unresolved(parsed, replace(resolved, objfile=resolved.objfile or crate_name),
                                               list(functions))

    def _function_in_loaded_crates(self, parsed, resolved, crate):
        """What gdb calls the function the user named (``Counter::add``, ``Meter::scale``, a
        generic, a closure), if a loaded crate has it: one name, or, for the instances of a
        generic, the line of its ``fn`` (a location in each instance)."""
        matches = self.info.find_function(parsed.function, crate or "")
        functions = {(locations.without_generics(m.name), m.fullname, m.line): m for m in matches}
        if len(functions) > 1:
            names = sorted({m.spelled for m in functions.values()})
            raise UsageProblem(f"{parsed.function} names several functions: {', '.join(names[:8])}",
                               "write more of the path (crate::Type::method) or add `--crate NAME`")
        if not functions:
            return resolved, None
        match = next(iter(functions.values()))
        if len({m.name for m in matches}) == 1:
            return locations.Resolved(parsed, None, match.name, pending=False), None
        return locations.Resolved(parsed, match.fullname, None, pending=False), match.line
