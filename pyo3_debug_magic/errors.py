"""Errors that carry the fix the user should apply.

Our own errors render as one line (message + fix) in IPython; anything else keeps its
traceback so bugs stay visible.
"""
from __future__ import annotations


class DebugMagicError(Exception):
    """Base class: ``message`` says what went wrong, ``fix`` what to do next."""

    fix: str = ""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        if fix is not None:
            self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}: {self.fix}" if self.fix else self.message


class GdbNotFoundError(DebugMagicError):
    def __init__(self, searched: str = "gdb"):
        super().__init__(
            f"gdb not found (looked for {searched!r})",
            "install it with `sudo apt-get install gdb` (Debian/Ubuntu) or `sudo dnf install gdb`, "
            "or point PYO3_DEBUG_MAGIC_GDB at a gdb binary",
        )


class PySpyNotFoundError(DebugMagicError):
    def __init__(self, searched: str = "py-spy"):
        super().__init__(
            f"py-spy not found (looked for {searched!r})",
            "install it with `pip install py-spy` in the kernel's environment, "
            "or point PYO3_DEBUG_MAGIC_PYSPY at a py-spy binary",
        )


class PtraceNotPermittedError(DebugMagicError):
    """The kernel may not be traced by our helper (Yama, container capabilities)."""

    def __init__(self, detail: str, fix: str):
        super().__init__(f"ptrace not permitted: {detail}", fix)


class AttachError(DebugMagicError):
    """gdb could not attach to the kernel process."""


class AgentError(DebugMagicError):
    """The helper process (which drives gdb) failed or went away."""


class AgentTimeoutError(AgentError):
    """The agent did not answer within the bound; the request was abandoned."""


class NotAttachedError(DebugMagicError):
    def __init__(self):
        super().__init__(
            "the native debugger is not attached to this kernel",
            "run `%native_attach` first (breakpoints attach by themselves)",
        )


class UsageProblem(DebugMagicError):
    """Bad input from the user (a location, a condition, an option)."""


def error_from_payload(payload: dict) -> DebugMagicError:
    """Rebuild an error sent by the agent as ``{"type", "message", "fix"}``."""
    known = {cls.__name__: cls for cls in (AttachError, AgentError, UsageProblem, NotAttachedError)}
    cls = known.get(payload.get("type", ""), AgentError)
    if cls is NotAttachedError:
        return NotAttachedError()
    return cls(payload.get("message", "unknown agent error"), payload.get("fix") or "")
