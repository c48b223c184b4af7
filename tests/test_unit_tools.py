"""Pure checks: ptrace permission rules and gdb's attach errors turned into fixes."""
from __future__ import annotations

import pytest

from pyo3_debug_magic.errors import GdbNotFoundError, PtraceNotPermittedError
from pyo3_debug_magic.tools import check_ptrace_scope, explain_attach_failure, find_gdb


@pytest.mark.parametrize("scope, root", [(None, False), (0, False), (1, False), (2, True)])
def test_ptrace_scopes_that_allow_us(scope, root):
    check_ptrace_scope(scope, is_root=root)


@pytest.mark.parametrize("scope, root, fix", [
    (2, False, "sysctl kernel.yama.ptrace_scope=1"),
    (3, False, "reboot"),
    (3, True, "reboot"),
])
def test_ptrace_scopes_that_forbid_us_name_the_fix(scope, root, fix):
    with pytest.raises(PtraceNotPermittedError) as error:
        check_ptrace_scope(scope, is_root=root)
    assert fix in str(error.value)


def test_attach_errors_become_actionable():
    what, fix = explain_attach_failure("ptrace: Operation not permitted.", 123)
    assert "not permitted" in what and ("ptrace_scope" in fix or "SYS_PTRACE" in fix)
    what, fix = explain_attach_failure("ptrace: No such process.", 123)
    assert "does not exist" in what


def test_missing_gdb_names_the_install_command(monkeypatch):
    monkeypatch.setenv("PYO3_DEBUG_MAGIC_GDB", "/nonexistent/gdb")
    with pytest.raises(GdbNotFoundError) as error:
        find_gdb()
    assert "apt-get install gdb" in str(error.value)
