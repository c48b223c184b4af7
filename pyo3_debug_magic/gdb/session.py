"""gdb started with everything our features need, the same way for a live kernel (the agent)
and for a core file (``%native_core``): the same settings, the Python-stack reader and the
Rust pretty-printers, so a core's Rust values read as a live pause's do. ``GdbSession`` is
the typed wrapper every agent module talks to gdb through: MI records stop here."""
from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from pyo3_debug_magic import model
from pyo3_debug_magic.breakpoints import source_paths
from pyo3_debug_magic.errors import NotAttachedError
from pyo3_debug_magic.breakpoints.generated import first_user_level, is_users_code
from pyo3_debug_magic.protocol import from_wire
from pyo3_debug_magic.tools import RUST_PRINTERS_MISSING, debug_file_directories, find_rust_pretty_printers
from pyo3_debug_magic.gdb.rust_values import readable
from pyo3_debug_magic.gdb.mi import GdbCommandError, GdbMI, GdbTimeoutError, MIResult, mi_quote
from pyo3_debug_magic.gdb.symbols import LazySymbols

GDB_SIDE = Path(__file__).with_name("gdb_side.py")
PYSTACK = Path(__file__).with_name("pystack.py")
PYSTACK_GDB = Path(__file__).with_name("pystack_gdb.py")  # sourced after PYSTACK: it drives its reader
PYO3_PRINTERS = Path(__file__).with_name("pyo3_printers.py")
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
    f"source {PYSTACK}", f"source {PYSTACK_GDB}", f"source {GDB_SIDE}",
)
LIVE_SETTINGS = (
    "set unwindonsignal on", "set breakpoint pending on",
    f"handle {' '.join(PASS_THROUGH_SIGNALS)} nostop noprint pass",
    # SIGINT stops so an Interrupt during a pause can end it cleanly
    "handle SIGINT stop print pass",  # (noprint would imply nostop)
    f"handle {' '.join(CRASH_SIGNALS)} stop print pass",
    # `s` steps over std's and PyO3's functions, as "just my code" does (an extended regex);
    # enabled only while a `s` runs: gdb checks it at every stop, which slowed log breakpoints
    "skip -rfu ^<?&?(mut[[:space:]])?(core|alloc|std|pyo3|pyo3_ffi)::", "skip disable",
)
OPTIONAL_SETTINGS = (  # newer gdbs only: a failure is not an error
    "set direct-call-timeout 5", "set indirect-call-timeout 5",
    "set unwind-on-timeout on",   # gdb 16+: a hung call ends by itself
    "set debuginfod enabled off",  # never a download while a thread waits
    "set print max-depth 10",  # rpds' persistent maps nest a dozen wrapper structs deep
)


@dataclass(frozen=True)
class StartedGdb:
    """A gdb ready for use, its version line, and whether Rust values pretty-print."""

    gdb: GdbMI
    version: str
    printers: str  # "loaded", or why Rust values print raw


def start_gdb(gdb_path: str, live: bool, timeout: float = 10.0, debug_file_directory: str = "",
              rustc: str = "") -> StartedGdb:
    """Start gdb with our settings (``live``: also those for a running, attached kernel)."""
    debug_dirs = debug_file_directories(debug_file_directory or None)
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
        for recorded_dir, source_dir in source_paths.remembered().items():  # `--source` of earlier kernels
            gdb.console_command(source_paths.gdb_command(recorded_dir, source_dir), timeout)
        printers = _load_rust_printers(gdb, timeout, rustc)
        # after Rust's: they go first in line, so a PyO3 handle is not taken apart field by field
        gdb.console_command(f"python register_pyo3_printers({str(PYO3_PRINTERS)!r})", timeout)
    except BaseException:
        gdb.close()
        raise
    return StartedGdb(gdb, version_text.splitlines()[0] if version_text else "", printers)


def _load_rust_printers(gdb: GdbMI, timeout: float, rustc: str = "") -> str:
    etc = find_rust_pretty_printers(rustc or None)
    if etc is None:
        return RUST_PRINTERS_MISSING
    gdb.console_command(f"python register_rust_pretty_printers({str(etc)!r})", timeout)
    message = gdb.take_message("printers") or {}
    if message.get("loaded"):
        return "loaded"
    return f"Rust pretty-printers from {etc} failed to load ({message.get('error')}): Rust values print raw"


THREAD_IDENT = re.compile(r"Thread (0x[0-9a-f]+) \(LWP (\d+)\)")


def frames_from_mi(stack: list[dict]) -> tuple[model.GdbFrame, ...]:
    """``-stack-list-frames`` rows as model frames."""
    return tuple(model.GdbFrame(level=int(f.get("level", 0)), func=f.get("func") or "??",
                                file=f.get("file"), fullname=f.get("fullname"),
                                line=int(f.get("line") or 0) or None, library=f.get("from"),
                                addr=f.get("addr")) for f in stack)


def thread_identity(target_id: str) -> tuple[int | None, int | None]:
    """(pthread ident, LWP) from gdb's ``target-id`` ("Thread 0x7f.. (LWP 123)")."""
    match = THREAD_IDENT.search(target_id or "")
    return (int(match.group(1), 16), int(match.group(2))) if match else (None, None)


def python_stacks_from(message: dict | None) -> model.PythonStacks:
    """The Python-stack reader's answer as the model (``error`` when it had none)."""
    if not message:
        return model.PythonStacks(error="no answer from gdb")
    return from_wire(model.PythonStacks, {k: v for k, v in message.items() if k != "kind"})


class GdbSession:
    """The attached gdb. Every command is bounded by ``timeout`` and, while a request runs, by
    the kernel's own wait for it (``deadline``): no inner wait outlasts the outer one."""

    def __init__(self, started: StartedGdb, timeout: float):
        self.mi = started.gdb
        self.version = started.version
        self.printers = started.printers
        self.timeout = timeout
        self.deadline: float | None = None
        self.symbols = LazySymbols()

    @property
    def alive(self) -> bool:
        return self.mi.alive

    def bound(self, timeout: float | None, what: str) -> float:
        wanted = timeout or self.timeout
        if self.deadline is None:
            return wanted
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise GdbTimeoutError(f"no time left for {what} within the kernel's wait for this request")
        return min(wanted, left)

    def command(self, command: str, timeout: float | None = None, on_late=None) -> MIResult:
        return self.mi.command(command, self.bound(timeout, command.split()[0]), on_late=on_late)

    def console(self, command: str, timeout: float | None = None) -> MIResult:
        """A gdb CLI command (our own text only)."""
        return self.mi.console_command(command, self.bound(timeout, command.split()[0]))

    def call_python(self, function: str, argument) -> MIResult:
        """A gdb_side function with one JSON argument, base64-encoded (never parsed by gdb)."""
        encoded = base64.b64encode(json.dumps(argument).encode()).decode()
        return self.console(f"python {function}({encoded!r})")

    def python_quiet(self, call: str) -> None:
        try:
            self.mi.console_command(f"python {call}", timeout=2)
        except Exception:  # noqa: BLE001 - bookkeeping for gdb's exit hook only
            pass

    def evaluate_c(self, thread: int, expression: str, timeout: float | None = None, on_late=None) -> str:
        """An inferior call in ``thread``, parsed as C (Rust's parser rejects C casts)."""
        result = self.command(f"-data-evaluate-expression --thread {int(thread)} --frame 0 --language c "
                              f"{mi_quote(expression)}", timeout, on_late=on_late)
        return result.payload.get("value", "")

    def evaluate(self, thread: int, frame: int, expression: str, raw: bool = False) -> str:
        """The user's expression in the frame's language (Rust in Rust frames); ``raw``: as
        gdb's ``print/r``, without pretty-printers."""
        if raw:
            text = self.command(f"-interpreter-exec --thread {int(thread)} --frame {int(frame)} console "
                                f"{mi_quote('print/r ' + expression)}").console_text.strip()
            return re.sub(r"^\$\d+ = ", "", text)
        result = self.command(f"-data-evaluate-expression --thread {int(thread)} --frame {int(frame)} "
                              f"{mi_quote(expression)}")
        return readable(result.payload.get("value", ""))

    def frames(self, thread: int) -> tuple[model.GdbFrame, ...]:
        frames = self._frames(thread)
        for _ in range(4):  # a library read only now: unwind again with its symbols
            if not self.symbols.read_for(self, frames):
                break
            frames = self._frames(thread)
        return frames

    def _frames(self, thread: int) -> tuple[model.GdbFrame, ...]:
        return frames_from_mi(self.command(f"-stack-list-frames --thread {int(thread)} 0 63")
                              .payload.get("stack", []))

    def locals(self, thread: int, frame: int, frames=None) -> tuple[model.Variable, ...]:
        """Full (pretty-printed) values in the user's code; simple values elsewhere (gdb 13 has
        crashed printing pyo3's wrapper locals)."""
        frames = frames if frames is not None else self.frames(thread)
        row = frames[frame] if 0 <= frame < len(frames) else None
        mode = "--all-values" if row is not None and is_users_code(row.fullname, row.func) else "--simple-values"
        try:
            payload = self.command(f"-stack-list-variables --thread {int(thread)} --frame {int(frame)} "
                                   f"{mode}").payload
        except GdbCommandError as error:
            return (model.Variable("<error>", str(error)),)
        return tuple(model.Variable(v.get("name") or "?", readable(v.get("value", ""))[:2000], v.get("arg") == "1")
                     for v in payload.get("variables", []))

    def threads(self) -> list[dict]:
        """``-thread-info`` rows (id, target-id, name, state)."""
        return self.command("-thread-info").payload.get("threads", [])

    def thread_identity(self, thread: int) -> tuple[int | None, int | None]:
        rows = self.command(f"-thread-info {int(thread)}").payload.get("threads") or [{}]
        return thread_identity(rows[0].get("target-id", ""))

    def thread_state(self, thread: int) -> str | None:
        rows = self.command(f"-thread-info {int(thread)}").payload.get("threads") or []
        return rows[0].get("state") if rows else None

    def continue_thread(self, thread: int) -> None:
        try:
            self.command(f"-exec-continue --thread {int(thread)}")
        except GdbCommandError:
            pass  # already running or gone

    def python_stacks(self) -> model.PythonStacks:
        """Every interpreter thread's Python frames, read from memory (no call into the process)."""
        self.console("python emit_python_stacks()")
        return python_stacks_from(self.mi.take_message("python-stacks"))

    def stop_threads(self, threads: list[int]) -> list[int]:
        """Interrupt ``threads`` and wait until gdb reports them stopped (by state, since
        their stop records may already have been read); returns those interrupted."""
        for thread in threads:
            self.command(f"-exec-interrupt --thread {int(thread)}")
        pending = set(threads)
        deadline = time.monotonic() + self.bound(None, "stopping threads")
        while pending and time.monotonic() < deadline:
            pending = {int(t["id"]) for t in self.threads() if t.get("state") == "running"} & pending
            if pending:
                self.mi.read(0.02)
        return list(threads)

    def drop_stop_records(self, threads: list[int]) -> None:
        """Forget the stop records of threads we stopped ourselves (they mean nothing else)."""
        self.mi.read(0)
        wanted = {str(t) for t in threads}
        kept = [r for r in self.mi.events if not (
            r.get("message") == "stopped" and (r.get("payload") or {}).get("thread-id") in wanted
            and (r.get("payload") or {}).get("reason") in (None, "signal-received")
            and (r.get("payload") or {}).get("signal-name") in (None, "0", "SIGINT"))]
        self.mi.events.clear()
        self.mi.events.extend(kept)

    def thread_row(self, info: dict, paused: bool = False, with_locals: bool = False) -> model.ThreadRow:
        number = int(info["id"])
        ident, lwp = thread_identity(info.get("target-id", ""))
        frames = self.frames(number)
        variables, of = None, None
        if with_locals and frames:
            level = first_user_level(frames) or 0  # the user's own frame says the most
            variables, of = self.locals(number, level, frames), f"#{level} {frames[level].func}"
        return model.ThreadRow(number, info.get("name"), ident, lwp, paused, frames, variables, of)

    def snapshot(self, paused: set[int], threads: list[int] | None = None,
                 with_locals: bool = False) -> model.RawSnapshot:
        """Every thread's native frames and the Python frames, read from memory; the threads
        stopped for it are resumed (those paused by the user stay paused)."""
        info = self.threads()
        stopped_here: list[int] = []
        try:
            stopped_here = self.stop_threads([int(t["id"]) for t in info if t.get("state") == "running"])
            rows = tuple(self.thread_row(t, int(t["id"]) in paused, with_locals) for t in info
                         if not threads or int(t["id"]) in threads)
            python = self.python_stacks()
        finally:
            for thread in stopped_here:
                self.continue_thread(thread)
            self.drop_stop_records(stopped_here)
        return model.RawSnapshot(rows, python)


def require(session: GdbSession | None) -> GdbSession:
    if session is None:
        raise NotAttachedError()
    return session
