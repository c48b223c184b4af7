"""py-spy, driven from one place: ``py-spy dump --json`` turned into the model (merged
ThreadStacks, or the Python frames alone for the gdb engine's fallback), Rust names demangled."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

from . import model, stacks, tools
from .errors import DebugMagicError
from .locations import crate_relative, is_user_source

HEX_NAME = re.compile(r"^0x[0-9a-f]+$")
DUMP_TIMEOUT = 20.0


def demangle_all(names: list[str]) -> dict[str, str]:
    """Demangle Rust/C++ symbols in one c++filt call (binutils handles Rust v0 and legacy)."""
    mangled = sorted({n for n in names if n.startswith(("_R", "_ZN"))})
    result = {n: n for n in names}
    cxxfilt = shutil.which("c++filt")
    if mangled and cxxfilt:
        out = subprocess.run([cxxfilt], input="\n".join(mangled), capture_output=True, text=True,
                             timeout=10).stdout.splitlines()
        result.update(dict(zip(mangled, out)))
    return {k: stacks.clean_rust_name(v) for k, v in result.items()}


def dump(pid: int, nonblocking: bool = False, py_spy: str | None = None) -> list[model.ThreadStack]:
    """One py-spy snapshot of ``pid``: with native frames, or, ``nonblocking`` (while gdb holds
    ptrace; py-spy cannot unwind native stacks then), Python frames only."""
    command = [tools.find_py_spy(py_spy or None), "dump", "--pid", str(pid), "--json"]
    command.append("--nonblocking" if nonblocking else "--native")
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=DUMP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DebugMagicError(f"py-spy dump did not finish within {DUMP_TIMEOUT:g} s",
                              "try `%native_bt --engine gdb`") from None
    if run.returncode != 0:
        detail = (run.stderr or run.stdout).strip().splitlines()
        raise DebugMagicError(f"py-spy dump failed: {detail[-1] if detail else run.returncode}",
                              "check ptrace permissions, or use `%native_bt --engine gdb`")
    return parse_dump(json.loads(run.stdout))


def parse_dump(threads: list[dict]) -> list[model.ThreadStack]:
    """py-spy's JSON (a list of threads) as ThreadStacks; Python and native frames interleaved."""
    names = demangle_all([f.get("name", "") for t in threads for f in t.get("frames", [])])
    result = []
    for thread in threads:
        entries = []
        for frame in thread.get("frames", []):
            name = frame.get("name", "")
            if HEX_NAME.match(name) or name in ("", "?"):
                continue
            python = frame.get("module") is None and frame.get("filename") not in (None, "?")
            filename = frame.get("filename")
            filename = filename if filename not in ("?", None) else None
            user = not python and is_user_source(filename)
            entries.append(model.StackEntry(
                "python" if python else "native", names.get(name, name),
                crate_relative(filename) if user else filename, frame.get("line") or None,
                python and stacks.is_cell_file(filename or ""), user=user))
        result.append(model.ThreadStack(
            str(thread.get("os_thread_id")), thread.get("thread_name"), thread.get("os_thread_id"),
            thread.get("owns_gil"), not thread.get("active", True), tuple(entries)))
    return result


def python_stacks_nonblocking(pid: int, problem: str, py_spy: str | None = None) -> model.PythonStacks:
    """The gdb engine's one fallback when libpython has no debug info (``problem``): the
    Python frames from ``py-spy dump --nonblocking``, which reads memory without ptrace (gdb
    holds it). Matched to gdb's threads by OS thread id."""
    try:
        threads = dump(pid, nonblocking=True, py_spy=py_spy)
    except DebugMagicError as error:
        return model.PythonStacks(error=f"{problem}; the py-spy fallback failed too: {error}")
    found = tuple(model.PythonThread(
        None, t.os_thread_id, t.holds_gil,
        tuple(model.PythonFrame(e.file or "?", e.line or 0, e.function, e.is_cell)
              for e in t.entries if e.kind == "python")) for t in threads if t.os_thread_id is not None)
    if threads and not found:
        return model.PythonStacks(error=f"{problem}; py-spy did not say which OS thread runs which Python thread")
    return model.PythonStacks(found, gil_known=True, source="py-spy")
