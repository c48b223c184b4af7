"""The `native_debugger` fixture: the NativeDebugger API inside a test."""
from pathlib import Path

import rustdemo

from pyo3_debug_magic.debugger import BreakpointRequest

LIB_RS = Path(__file__).parents[1] / "rustdemo" / "src" / "lib.rs"
AFTER_TERM = next(n for n, text in enumerate(LIB_RS.read_text().splitlines(), 1) if "total += term" in text)


def test_log_breakpoint_values(native_debugger):
    native_debugger.set_breakpoint(BreakpointRequest(f"src/lib.rs:{AFTER_TERM}", log=True, expressions=("term",)))
    assert rustdemo.compute([1, 2, 3]) == 42
    hits = native_debugger.take_log_hits()
    assert [dict(hit.values)["term"] for hit in hits] == ["3", "7", "11"]


def test_breakpoints_of_a_test_are_gone_after_it(native_debugger):
    assert native_debugger.breakpoints() == []
