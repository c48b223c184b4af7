"""Per-user state directory (agent logs; later crash reports), readable only by the user."""
from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """``$PYO3_DEBUG_MAGIC_STATE`` or ``$XDG_STATE_HOME/pyo3_debug_magic``, created mode 0700."""
    override = os.environ.get("PYO3_DEBUG_MAGIC_STATE")
    if override:
        path = Path(override)
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "pyo3_debug_magic"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path
