"""gdb started with everything our features need, the same way for a live kernel (the agent)
and for a core file (``%native_core``): the same settings, the Python-stack reader and the
Rust pretty-printers, so a core's Rust values read as a live pause's do."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..tools import RUST_PRINTERS_MISSING, debug_file_directories, find_rust_pretty_printers
from .gdbmi import GdbCommandError, GdbMI

GDB_SIDE = Path(__file__).with_name("gdb_side.py")
PYSTACK = Path(__file__).with_name("pystack.py")
CRASH_SIGNALS = ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGILL", "SIGFPE")
# Signals the kernel uses for itself: gdb must neither stop on nor swallow them.
PASS_THROUGH_SIGNALS = ("SIGUSR1", "SIGUSR2", "SIGALRM", "SIGPIPE", "SIGTERM", "SIGHUP",
                        "SIGQUIT", "SIGPROF", "SIGVTALRM", "SIGWINCH", "SIGCHLD", "SIGIO", "SIGURG")

COMMON_SETTINGS = (
    # an internal error must fail one command, not kill gdb (and with it, every paused
    # thread's chance to get its GIL back)
    "maint set internal-error quit no", "maint set internal-error corefile no",
    "maint set internal-warning quit no",
    "set print elements 50", "set print repeats 20",
    f"source {PYSTACK}", f"source {GDB_SIDE}",
)
LIVE_SETTINGS = (
    "set unwindonsignal on", "set breakpoint pending on",
    f"handle {' '.join(PASS_THROUGH_SIGNALS)} nostop noprint pass",
    # SIGINT stops so an Interrupt during a pause can end it cleanly
    "handle SIGINT stop print pass",  # (noprint would imply nostop)
    f"handle {' '.join(CRASH_SIGNALS)} stop print pass",
)
OPTIONAL_SETTINGS = (  # newer gdbs only: a failure is not an error
    "set direct-call-timeout 5", "set indirect-call-timeout 5",
    "set unwind-on-timeout on",   # gdb 16+: a hung call ends by itself
    "set debuginfod enabled off",  # never a download while a thread waits
)


@dataclass(frozen=True)
class StartedGdb:
    """A gdb ready for use, its version line, and whether Rust values pretty-print."""

    gdb: GdbMI
    version: str
    printers: str  # "loaded", or why Rust values print raw


def start_gdb(gdb_path: str, live: bool, timeout: float = 10.0) -> StartedGdb:
    """Start gdb with our settings (``live``: also those for a running, attached kernel)."""
    debug_dirs = debug_file_directories()
    gdb = GdbMI(gdb_path)
    try:
        version_text = gdb.console_command("show version", timeout=timeout).console_text
        if debug_dirs:  # before any file is read: separate debug info is looked up at load
            gdb.console_command(f"set debug-file-directory {debug_dirs}", timeout)
        for setting in COMMON_SETTINGS + (LIVE_SETTINGS if live else ()):
            gdb.console_command(setting, timeout)
        for setting in OPTIONAL_SETTINGS:
            try:
                gdb.console_command(setting, timeout)
            except GdbCommandError:
                pass
        printers = _load_rust_printers(gdb, timeout)
    except BaseException:
        gdb.close()
        raise
    return StartedGdb(gdb, version_text.splitlines()[0] if version_text else "", printers)


def _load_rust_printers(gdb: GdbMI, timeout: float) -> str:
    etc = find_rust_pretty_printers()
    if etc is None:
        return RUST_PRINTERS_MISSING
    gdb.console_command(f"python register_rust_pretty_printers({str(etc)!r})", timeout)
    message = gdb.take_message("printers") or {}
    if message.get("loaded"):
        return "loaded"
    return f"Rust pretty-printers from {etc} failed to load ({message.get('error')}): Rust values print raw"
