"""What the debug info of the loaded modules holds: source files and functions, as gdb lists
them, remembered until a library is loaded or unloaded (gdb takes 0.1 s to seconds to answer)."""
from __future__ import annotations

import re

from pyo3_debug_magic import model
from pyo3_debug_magic.agent.context import AgentContext
from pyo3_debug_magic.breakpoints.generated import is_generated
from pyo3_debug_magic.breakpoints.locations import (SYMBOL_HASH, function_matches, in_crate, is_user_source,
                                                    without_generics)
from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.gdb.mi import mi_quote
from pyo3_debug_magic.gdb.symbols import gdb_regex


class LoadedDebugInfo:
    """The answers the breakpoint resolver asks gdb for."""

    def __init__(self, context: AgentContext):
        self.context = context
        self.sources_cache: tuple[model.SourceRecord, ...] | None = None
        self.lookups: dict[tuple, tuple] = {}  # function searches, until the loaded debug info changes

    def forget(self) -> None:
        """A library was loaded or unloaded, or gdb read one's symbols: list and search again."""
        self.sources_cache = None
        self.lookups.clear()

    def _symbol_search(self, pattern: str, limit: int) -> dict:
        """gdb's ``-symbol-info-functions`` for ``pattern`` (0.3 s or more over libpython's debug
        info), remembered while the loaded debug info stays the same."""
        key = (pattern, limit, self.context.gdb.symbols.reads)
        if key not in self.lookups:
            if len(self.lookups) > 256:
                self.lookups.clear()
            self.lookups[key] = self.context.gdb.command(
                f"-symbol-info-functions --name {mi_quote(pattern)} --max-results {int(limit)}", 30).payload
        return self.lookups[key]

    def sources(self) -> tuple[model.SourceRecord, ...]:
        """Every source file with line info in the loaded shared objects (read again only after
        a library was loaded or unloaded: gdb takes 0.1 s or more to list them)."""
        if self.sources_cache is None:
            payload = self.context.gdb.command("-file-list-exec-source-files --group-by-objfile", 30).payload
            self.sources_cache = tuple(
                model.SourceRecord(group.get("filename"), source.get("fullname"), source.get("filename"))
                for group in payload.get("files", []) for source in group.get("sources", []))
        return self.sources_cache

    def functions(self, crate: str = "", name: str = "") -> tuple[str, ...]:
        """Names of the functions with debug info in ``crate``, or called ``name`` in any of the
        user's crates (for "did you mean")."""
        wanted = crate or name
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", wanted):
            raise UsageProblem(f"not a Rust name: {wanted!r}", "crate and function names are Rust identifiers")
        pattern = "^" + crate + "::" if crate else "::" + name + "$"
        payload = self._symbol_search(pattern, 2000)
        return tuple(sorted({symbol.get("name", "") for group in payload.get("symbols", {}).get("debug", [])
                             for symbol in group.get("symbols", [])
                             if (crate or is_user_source(group.get("fullname")))
                             and not is_generated(symbol.get("name"))} - {""}))

    def find_function(self, text: str, crate: str = "") -> tuple[model.FunctionMatch, ...]:
        """The functions of the user's crates (of ``crate``) that ``text`` names: a path or its
        tail, a generic (each instance), a closure, a trait method as the user writes it."""
        last = without_generics(text.rsplit("::", 1)[-1]) or text.rsplit("::", 1)[-1]
        pattern = "\\(^\\|::\\)" + gdb_regex(last) + "\\(<.*>\\)\\?$"  # a basic regex, as gdb reads it
        payload = self._symbol_search(pattern, 500)
        found = [(group.get("fullname"), symbol) for group in payload.get("symbols", {}).get("debug", [])
                 for symbol in group.get("symbols", [])
                 if is_user_source(group.get("fullname")) and (not crate or in_crate(group.get("fullname"), crate))]
        impls = sorted({s.get("name", "") for _, s in found if "{impl#" in s.get("name", "")})
        spellings = {}
        if impls:
            self.context.gdb.call_python("symbol_spellings", impls[:100])
            spellings = (self.context.gdb.mi.take_message("spellings") or {}).get("names", {})
        matches = []
        for fullname, symbol in found:
            name = symbol.get("name", "")
            spelled = SYMBOL_HASH.sub("", spellings.get(name, ""))
            if function_matches(text, name, spelled):
                matches.append(model.FunctionMatch(name, spelled or name, fullname, int(symbol.get("line") or 0)))
        return tuple(matches)
