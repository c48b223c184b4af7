"""The `native_debugger` fixture: the NativeDebugger API inside a test."""
import rustdemo

from pyo3_debug_magic.debugger import BreakpointRequest


def test_log_breakpoint_values(native_debugger):
    native_debugger.set_breakpoint(BreakpointRequest("src/lib.rs:21", log=True, expressions=("term",)))
    assert rustdemo.compute([1, 2, 3]) == 42
    hits = native_debugger.take_log_hits()
    assert [dict(hit.values)["term"] for hit in hits] == ["3", "7", "11"]


def test_breakpoints_of_a_test_are_gone_after_it(native_debugger):
    assert native_debugger.breakpoints() == []
