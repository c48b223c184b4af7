"""Bad input never costs a traceback from our code: property-based argument strings for every magic.

Each magic gets generated argument strings (locations, conditions, expressions, options, numbers,
paths, unbalanced quotes, control characters, lone surrogates, very long strings) in a real
IPython shell with gdb attached to the test process. Every one must give a result or a one-line
UsageError; ``%refcheck`` may also raise the user's own error from the user's expression. No
case may take 30 s or more.
``PYO3_DEBUG_MAGIC_FUZZ_EXAMPLES`` sets the count per magic (default 2,000; the full run is 10,000: see the README).
"""
from __future__ import annotations

import os
import time
import traceback

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

pytestmark = [pytest.mark.gdb, pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(1200)]

EXAMPLES = int(os.environ.get("PYO3_DEBUG_MAGIC_FUZZ_EXAMPLES", "2000"))
MAX_WAIT = 30.0  # s: a case that takes longer is a wait the user cannot end
PACKAGE = os.path.dirname(__import__("pyo3_debug_magic").__file__)

NASTY = ['"', "'", "\\", "\n", "\r", "\0", "\x1b", "\ud800", "\udfff", "\u00b2", "\u0663", "$", "`",
         ";", "|", "&", "(", ")", "{", "}", "<", ">", ":", "::", "--", "-", "=", " ", "\t", "*", "#"]
OPTIONS = ["--if", "--ignore", "--temporary", "--log", "--bt", "--crate", "--force", "--thread", "--all",
           "--full", "--engine", "--locals", "--after", "--off", "--list", "--clear", "--exe", "-n",
           "--number", "--warmup", "--quiet", "--allow-raise", "--tracemalloc", "--no-native-heap", "-h"]
WORDS = ["src/lib.rs:20", "src/lib.rs:0", "src/lib.rs:", "lib.rs:9999", "rustdemo::compute", "rustdemo::",
         "all", "gdb", "py-spy", "1", "0", "-1", "2", "1e400", "nan", "inf", "/etc/passwd", "/nonexistent",
         "$_shell(\"id\")", "$pc", "value > 1", "rustdemo.square(3)", "len([1, 2])", "f(", "x" * 300,
         "9" * 5000, "/" + "a" * 300, "python print(1)", "-gdb-exit"]

pieces = st.one_of(st.sampled_from(OPTIONS), st.sampled_from(WORDS), st.sampled_from(NASTY),
                   st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12),
                   st.integers(min_value=-10**30, max_value=10**30).map(str))
argument_strings = st.one_of(
    st.lists(pieces, max_size=8).map(" ".join),
    st.lists(pieces, max_size=8).map("".join),
    st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40),
)

MAGICS = ["native_break", "native_delete", "native_disable", "native_enable", "native_bt", "native_crash",
          "native_watch", "native_core", "native_attach", "native_detach", "refcheck"]


def ours(error: BaseException) -> bool:
    """Did ``error`` come out of this package's own code (its innermost frame is ours)?"""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(PACKAGE)


@pytest.fixture(scope="module")
def fuzz_shell(demo_crate, gdb_path, tmp_path_factory):
    from IPython.testing.globalipapp import get_ipython

    from pyo3_debug_magic.debugger import get_debugger

    ip = get_ipython()
    before = os.environ.get("PYO3_DEBUG_MAGIC_STATE")  # a pytest-xdist worker's own, kept for later tests
    os.environ["PYO3_DEBUG_MAGIC_STATE"] = str(tmp_path_factory.mktemp("state"))
    ip.run_line_magic("load_ext", "pyo3_debug_magic")
    ip.run_cell("import rustdemo")
    ip.run_line_magic("native_attach", "")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "pyo3_debug_magic")
        get_debugger().close()
        if before is None:
            del os.environ["PYO3_DEBUG_MAGIC_STATE"]
        else:
            os.environ["PYO3_DEBUG_MAGIC_STATE"] = before


@pytest.mark.parametrize("magic", MAGICS)
def test_every_argument_string_gives_a_result_or_a_usage_error(fuzz_shell, magic, reliability, capsys):
    from pyo3_debug_magic.debugger import get_debugger

    seen = {"cases": 0, "slowest": 0.0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(line=argument_strings)
    def check(line):
        if magic in ("native_attach", "native_detach") and not line.strip():
            return  # valid: attaching and detaching are tested for real elsewhere
        seen["cases"] += 1
        started = time.monotonic()
        try:
            fuzz_shell.run_line_magic(magic, line)
        except UsageError as error:
            message = str(error)
            assert "Traceback" not in message
            message.encode("utf-8")  # never a lone surrogate in what the kernel must send
        except Exception as error:  # noqa: BLE001 - judged below
            if magic == "refcheck" and not ours(error):
                return  # the user's own expression raised, as it would in a cell
            pytest.fail(f"%{magic} {line!r} raised from our code:\n"
                        + "".join(traceback.format_exception(error)))
        finally:
            capsys.readouterr()  # keep the captured output small
            took = time.monotonic() - started
            seen["slowest"] = max(seen["slowest"], took)
        assert took < MAX_WAIT, f"%{magic} {line!r} took {took:.0f} s"
        if not get_debugger().attached:
            fuzz_shell.run_line_magic("native_attach", "")  # a valid %native_detach ran

    check()
    reliability.fuzzed(magic, seen["cases"])
    reliability.count(f"slowest %{magic} fuzz case (ms)", round(seen["slowest"] * 1000))
    # the debugger still works after all of it
    assert get_debugger().attached and get_debugger().breakpoints() is not None
