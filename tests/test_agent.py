"""The agent against a real target process: attach without stopping it, and detach on every exit path."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness import gdb_processes, is_alive, tracer_of
from pyo3_debug_magic.debugger import NativeDebugger
from pyo3_debug_magic.errors import AttachError
from pyo3_debug_magic.model import BreakpointRequest
from pyo3_debug_magic.protocol import Attach
from pyo3_debug_magic.session import AgentSession

ECHO = "import sys\nprint('ready', flush=True)\nfor line in sys.stdin:\n    print(line.strip()[::-1], flush=True)\n"

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def target():
    """A Python process that answers each line with the line reversed, after saying 'ready'."""
    process = subprocess.Popen([sys.executable, "-c", ECHO], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.kill()
        process.wait()


def answers(process, text="abc") -> bool:
    process.stdin.write(text + "\n")
    process.stdin.flush()
    return process.stdout.readline().strip() == text[::-1]


def wait_until(predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_attach_keeps_the_target_running_and_detach_releases_it(target, gdb_path):
    debugger = NativeDebugger(target.pid)
    status = debugger.attach()
    try:
        assert status.attached and status.target_pid == target.pid and status.thread_count >= 1
        assert tracer_of(target.pid) != 0
        assert answers(target)  # non-stop attach: the target keeps answering
        assert debugger.status().attached
        helper = debugger._session.process.pid
    finally:
        assert debugger.detach() == "kept"
    assert wait_until(lambda: tracer_of(target.pid) == 0)
    assert answers(target, "after")
    # a second attach goes through the same helper and gdb; --stop ends them
    again = debugger.attach()
    try:
        assert again.attached and debugger._session.process.pid == helper and tracer_of(target.pid) != 0
        assert answers(target, "again")
    finally:
        assert debugger.detach(stop_helper=True) == "exited"
    assert wait_until(lambda: tracer_of(target.pid) == 0) and not gdb_processes(os.getpid())


@pytest.mark.parametrize("ending", ["kernel-socket-closed", "sigterm"])
def test_agent_detaches_when_it_is_ended_abruptly(target, gdb_path, ending):
    session = AgentSession(target.pid)
    session.start()
    session.request(Attach())
    agent = session.process
    gdbs = gdb_processes(agent.pid)
    assert gdbs and tracer_of(target.pid) in gdbs
    if ending == "sigterm":
        agent.send_signal(signal.SIGTERM)
    else:
        session._sock.shutdown(socket.SHUT_RDWR)  # as if the kernel vanished
    assert agent.wait(15) == 0
    assert wait_until(lambda: tracer_of(target.pid) == 0)
    assert not any(is_alive(pid) for pid in gdbs)
    assert is_alive(target.pid) and answers(target)
    session.process = None


def test_attach_to_a_missing_process_says_so(gdb_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    debugger = NativeDebugger(gone.pid)
    with pytest.raises(AttachError, match="does not exist"):
        debugger.attach()
    assert not debugger.attached  # a failed attach leaves no helper behind


def test_a_native_break_costs_one_request_once_attached(demo_crate, gdb_path):
    """The helper resolves and inserts in one request, whatever the location's kind (a line, a
    function, a module not yet imported, a line that moves)."""
    from harness import marker_line

    script = "import rustdemo, sys\nprint('ready', flush=True)\nsys.stdin.readline()\n"
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    debugger = NativeDebugger(target_pid=process.pid, gdb=gdb_path)
    try:
        assert process.stdout.readline().strip() == "ready"
        debugger.attach()
        sent = []
        request = debugger._session.request
        debugger._session.request = lambda r, **kw: sent.append(type(r).__name__) or request(r, **kw)
        locations = [f"src/lib.rs:{marker_line('compute-loop')}", "rustdemo::square", "notyet::f", "src/lib.rs:30"]
        for location in locations:
            sent.clear()
            created = debugger.set_breakpoint(BreakpointRequest(location))
            assert sent == ["SetBreakpoint"], (location, sent)
            assert created.pending == (location == "notyet::f"), created
        # a FILE:LINE no loaded module has: the kernel checks what it can import, then inserts
        sent.clear()
        pending = debugger.set_breakpoint(BreakpointRequest("tests/crates/mixed_project/src/lib.rs:3"))
        assert sent == ["SetBreakpoint", "SetBreakpoint"] and pending.pending, (sent, pending)
    finally:
        debugger.close()
        process.kill()
        process.wait()
