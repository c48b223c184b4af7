"""Where the sources of a module built on another machine or in another folder are here.

A wheel records the paths it was built from (``/project/src/lib.rs`` in a manylinux
container, a CI checkout). ``%native_break ... --source DIR`` maps that folder to the user's
checkout with gdb's ``set substitute-path``; the mapping is kept in the state directory so
later kernels (and ``%native_core``) find the sources too."""
from __future__ import annotations

import json
import os
from pathlib import Path

from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.paths import state_dir

FILE_NAME = "source-paths.json"
UNQUOTABLE = set('"\\\n\r\0')


def checked_source_dir(text: str) -> str:
    """The absolute folder ``--source`` names; a UsageProblem when it cannot be one."""
    path = os.path.abspath(os.path.expanduser(text))
    if UNQUOTABLE & set(path):
        raise UsageProblem(f"--source {text!r}: quotes, backslashes and line breaks are not supported in the path",
                           "move or link the checkout to a plain path")
    if not os.path.isdir(path):
        raise UsageProblem(f"--source {text}: no such folder", "give the folder of your checkout of the crate "
                           "(the one with Cargo.toml)")
    return path


def mapping_for(recorded: str, source_dir: str) -> tuple[str, str] | None:
    """(recorded folder, local folder) such that the recorded file exists under ``source_dir``:
    ``/project/src/lib.rs`` with ``~/code/mycrate`` -> (``/project``, ``~/code/mycrate``)."""
    parts = Path(recorded).parts
    for start in range(1, len(parts)):
        tail = Path(*parts[start:])
        if (Path(source_dir) / tail).is_file():
            recorded_dir = str(Path(*parts[:start]))
            return (recorded_dir, source_dir) if recorded_dir != source_dir else None
    return None


def _file() -> Path:
    return state_dir() / FILE_NAME


def remembered() -> dict[str, str]:
    """Every mapping set so far (recorded folder -> local folder)."""
    try:
        data = json.loads(_file().read_text())
    except (OSError, ValueError, UsageProblem):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)
            and not (UNQUOTABLE & set(k + v))} if isinstance(data, dict) else {}


def remember(recorded_dir: str, source_dir: str) -> None:
    mappings = {**remembered(), recorded_dir: source_dir}
    target = _file()
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(mappings, indent=1))
    os.chmod(temporary, 0o600)
    os.replace(temporary, target)


def gdb_command(recorded_dir: str, source_dir: str) -> str:
    if UNQUOTABLE & set(recorded_dir + source_dir):
        raise UsageProblem("a source path with quotes or backslashes", "move the checkout to a plain path")
    return f'set substitute-path "{recorded_dir}" "{source_dir}"'
