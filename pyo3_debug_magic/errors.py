"""Errors that carry the fix the user should apply.

Our own errors render as one line (message + fix) in IPython; anything else keeps its
traceback so bugs stay visible.
"""
from __future__ import annotations


WIRE_KINDS: dict[str, type["DebugMagicError"]] = {}


class DebugMagicError(Exception):
    """Base class: ``message`` says what went wrong, ``fix`` what to do next. A class that may
    cross from the agent to the kernel names itself with ``wire_kind``."""

    fix: str = ""
    wire_kind: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("wire_kind"):
            WIRE_KINDS[cls.wire_kind] = cls

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

    wire_kind = "attach"


class AgentError(DebugMagicError):
    """The helper process (which drives gdb) failed or went away."""

    wire_kind = "agent"


class ProtocolMismatchError(AgentError):
    """The agent runs another version of this package than the kernel imported."""

    wire_kind = "protocol"


class AgentTimeoutError(AgentError):
    """The agent did not answer within the bound; the request was abandoned."""


class NotAttachedError(DebugMagicError):
    wire_kind = "not-attached"

    def __init__(self):
        super().__init__(
            "the native debugger is not attached to this kernel",
            "run `%native_attach` first (breakpoints attach by themselves)",
        )


class UsageProblem(DebugMagicError):
    """Bad input from the user (a location, a condition, an option)."""

    wire_kind = "usage"


class GdbStuckError(AgentError):
    """gdb did not answer within its bound (stopped or busy); what was done about it."""

    wire_kind = "gdb-stuck"


def error_from_wire(kind: str, message: str, fix: str = "") -> DebugMagicError:
    """The kernel-side error for one the agent sent (an unknown kind is an AgentError)."""
    cls = WIRE_KINDS.get(kind, AgentError)
    if cls is NotAttachedError:
        return NotAttachedError()
    return cls(message or "unknown agent error", fix or "")
