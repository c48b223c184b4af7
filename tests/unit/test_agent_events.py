"""Pure tables: gdb's MI records in, typed events out; a stop and the agent's state in, a
decision out (``agent/events.py``). No gdb; these run in milliseconds."""
from __future__ import annotations

import pytest

from pyo3_debug_magic.agent.events import (BreakpointChanged, Decision, LibrariesChanged, Other, Running,
                                           Stopped, StopContext, decide, parse_record)

LIB = "/home/me/crate/src/lib.rs"
AT_LINE_20 = {"func": "mycrate::compute", "file": "src/lib.rs", "fullname": LIB, "line": "20"}


@pytest.mark.parametrize("record, event", [
    ({"type": "notify", "message": "stopped",
      "payload": {"reason": "breakpoint-hit", "bkptno": "3", "thread-id": "1", "frame": AT_LINE_20}},
     Stopped(1, "breakpoint-hit", None, 3, "mycrate::compute", "src/lib.rs", LIB, 20)),
    ({"type": "notify", "message": "stopped",
      "payload": {"reason": "signal-received", "signal-name": "SIGSEGV", "thread-id": "7", "frame": {}}},
     Stopped(7, "signal-received", "SIGSEGV")),
    ({"type": "notify", "message": "stopped", "payload": None}, Stopped(0, None)),  # a call's silent stop
    ({"type": "notify", "message": "breakpoint-modified", "payload": {"bkpt": {"number": "2"}}},
     BreakpointChanged({"number": "2"})),
    ({"type": "notify", "message": "library-loaded", "payload": {"id": "/x.so"}}, LibrariesChanged(True, "/x.so")),
    ({"type": "notify", "message": "library-unloaded", "payload": {}}, LibrariesChanged(False)),
    ({"type": "notify", "message": "running", "payload": {"thread-id": "all"}}, Running("all")),
    ({"type": "notify", "message": "thread-created", "payload": {}}, Other("thread-created")),
])
def test_records_become_typed_events(record, event):
    assert parse_record(record) == event


STEP_COMMAND = "-exec-next"
HERE = ("mycrate::compute", LIB, 20)


def stop(reason, thread=1, signal=None, breakpoint=None, where=HERE):
    return Stopped(thread, reason, signal, breakpoint, where[0], "src/lib.rs", where[1], where[2])


@pytest.mark.parametrize("name, event, context, decision", [
    ("no thread named", Stopped(0, None), StopContext(), Decision("ignore")),
    ("a breakpoint, stdin available", stop("breakpoint-hit", breakpoint=1), StopContext(), Decision("pause")),
    ("a breakpoint, unattended cell", stop("breakpoint-hit", breakpoint=1), StopContext(pausing_allowed=False),
     Decision("log-unattended")),
    ("a breakpoint at another crate's location runs on", stop("breakpoint-hit", breakpoint=1),
     StopContext(foreign_location=True), Decision("continue")),
    ("a step ends on a new line", stop("end-stepping-range"),
     StopContext(step_started_at=(("mycrate::compute", LIB, 19), False, STEP_COMMAND)), Decision("pause")),
    ("a step stays on its line once", stop("end-stepping-range"),
     StopContext(step_started_at=(HERE, False, STEP_COMMAND)), Decision("step-again", command=STEP_COMMAND)),
    ("a step stays on its line twice", stop("end-stepping-range"),
     StopContext(step_started_at=(HERE, True, STEP_COMMAND)), Decision("pause")),
    ("finish returns", stop("function-finished"), StopContext(), Decision("pause")),
    ("the Interrupt, nothing paused", stop("signal-received", signal="SIGINT"), StopContext(),
     Decision("interrupt", signal="SIGINT", arms_hang_check=True)),
    ("the Interrupt during a pause", stop("signal-received", thread=4, signal="SIGINT"),
     StopContext(paused_threads=1), Decision("interrupt", signal="SIGINT")),
    ("a segfault", stop("signal-received", signal="SIGSEGV"), StopContext(), Decision("crash", signal="SIGSEGV")),
    ("an abort", stop("signal-received", signal="SIGABRT"), StopContext(), Decision("crash", signal="SIGABRT")),
    ("another signal is passed on", stop("signal-received", signal="SIGUSR1"), StopContext(),
     Decision("continue", signal="SIGUSR1")),
    ("an exit or an unknown reason", stop("exited-normally"), StopContext(), Decision("continue")),
    ("the hung thread reaches its safe point", stop("end-stepping-range"), StopContext(hang_thread=1),
     Decision("hang-safe-point")),
    ("the hung thread, interrupted at its bound", stop("signal-received", signal="SIGINT"),
     StopContext(hang_thread=1), Decision("hang-safe-point")),
    ("a user's breakpoint in the hung thread wins", stop("breakpoint-hit", breakpoint=2),
     StopContext(hang_thread=1), Decision("pause", cancels_hang=True)),
    ("another thread during a hang diagnosis", stop("breakpoint-hit", thread=5, breakpoint=2),
     StopContext(hang_thread=1), Decision("pause")),
])
def test_what_a_stop_means(name, event, context, decision):
    assert decide(event, context) == decision, name


def test_where_a_stop_happened_is_what_a_step_compares():
    assert stop("end-stepping-range").where == HERE


def test_a_pending_breakpoints_module_and_the_names_it_may_have_meant():
    from pyo3_debug_magic.agent.pending import close_matches
    from pyo3_debug_magic.breakpoints.locations import module_names

    assert module_names("/site/my_pkg/_core.cpython-311-x86_64-linux-gnu.so") == {"_core", "my_pkg"}
    assert module_names("/site/mycrate/mycrate.abi3.so") == {"mycrate"}
    assert module_names("/usr/lib/x86_64-linux-gnu/libc.so.6") == set()
    functions = ["mycrate::grind", "mycrate::ground_truth", "mycrate::Counter::add", "_core::twice"]
    assert close_matches("mycrate::grnd", functions)[0] == "mycrate::grind"
    assert close_matches("my_pkg::twice", functions) == ["_core::twice"]  # the package's name, Rust's crate
    assert close_matches("mycrate::zzzz", functions) == []


def test_a_disabled_breakpoint_keeps_its_location_and_a_disabled_location_is_left_out():
    from pyo3_debug_magic.agent.breakpoints import locations_of

    one = {"number": "1", "enabled": "n", "addr": "0x10", "fullname": "/c/src/lib.rs", "line": "20", "func": "c::f"}
    assert [(loc.line, loc.enabled) for loc in locations_of(one)] == [(20, True)]
    several = {"number": "2", "enabled": "y", "addr": "<MULTIPLE>", "locations": [
        {"number": "2.1", "enabled": "y", "addr": "0x20", "fullname": "/c/src/lib.rs", "line": "30"},
        {"number": "2.2", "enabled": "n", "addr": "0x30", "fullname": "/pyo3/src/lib.rs", "line": "30"}]}
    assert [(loc.fullname, loc.enabled) for loc in locations_of(several)] == [
        ("/c/src/lib.rs", True), ("/pyo3/src/lib.rs", False)]
    assert locations_of({"number": "3", "enabled": "y", "addr": "<PENDING>"}) == ()
