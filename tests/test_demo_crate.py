"""The demo crate is a real PyO3 extension with DWARF line info for src/lib.rs."""
from __future__ import annotations

import subprocess

import pytest

from harness import marker_line

MARKERS = ["compute-start", "compute-loop", "compute-result", "square", "call-python",
           "leak-reference", "over-release", "leak-result", "leak-native", "segfault", "abort",
           "stack-overflow", "illegal-instruction", "divide-by-zero", "bus-error", "spin", "worker-loop",
           "thread-sum", "busy-inner", "panic", "rust-values"]


def test_every_marker_is_present_once(demo_crate):
    lines = {name: marker_line(name) for name in MARKERS}
    assert len(set(lines.values())) == len(MARKERS)


def test_extension_has_dwarf_line_info_for_lib_rs(demo_crate, gdb_path):
    line = marker_line("compute-loop")
    out = subprocess.run(
        [gdb_path, "-nx", "-batch", "-ex", f"info line lib.rs:{line}", str(demo_crate.extension)],
        capture_output=True, text=True, timeout=60).stdout
    assert f'Line {line} of "src/lib.rs"' in out, out
    assert "starts at address" in out


def test_readelf_lists_lib_rs_in_the_line_table(demo_crate):
    out = subprocess.run(["readelf", "--debug-dump=line", str(demo_crate.extension)],
                         capture_output=True, text=True, timeout=60).stdout
    assert "lib.rs" in out


def test_demo_functions_return_the_documented_values(demo_crate):
    import rustdemo

    assert rustdemo.compute([1, 2, 3]) == 42
    assert rustdemo.call_python(lambda v: rustdemo.square(v) + 1, 4) == 17
    assert rustdemo.threaded_sum(list(range(101)), 4) == 5050
    assert rustdemo.leak_native(16) == 16
    assert len(rustdemo.leak_result(3)) == 3
    assert rustdemo.worker_without_gil(0.01) > 0
    with pytest.raises(BaseException, match="rustdemo panicked: boom"):
        rustdemo.panic_now("boom")


def test_over_release_survives_its_first_call(demo_crate):
    import sys

    import rustdemo

    victim = object()
    before = sys.getrefcount(victim)
    rustdemo.over_release(victim)
    assert sys.getrefcount(victim) == before + 1  # first call: +2 kept, -1 released
    rustdemo.over_release(victim)
    assert sys.getrefcount(victim) == before  # then -1 per call


def test_a_search_cut_short_says_so_and_refuses_no_line(demo_crate):
    """The pre-import check reads debug info within a time budget: a module it did not reach
    is counted, and a line past the one crate it did read is not refused (the unread module
    may hold another crate's src/lib.rs)."""
    from pyo3_debug_magic.breakpoints import preimport
    from pyo3_debug_magic.breakpoints.locations import parse_location

    module = str(demo_crate.extension)
    other = sorted((demo_crate.source.parent.parent / "target").glob("*/librustdemo.so"))[0]  # cargo's copy
    past = parse_location("src/lib.rs:100000")
    whole = preimport.files_in_importable_modules(past, modules=[module])
    assert [f.module for f in whole.found] == [module] and whole.unread == 0
    with pytest.raises(preimport.UsageProblem, match="no code at or after src/lib.rs:100000"):
        preimport.check_before_import(past, None, modules=[module])
    # the first module's answer is kept from above; the second one is not reached in no time
    cut = preimport.files_in_importable_modules(past, budget=-1, modules=[module, str(other)])
    assert [f.module for f in cut.found] == [module] and cut.unread == 1
    note = preimport.check_before_import(past, None, modules=[module, str(other)], budget=-1)
    assert "checked in its debug info before the import (1 more importable module not read" in note, note
