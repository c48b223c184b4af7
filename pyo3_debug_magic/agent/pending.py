"""Pending function breakpoints that the import of their module did not bind: said in the
cell that imported it, with the close matches. A typo (``mycrate::grnd`` for ``grind``), or
the package's name where Rust knows the crate by its ``[lib] name`` (``my_pkg::twice`` for
``_core::twice``), would otherwise wait, silently, for a module that has already come."""
from __future__ import annotations

import difflib
import os

from pyo3_debug_magic.breakpoints.locations import module_names
from pyo3_debug_magic.agent.breakpoints import Breakpoints
from pyo3_debug_magic.agent.context import AgentContext
from pyo3_debug_magic.gdb.mi import GdbCommandError


def close_matches(typed: str, functions: list[str]) -> list[str]:
    """The functions ``typed`` (a Rust path) most likely meant, compared without the crate part
    (the crate part may be the package's name)."""
    tails = {f.split("::", 1)[-1]: f for f in functions}
    tail = typed.split("::", 1)[-1]
    return [tails[t] for t in difflib.get_close_matches(tail, list(tails), n=3, cutoff=0.6)]


class PendingCheck:
    """Collects the extension modules gdb saw loaded; after the batch of events, notes which
    pending function breakpoints of theirs stayed pending (the kernel shows them after the cell)."""

    def __init__(self, context: AgentContext, breakpoints: Breakpoints):
        self.context, self.breakpoints = context, breakpoints
        self.loaded: list[str] = []
        self.told: set[int] = set()
        self.unsaid: list[str] = []

    def take(self) -> list[str]:
        notes, self.unsaid = self.unsaid, []
        return notes

    def library_loaded(self, path: str) -> None:
        if module_names(path):
            self.loaded.append(path)

    def check(self) -> None:
        """gdb has re-set its breakpoints by now: it answers a command only once it has."""
        paths, self.loaded = self.loaded, []
        for path in paths:
            names = module_names(path)
            for number, spec in list(self.breakpoints.specs.items()):
                function = _function(spec.location)
                crate = (spec.crate or function.split("::")[0]).replace("-", "_")
                if not function or not spec.pending or number in self.told or crate not in names:
                    continue
                try:
                    bkpt = self.breakpoints.current(number)
                    if bkpt is None or bkpt.get("addr") != "<PENDING>":
                        continue  # bound
                    known = sorted({f for name in sorted(names) if name.isidentifier()
                                    for f in self.breakpoints.debug_info.functions(name)})
                    matches = close_matches(function, known)
                except (GdbCommandError, ValueError):
                    continue
                self.told.add(number)
                self.unsaid.append(
                    f"breakpoint {number} ({spec.location}) is still pending: {os.path.basename(path)} was just loaded "
                    f"({path}) and has no function by that name"
                    + (f"; close matches: {', '.join(matches)}" if matches else "")
                    + f"; `%native_delete {number}` and set it again with the name Rust gives it")


def _function(location: str) -> str:
    """The Rust path a function breakpoint names ("" for FILE:LINE)."""
    return location.split()[0] if "::" in location else ""
