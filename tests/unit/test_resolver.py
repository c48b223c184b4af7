"""The one breakpoint resolver, over a faked view of the loaded modules' debug info."""
from __future__ import annotations

import pytest

from pyo3_debug_magic.breakpoints.resolver import Resolver
from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.model import BreakpointCreated, FunctionMatch, SourceRecord


class FakeDebugInfo:
    """Sources and functions as gdb would list them; every question is counted."""

    def __init__(self, sources=(), functions=None, matches=()):
        self._sources = tuple(sources)
        self._functions = functions or {}
        self._matches = tuple(matches)
        self.asked: list[str] = []

    def sources(self):
        self.asked.append("sources")
        return self._sources

    def functions(self, crate="", name=""):
        self.asked.append(f"functions {crate or name}")
        return tuple(self._functions.get(crate or name, ()))

    def find_function(self, text, crate=""):
        self.asked.append(f"find {text}")
        return self._matches


@pytest.fixture
def crate(tmp_path):
    lib = tmp_path / "mycrate" / "src" / "lib.rs"
    lib.parent.mkdir(parents=True)
    lib.write_text("use pyo3::prelude::*;\n\n#[pyfunction]\nfn square(x: i64) -> i64 {\n    x * x\n}\n")
    so = tmp_path / "mycrate.so"
    so.write_bytes(b"")
    return lib, so


def test_a_file_line_in_a_loaded_crate_resolves_to_its_absolute_source(crate, tmp_path):
    lib, so = crate
    info = FakeDebugInfo([SourceRecord(str(so), str(lib), "src/lib.rs")])
    placement = Resolver(info, cwd=tmp_path, maps="").place("src/lib.rs:5", force=True)
    assert (placement.resolved.source, placement.line, placement.resolved.pending) == (str(lib), 5, False)
    assert info.asked == ["sources"]


def test_a_line_on_the_attribute_moves_to_the_first_statement_and_says_so(crate, tmp_path):
    lib, so = crate
    info = FakeDebugInfo([SourceRecord(str(so), str(lib), "src/lib.rs")])
    placement = Resolver(info, cwd=tmp_path, maps="").place("src/lib.rs:3", force=True)
    assert placement.line == 5
    assert placement.moved_note.startswith("line 3 is an attribute of `square`")


def test_a_line_past_the_end_of_a_loaded_file_is_refused_before_gdb_takes_a_number(crate, tmp_path):
    lib, so = crate
    info = FakeDebugInfo([SourceRecord(str(so), str(lib), "src/lib.rs")])
    with pytest.raises(UsageProblem):
        Resolver(info, cwd=tmp_path, maps="").place("src/lib.rs:99", force=True)


def test_one_function_match_is_given_to_gdb_by_its_name():
    info = FakeDebugInfo(matches=[FunctionMatch("mycrate::square", "mycrate::square", "/x/src/lib.rs", 4)])
    placement = Resolver(info, maps="").place("mycrate::square", force=True)
    assert (placement.resolved.function, placement.line, placement.resolved.pending) == ("mycrate::square", None, False)


def test_a_name_of_several_functions_asks_for_more_of_the_path():
    info = FakeDebugInfo(matches=[FunctionMatch("a::Counter::add", "a::Counter::add", "/x/src/lib.rs", 4),
                                  FunctionMatch("a::Meter::add", "a::Meter::add", "/x/src/lib.rs", 9)])
    with pytest.raises(UsageProblem, match="names several functions"):
        Resolver(info, maps="").place("add", force=True)


def test_a_function_its_loaded_crate_does_not_have_is_refused_with_what_it_has():
    info = FakeDebugInfo(functions={"mycrate": ["mycrate::square", "mycrate::cube"]})
    with pytest.raises(UsageProblem) as raised:
        Resolver(info, maps="").place("mycrate::sqaure", force=True)
    assert "mycrate::square" in str(raised.value)


def test_a_pending_breakpoint_in_a_loaded_crate_is_an_error_and_the_crate_is_asked_once():
    # the crate lists the function, yet gdb found no code for it (inlined everywhere)
    info = FakeDebugInfo(functions={"mycrate": ["mycrate::inlined"]})
    resolver = Resolver(info, maps="")
    placement = resolver.place("mycrate::inlined", force=True)
    with pytest.raises(UsageProblem):
        resolver.after_insert(placement, BreakpointCreated(7, pending=True), None)
    assert info.asked.count("functions mycrate") == 1


def test_a_pending_breakpoint_of_a_module_not_yet_imported_keeps_its_note():
    info = FakeDebugInfo()
    resolver = Resolver(info, maps="")
    placement = resolver.place("notloaded::f", force=True)
    note = resolver.after_insert(placement, BreakpointCreated(3, pending=True), None)
    assert note == placement.resolved.note and note
    assert resolver.after_insert(placement, BreakpointCreated(3, pending=False), None) == ""
