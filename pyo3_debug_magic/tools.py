"""Finding the external tools we drive (gdb, py-spy) and checking ptrace permission; starting
our own helper processes, and importing, without anything from the notebook's folder."""
from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from pyo3_debug_magic.errors import (GdbNotFoundError, PtraceNotPermittedError, PySpyNotFoundError,
                                     UsageProblem)

YAMA_PTRACE_SCOPE = Path("/proc/sys/kernel/yama/ptrace_scope")
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def isolated_python(code: str, *arguments: str, roots: tuple[str, ...] = ()) -> list[str]:
    """A command line running ``code`` in ``python -I`` (no working directory, no user site, no
    PYTHONPATH on its path: a planted ``json.py`` in the notebook's folder is never imported),
    with this package's directory and ``roots`` put back explicitly. Start it with cwd="/"."""
    paths = [PACKAGE_PARENT, *(root for root in roots if root != PACKAGE_PARENT)]
    bootstrap = f"import json, sys; sys.path[:0] = json.loads(sys.argv.pop(1)); {code}"
    return [sys.executable, "-I", "-c", bootstrap, json.dumps(paths), *arguments]


def isolated_module(module: str, *arguments: str) -> list[str]:
    """``python -m module arguments``, isolated as ``isolated_python`` says."""
    return isolated_python(f"import runpy; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)",
                           *arguments)


@contextlib.contextmanager
def imports_from_installation():
    """Imports made inside take nothing from the working directory, which IPython puts first
    on the kernel's path: a planted ``pygdbmi.py`` in the notebook's folder is never imported."""
    saved = list(sys.path)
    here = os.getcwd()
    sys.path[:] = [entry for entry in saved if entry not in ("", ".") and os.path.abspath(entry) != here]
    try:
        yield
    finally:
        sys.path[:] = saved
PR_SET_PTRACER = 0x59616D61


def _find_tool(name: str, override_variable: str, configured: str | None = None) -> tuple[str | None, str]:
    """(absolute path or None, what was looked for): ``configured`` (a setting), else
    ``$override_variable``, else ``name`` next to this Python (a pip-installed binary of the
    kernel's environment), else PATH."""
    wanted = configured or os.environ.get(override_variable)
    candidates = [wanted] if wanted else [str(Path(sys.executable).with_name(name)), name]
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found, candidates[0]
    return None, candidates[0]


@functools.lru_cache(maxsize=1)
def maturin_can_include_debuginfo() -> bool:
    """The installed maturin has ``build --include-debuginfo`` (debug info packed into the wheel)."""
    found, _ = _find_tool("maturin", "PYO3_DEBUG_MAGIC_MATURIN")
    if found is None:
        return False
    try:
        shown = subprocess.run([found, "build", "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return "--include-debuginfo" in shown.stdout


def no_debug_info_fix() -> str:
    """How to get debug info into a PyO3 module, with what the installed maturin offers."""
    fix = ("rebuild with debug info: `maturin develop` (or `maturin build --profile dev`), or set "
           "`[profile.release] debug = true` (\"line-tables-only\" is enough for line breakpoints)")
    if maturin_can_include_debuginfo():
        fix += "; a wheel keeps it with `maturin build --release --include-debuginfo`"
    return fix


def debug_file_directories(configured: str | None = None) -> str | None:
    """``$PYO3_DEBUG_MAGIC_DEBUG_FILE_DIRECTORY`` (colon-separated) for gdb's
    ``debug-file-directory``, where separate debug info is looked for (default ``/usr/lib/debug``,
    where Debian's ``python3.X-dbg`` puts libpython's); None when unset."""
    value = configured or os.environ.get("PYO3_DEBUG_MAGIC_DEBUG_FILE_DIRECTORY")
    if not value:
        return None
    if any(not c.isprintable() for c in value) or not all(Path(d).is_dir() for d in value.split(":")):
        raise UsageProblem(f"PYO3_DEBUG_MAGIC_DEBUG_FILE_DIRECTORY={value[:200]!r} is not a list of directories",
                           "set it to directories separated by ':' (e.g. /usr/lib/debug), or unset it")
    return value


def find_gdb(configured: str | None = None) -> str:
    """Absolute path of gdb: ``$PYO3_DEBUG_MAGIC_GDB``, else the one installed next to this
    Python (the ``gdb-for-pwndbg`` dependency, gdb 18), else PATH; GdbNotFoundError if none."""
    found, searched = _find_tool("gdb", "PYO3_DEBUG_MAGIC_GDB", configured)
    if found is None:
        raise GdbNotFoundError(searched)
    return found


def gdb_major_version(version_line: str) -> int | None:
    """``GNU gdb (Debian 13.1-3) 13.1`` -> 13."""
    match = re.search(r"(\d+)\.\d+(?:\.\d+)?\S*\s*$", version_line.strip())
    return int(match.group(1)) if match else None


def cpu_has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        return " amx_tile" in cpuinfo.read_text()
    except OSError:
        return False


def calls_unsafe_reason(version_line: str, has_amx: bool) -> str | None:
    """Why gdb must not call functions in the kernel (None when it may).

    gdb before 14 writes a fixed-size XSAVE area; on CPUs with AMX the kernel refuses it
    ("Couldn't write extended state status: Bad address") after the call has run, leaving the
    thread with corrupted registers (verified: the target died on its next system call)."""
    major = gdb_major_version(version_line)
    if has_amx and major is not None and major < 14:
        return (f"{version_line.strip()} cannot call into the kernel on this CPU (AMX: gdb before 14 "
                "corrupts the thread's registers), so breakpoints cannot pause and only log: "
                "`pip install gdb-for-pwndbg` in the kernel's environment (gdb 18), or point "
                "PYO3_DEBUG_MAGIC_GDB at gdb 14 or newer")
    return None


def find_py_spy(configured: str | None = None) -> str:
    """Absolute path of py-spy (``$PYO3_DEBUG_MAGIC_PYSPY``, next to this Python, or PATH)."""
    found, searched = _find_tool("py-spy", "PYO3_DEBUG_MAGIC_PYSPY", configured)
    if found is None:
        raise PySpyNotFoundError(searched)
    return found


RUST_PRINTERS_MISSING = ("Rust pretty-printers not found (no rustc on the kernel's PATH, in ~/.cargo/bin "
                         "or under ~/.rustup): Rust values print raw. Start Jupyter with rustc on PATH, "
                         "or set PYO3_DEBUG_MAGIC_RUSTC to its path")


def find_rust_pretty_printers(configured: str | None = None) -> Path | None:
    """Rust's gdb pretty-printers (the toolchain's ``lib/rustlib/etc``). A kernel started by a
    desktop launcher or a service often lacks ~/.cargo/bin on PATH, so look there and in
    rustup's toolchains too."""
    cargo_home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    for rustc in (configured or os.environ.get("PYO3_DEBUG_MAGIC_RUSTC"), shutil.which("rustc"), str(cargo_home / "bin" / "rustc")):
        if not rustc or not os.access(rustc, os.X_OK):
            continue
        try:
            sysroot = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True,
                                     timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        etc = Path(sysroot) / "lib" / "rustlib" / "etc"
        if sysroot and (etc / "gdb_lookup.py").is_file():
            return etc
    rustup_home = Path(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")
    found = sorted(rustup_home.glob("toolchains/*/lib/rustlib/etc/gdb_lookup.py"))
    return found[-1].parent if found else None


def read_ptrace_scope(path: Path = YAMA_PTRACE_SCOPE) -> int | None:
    """Yama's ptrace_scope (0-3), or None when Yama is not present."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def check_ptrace_scope(scope: int | None, is_root: bool) -> None:
    """Raise PtraceNotPermittedError when ``scope`` forbids a helper from tracing us.

    Scope 1 is handled by ``allow_tracer`` (the kernel declares its helper), so it passes.
    """
    if scope is None or scope <= 1:
        return
    if scope == 2 and is_root:
        return
    if scope == 2:
        raise PtraceNotPermittedError(
            "/proc/sys/kernel/yama/ptrace_scope is 2 (only root may attach)",
            "run `sudo sysctl kernel.yama.ptrace_scope=1`, or start Jupyter as a user "
            "with CAP_SYS_PTRACE",
        )
    raise PtraceNotPermittedError(
        "/proc/sys/kernel/yama/ptrace_scope is 3 (attaching is disabled until reboot)",
        "an administrator must set `kernel.yama.ptrace_scope=1` in /etc/sysctl.d and reboot",
    )


def allow_tracer(pid: int) -> bool:
    """Let process ``pid`` (our agent) and its children trace this process under Yama scope 1."""
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PTRACER, ctypes.c_ulong(pid), 0, 0, 0) == 0


def declare_tracer(target_pid: int | None, tracer_pid: int | None) -> None:
    """Under Yama scope 1, when ``target_pid`` is this process: let ``tracer_pid`` (and its
    children) trace it; ``None`` or 0 revokes. Yama keeps one declared tracer: a declaration
    replaces the previous one."""
    if target_pid in (None, os.getpid()) and read_ptrace_scope() == 1:
        allow_tracer(tracer_pid or 0)


def explain_attach_failure(gdb_message: str, pid: int) -> tuple[str, str]:
    """Turn gdb's raw attach error into (what went wrong, what to do)."""
    text = gdb_message.lower()
    if "no such process" in text:
        return f"process {pid} does not exist", "restart the kernel and try again"
    if "operation not permitted" in text:
        scope = read_ptrace_scope()
        if scope is not None and scope >= 1:
            fix = (f"Yama ptrace_scope is {scope}; run `sudo sysctl kernel.yama.ptrace_scope=1` "
                   "(or 0) and try again")
        else:
            fix = ("in a container, start it with `--cap-add=SYS_PTRACE` "
                   "(and `--security-opt seccomp=unconfined` on old Docker)")
        return f"gdb may not attach to process {pid} (ptrace not permitted)", fix
    return f"gdb could not attach to process {pid}: {gdb_message.strip()}", (
        "check that gdb works with `gdb -p PID -batch` in a terminal")
