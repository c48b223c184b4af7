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

pytestmark = [pytest.mark.gdb, pytest.mark.reliability, pytest.mark.timeout(180)]

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
    result["paused"] = [paused["event"], paused.get("handed_off")]
    debugger.resume(paused["thread"], "continue")
    result["value"] = target.stdout.readline().strip()
    debugger.delete_breakpoints(None)
    target.stdin.write("crash\n"); target.stdin.flush()
    crash = events.get(timeout=60)
    result["crash"] = [crash["event"], crash.get("signal"), crash.get("path")]
finally:
    debugger.close()
    target.kill()
print(json.dumps(result))
"""


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
