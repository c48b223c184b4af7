"""Is the loaded build the one on disk? A module rebuilt after the kernel imported it (gdb
would read the new file for the old code: wrong lines and values), a source edited after its
build."""
from __future__ import annotations

import os
from pathlib import Path


def _mapped_inode(objfile: str, maps: str) -> int | None:
    """The inode of the file mapped for ``objfile`` (-1: deleted), or None if none is mapped."""
    name, moved_aside = Path(objfile).name, None
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6:
            continue
        path = fields[5].removesuffix(" (deleted)")
        if path == objfile:
            return int(fields[4]) if path == fields[5] else -1
        if moved_aside is None and os.path.basename(path) == name:
            moved_aside = int(fields[4])
    return moved_aside


def rebuilt_extensions(modules, maps: str | None = None) -> list[str]:
    """The extension files among ``modules`` (file paths) replaced on disk since this process
    loaded them: gdb reads the file on disk, so it would show the new build's lines and
    variables for the old build's code."""
    try:
        maps = maps if maps is not None else Path("/proc/self/maps").read_text()
    except OSError:
        return []
    rebuilt = []
    for path in modules:
        mapped = _mapped_inode(path, maps)
        try:
            on_disk = os.stat(path).st_ino
        except OSError:
            on_disk = None
        if mapped not in (None, 0) and mapped != on_disk:
            rebuilt.append(path)
    return rebuilt


def stale_build(fullname: str, objfile: str, maps: str | None = None) -> str | None:
    """Why the loaded ``objfile`` does not match ``fullname`` on disk, or None if it does.

    The kernel keeps the .so it imported; `maturin develop` replaces the file on disk, so the
    mapped inode differs. pip first moves the old package folder aside (``~ymod/``) or deletes
    it, and the mapping's path follows: a mapping of the same file name elsewhere, or deleted,
    is the one compared (its inode is the old file's). A source edited after the build is
    stale too.
    """
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return None
    name = Path(objfile).name
    mapped_inode = _mapped_inode(objfile, maps)
    try:
        on_disk = os.stat(objfile)
    except OSError:
        return f"{name} was removed or rebuilt after this kernel loaded it"
    if mapped_inode is not None and mapped_inode not in (0, on_disk.st_ino):
        return f"{name} was rebuilt after this kernel imported it; the kernel still runs the old build"
    try:
        if os.stat(fullname).st_mtime > on_disk.st_mtime + 1:
            return f"{Path(fullname).name} changed after {name} was built; lines may not match"
    except OSError:
        return None
    return None
