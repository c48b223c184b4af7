"""Test harness: real Jupyter kernels, process-tree cleanup, demo-crate markers."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import tempfile
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from run_notebook import IpcKernelManager  # noqa: E402
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402

IPYKERNEL6_PYTHON = ROOT / ".venv-ipykernel6" / "bin" / "python"
DEBIAN_PYTHON = ROOT / ".venv-debian" / "bin" / "python"  # Debian's /usr/bin/python3
# Debian's python3.X-dbg (installed by setup) puts libpython's DWARF in /usr/lib/debug; pointing
# gdb at an empty directory instead gives the Python most users have: no libpython debug info.
NO_DEBUG_INFO_DIR = Path(tempfile.gettempdir()) / "pyo3-debug-magic-empty-debug-dir"
PYTHONS = {  # name: (interpreter or None for the suite's own, kernel environment)
    "pyenv-3.11": (None, {}),
    "debian-python3": (DEBIAN_PYTHON, {"PYO3_DEBUG_MAGIC_DEBUG_FILE_DIRECTORY": str(NO_DEBUG_INFO_DIR)}),
    "debian-python3-dbg": (DEBIAN_PYTHON, {}),
}


SCREENSHOTS: list[str] = []  # written by the browser tests, named in the run's summary

def python_variant(name: str) -> tuple[Path | None, dict]:
    """(interpreter, environment) of a PYTHONS entry, after checking what the name promises:
    the interpreter exists and gdb does or does not find libpython's debug info for it."""
    python, env = PYTHONS[name]
    if python is None:
        return python, dict(env)
    assert python.exists(), f"{python} is missing: run `bash scripts/setup.sh`"
    NO_DEBUG_INFO_DIR.mkdir(exist_ok=True)
    gdb = Path(sys.executable).with_name("gdb")
    directory = env.get("PYO3_DEBUG_MAGIC_DEBUG_FILE_DIRECTORY", "/usr/lib/debug")
    found = subprocess.run([str(gdb), "-nx", "-batch", "-iex", f"set debug-file-directory {directory}",
                            "-ex", "info functions ^PyGILState_Check$", str(python.resolve())],
                           capture_output=True, text=True, timeout=120).stdout
    has_dwarf = "pystate.c" in found
    assert has_dwarf == name.endswith("-dbg"), (
        f"{name}: gdb {'finds' if has_dwarf else 'does not find'} libpython debug info for {python}"
        " (setup installs python3.X-dbg: run `bash scripts/setup.sh`)")
    return python, dict(env)

CRATE = ROOT / "examples" / "rustdemo"
LIB_RS = CRATE / "src" / "lib.rs"


def marker_line(name: str, source: Path = LIB_RS) -> int:
    """Line number (1-based) of the line carrying ``// MARK: name``."""
    pattern = re.compile(r"//\s*MARK:\s*" + re.escape(name) + r"(\s|$)")
    for number, line in enumerate(source.read_text().splitlines(), start=1):
        if pattern.search(line):
            return number
    raise LookupError(f"no `// MARK: {name}` in {source}")


@contextlib.contextmanager
def build_lock():
    """Held while a test builds into the checkout's shared cargo target folders (the
    pytest-xdist workers share them: maturin's own output there is not safe to share)."""
    with open(ROOT / ".venv" / ".build-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# ----- processes -------------------------------------------------------------------
def tracer_of(pid: int) -> int:
    """The pid ptrace-attached to ``pid`` (0: none)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    raise AssertionError("no TracerPid line")


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces; the ppid follows the closing parenthesis
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def descendants_of(pid: int) -> list[int]:
    result, frontier = [], [pid]
    while frontier:
        kids = children_of(frontier.pop())
        result += kids
        frontier += kids
    return result


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def thread_stat(pid: int, tid: int | None = None) -> tuple[str, int] | None:
    """(state letter, CPU ticks used) of one thread of ``pid`` (its main thread by default)."""
    try:
        stat = Path(f"/proc/{pid}/task/{tid or pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], int(fields[11]) + int(fields[12])  # utime + stime


def wait_for(condition, seconds: float, what: str, step: float = 0.02) -> None:
    """A handshake: poll ``condition`` until it holds; fail saying ``what`` never happened."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"within {seconds:g} s: {what} never happened")
        time.sleep(step)


def spinning(pid: int, ticks: int = 20):
    """A condition: the main thread of ``pid`` has used ``ticks`` more CPU ticks (1/100 s) than
    when this was called, i.e. it runs a hot loop, not Python on its way there."""
    start = thread_stat(pid)[1]
    return lambda: (thread_stat(pid) or ("", start))[1] - start >= ticks


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def kill_all(pids: list[int]) -> list[int]:
    """SIGKILL every pid still alive; returns those that were."""
    killed = []
    for pid in pids:
        if is_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def agent_processes(parent: int) -> list[int]:
    return [pid for pid in descendants_of(parent) if "pyo3_debug_magic.agent" in process_name(pid)]


def gdb_processes(parent: int) -> list[int]:
    """gdb itself, or gdb started through the dynamic loader (the gdb-for-pwndbg wheel does)."""
    found = []
    for pid in descendants_of(parent):
        words = [os.path.basename(word) for word in process_name(pid).split(" ")[:2]]
        if words[:1] == ["gdb"] or (words[0].startswith("ld-linux") and words[1:] == ["gdb"]):
            found.append(pid)
    return found


# ----- kernels ---------------------------------------------------------------------
def snapshot_of_process(argv: list[str], env: dict | None = None):
    """Start ``argv`` (a Python that prints "ready" once its threads are in place), attach
    the native debugger, take one snapshot and tear everything down; the ``model.Snapshot``."""
    import subprocess

    from pyo3_debug_magic.debugger import NativeDebugger

    target = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    debugger = NativeDebugger(target.pid)
    try:
        assert target.stdout.readline().strip() == "ready", "the target process did not start"
        debugger.attach()
        snapshot = debugger.snapshot()
        assert snapshot.problem is None, snapshot.problem
        return snapshot
    finally:
        debugger.close()
        target.kill()
        target.wait()


@dataclass
class CellResult:
    """Everything one executed cell sent back."""

    status: str  # "ok", "error", "aborted", "timeout", "died" (the kernel process exited), "restarted", "running"
    stdout: str = ""
    stderr: str = ""
    results: list[str] = field(default_factory=list)   # execute_result text/plain
    displays: list[dict] = field(default_factory=list)  # display_data bundles
    updates: list[dict] = field(default_factory=list)   # update_display_data bundles
    # what the cell showed as text, in order: stdout and displays' text/plain, less progress lines
    output: str = ""
    progress: list[str] = field(default_factory=list)  # status lines updated in place (an attach's)
    error: dict | None = None
    prompts: list[str] = field(default_factory=list)    # input() prompts answered
    order: list[str] = field(default_factory=list)      # the output messages' types, as they came

    @property
    def text(self) -> str:
        """All visible text of the cell, in a rough order: streams, displays, results."""
        shown = [self.stdout, self.stderr]
        shown += [d.get("text/plain", "") for d in self.displays]
        shown += self.results
        if self.error:
            shown.append(f"{self.error['ename']}: {self.error['evalue']}")
        return "\n".join(part for part in shown if part)


class KernelHarness:
    """A real ipykernel started with jupyter_client over IPC; cells run one at a time."""

    def __init__(self, env: dict | None = None, cwd: Path = ROOT, python: Path | None = None):
        """``python``: run the kernel with another interpreter (e.g. the ipykernel 6 venv)."""
        if python is None:
            self.manager = IpcKernelManager(kernel_name="python3")
        else:
            spec_dir = Path(tempfile.mkdtemp(prefix="pdm-kernelspec-"))
            (spec_dir / "pdm-other").mkdir()
            (spec_dir / "pdm-other" / "kernel.json").write_text(json.dumps({
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": f"Python ({python})", "language": "python"}))
            self.manager = IpcKernelManager(
                kernel_name="pdm-other", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir)]))
        kernel_env = dict(os.environ)
        kernel_env.update(env or {})
        self.manager.start_kernel(env=kernel_env, cwd=str(cwd))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    @property
    def pid(self) -> int:
        return self.manager.provisioner.process.pid

    def run(self, code: str, timeout: float = 60, answers: Callable[[str], str] | list[str] | None = None,
            allow_stdin: bool | None = None, until: Callable[[CellResult], bool] | None = None) -> CellResult:
        """Execute ``code``; ``answers`` replies to input() prompts (a list, or prompt -> reply).
        ``until``: stop waiting once it holds of what came so far (status "running": a cell
        that never ends)."""
        if isinstance(answers, list):
            pending = list(answers)
            # once the scripted answers run out, continue: a test must end, never hang
            answers = lambda prompt: pending.pop(0) if pending else "c"  # noqa: E731
        stdin = answers is not None if allow_stdin is None else allow_stdin
        msg_id = self.client.execute(code, allow_stdin=stdin)
        result = CellResult(status="timeout")
        deadline = time.monotonic() + timeout
        idle = False
        reply = None
        next_liveness_check = time.monotonic() + 0.25
        kernel_pid = self.pid
        while not (idle and reply) and time.monotonic() < deadline:
            if time.monotonic() > next_liveness_check:
                if not self.manager.is_alive():  # a crashed kernel never replies: stop waiting
                    result.status = "died"
                    return result
                process = getattr(self.manager.provisioner, "process", None)
                if process is not None and process.pid != kernel_pid:  # restarted: nor does an old one
                    result.status = "restarted"
                    return result
                next_liveness_check = time.monotonic() + 0.25
            if answers is not None:
                try:
                    request = self.client.stdin_channel.get_msg(timeout=0.01)
                    prompt = request["content"]["prompt"]
                    result.prompts.append(prompt)
                    answer = answers(prompt)
                    if answer is not None:  # None: leave the prompt unanswered, as a user can
                        self.client.input(answer)
                except queue.Empty:
                    pass
            try:
                message = self.client.iopub_channel.get_msg(timeout=0.05)
            except queue.Empty:
                message = None
            if message and message["parent_header"].get("msg_id") == msg_id:
                self._collect(message, result)
                if until is not None and until(result):
                    result.status = "running"
                    return result
                if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                    idle = True
            if reply is None:
                try:
                    shell = self.client.shell_channel.get_msg(timeout=0.01)
                    if shell["parent_header"].get("msg_id") == msg_id:
                        reply = shell
                except queue.Empty:
                    pass
        if reply is not None:
            result.status = reply["content"]["status"]
        return result

    @staticmethod
    def _collect(message: dict, result: CellResult) -> None:
        kind, content = message["msg_type"], message["content"]
        if kind in ("stream", "execute_result", "display_data", "error"):
            result.order.append(kind)
        if kind == "stream":
            if content["name"] == "stdout":
                result.stdout += content["text"]
                result.output += content["text"]
            else:
                result.stderr += content["text"]
        elif kind == "execute_result":
            result.results.append(content["data"].get("text/plain", ""))
        elif kind == "update_display_data":
            result.updates.append(content["data"])
            result.progress.append(content["data"].get("text/plain", ""))
        elif kind == "display_data":
            result.displays.append(content["data"])
            if content.get("transient", {}).get("display_id"):
                # a line updated in place while something takes long: beside the output, whenever
                # it comes (its presence depends on the machine's speed)
                result.progress.append(content["data"].get("text/plain", ""))
            else:
                result.output += content["data"].get("text/plain", "") + "\n"
        elif kind == "error":
            result.error = {"ename": content["ename"], "evalue": content["evalue"],
                            "traceback": content["traceback"]}

    def heartbeat_ok(self, timeout: float = 2.0) -> bool:
        return self.manager.is_alive() and self.client.hb_channel.is_beating()

    def shutdown(self) -> list[int]:
        """Shut the kernel down and kill anything it left behind; returns what had to be killed."""
        leftovers = descendants_of(self.pid) if self.manager.has_kernel else []
        try:
            self.client.stop_channels()
            if self.manager.has_kernel:
                self.manager.shutdown_kernel(now=False)
        except Exception:  # noqa: BLE001 - make sure it is gone below
            if self.manager.has_kernel:
                self.manager.shutdown_kernel(now=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(is_alive(p) for p in leftovers):
            time.sleep(0.1)
        return kill_all(leftovers)
