"""Pure checks: ptrace permission rules and gdb's attach errors turned into fixes."""
from __future__ import annotations

import pytest

from pyo3_debug_magic import tools
from pyo3_debug_magic.errors import GdbNotFoundError, PtraceNotPermittedError, PySpyNotFoundError
from pyo3_debug_magic.tools import check_ptrace_scope, explain_attach_failure, find_gdb, find_py_spy


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


@pytest.mark.parametrize("text", ["src/lib.rs:1\n-gdb-exit", 'src/lib.rs:1"', "a;b", "$(x)", "lib.rs:0",
                                  "lib.rs", "rust::path::with space", "`id`"])
def test_hostile_or_malformed_locations_are_refused(text):
    from pyo3_debug_magic.errors import UsageProblem
    from pyo3_debug_magic.breakpoints.locations import parse_location

    with pytest.raises(UsageProblem):
        parse_location(text)


@pytest.mark.parametrize("text, path, line, function", [
    ("src/lib.rs:42", "src/lib.rs", 42, None), ("lib.rs:7", "lib.rs", 7, None),
    ("rustdemo::compute", None, None, "rustdemo::compute"), ("compute", None, None, "compute"),
])
def test_locations_parse(text, path, line, function):
    from pyo3_debug_magic.breakpoints.locations import parse_location

    parsed = parse_location(text)
    assert (parsed.path, parsed.line, parsed.function) == (path, line, function)


def test_missing_py_spy_names_the_install_command(monkeypatch):
    monkeypatch.setenv("PYO3_DEBUG_MAGIC_PYSPY", "/nonexistent/py-spy")
    with pytest.raises(PySpyNotFoundError) as error:
        find_py_spy()
    assert "pip install py-spy" in str(error.value) and len(error.value.message.splitlines()) == 1


@pytest.mark.parametrize("scope, fix", [
    (0, "--cap-add=SYS_PTRACE"),       # no Yama restriction: a container without CAP_SYS_PTRACE
    (None, "--cap-add=SYS_PTRACE"),    # no Yama at all
    (1, "sysctl kernel.yama.ptrace_scope=1"),
    (2, "sysctl kernel.yama.ptrace_scope=1"),
    (3, "sysctl kernel.yama.ptrace_scope=1"),
])
def test_a_refused_attach_names_the_fix_for_its_cause(monkeypatch, scope, fix):
    monkeypatch.setattr(tools, "read_ptrace_scope", lambda: scope)
    what, how = explain_attach_failure("ptrace: Operation not permitted.", 123)
    assert "not permitted" in what and fix in how and "\n" not in what + how

