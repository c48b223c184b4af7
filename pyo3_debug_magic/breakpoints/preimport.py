"""A file:line breakpoint checked before its module is imported.

The extension modules Python could import (under ``sys.path``, not loaded yet) may already
carry debug info for the file: their DWARF line tables, read with pyelftools, say at once
that a line is past the file's code or that the file is in two crates (``--crate`` picks one),
instead of a breakpoint that stays pending forever. Bounded in time: what is not read in time
is not checked (the breakpoint stays pending, as before)."""
from __future__ import annotations

import difflib
import importlib.machinery
import os
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from pyo3_debug_magic.breakpoints.dwarf import OutOfTime, defined_crates, has_debug_info, lines_with_code
from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.breakpoints.builds import rebuilt_extensions
from pyo3_debug_magic.breakpoints.locations import SKIPPED_DIRS, Location, crate_of, in_crate, module_names

LIBRARY_CRATES = {"std", "core", "alloc", "pyo3", "pyo3_ffi", "pyo3_macros"}
BUDGET_SECONDS = 5.0  # a loaded 2-core machine read three debug builds in over 2 s
MAX_DEPTH = 3          # site-packages/pkg/sub/module.so
MAX_FILES = 20_000     # files looked at per sys.path entry


@dataclass(frozen=True)
class FileInModule:
    """A source file with code in an importable extension module."""

    module: str                 # the module file
    fullname: str               # the source file as its debug info names it
    last_line: int              # its last line with code


def rebuilt_since_import() -> tuple[str, ...]:
    """A note for each extension module of this process rebuilt on disk since its import."""
    return tuple(f"{os.path.basename(path)} was rebuilt after this kernel imported it: gdb reads the new "
                 "file while the kernel runs the old code, so its lines and values would be wrong; restart "
                 "the kernel" for path in rebuilt_extensions(loaded_extensions()))


def loaded_extensions() -> list[str]:
    """The files of the extension modules this process has imported."""
    found = []
    for module in list(sys.modules.values()):
        loader = getattr(getattr(module, "__spec__", None), "loader", None)
        if isinstance(loader, importlib.machinery.ExtensionFileLoader) and getattr(module, "__file__", None):
            found.append(module.__file__)
    return found


def importable_extensions(path_entries=None) -> list[str]:
    """Extension module files under ``sys.path`` (not the standard library's) not loaded yet."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    stdlib = tuple(os.path.realpath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib"))
    loaded = {os.path.realpath(f) for f in (getattr(m, "__file__", None) for m in list(sys.modules.values())) if f}
    found, seen_dirs = [], set()
    for entry in (sys.path if path_entries is None else path_entries):
        root = os.path.realpath(entry or os.getcwd())
        if root in seen_dirs or not os.path.isdir(root) or root.startswith(stdlib) and "site-packages" not in root:
            continue
        seen_dirs.add(root)
        looked = 0
        for directory, subdirs, files in os.walk(root):
            depth = directory[len(root):].count(os.sep)
            subdirs[:] = [] if depth >= MAX_DEPTH else [d for d in subdirs if d not in SKIPPED_DIRS
                                                       and not d.startswith(".")]
            looked += len(files)
            found += [os.path.join(directory, f) for f in files if f.endswith(suffixes)
                      and os.path.realpath(os.path.join(directory, f)) not in loaded]
            if looked > MAX_FILES:
                break
    return sorted(set(found))


@dataclass(frozen=True)
class Search:
    """What the importable modules' debug info said about a file, and how many were not read in time."""

    found: tuple[FileInModule, ...]
    unread: int = 0


def files_in_importable_modules(location: Location, budget: float = BUDGET_SECONDS,
                                modules: list[str] | None = None) -> Search:
    """Where ``location``'s file has code among the importable extension modules (within ``budget``)."""
    deadline = time.monotonic() + budget
    found = []
    candidates = importable_extensions() if modules is None else modules
    for read, module in enumerate(candidates):
        if not has_debug_info(module):
            continue
        try:
            files = _lines_with_code(module, location.path or "", deadline)
        except OutOfTime:
            return Search(tuple(found), len(candidates) - read)
        found += [FileInModule(module, fullname, max(lines)) for fullname, lines in files.items() if lines]
    return Search(tuple(found))


_read: dict[tuple, dict[str, set[int]]] = {}  # (module, mtime, size, source) -> what it said


def _lines_with_code(module: str, source: str, deadline: float) -> dict[str, set[int]]:
    try:
        info = os.stat(module)
    except OSError:
        return {}
    key = (module, info.st_mtime_ns, info.st_size, source)
    if key not in _read:
        _read[key] = lines_with_code(module, source, deadline)
    return _read[key]


def check_before_import(location: Location, crate: str | None, modules: list[str] | None = None,
                        budget: float = BUDGET_SECONDS) -> str:
    """Raise a UsageProblem when the debug info of importable modules shows ``location`` cannot
    bind (past the code, or in two crates without ``--crate``); else a note on where it will."""
    search = files_in_importable_modules(location, budget, modules)
    found = search.found
    if crate:
        found = [f for f in found if in_crate(f.fullname, crate) or _module_name(f.module) == crate.replace("-", "_")]
        labels = sorted({_crate_label(f) for f in search.found})
        close = difflib.get_close_matches(crate, labels, n=1, cutoff=0.6)
        if not found and close:  # a typo: it would wait, pending, for a crate that never comes
            raise UsageProblem(f"--crate {crate}: no crate Python can import by that name has {location.path} "
                               f"(those that have it: {', '.join(labels)})", f"did you mean `--crate {close[0]}`?")
    by_file = {f.fullname: f for f in found}
    unread = (f" ({search.unread} more importable module{'s' if search.unread != 1 else ''} not read "
              f"within {max(budget, 0):.0f} s)") if search.unread else ""
    if len(by_file) > 1:
        listing = ", ".join(f"{_crate_label(f)} ({name})" for name, f in sorted(by_file.items()))
        raise UsageProblem(f"{location.path} is in several crates Python can import: {listing}{unread}",
                           "add `--crate NAME` to pick one")
    if not by_file:
        return ""
    only = next(iter(by_file.values()))
    name = _crate_label(only)
    # an unread module may hold another crate's file of that name: refuse a line only when sure
    if location.line and location.line > only.last_line and (crate or not search.unread):
        raise UsageProblem(f"no code at or after {location.path}:{location.line} in {Path(only.module).name} "
                           f"(its debug info has code up to line {only.last_line})",
                           "pick a line inside a function body")
    return f"{Path(only.module).name} (crate {name}) has it: checked in its debug info before the import{unread}"


def _crate_label(found: FileInModule) -> str:
    """What ``--crate`` takes for it: the Cargo.toml's name, or (a crate built elsewhere) the
    folder that holds its src/."""
    parts = Path(found.fullname).parts
    return crate_of(found.fullname) or (parts[parts.index("src") - 1] if "src" in parts[1:] else
                                        _module_name(found.module))


def _module_name(path: str) -> str:
    return Path(path).name.split(".")[0]


def crate_behind_package(name: str, modules: list[str] | None = None) -> tuple[str, str] | None:
    """(the name Rust gives the crate, its module file) when ``name`` is the Python package of
    an importable extension module whose crate Rust knows by its ``[lib] name`` instead (package
    ``my-pkg``, module ``my_pkg/_core...so``, functions ``_core::twice``); else None."""
    wanted = name.replace("-", "_")
    modules = importable_extensions() if modules is None else modules
    # the package's own name first; a distribution's (rpds_py -> rpds) costs a look at them all
    return _crate_in_package(wanted, {wanted}, modules) or _crate_in_package(wanted, _top_level_names(wanted), modules)


def _crate_in_package(wanted: str, packages: set[str], modules: list[str]) -> tuple[str, str] | None:
    for module in modules:
        stem = _module_name(module)
        if stem == wanted or not module_names(module) & packages:
            continue
        if defined_crates(module, {stem, wanted}) == {stem}:
            return stem, module
    return None


def _top_level_names(distribution: str) -> set[str]:
    """The top-level packages an installed distribution (``rpds-py``, typed ``rpds_py``) provides."""
    import importlib.metadata

    try:
        found = importlib.metadata.packages_distributions()
    except Exception:  # noqa: BLE001 - a broken installed distribution: nothing known
        return set()
    normal = distribution.replace("-", "_").lower()
    return {top for top, names in found.items() if any(n.replace("-", "_").lower() == normal for n in names)}


def misspelt_crate(name: str, modules: list[str] | None = None) -> str | None:
    """The crate ``name`` most likely means when it is no extension module's (loaded or
    importable) name or package, but close to one: ``rustdmo`` -> ``rustdemo``; else None."""
    known = set()
    for module in loaded_extensions() + (importable_extensions() if modules is None else modules):
        known |= module_names(module)
    wanted = name.replace("-", "_")
    if wanted in known or wanted in LIBRARY_CRATES:  # `core::...` is std's, not a typo of `_core`
        return None
    close = difflib.get_close_matches(wanted, sorted(known), n=1, cutoff=0.8)
    return close[0] if close else None

