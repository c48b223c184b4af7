"""As a normal user: attach, pause with the GIL hand-off, resume and crash capture, without root.

The suite runs as root in CI; this test creates an unprivileged user and runs the real debugger
as that user, on Debian's python3 venv (which any user can read), against a target process of
that same user.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness import DEBIAN_PYTHON, LIB_RS, ROOT, marker_line

# serial: its module fixture gives the checkout's folders the search bit and takes it back at the
# end, which would cut off a test of this file running on the other worker
pytestmark = [pytest.mark.gdb, pytest.mark.reliability, pytest.mark.serial, pytest.mark.timeout(180)]

USER = "pdm-tester"

SCRIPT = r"""
import json, queue, subprocess, sys
sys.path.insert(0, sys.argv[1])
from pyo3_debug_magic.debugger import BreakpointRequest, NativeDebugger

lib_rs, line = sys.argv[2], int(sys.argv[3])
target = subprocess.Popen([sys.executable, "-c",
    "import sys, rustdemo\nprint('ready', flush=True)\nfor l in sys.stdin:\n"
    "    print(rustdemo.square(int(l)) if l.strip() != 'crash' else rustdemo.segfault(), flush=True)"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
assert target.stdout.readline().strip() == "ready"
events = queue.Queue()
debugger = NativeDebugger(target.pid)
debugger.add_listener(events.put)
result = {}
try:
    result["attach"] = debugger.attach().attached
    debugger.set_breakpoint(BreakpointRequest(f"{lib_rs}:{line}"))
    target.stdin.write("12\n"); target.stdin.flush()
    paused = events.get(timeout=60)
    result["paused"] = [paused.kind, paused.handed_off]
    debugger.resume(paused.thread, "continue")
    result["value"] = target.stdout.readline().strip()
    debugger.delete_breakpoints(None)
    target.stdin.write("crash\n"); target.stdin.flush()
    crash = events.get(timeout=60)
    result["crash"] = [crash.kind, crash.signal, crash.path]
finally:
    debugger.close()
    target.kill()
print(json.dumps(result))
"""


KERNEL_SCRIPT = r"""
import json, queue, sys, time
from jupyter_client.manager import KernelManager

lib_rs, line = sys.argv[1], int(sys.argv[2])
manager = KernelManager(kernel_name="python3")  # ipykernel's own spec: this very Python
manager.start_kernel()
client = manager.client()
client.start_channels()
client.wait_for_ready(timeout=60)


def run(code, answer=None, timeout=90):
    # (status, texts shown) of one cell; answer replies to every input prompt
    msg_id = client.execute(code, allow_stdin=answer is not None)
    texts, status, deadline = [], None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answer is not None:
            try:
                client.get_stdin_msg(timeout=0.02)
                client.input(answer)
            except queue.Empty:
                pass
        try:
            message = client.get_iopub_msg(timeout=0.05)
        except queue.Empty:
            if not manager.is_alive():
                return "died", texts
            continue
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            texts.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            texts.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            status = content["ename"]
        elif kind == "status" and content["execution_state"] == "idle":
            return status or "ok", texts
    return "timeout", texts


result = {}
try:
    result["load"] = run("%load_ext pyo3_debug_magic\nimport rustdemo")
    result["break"] = run(f"%native_break {lib_rs}:{line}")
    result["pause"] = run("rustdemo.square(12)", answer="c")
    result["crash"] = run("%native_delete all\nrustdemo.segfault()", timeout=60)
    manager.restart_kernel(now=True)
    client.wait_for_ready(timeout=60)
    result["after"] = run("%load_ext pyo3_debug_magic")
finally:
    client.stop_channels()
    manager.shutdown_kernel(now=True)
print(json.dumps(result))
"""


def as_user(user: str, home: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    """Run Debian's venv Python as ``user`` (as ourselves when not root) in ``home``."""
    command = [str(DEBIAN_PYTHON), *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", user, "--"] + command
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYO3_DEBUG_MAGIC_STATE": str(home / "state")}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=home)


@pytest.fixture
def user_home(normal_user):
    """A home of the normal user's own, with its 0700 state folder."""
    account = pwd.getpwnam(normal_user)
    home = Path(tempfile.mkdtemp(prefix="pdm-user-", dir="/tmp"))
    (home / "state").mkdir(mode=0o700)
    for path in (home, home / "state"):
        os.chown(path, account.pw_uid, account.pw_gid)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.kernel
def test_pause_and_crash_in_a_kernel_of_a_normal_user(demo_crate, normal_user, user_home):
    assert DEBIAN_PYTHON.exists(), "run `bash scripts/setup.sh`: it builds .venv-debian"
    script = user_home / "kernel_check.py"
    script.write_text(KERNEL_SCRIPT)
    os.chown(script, pwd.getpwnam(normal_user).pw_uid, -1)
    run = as_user(normal_user, user_home, str(script), str(LIB_RS), str(marker_line("square")))
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["load"][0] == "ok", result
    assert result["break"][0] == "ok" and "native breakpoint 1 at" in "".join(result["break"][1]), result
    status, shown = result["pause"]
    assert status == "ok" and "144" in shown, result  # paused, handed the GIL over, continued
    assert any("native breakpoint 1 hit" in text for text in shown), result
    assert result["crash"][0] == "died", result
    announced = "".join(result["after"][1])
    assert "The previous kernel crashed: SIGSEGV" in announced, result
    reports = list((user_home / "state").rglob("crash-*.json"))
    assert reports and all(r.stat().st_uid == pwd.getpwnam(normal_user).pw_uid for r in reports), reports


@pytest.fixture(scope="module")
def traversable_checkout():
    """The other user must reach the checkout's venv: folders above it that it may not enter
    (a checkout in a 0700 temporary folder) get the search bit for the test, then their mode back."""
    changed = []
    for folder in [ROOT, *ROOT.parents]:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)
            changed.append((folder, mode))
    try:
        yield
    finally:
        for folder, mode in changed:
            folder.chmod(mode)


@pytest.fixture(scope="module")
def normal_user(traversable_checkout):
    if os.geteuid() != 0:
        return pwd.getpwuid(os.getuid()).pw_name  # already not root: run as ourselves
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                       check=True)
    return USER


def test_attach_pause_resume_and_crash_capture_as_a_normal_user(demo_crate, normal_user):
    assert DEBIAN_PYTHON.exists(), "run `bash scripts/setup.sh`: it builds .venv-debian"
    account = pwd.getpwnam(normal_user)
    home = Path(tempfile.mkdtemp(prefix="pdm-user-", dir="/tmp"))
    try:
        (home / "check.py").write_text(SCRIPT)
        state = home / "state"
        state.mkdir(mode=0o700)
        for path in (home, state, home / "check.py"):
            os.chown(path, account.pw_uid, account.pw_gid)
        command = [str(DEBIAN_PYTHON), str(home / "check.py"), str(ROOT), str(LIB_RS), str(marker_line("square"))]
        if os.geteuid() == 0:
            command = ["runuser", "-u", normal_user, "--"] + command
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYO3_DEBUG_MAGIC_STATE": str(state)}
        run = subprocess.run(command, capture_output=True, text=True, timeout=150, env=env, cwd=home)
        assert run.returncode == 0, run.stdout + run.stderr
        result = json.loads(run.stdout.strip().splitlines()[-1])
        assert result["attach"] is True
        assert result["paused"] == ["paused", True], result  # the GIL hand-off, as a normal user
        assert result["value"] == "144"
        assert result["crash"][:2] == ["crash", "SIGSEGV"], result
        report = Path(result["crash"][2])
        assert report.stat().st_uid == account.pw_uid and report.stat().st_mode & 0o777 == 0o600
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_another_users_process_is_refused_in_one_line(demo_crate, normal_user):
    victim = subprocess.Popen(["sleep", "60"])  # ours; as a normal user, pid 1 is another user's
    try:
        script = ("import sys; sys.path.insert(0, sys.argv[1])\n"
                  "from pyo3_debug_magic.debugger import NativeDebugger\n"
                  "from pyo3_debug_magic.errors import DebugMagicError\n"
                  "try:\n    NativeDebugger(int(sys.argv[2])).attach()\n"
                  "except DebugMagicError as error:\n    print('REFUSED', error)\n")
        home = Path(tempfile.mkdtemp(prefix="pdm-user-", dir="/tmp"))
        os.chown(home, pwd.getpwnam(normal_user).pw_uid, -1)
        command = [str(DEBIAN_PYTHON), "-c", script, str(ROOT), str(victim.pid if os.geteuid() == 0 else 1)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", normal_user, "--"] + command
        run = subprocess.run(command, capture_output=True, text=True, timeout=60,
                             env={"PATH": os.environ["PATH"], "HOME": str(home),
                                  "PYO3_DEBUG_MAGIC_STATE": str(home / "state")}, cwd=home)
        shutil.rmtree(home, ignore_errors=True)
        assert run.stdout.startswith("REFUSED"), run.stdout + run.stderr
        assert "not permitted" in run.stdout and run.stdout.count("\n") == 1, run.stdout
    finally:
        victim.kill()
        victim.wait()
