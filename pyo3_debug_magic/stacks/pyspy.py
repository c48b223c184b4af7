"""py-spy, driven from one place: ``py-spy dump --json`` turned into the model (merged
ThreadStacks, or the Python frames alone for the gdb engine's fallback), Rust names demangled;
``py-spy record`` for a cell's profile."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from pyo3_debug_magic import model, tools
from pyo3_debug_magic.stacks import merging
from pyo3_debug_magic.errors import DebugMagicError
from pyo3_debug_magic.breakpoints.locations import crate_relative, is_user_source

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
    return {k: merging.clean_rust_name(v) for k, v in result.items()}


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
            if merging.HEX_NAME.match(name) or name in ("", "?"):
                continue
            python = frame.get("module") is None and frame.get("filename") not in (None, "?")
            filename = frame.get("filename")
            filename = filename if filename not in ("?", None) else None
            # PyO3's wrapper stays the user's: py-spy does not expand inlined frames, and in a
            # release build it names the wrapper for the user's function inlined into it
            user = not python and is_user_source(filename)
            entries.append(model.StackEntry(
                "python" if python else "native", names.get(name, name),
                crate_relative(filename) if user else filename, frame.get("line") or None,
                python and merging.is_cell_file(filename or ""), user=user))
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


# ----- py-spy record: the sampler behind %%native_profile --------------------------------------

SAMPLES_LINE = re.compile(r"Samples: (\d+) Errors: (\d+)")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class Recording:
    """``py-spy record`` of ``pid`` while a cell runs, in ``raw`` (collapsed) form: with native
    frames (py-spy stops the threads for each sample) and, alongside, the Python frames alone
    (``--nonblocking``, no ptrace), so the samples py-spy cannot merge have a view too."""

    def __init__(self, pid: int, rate: int = 100, gil: bool = False, idle: bool = False,
                 py_spy: str | None = None, python_only: bool = True, tracer_after: int | None = None):
        self.pid, self.rate = pid, rate
        self.tracer_after = tracer_after  # under Yama scope 1: who may trace us once py-spy is done
        self.py_spy = tools.find_py_spy(py_spy or None)
        self.folder = tempfile.mkdtemp(prefix="pyo3-debug-magic-profile-")
        common = ["--pid", str(pid), "--rate", str(rate), "--format", "raw", "--threads", "--full-filenames"]
        common += ["--gil"] * gil + ["--idle"] * idle
        self.commands = {"native": [self.py_spy, "record", *common, "--native",
                                    "--output", os.path.join(self.folder, "native.txt")]}
        if python_only:
            self.commands["python"] = [self.py_spy, "record", *common, "--nonblocking",
                                       "--output", os.path.join(self.folder, "python.txt")]
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        """Start the samplers; return once the native one samples (or raise why it cannot)."""
        # the native sampler starts last: under Yama scope 1 the last declared tracer is the one
        # that may trace (see tools.declare_tracer), and it is the one the profile needs
        for name in sorted(self.commands, key=lambda name: name == "native"):
            with open(os.path.join(self.folder, f"{name}.log"), "w") as log:  # py-spy says all on stdout
                self.processes[name] = subprocess.Popen(self.commands[name], stdin=subprocess.DEVNULL, stdout=log,
                                                        stderr=subprocess.STDOUT, start_new_session=True)
            tools.declare_tracer(self.pid, self.processes[name].pid)
        deadline = time.monotonic() + START_TIMEOUT
        native = self.processes["native"]
        while "Sampling process" not in self._log("native"):
            if native.poll() is not None or time.monotonic() > deadline:
                error = self._start_error()
                self.stop()
                raise error
            time.sleep(0.01)

    def _log(self, name: str) -> str:
        try:
            with open(os.path.join(self.folder, f"{name}.log")) as log:
                return log.read()
        except OSError:
            return ""

    def _start_error(self) -> DebugMagicError:
        said = [line.replace("py-spy> ", "").strip() for line in self._log("native").splitlines() if line.strip()]
        detail = said[-1] if said else "it did not start sampling"
        if any(word in detail for word in ("ermission", "not permitted", "ptrace")):
            return DebugMagicError(f"py-spy may not trace this kernel: {detail}",
                                   "allow ptrace (`sudo sysctl kernel.yama.ptrace_scope=1`, or "
                                   "`--cap-add SYS_PTRACE` for a container); the cell ran unprofiled")
        return DebugMagicError(f"py-spy record failed: {detail}", "the cell ran unprofiled; "
                               "check that `py-spy record --native --pid PID` works in a terminal")

    def stop(self) -> dict[str, tuple[str, int, int]]:
        """Stop sampling (py-spy writes its file on SIGINT); per sampler (collapsed text,
        samples, errors). Never leaves a sampler running."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        results = {}
        for name, process in self.processes.items():
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            counts = SAMPLES_LINE.findall(self._log(name))
            samples, errors = (int(counts[-1][0]), int(counts[-1][1])) if counts else (0, 0)
            try:
                with open(os.path.join(self.folder, f"{name}.txt")) as raw:
                    text = raw.read()
            except OSError:
                text = ""
            results[name] = (text, samples, errors)
        tools.declare_tracer(self.pid, self.tracer_after)
        shutil.rmtree(self.folder, ignore_errors=True)
        return results
