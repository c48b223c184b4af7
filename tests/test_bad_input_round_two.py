"""Bad input the fuzzing of round two found (issue: never cost the kernel, round two, item 13),
in a real kernel: each is refused before anything runs, with what to do, never a traceback
through the tool or a wait without end."""
from __future__ import annotations

import time

import pytest

from test_reliability import start_kernel

pytestmark = [pytest.mark.kernel, pytest.mark.reliability, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def kernel(demo_crate):
    kernel = start_kernel()
    yield kernel
    assert kernel.shutdown() == []


def test_a_profile_file_in_a_missing_folder_is_refused_before_the_cell_runs(kernel, tmp_path):
    result = kernel.run(f"%%native_profile -o {tmp_path}/missing/x.json\nran = 'yes'")
    assert result.stderr.startswith(f"UsageError: -o {tmp_path}/missing/x.json: the folder"), result.text
    assert "Traceback" not in result.text
    assert kernel.run("'ran' in dir()").results == ["False"]  # the cell did not run


def test_a_refcheck_cell_that_does_not_parse_is_the_cells_own_error(kernel):
    result = kernel.run("%%refcheck\nx = (1,")
    assert result.stderr.startswith("UsageError: the cell does not parse:"), result.text
    assert "leaks.py" not in result.text and "Traceback" not in result.text


@pytest.mark.parametrize("option", ["-n 2147483648", "--warmup 2147483648", "-n 100001"])
def test_refcheck_repeats_are_bounded(kernel, option):
    started = time.monotonic()
    result = kernel.run(f"%refcheck {option} rustdemo.compute([1])", timeout=30)
    assert result.stderr.startswith("UsageError: number and warmup take at most 100,000 calls"), result.text
    assert time.monotonic() - started < 10


def test_a_breakpoint_in_the_interpreters_own_functions_needs_force(kernel, gdb_path):
    result = kernel.run("%native_break PyObject_Call --log", timeout=60)
    assert result.stderr.startswith("UsageError: PyObject_Call is the interpreter's own"), result.text
    assert "--force" in result.stderr
    started = time.monotonic()
    assert kernel.run("sum(range(1000))").results == ["499500"]
    assert time.monotonic() - started < 5
    assert kernel.run("%native_break").output.strip() == "no native breakpoints"


def test_a_cell_shows_the_first_and_last_log_hits_and_files_the_rest(demo_crate, gdb_path, tmp_path):
    """--log (--bt) has no cap of its own: 20,000 hits were 63 MB below one cell (item 8)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    kernel = start_kernel(env={"PYO3_DEBUG_MAGIC_STATE": str(state)})
    try:
        created = kernel.run("%native_break rustdemo::square --log value --bt", timeout=60)
        assert created.status == "ok", created.text
        result = kernel.run("sum(rustdemo.square(i) for i in range(100))", timeout=120)
        assert result.results == ["328350"], result.text
        block = next(d["text/plain"] for d in result.displays if "native debugger, after this cell" in d["text/plain"])
        assert "100 log hits: the first 20 and the last 20 are shown; every one is in " in block, block
        shown = [line for line in block.splitlines() if line.startswith("[log breakpoint")]
        assert len(shown) == 40 and "hit 1]" in shown[0] and "hit 100]" in shown[-1], shown[:2] + shown[-2:]
        filed = next(state.glob("log-hits-*.txt")).read_text()
        assert filed.count("[log breakpoint") == 100 and "value = 57" in filed
        assert "rustdemo::square" in filed.split("hit 57]")[1].split("[log breakpoint")[0]  # its backtrace
    finally:
        assert kernel.shutdown() == []
