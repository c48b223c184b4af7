"""Loading the extension in an in-process IPython shell; gdb missing; help text."""
from __future__ import annotations

import re

import pytest
from IPython.core.error import UsageError

from harness import agent_processes

pytestmark = pytest.mark.timeout(60)

MAGICS = ["native_attach", "native_detach", "native_break", "native_delete", "native_disable", "native_enable",
          "native_bt", "native_crash", "native_watch", "native_core", "refcheck", "native_profile"]


def test_load_registers_the_magics_and_unload_removes_them(shell):
    shell.run_line_magic("load_ext", "pyo3_debug_magic")
    for name in MAGICS:
        assert shell.find_line_magic(name) is not None
    shell.run_line_magic("unload_ext", "pyo3_debug_magic")
    for name in MAGICS:
        assert shell.find_line_magic(name) is None
    shell.run_line_magic("load_ext", "pyo3_debug_magic")
    shell.run_line_magic("reload_ext", "pyo3_debug_magic")
    assert shell.find_line_magic("native_attach") is not None


def test_unload_detaches_and_stops_the_agent(shell, gdb_path):
    import os

    shell.run_line_magic("load_ext", "pyo3_debug_magic")
    shell.run_line_magic("native_attach", "")
    assert agent_processes(os.getpid())
    shell.run_line_magic("unload_ext", "pyo3_debug_magic")
    assert not agent_processes(os.getpid())


def test_without_gdb_the_extension_loads_and_the_magic_names_the_fix(shell, monkeypatch):
    monkeypatch.setenv("PYO3_DEBUG_MAGIC_GDB", "/nonexistent/gdb")
    shell.run_line_magic("load_ext", "pyo3_debug_magic")
    with pytest.raises(UsageError) as error:
        shell.run_line_magic("native_attach", "")
    message = str(error.value)
    assert "gdb not found" in message and "apt-get install gdb" in message
    assert "\n" not in message


def test_detach_when_not_attached_is_a_one_line_usage_error(shell):
    shell.run_line_magic("load_ext", "pyo3_debug_magic")
    with pytest.raises(UsageError, match="not attached.*%native_attach"):
        shell.run_line_magic("native_detach", "")


@pytest.mark.parametrize("name", MAGICS)
def test_every_magic_has_help_with_an_example(shell, name):
    shell.run_line_magic("load_ext", "pyo3_debug_magic")
    doc = shell.find_line_magic(name).__doc__
    assert doc and "Example" in doc and f"%{name}" in doc
    assert re.match(rf"%{name}\b", doc), doc[:80]  # the usage first: no reStructuredText `::` marker
