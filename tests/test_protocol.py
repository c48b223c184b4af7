"""The kernel <-> agent protocol: typed messages both ways, a versioned hello, typed errors, one
send lock, and a reader thread that survives a broken listener. Codec tables run without
processes; the handshake and the listener are tried against a real agent."""
from __future__ import annotations

import dataclasses
import queue
import socket
import subprocess
import sys
import threading

import pytest

from harness import LIB_RS, marker_line
from pyo3_debug_magic import model
from pyo3_debug_magic import protocol as p
from pyo3_debug_magic.errors import (AgentError, AttachError, GdbStuckError, NotAttachedError,
                                     ProtocolMismatchError, UsageProblem, error_from_wire)

pytestmark = pytest.mark.timeout(120)

FRAME = model.GdbFrame(0, "mycrate::compute", "src/lib.rs", "/c/src/lib.rs", 20, None, "0x1")
ROW = model.ThreadRow(1, "main", 0x7F00, 42, True, (FRAME,), (model.Variable("x", "1", True),), "#0 f")
PYTHON = model.PythonStacks((model.PythonThread(0x7F00, 42, True, (model.PythonFrame("a.py", 3, "f"),)),), True)


@pytest.mark.parametrize("value", [
    model.RawSnapshot((ROW,), PYTHON),
    model.AgentStatus(True, 42, 7, "GNU gdb 18.1", 0.3, (model.ThreadInfo("1", "python3", "running"),)),
    model.BreakpointCreated(3, False, (model.BreakpointLocation("0x1", "/c/src/lib.rs", 20, "f"),)),
    model.LogHit(2, 5, 1, "src/lib.rs:20", model.HitPlace("f", "src/lib.rs", "/c/src/lib.rs", 20),
                    (("total", "21"),), (model.HitPlace("g"),)),
    model.CrashRecord("SIGSEGV", 1, "summary", pid=42, threads=(ROW,), python=PYTHON,
                      locals=(model.Variable("p", "0x0"),)),
    p.BreakInsert(kind="log", source="/c/src/lib.rs", line=20, expressions=("a", "b"), location="src/lib.rs:20"),
    p.TakeSnapshot((1, 2), True),
    p.Configure(model.AgentSettings(gdb_timeout=3.0, hang_after=5.0)),
])
def test_model_objects_survive_the_wire(value):
    import json

    wire = json.loads(json.dumps(p.to_wire(value)))
    assert p.from_wire(type(value), wire) == value


def test_every_request_round_trips_through_its_message():
    for kind in p.REQUEST_TYPES.values():
        request = kind()
        assert p.request_from_message(p.request_message(9, request)) == request


@pytest.mark.parametrize("event", [
    model.Paused(session=0, thread=3, reason="breakpoint-hit", breakpoint=1, handed_off=True, pause_id=4,
                 frames=(FRAME,), locals=(model.Variable("x", "1"),), ident=5, lwp=6),
    model.Interrupted(ended=(1, 2), problems=("thread 3 keeps waiting",)),
    model.GdbDied(message="gdb exited", ended=(4,)),
    model.HangSeen(reason="watch", row=ROW, python=PYTHON, holds_gil=True, note=None),
    model.CrashSeen(signal="SIGABRT", thread=1, summary="s", path="/x.json"),
    model.Notice(message="hello"),
])
def test_events_are_typed_on_both_sides(event):
    assert p.event_from_message(p.event_message(event)) == event


def test_an_unknown_event_or_request_is_said_not_raised():
    assert p.event_from_message({"event": "from-the-future"}) == model.Notice(
        message="unknown event from the debugger helper: 'from-the-future'")
    with pytest.raises(KeyError):
        p.request_from_message({"op": "format_disk", "args": {}})


def test_a_line_that_is_not_json_is_counted_and_skipped():
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(b'{"event": "notice", "message": "a"}\nnot json\n[1, 2]\n{"id": 1, "ok": true}\n')
        reader = p.LineReader(ours)
        assert [m.get("event", m.get("id")) for m in reader.read_available()] == ["notice", 1]
        assert reader.bad_lines == 1
    finally:
        ours.close()
        theirs.close()


@pytest.mark.parametrize("kind, cls", [("usage", UsageProblem), ("attach", AttachError), ("agent", AgentError),
                                       ("gdb-stuck", GdbStuckError), ("protocol", ProtocolMismatchError),
                                       ("not-attached", NotAttachedError), ("from-the-future", AgentError)])
def test_errors_cross_as_their_own_class(kind, cls):
    error = error_from_wire(kind, "what", "fix")
    assert type(error) is cls
    if cls is not NotAttachedError:
        assert str(error) == "what: fix"


# ----- against a real agent ------------------------------------------------------------------
@pytest.fixture
def target():
    process = subprocess.Popen([sys.executable, "-c", "import sys\nprint('ready', flush=True)\nsys.stdin.read()"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    yield process
    process.kill()
    process.wait()


def test_a_kernel_and_an_agent_of_other_versions_refuse_with_the_fix(target, gdb_path, monkeypatch):
    """As after `pip install -U` under a running kernel: the kernel's code in memory is older
    than the agent's on disk."""
    from pyo3_debug_magic.session import AgentSession

    monkeypatch.setattr(p, "PROTOCOL_VERSION", p.PROTOCOL_VERSION - 1)
    session = AgentSession(target.pid)
    with pytest.raises(ProtocolMismatchError) as raised:
        session.start()
    assert "restart the kernel" in str(raised.value) and f"protocol {p.PROTOCOL_VERSION + 1}, this kernel {p.PROTOCOL_VERSION}" in str(raised.value)
    assert not session.alive  # no helper is left behind


def test_a_request_before_hello_is_refused(target, gdb_path):
    from pyo3_debug_magic.session import AgentSession

    session = AgentSession(target.pid)
    session._greet = lambda: None  # an old kernel that never says hello
    session.start()
    try:
        with pytest.raises(AgentError, match="did not say hello first"):
            session.request(p.Attach())
    finally:
        session.close()


def test_a_listener_that_raises_does_not_stop_the_reader(demo_crate, gdb_path, capfd):
    """One listener raises on every event; the others still get every event, requests still
    get their answers, and the traceback is printed (a bug stays visible)."""
    from pyo3_debug_magic.debugger import BreakpointRequest, NativeDebugger

    line = marker_line("square")
    process = subprocess.Popen([sys.executable, "-c", "import sys, rustdemo\nprint('ready', flush=True)\n"
                                "for l in sys.stdin:\n    print(rustdemo.square(int(l)), flush=True)"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    events: queue.Queue = queue.Queue()
    debugger = NativeDebugger(process.pid)
    def broken(event):
        raise RuntimeError("a broken listener")

    debugger.add_listener(broken)
    debugger.add_listener(events.put)
    try:
        assert process.stdout.readline().strip() == "ready"
        debugger.set_breakpoint(BreakpointRequest(f"{LIB_RS}:{line}"))
        for value in (3, 4):
            process.stdin.write(f"{value}\n")
            process.stdin.flush()
            paused = events.get(timeout=60)
            assert isinstance(paused, model.Paused) and paused.frames[0].line == line
            debugger.resume(paused.thread, "continue")
            assert process.stdout.readline().strip() == str(value * value)
        assert "RuntimeError: a broken listener" in capfd.readouterr().err
    finally:
        debugger.close()
        process.kill()
        process.wait()


def test_the_console_and_the_main_thread_share_one_send_lock(target, gdb_path):
    """Requests from many threads at once all get their own answers (one lock serialises writes)."""
    from pyo3_debug_magic.debugger import NativeDebugger

    debugger = NativeDebugger(target.pid)
    debugger.attach()
    answers, errors = [], []

    def ask():
        try:
            for _ in range(20):
                answers.append(debugger.status().target_pid)
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    try:
        threads = [threading.Thread(target=ask) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors and answers == [target.pid] * 80
    finally:
        debugger.close()


def test_settings_dataclass_matches_what_the_config_sends():
    from pyo3_debug_magic.config import DebuggerSettings

    sent = DebuggerSettings(hang_after=7.0, gdb_timeout=4.0).agent_settings()
    assert dataclasses.asdict(sent)["hang_after"] == 7.0 and sent.gdb_timeout == 4.0
