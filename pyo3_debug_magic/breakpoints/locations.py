"""Breakpoint locations: parse what the user typed, resolve it to the user's own crate.

``src/lib.rs:42`` must not mean every dependency's ``src/lib.rs`` (pyo3, std, registry
crates): we resolve against the source files in the loaded extension modules' debug info,
and before the module is imported, against the files under the working directory.
"""
from __future__ import annotations

import difflib
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.tools import no_debug_info_fix

FILE_LINE = re.compile(r"^(?P<path>[\w.+\-/ ]+\.[A-Za-z]+):(?P<line>\d+)$", re.ASCII)
RUST_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$", re.ASCII)
# what a Rust function is also written as: Type::method, <Type as Trait>::method, a generic's
# instance (largest<i64>), a closure (compute::{closure#0})
RUST_FUNCTION = re.compile(r"^(<[\w:<>, &*]+ as [\w:<>, &*]+>::)?[\w<>{}#, &*]+(::[\w<>{}#, &*]+)*$", re.ASCII)
GENERIC_ARGS = re.compile(r"<[^<>]*>")
SYMBOL_HASH = re.compile(r"::h[0-9a-f]{16}$")
TRAIT_IMPL = re.compile(r"^<(?P<type>.+) as (?P<trait>.+)>::(?P<method>[^:]+)$")
# std's, pyo3's, dependencies' and Python's sources (a manylinux container's cargo home is /cargo)
NOT_USER_SOURCE = ("/.cargo/registry/", "/.cargo/git/", "/cargo/registry/", "/cargo/git/", "/rustc/", "/rust/deps/", "/lib/rustlib/",
                   "/python-build.", "/usr/include/", "/usr/src/", "/usr/lib/gcc/", "/usr/lib/llvm-",
                   "/usr/local/include/", "/include/python3")
SHARED_LIBRARY = re.compile(r"\.so(\.[0-9.]+)?$")  # py-spy names the library when a frame has no line info
SKIPPED_DIRS = {".git", ".venv", "venv", "target", "node_modules", "__pycache__", ".tox"}


@dataclass(frozen=True)
class Location:
    """What the user asked for: a file and line, or a function."""

    text: str
    path: str | None = None
    line: int | None = None
    function: str | None = None


@dataclass(frozen=True)
class SourceFile:
    """One source file with line info in one loaded shared object."""

    objfile: str
    fullname: str
    debug_info: bool = True


@dataclass(frozen=True)
class Resolved:
    """Where the breakpoint goes: an absolute source (or the user's path, pending) or a function."""

    location: Location
    source: str | None
    function: str | None
    pending: bool
    objfile: str | None = None
    note: str = ""


def outside_libraries(path: str | None) -> bool:
    """An absolute path outside std, registry crates, vendored code, compiler and Python
    headers and CPython's build tree (glibc's frames carry relative paths like ./nptl/...)."""
    return (bool(path) and path.startswith("/") and not any(part in path for part in NOT_USER_SOURCE)
            and not SHARED_LIBRARY.search(path))


def built_elsewhere(path: str | None) -> bool:
    """A source of a crate compiled in a folder this machine does not have (a wheel built in
    a container or CI): not a library's, and not on disk."""
    return outside_libraries(path) and not os.path.isfile(path)


@functools.lru_cache(maxsize=4096)
def is_user_source(path: str | None) -> bool:
    """A source of the user's own code: outside the libraries, and present on this machine
    (wheels from PyPI carry their build machine's paths, /project/..., /opt/_internal/...)."""
    return outside_libraries(path) and os.path.isfile(path)


@functools.lru_cache(maxsize=256)
def crate_relative(path: str) -> str:
    """``/home/me/mycrate/src/lib.rs`` -> ``src/lib.rs``, as gdb names the user's sources
    (relative to the nearest folder with a Cargo.toml); unchanged when there is none."""
    source = Path(path)
    for folder in source.parents:
        if (folder / "Cargo.toml").is_file():
            return str(source.relative_to(folder))
    return path


def module_names(path: str) -> set[str]:
    """The names a Python extension module at ``path`` goes by: its own (the crate's ``[lib]
    name``) and its package folder's; empty for a library that is not an extension."""
    name = os.path.basename(path)
    if not name.endswith(".so") or not (".cpython-" in name or ".abi3." in name or name.count(".") == 1):
        return set()
    return {name.split(".")[0], os.path.basename(os.path.dirname(path))} - {""}


def crate_of(fullname: str) -> str | None:
    """The crate a source file belongs to: the nearest Cargo.toml's library or package name."""
    for folder in Path(fullname).parents:
        toml = folder / "Cargo.toml"
        if toml.is_file():
            try:
                text = toml.read_text(errors="replace")
            except OSError:
                return folder.name
            lib = re.search(r'^\[lib\][^\[]*?^\s*name\s*=\s*"([^"]+)"', text, re.M | re.S)
            package = re.search(r'^\s*name\s*=\s*"([^"]+)"', text, re.M)
            return (lib or package).group(1) if (lib or package) else folder.name
    return None


def in_crate(path: str, crate: str) -> bool:
    """``path`` belongs to ``crate`` (by its Cargo.toml, or a folder of that name)."""
    return (crate_of(path) or "").replace("-", "_") == crate.replace("-", "_") or _in_crate(path, crate)


def parse_location(text: str) -> Location:
    """``src/lib.rs:42`` or ``crate::function``; anything else is refused before gdb sees it."""
    text = text.strip()
    if any(ch in text for ch in "\n\r\0\"'`;$"):
        raise UsageProblem(f"not a location: {text!r}",
                           "write FILE:LINE (src/lib.rs:42) or a Rust path (rustdemo::compute)")
    match = FILE_LINE.match(text)
    if match:
        if len(match.group("line")) > 9:
            raise UsageProblem(f"no such line: {match.group('line')[:12]}...", "write FILE:LINE, e.g. src/lib.rs:42")
        line = int(match.group("line"))
        if line < 1:
            raise UsageProblem(f"line numbers start at 1: {text!r}", "write FILE:LINE, e.g. src/lib.rs:42")
        return Location(text, path=os.path.normpath(match.group("path")), line=line)
    if len(text) <= 300 and (RUST_PATH.match(text) or (RUST_FUNCTION.match(text) and _spaces_in_brackets(text))):
        return Location(text, function=text)
    raise UsageProblem(f"not a location: {text!r}",
                       "write FILE:LINE (src/lib.rs:42) or a Rust path (rustdemo::compute)")


def without_generics(name: str) -> str:
    """``my_pkg::largest<i64>`` -> ``my_pkg::largest`` (nested arguments too)."""
    while True:
        shorter = GENERIC_ARGS.sub("", name)
        if shorter == name:
            return name
        name = shorter


def _path_suffix(path: str, wanted: str) -> bool:
    return path == wanted or path.endswith("::" + wanted)


def function_matches(wanted: str, name: str, spelled: str = "") -> bool:
    """Whether the user's ``wanted`` names gdb's function ``name``.

    ``spelled`` is the symbol table's form of a trait method (``<my_pkg::Meter as
    my_pkg::Scale>::scale``, which gdb's debug info calls ``my_pkg::{impl#0}::scale``). A tail of
    the path is enough (``Counter::add``), a generic matches each instance (``largest``), and a
    trait method is found as ``Meter::scale``, ``Scale::scale`` or ``<Meter as Scale>::scale``."""
    asked = TRAIT_IMPL.match(" ".join(wanted.split()))
    wanted = wanted.replace(" ", "")
    if not wanted.startswith("<") and (_path_suffix(name.replace(" ", ""), wanted)
                                       or _path_suffix(without_generics(name), without_generics(wanted))):
        return True
    impl = TRAIT_IMPL.match(SYMBOL_HASH.sub("", spelled))
    if not impl:
        return False
    type_, trait, method = (without_generics(impl.group(g)).replace(" ", "") for g in ("type", "trait", "method"))
    if asked:
        return (asked.group("method") == method
                and _path_suffix(type_, without_generics(asked.group("type")).replace(" ", ""))
                and _path_suffix(trait, without_generics(asked.group("trait")).replace(" ", "")))
    wanted = without_generics(wanted)
    return _path_suffix(f"{type_}::{method}", wanted) or _path_suffix(f"{trait}::{method}", wanted)


def _spaces_in_brackets(text: str) -> bool:
    """Spaces only inside ``<...>`` (``<Meter as Scale>::scale``, ``largest<Vec<i64>, u8>``)."""
    depth = 0
    for ch in text:
        depth += (ch == "<") - (ch == ">")
        if depth < 0 or (ch == " " and depth == 0):
            return False
    return depth == 0


def _suffix_match(fullname: str, path: str) -> bool:
    fullname, path = os.path.normpath(fullname), os.path.normpath(path)
    return fullname == path or fullname.endswith(os.sep + path.lstrip(os.sep))


def _module_name(objfile: str) -> str:
    """``.../rustdemo.cpython-311-x86_64-linux-gnu.so`` -> ``rustdemo``."""
    return Path(objfile).name.split(".")[0]


def _in_crate(path: str, crate: str) -> bool:
    """``path`` lies in a folder named ``crate`` (``my-crate`` and ``my_crate`` are one name)."""
    return f"{os.sep}{crate.replace('-', '_')}{os.sep}" in path.replace("-", "_")


def _crate_matches(source: SourceFile, crate: str) -> bool:
    return _module_name(source.objfile) == crate.replace("-", "_") or in_crate(source.fullname, crate)


def unresolved(location: Location, resolved: Resolved, functions: list[str]) -> UsageProblem:
    """gdb found no code for a location in a module that is loaded: say why, with what exists."""
    module = Path(resolved.objfile or "").name
    if location.function:
        close = difflib.get_close_matches(location.function, functions, n=5, cutoff=0.5)
        return UsageProblem(f"no function {location.function} in {module}",
                            f"close matches: {', '.join(close)}" if close else
                            "write the Rust path gdb knows, crate::module::function (e.g. rustdemo::compute)")
    try:
        lines = len(Path(resolved.source or "").read_text(errors="replace").splitlines())
    except OSError:
        lines = None
    size = f" (the file has {lines} lines)" if lines is not None else ""
    return UsageProblem(f"no code at or after {location.path}:{location.line} in {module}{size}",
                        "pick a line inside a function body")


def _files_on_disk(path: str, root: Path, limit: int = 20000) -> list[str]:
    """Files under ``root`` whose path ends with ``path`` (bounded walk, build dirs skipped)."""
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            return [str(candidate)] if candidate.is_file() else []
        except OSError:  # a name too long, a loop of links
            return []
    found, seen = [], 0
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in SKIPPED_DIRS and not d.startswith(".")]
        seen += len(files)
        for name in files:
            full = os.path.join(directory, name)
            if _suffix_match(full, path):
                found.append(os.path.abspath(full))
        if seen > limit:
            break
    return found


def resolve(location: Location, sources: list[SourceFile], crate: str | None = None,
            cwd: Path | None = None) -> Resolved:
    """Pick the one user source file ``location`` means, or explain why there is none."""
    if location.function:
        crate_name = location.function.split("::")[0]
        module = next((s.objfile for s in sources if _module_name(s.objfile) == crate_name), None)
        note = "" if module else (
            f"pending: no loaded module has {location.function} yet; gdb binds it when the module is "
            "imported if this is the full Rust path (my_crate::function, my_crate::Type::method); "
            "for a trait method, a generic or a closure, import the module first")
        return Resolved(location, None, location.function, pending=module is None, objfile=module, note=note)
    assert location.path is not None
    user = [s for s in sources if is_user_source(s.fullname) and _suffix_match(s.fullname, location.path)]
    if not user:  # a module built elsewhere (e.g. in a manylinux container): its paths are not here
        user = [s for s in sources if outside_libraries(s.fullname) and _suffix_match(s.fullname, location.path)]
    if crate:
        user = [s for s in user if _crate_matches(s, crate)]
    by_file: dict[str, SourceFile] = {}
    for source in user:
        by_file.setdefault(os.path.normpath(source.fullname), source)
    if len(by_file) == 1:
        fullname, source = next(iter(by_file.items()))
        return Resolved(location, fullname, None, pending=False, objfile=source.objfile)
    if len(by_file) > 1:
        listing = ", ".join(f"{name} (in {Path(s.objfile).name})" for name, s in sorted(by_file.items()))
        raise UsageProblem(f"{location.path} matches several loaded crates: {listing}",
                           "add `--crate NAME`, or give a longer path")
    # In no loaded module: the breakpoint stays pending on the path as typed and binds, when a
    # module is imported, to that module's file (only the user's crates: the agent disables
    # pyo3's, std's and dependencies' `src/lib.rs`). A crate in the working directory helps to
    # tell a module built without debug info, never decides which crate it binds to.
    for candidate in _files_on_disk(location.path, cwd or Path.cwd()):
        missing = _loaded_without_debug_info(candidate, sources)
        if missing and (not crate or _in_crate(candidate, crate)):
            raise UsageProblem(f"no debug info for {location.path} in {Path(missing).name}", no_debug_info_fix())
    which = f"crate {crate}" if crate else "a crate of yours"
    note = (f"pending: {location.path} is in no loaded module yet; the breakpoint binds to {which} "
            "when its module is imported")
    loaded = {s.fullname: _module_name(s.objfile) for s in sources if is_user_source(s.fullname)}
    tails = {str(Path(*Path(f).parts[-max(len(Path(location.path).parts), 1):])) for f in loaded}
    close = difflib.get_close_matches(location.path, sorted(tails - {location.path}), n=3, cutoff=0.6)
    if close:
        note += f" (did you mean {', '.join(close)}? loaded in {', '.join(sorted(set(loaded.values())))})"
    elif crate and loaded:
        note += f" (the loaded modules with your sources are: {', '.join(sorted(set(loaded.values())))})"
    return Resolved(location, location.path, None, pending=True, note=note)


def _loaded_without_debug_info(source_file: str, sources: list[SourceFile]) -> str | None:
    """A loaded extension module built from the crate that holds ``source_file`` but without DWARF."""
    crate_dir = next((p for p in Path(source_file).parents if (p / "Cargo.toml").exists()), None)
    if crate_dir is None:
        return None
    names = {crate_dir.name.replace("-", "_")}
    try:
        toml = (crate_dir / "Cargo.toml").read_text()
        names |= {m.replace("-", "_") for m in re.findall(r'^\s*name\s*=\s*"([^"]+)"', toml, re.M)}
    except OSError:
        pass
    for source in sources:
        if not source.debug_info and _module_name(source.objfile) in names:
            return source.objfile
    return None
