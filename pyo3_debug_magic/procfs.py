"""Facts about a process read from ``/proc``, without gdb and without stopping it (the kernel
side and the helper both read them)."""
from __future__ import annotations

import os
import signal
from pathlib import Path


def ignores_signal(pid: int, signum: int = signal.SIGINT) -> bool:
    """True if ``pid`` ignores ``signum`` (``SigIgn`` in /proc/PID/status).

    A Python started with SIGINT ignored (in the background of a non-interactive shell, under
    ``nohup``) keeps it ignored: Ctrl-C and the Interrupt then cannot raise KeyboardInterrupt."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def process_state(pid: int) -> str | None:
    """The state letter of ``pid`` (R, S, T, t, Z, ...) from /proc/PID/stat; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def working_directory(pid: int) -> Path | None:
    """Where ``pid`` runs (its relative paths are relative to this); None if it cannot be read."""
    try:
        return Path(os.readlink(f"/proc/{int(pid)}/cwd"))
    except OSError:
        return None


def memory_map(pid: int) -> str:
    """``pid``'s /proc/PID/maps ("" if it cannot be read: no mapping is then claimed)."""
    try:
        return Path(f"/proc/{int(pid)}/maps").read_text()
    except OSError:
        return ""


def target_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by its parent, is not alive)."""
    return process_state(pid) not in (None, "Z", "X")
