"""%refcheck in an in-process IPython shell and in a real Jupyter kernel; the pytest plugin."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from IPython.core.error import UsageError

from harness import KernelHarness

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def loaded(shell, demo_crate):
    shell.run_line_magic("load_ext", "pyo3_debug_magic")
    shell.run_cell("import rustdemo")
    return shell


def test_line_magic_returns_the_report(loaded):
    loaded.user_ns["data"] = [object(), 10**9]
    report = loaded.run_line_magic("refcheck", "--quiet rustdemo.leak_reference(data)")
    assert not report.ok and [row.name for row in report.leaks] == ["data"]
    assert "LEAK +1/call" in report.table and report.verdict.startswith("`data` gains 1")


def test_options_reach_the_engine(loaded):
    report = loaded.run_line_magic("refcheck", "--quiet -n 4 --warmup 1 --no-native-heap rustdemo.compute([7, 8])")
    assert report.measured_calls == 4 and report.warmup == 1
    assert [c.name for c in report.counters] == ["Python allocations"]


def test_cell_magic_repeats_statements_and_tracks_variables_read(loaded, capsys):
    loaded.user_ns["values"] = [10**7, 10**8]
    loaded.run_cell("%%refcheck -n 5\nout = rustdemo.compute(values)\n")
    shown = capsys.readouterr().out
    assert "values" in shown and "5 measured calls" in shown and "no leaks" in shown


@pytest.mark.parametrize("line, message", [
    ("-n 2 rustdemo.compute([1])", "at least 3"),
    ("1 + 2", "is not a call"),
    ("", "needs a call"),
])
def test_bad_input_is_a_one_line_usage_error(loaded, line, message):
    with pytest.raises(UsageError, match=message):
        loaded.run_line_magic("refcheck", line)


def test_refcheck_help_has_an_example(loaded):
    doc = loaded.find_line_magic("refcheck").__doc__
    assert "Example" in doc and "%refcheck" in doc and "%%refcheck" in doc


@pytest.mark.kernel
def test_in_a_kernel_the_report_is_an_html_table_and_the_over_release_is_survived(demo_crate):
    kernel = KernelHarness()
    try:
        assert kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo").status == "ok"
        leak = kernel.run("data = [object()]\n%refcheck rustdemo.leak_reference(data)")
        assert leak.status == "ok", leak.text
        # the cell's last line: shown once, as Out[n]
        assert not leak.displays and len(leak.results) == 1 and "LEAK +1/call" in leak.results[0], leak.text
        # not the last line: shown where it ran, once, as an HTML table
        middle = kernel.run("%refcheck rustdemo.leak_reference(data)\n'after'")
        bundles = [d for d in middle.displays if "text/html" in d]
        assert len(bundles) == 1 and middle.results == ["'after'"], middle.text
        assert "<table>" in bundles[0]["text/html"] and "LEAK +1/call" in bundles[0]["text/html"]
        assert "LEAK +1/call" in bundles[0]["text/plain"]
        over = kernel.run("victim = {'k': [1, 2]}\n%refcheck -n 200 rustdemo.over_release(victim)")
        assert over.status == "ok" and "OVER-RELEASE -1/call" in over.text, over.text
        assert "kept intact" in over.text
        intact = kernel.run("import gc; gc.collect(); victim")
        assert intact.results == ["{'k': [1, 2]}"] and kernel.heartbeat_ok()
        assigned = kernel.run("r = %refcheck rustdemo.leak_result(3)\nr.ok, r.result.verdict_text")
        assert assigned.results == ["(False, 'LEAK +1/call')"], assigned.text
        assert len(assigned.displays) == 1  # assigned: the report is still shown
        silenced = kernel.run("r = %refcheck --quiet rustdemo.compute([1])\nr.ok")
        assert silenced.results == ["True"] and not silenced.displays, silenced.text
    finally:
        kernel.shutdown()


def test_an_error_in_the_users_own_code_shows_the_users_frames_only(demo_crate):
    """As %timeit does: the user's NameError in what a magic ran, without the package's frames."""
    import re

    kernel = KernelHarness()
    try:
        assert kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo").status == "ok"
        for cell, error, line in [
                ("%refcheck rustdemo.leak_reference(o)", ("NameError", "name 'o' is not defined"),
                 "rustdemo.leak_reference(o)"),
                ("%native_profile rustdemo.grnd(10)", ("AttributeError", "module 'rustdemo' has no attribute 'grnd'"),
                 "rustdemo.grnd(10)")]:
            failed = kernel.run(cell, timeout=60)
            assert failed.status == "error" and (failed.error["ename"], failed.error["evalue"]) == error, failed.text
            shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(failed.error["traceback"]))
            assert "pyo3_debug_magic" not in shown and line in shown.split("skipping hidden")[-1], shown
            assert "samples shown" not in failed.output  # nothing was sampled before it raised
    finally:
        kernel.shutdown()


PLUGIN_TESTS = textwrap.dedent('''
    import rustdemo

    def test_clean():
        assert rustdemo.compute([1, 2, 3]) == 42

    def test_leaks_a_result():
        rustdemo.leak_result(50)

    def test_leaks_native_memory():
        rustdemo.leak_native(10000)

    def test_prints_a_lot():
        print("chatty " * 200)

    def test_fixture_accepts_a_clean_call(refcheck):
        refcheck(rustdemo.compute, [4, 5])

    def test_fixture_rejects_a_leaky_call(refcheck):
        refcheck(rustdemo.leak_reference, [object()])
''')


def run_pytest(tmp_path, *args):
    (tmp_path / "test_sample.py").write_text(PLUGIN_TESTS)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args,
                           str(tmp_path / "test_sample.py")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=100)


def test_pytest_fixture_fails_only_the_leaky_call(tmp_path, demo_crate):
    run = run_pytest(tmp_path)
    assert "1 failed, 5 passed" in run.stdout, run.stdout
    assert "test_fixture_rejects_a_leaky_call" in run.stdout and "LEAK +1/call" in run.stdout


def test_pytest_refcheck_option_attributes_leaks_to_tests(tmp_path, demo_crate):
    run = run_pytest(tmp_path, "--refcheck")
    assert "3 failed, 3 passed" in run.stdout, run.stdout
    summary = run.stdout[run.stdout.index("refcheck ="):]
    assert "test_leaks_a_result: Python allocations +" in summary
    assert "test_leaks_native_memory: native heap" in summary
    assert "test_clean" not in summary and "test_prints_a_lot" not in summary
