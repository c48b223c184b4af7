"""Which shared libraries' symbols gdb reads when it attaches.

Reading a big library's symbols is most of an attach (polars' 170+ MB runtime, a release
build without debug info, is most of gdb's attach to a kernel that imported it). gdb attaches
with ``auto-solib-add off``; the agent then reads at once what breakpoints, calls into the
kernel and Python stacks need (the C runtime, libpython, every library with DWARF, which the
user's crates are) and the small libraries, and defers the rest. Reading is then switched on
again, so a library imported later is read by gdb as it loads (a pending breakpoint binds
before the import returns); gdb also reads the deferred ones at that moment, and a stack that
runs through one reads it first (``read_for``).
"""
from __future__ import annotations

import os
import re

from pyo3_debug_magic import model
from pyo3_debug_magic.breakpoints.dwarf import has_debug_info

EAGER_BYTES = 16 * 1024 * 1024  # below this a library without debug info is read at once anyway
RUNTIME = re.compile(r"/(ld-linux[^/]*|lib(c|m|dl|rt|pthread|gcc_s|stdc\+\+|python[0-9.]*[a-z]*)\.so[^/]*)$")


def read_at_once(path: str) -> bool:
    """Whether gdb reads ``path``'s symbols as soon as it is known, or when a stack needs them."""
    if RUNTIME.search(path):
        return True
    try:
        if os.path.getsize(path) <= EAGER_BYTES:
            return True
    except OSError:
        return True
    return has_debug_info(path)


def gdb_regex(literal: str) -> str:
    """``literal`` as gdb's (GNU basic) regular expression, where ``\\<`` would mean a word start."""
    return "".join(f"[{ch}]" if ch in ".*+?()[]{}|$\\" else "\\^" if ch == "^" else ch for ch in literal)


class LazySymbols:
    """The libraries whose symbols gdb has not read since the attach, and the reading of them."""

    def __init__(self, progress=None):
        self.progress = progress or (lambda doing: None)  # what is being read (for a slow attach)
        self.deferred: set[str] = set()
        self.tried: set[str] = set()  # read once already: a frame still unnamed there has no symbol
        self.reads = 0  # libraries read so far: what gdb knows changes with each

    def after_attach(self, session, defer_all: bool = False) -> None:
        """Read what is needed at once among the libraries loaded before the attach (nothing
        with ``defer_all``: a test run that only waits for a crash reads them at the crash).
        A library loaded while this ran (an import racing the attach, with reading off) is
        listed again once reading is back on, so none is left unread and undeferred."""
        self.deferred.clear()
        self._sort_unread(session, defer_all)
        session.console("set auto-solib-add on")
        self._sort_unread(session, defer_all)

    def _sort_unread(self, session, defer_all: bool) -> None:
        rows = session.command("-file-list-shared-libraries", 30).payload.get("shared-libraries", [])
        for path in [row.get("id") or row.get("target-name") for row in rows if row.get("symbols-loaded") != "1"]:
            if path in self.deferred:
                continue
            if path and read_at_once(path) and not defer_all:
                self.read(session, path)
            elif path:
                self.deferred.add(path)

    def read_deferred(self, session) -> None:
        """Read every deferred library (before breakpoints, stacks or a crash need them)."""
        for path in sorted(self.deferred):
            self.read(session, path)

    def read_for(self, session, frames: tuple[model.GdbFrame, ...]) -> bool:
        """Read the deferred libraries ``frames`` run in; whether any was (unwind again then)."""
        # a frame gdb could not name ("??") in a library it lists: read that one too (belt and
        # braces for a library that escaped both lists)
        needed = {frame.library for frame in frames
                  if frame.library and (frame.library in self.deferred
                                        or (frame.func in (None, "??") and frame.library not in self.tried))}
        for path in needed:
            self.read(session, path)
        return bool(needed)

    def read(self, session, path: str) -> None:
        self.deferred.discard(path)
        self.tried.add(path)
        self.reads += 1
        if "\n" not in path and "\r" not in path:
            self.progress(f"reading the symbols of {os.path.basename(path)}")
            session.console(f"sharedlibrary ^{gdb_regex(path)}$", 60)
