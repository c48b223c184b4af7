"""Crash reports: where the agent writes them, and finding the previous kernel's.

A report belongs to one user (the state directory is 0700, each report 0600, and its uid is
checked) and one kernel identity (the connection file's name, which Jupyter keeps across a
restart). Only a report from the same identity and another process is "the previous kernel's".
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pyo3_debug_magic.errors import DebugMagicError
from pyo3_debug_magic.model import CrashRecord
from pyo3_debug_magic.paths import private_subdir, state_dir
from pyo3_debug_magic.protocol import from_wire

ARM_HINT = ("crash capture is armed while the native debugger is attached: run `%native_attach` "
            "(or set any `%native_break`) before the cell that crashes. If it was attached, the report "
            "could not be written: a disk too full even for the helper's log")


def kernel_identity() -> str | None:
    """The running Jupyter kernel's id (from its connection file), None outside a kernel."""
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:
        return None
    app = getattr(IPKernelApp, "_instance", None)  # instance() would raise in terminal IPython
    if not isinstance(app, IPKernelApp):
        return None
    connection_file = app.connection_file
    return Path(connection_file).stem if connection_file else None


def report_dir() -> Path:
    """``crashes/`` in the state directory: ours alone (0700), never a link or another's."""
    return private_subdir(state_dir(), "crashes")


@dataclass
class CrashFile:
    """A report file: its path and content (``record`` as the model)."""

    path: Path
    data: dict

    @property
    def summary(self) -> str:
        return self.data.get("summary", "crash")

    @property
    def record(self) -> CrashRecord:
        return from_wire(CrashRecord, self.data)


def reports(identity: str | None, directory: Path | None = None) -> list[CrashFile]:
    """This user's reports for kernel ``identity``, oldest first. Outside a Jupyter kernel
    (``identity=None``: terminal IPython) only this process's own: no process lists another's."""
    found = []
    for path in sorted((directory or report_dir()).glob("crash-*.json")):
        if path.is_symlink():
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("uid") != os.getuid() or path.stat().st_uid != os.getuid():
            continue
        if identity is None and (data.get("kernel_id") is not None or data.get("pid") != os.getpid()):
            continue
        if identity is not None and data.get("kernel_id") != identity:
            continue
        found.append(CrashFile(path, data))
    return sorted(found, key=lambda r: r.data.get("time", 0))


def previous_crash(identity: str | None, directory: Path | None = None) -> CrashFile | None:
    """The latest report of an earlier process of this same kernel, if any."""
    if identity is None:
        return None
    earlier = [r for r in reports(identity, directory) if r.data.get("pid") != os.getpid()]
    return earlier[-1] if earlier else None


def announce_once(identity: str | None, directory: Path | None = None) -> str | None:
    """The one-line notice for ``%load_ext`` (shown once per report)."""
    report = previous_crash(identity, directory)
    if report is None or report.data.get("announced_in"):
        return None  # announced once, by the first process after the crash
    report.data["announced_in"] = os.getpid()
    try:
        report.path.write_text(json.dumps(report.data, indent=1))
    except OSError:
        pass
    return f"The previous kernel crashed: {report.summary} (`%native_crash` shows the report)"


def clear(identity: str | None, directory: Path | None = None) -> int:
    removed = 0
    for report in reports(identity, directory):
        report.path.unlink(missing_ok=True)
        removed += 1
    return removed


LOST = re.compile(r"pyo3_debug_magic agent: cannot write (\S*/crash-(\d+)-\d+\.json): (.*)")


def lost_reports() -> list[str]:
    """Crash reports a helper could not write, from the helpers' logs (newest first): a
    missing report is then never explained as crash capture not being armed."""
    found = []
    try:
        logs = sorted(state_dir().glob("agent-*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    except (OSError, DebugMagicError):
        return found
    for log in logs:
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        found += [f"the crash of pid {m.group(2)} was caught, but its report could not be written "
                  f"({m.group(3)}; see {log})" for m in LOST.finditer(text)]
    return found
