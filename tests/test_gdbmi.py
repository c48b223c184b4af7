"""The MI driver: quoting (pure), and token-matched commands against a real gdb."""
from __future__ import annotations

import pytest

from pyo3_debug_magic.gdb.mi import GdbCommandError, GdbMI, mi_quote


@pytest.mark.parametrize("raw, quoted", [
    ("src/lib.rs:42", '"src/lib.rs:42"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ('"; -gdb-exit', '"\\"; -gdb-exit"'),
])
def test_mi_quote(raw, quoted):
    assert mi_quote(raw) == quoted


@pytest.mark.parametrize("raw", ["a\nb", "a\rb", "a\0b", "x\n-gdb-exit"])
def test_mi_quote_refuses_line_breaks(raw):
    with pytest.raises(ValueError, match="control characters"):
        mi_quote(raw)


@pytest.mark.timeout(60)
def test_commands_get_their_own_results(gdb_path):
    gdb = GdbMI(gdb_path)
    try:
        first = gdb.command("-gdb-version", timeout=10)
        assert "GNU gdb" in first.console_text
        second = gdb.command('-data-evaluate-expression "6*7"', timeout=10)
        assert second.payload["value"] == "42"
        with pytest.raises(GdbCommandError, match="No symbol"):
            gdb.command('-data-evaluate-expression "no_such_symbol_here"', timeout=10)
        quoted = gdb.console_command('echo "quoted"\\n', timeout=10)
        assert '"quoted"' in quoted.console_text
    finally:
        gdb.close()
        gdb.close()  # safe twice
    assert not gdb.alive


@pytest.mark.timeout(60)
def test_a_long_pdm_line_split_over_records_is_reassembled(gdb_path, tmp_path):
    """200 KB of JSON written in 4 KB pieces arrives as several console records, read as one."""
    writer = tmp_path / "writer.py"
    writer.write_text("import json\n"
                      "text = '@@PDM ' + json.dumps({'kind': 'big', 'data': 'x' * 200000}) + '\\n'\n"
                      "for start in range(0, len(text), 4096):\n"
                      "    gdb.write(text[start:start + 4096])\n")
    gdb = GdbMI(gdb_path)
    try:
        gdb.console_command(f"source {writer}", timeout=20)
        message = gdb.take_message("big")
        assert message is not None and len(message["data"]) == 200000
    finally:
        gdb.close()
