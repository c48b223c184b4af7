"""Per-user state directory (agent logs, crash reports), readable only by the user."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import UsageProblem


def _check_ours(path: Path) -> None:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UsageProblem(f"{path} is not a directory (or is a symbolic link)",
                           "point PYO3_DEBUG_MAGIC_STATE at a directory of your own")
    if info.st_uid != os.getuid():
        raise UsageProblem(f"{path} belongs to another user (uid {info.st_uid})",
                           "point PYO3_DEBUG_MAGIC_STATE at a directory of your own")


def state_dir() -> Path:
    """``$PYO3_DEBUG_MAGIC_STATE`` or ``$XDG_STATE_HOME/pyo3_debug_magic``. Created mode 0700;
    an existing directory is used only if it is the user's own, and its mode is left alone."""
    override = os.environ.get("PYO3_DEBUG_MAGIC_STATE")
    if override:
        path = Path(override)
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "pyo3_debug_magic"
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
    _check_ours(path)
    return path


def private_subdir(parent: Path, name: str) -> Path:
    """``parent/name``, created 0700 by us (and kept 0700); refused if a link or another's."""
    path = parent / name
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    _check_ours(path)
    if stat.S_IMODE(os.lstat(path).st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path
