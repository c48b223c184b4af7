"""gdb's text of Rust values made readable (the helper applies it to every value it shows)."""
from __future__ import annotations

import pytest

from pyo3_debug_magic.gdb.rust_values import readable


@pytest.mark.parametrize("gdb_text, shown", [
    ("core::option::Option<i64>::Some(7)", "Some(7)"),
    ("core::option::Option<alloc::string::String>::None", "None"),
    ('core::result::Result<i64, alloc::string::String>::Err("bad digit")', 'Err("bad digit")'),
    ("core::result::Result<core::option::Option<i64>, pyo3::err::PyErr>::Ok(core::option::Option<i64>::Some(3))",
     "Ok(Some(3))"),
    ("Vec(size=2) = {core::option::Option<i64>::Some(1), core::option::Option<i64>::None}", "Vec(size=2) = {Some(1), None}"),
    ("core::option::Option<fn(i64) -> i64>::Some(0x1234)", "Some(0x1234)"),
    ("core::option::Option<i64>", "core::option::Option<i64>"),  # a type, not a variant: kept
    ("Rc(strong=1, weak=0) = {value = Vec(size=2) = {1, 2}, strong = 1, weak = 0}", "Rc(strong=1, weak=0) = Vec(size=2) = {1, 2}"),
    ('Arc(strong=2, weak=0) = {value = "text", strong = 2, weak = 0}', 'Arc(strong=2, weak=0) = "text"'),
])
def test_rust_values_read_as_a_rust_author_writes_them(gdb_text, shown):
    assert readable(gdb_text) == shown
