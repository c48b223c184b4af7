"""Plain-text renderings (terminal IPython, and the text twin of every rich output)."""
from __future__ import annotations

from ..debugger import AttachStatus


def attach_status(status: AttachStatus) -> str:
    took = f" in {status.attach_seconds:.2f} s" if status.attach_seconds is not None else ""
    return (f"native debugger attached to kernel pid {status.target_pid}{took} "
            f"({status.thread_count} threads, non-stop; {status.gdb_version})")


def detached(how: str) -> str:
    if how == "exited":
        return "native debugger detached; the kernel keeps running"
    return f"native debugger detached (helper process {how}); the kernel keeps running"
