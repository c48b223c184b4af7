"""Facts about the kernel process read from ``/proc``, without gdb and without stopping it."""
from __future__ import annotations

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


def target_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by its parent, is not alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"
