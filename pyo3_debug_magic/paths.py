"""Per-user state directory (agent logs, crash reports), readable only by the user."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from pyo3_debug_magic.errors import UsageProblem


def _check_ours(path: Path) -> None:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UsageProblem(f"{path} is not a directory (or is a symbolic link)",
                           "point PYO3_DEBUG_MAGIC_STATE at a directory of your own")
    if info.st_uid != os.getuid():
        raise UsageProblem(f"{path} belongs to another user (uid {info.st_uid})",
                           "point PYO3_DEBUG_MAGIC_STATE at a directory of your own")
    if info.st_mode & 0o022:
        # another user could plant a link named like a log or report there, which we would follow
        raise UsageProblem(f"{path} can be written by other users (mode {stat.S_IMODE(info.st_mode):o})",
                           f"run `chmod go-w {path}` (or `chmod 700`), or point PYO3_DEBUG_MAGIC_STATE elsewhere")


def open_private(path: Path, mode: str = "ab"):
    """``path`` opened for writing, created 0600, never through a symbolic link (O_NOFOLLOW)
    and only if it is a regular file of this user's."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    try:
        descriptor = os.open(path, flags, 0o600)
    except OSError as error:
        raise UsageProblem(f"cannot write {path}: {error.strerror}"
                           + (" (it is a symbolic link)" if os.path.islink(path) else ""),
                           "remove it, or point PYO3_DEBUG_MAGIC_STATE at a directory of your own") from None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        os.close(descriptor)
        raise UsageProblem(f"{path} is not a regular file of yours", "remove it")
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, mode)


def state_dir() -> Path:
    """``$PYO3_DEBUG_MAGIC_STATE`` or ``$XDG_STATE_HOME/pyo3_debug_magic``. Created mode 0700;
    an existing directory is used only if it is the user's own, and its mode is left alone."""
    override = os.environ.get("PYO3_DEBUG_MAGIC_STATE")
    if override:
        path = Path(override)
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "pyo3_debug_magic"
    try:
        if not path.exists():
            path.mkdir(parents=True, mode=0o700)
        _check_ours(path)
    except OSError as error:  # a read-only file system, no free inodes, no permission
        raise UsageProblem(f"the state directory {path} cannot be used: {error.strerror}",
                           "point PYO3_DEBUG_MAGIC_STATE at a writable directory of your own "
                           "(crash reports and the helper's log go there)") from None
    return path


def private_subdir(parent: Path, name: str) -> Path:
    """``parent/name``, created 0700 by us (and kept 0700); refused if a link or another's."""
    path = parent / name
    try:
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        _check_ours(path)
        if stat.S_IMODE(os.lstat(path).st_mode) != 0o700:
            os.chmod(path, 0o700)
    except OSError as error:
        raise UsageProblem(f"{path} cannot be used: {error.strerror}",
                           "point PYO3_DEBUG_MAGIC_STATE at a writable directory of your own") from None
    return path
