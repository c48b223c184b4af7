"""Settings in one place: ``%config NativeDebugger.x = ...``, ``ipython_config.py``, environment
variables as defaults, values checked, and timeouts that add up (no inner wait outlasts the
outer one)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from traitlets import TraitError

from pyo3_debug_magic.gdb.session import GdbSession, StartedGdb
from pyo3_debug_magic.gdb.mi import GdbTimeoutError
from pyo3_debug_magic.config import DebuggerSettings

pytestmark = pytest.mark.timeout(120)


def test_environment_variables_are_the_defaults(monkeypatch):
    monkeypatch.setenv("PYO3_DEBUG_MAGIC_HANG_AFTER", "7.5")
    monkeypatch.setenv("PYO3_DEBUG_MAGIC_GDB_TIMEOUT", "4")
    settings = DebuggerSettings()
    assert settings.hang_after == 7.5 and settings.gdb_timeout == 4.0
    assert DebuggerSettings(hang_after=3).hang_after == 3.0  # a setting beats the variable
    monkeypatch.setenv("PYO3_DEBUG_MAGIC_SAFE_POINT_BOUND", "not a number")
    assert DebuggerSettings().safe_point_bound == 1.0


@pytest.mark.parametrize("name", ["hang_after", "safe_point_bound", "gdb_timeout", "request_timeout"])
def test_seconds_must_be_positive(name):
    with pytest.raises(TraitError, match="positive number of seconds"):
        DebuggerSettings(**{name: 0})


def test_the_kernel_never_waits_less_than_the_agent_may_take():
    assert DebuggerSettings(gdb_timeout=10, request_timeout=25).request_wait == 25
    assert DebuggerSettings(gdb_timeout=30, request_timeout=5).request_wait == 35


def test_an_inner_wait_is_cut_to_what_is_left_of_the_outer_one_and_says_what_it_waited_for():
    session = GdbSession(StartedGdb(gdb=None, version="", printers="loaded"), timeout=10)
    assert session.bound(None, "x") == 10
    session.deadline = time.monotonic() + 2
    assert 1.5 < session.bound(None, "x") <= 2 and session.bound(0.5, "x") == 0.5
    session.deadline = time.monotonic() - 0.1
    with pytest.raises(GdbTimeoutError, match="no time left for -stack-list-frames within the kernel's wait"):
        session.bound(None, "-stack-list-frames")


def test_percent_config_reaches_the_running_agent(shell, gdb_path):
    from pyo3_debug_magic import protocol
    from pyo3_debug_magic.debugger import get_debugger

    from traitlets.config import Config

    shell.run_line_magic("load_ext", "pyo3_debug_magic")
    debugger = get_debugger()
    try:
        shell.run_line_magic("config", "NativeDebugger.hang_after = 5")
        assert debugger.hang_after == 5.0
        shell.run_line_magic("native_attach", "")
        assert debugger._session.request(protocol.Status()).settings.hang_after == 5.0
        shell.run_line_magic("config", "NativeDebugger.safe_point_bound = 0.25")  # while attached
        assert debugger._session.request(protocol.Status()).settings.safe_point_bound == 0.25
    finally:  # the shell and the debugger outlive this test: leave the defaults
        debugger.config = Config()
        debugger.hang_after, debugger.safe_point_bound = 2.0, 1.0


def test_ipython_config_sets_defaults(tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "ipython_config.py").write_text("c.NativeDebugger.hang_after = 9\n"
                                               "c.NativeDebugger.request_timeout = 40\n")
    code = ("ip = get_ipython(); ip.run_line_magic('load_ext', 'pyo3_debug_magic')\n"
            "from pyo3_debug_magic.debugger import get_debugger\n"
            "d = get_debugger(); print('settings', d.hang_after, d.request_timeout)\n"
            "ip.run_line_magic('config', 'NativeDebugger')\n")
    run = subprocess.run([sys.executable, "-m", "IPython", f"--profile-dir={profile}", "--no-banner",
                          "--colors=NoColor", "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYO3_DEBUG_MAGIC_HANG_AFTER": "3"})
    assert "settings 9.0 40.0" in run.stdout, run.stdout + run.stderr
    assert "hang_after" in run.stdout and "PYO3_DEBUG_MAGIC_HANG_AFTER" in run.stdout  # %config lists its help
