"""%%native_profile in real kernels and a real IPython: py-spy sampling the kernel, a release
build of the demo crate (with debug info), the agent stepping aside and back."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import KernelHarness, marker_line

# serial: a sampled profile is what the machine gave it; on a busy one a chain can go unsampled
pytestmark = [pytest.mark.kernel, pytest.mark.serial, pytest.mark.timeout(300)]

BUSY = ("import time\nstarted = time.time()\nwhile time.time() - started < 1.5:\n"
        "    rustdemo.busy_work(1_000_000)\n'done'")


@pytest.fixture
def release_kernel(release_demo, tmp_path):
    # a notebook folder outside the crate, the release build first on the path
    kernel = KernelHarness(env={"PYTHONPATH": str(release_demo)}, cwd=tmp_path)
    assert kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo\nrustdemo.__file__").results[0].startswith(
        repr(str(release_demo))[:-1])
    yield kernel
    kernel.shutdown()


def profile_text(result) -> str:
    return next(d["text/plain"] for d in result.displays if "text/plain" in d and "samples shown of" in d["text/plain"])


def test_the_hot_rust_function_ranks_first_above_the_cells_line(release_kernel, tmp_path):
    out = tmp_path / "busy.speedscope.json"
    result = release_kernel.run(f"%%native_profile -o {out}\n" + BUSY, timeout=120)
    assert result.status == "ok", result.text
    # the cell's result stays what it is, and the profile comes after it
    assert result.results == ["'done'"]
    assert result.order.index("execute_result") < len(result.order) - 1 and result.order[-1] == "display_data"
    text = profile_text(result)
    top = text.split("top functions")[1].splitlines()[2]
    assert re.search(r"rustdemo::mix_round\s+src/lib\.rs:(\d+)\s+\[Rust, yours\]", top), text
    line = int(re.search(r"src/lib\.rs:(\d+)", top).group(1))
    assert marker_line("busy-inner") <= line <= marker_line("busy-inner") + 2
    tree = text.split("call tree")[1]
    assert "py <module>  cell line 4" in tree, text
    cell = tree.index("py <module>  cell line 4")
    assert cell < tree.index("rs rustdemo::busy_work  src/lib.rs:") < tree.index("rs rustdemo::mix_round")
    samples = int(re.search(r"(\d+) samples shown of \d+ in", text).group(1))
    assert 100 <= samples <= 200, text  # 1.5 s at 100/s
    # names are demangled and clean: no hashes, no $LT$, no v0 symbols
    assert not re.search(r"::h[0-9a-f]{16}|\$LT\$|_RNv", text)
    # the HTML has the flamegraph's data and script, no network
    page = next(d["text/html"] for d in result.displays if "text/html" in d and "pdm-profile-" in d["text/html"])
    assert "rustdemo::mix_round" in page and "<script>" in page and "http" not in page.split("<script>")[1]
    written = json.loads(out.read_text())
    names = [frame["name"] for frame in written["shared"]["frames"]]
    assert "rustdemo::busy_work" in names and written["profiles"][0]["type"] == "sampled"


CALLBACK_CHAIN = ("def callback(value):\n    total = 0\n    for i in range(20000):\n        total += rustdemo.square(i)\n"
                  "    return total\n"
                  "import time\nstarted = time.time()\nwhile time.time() - started < 1.5:\n"
                  "    rustdemo.call_python(callback, 3)")


def test_the_elfutils_engine_shows_a_whole_rust_python_rust_chain(release_kernel):
    result = release_kernel.run("%%native_profile\n" + CALLBACK_CHAIN, timeout=120)  # elfutils by default
    assert result.status == "ok", result.text
    text = profile_text(result)
    assert "engine elfutils" in text
    tree = text.split("call tree")[1]
    # Python (the cell) -> Rust (call_python) -> Python (callback) -> Rust (square), in that order
    chain = [tree.index("py <module>  cell line 9"), tree.index("rs rustdemo::call_python  src/lib.rs:"),
             tree.index("py callback  cell line 4"), tree.index("rs rustdemo::__pyfunction_square  src/lib.rs:")]
    assert chain == sorted(chain), text
    mismatched = re.search(r"in (\d+) of (\d+) samples the Python and native frames did not line up", text)
    assert mismatched is None or int(mismatched.group(1)) * 10 < int(mismatched.group(2)), text


def test_a_callback_chain_under_py_spy_counts_what_py_spy_lost(release_kernel):
    result = release_kernel.run("%%native_profile --engine py-spy\n" + CALLBACK_CHAIN, timeout=120)
    assert result.status == "ok", result.text
    text = profile_text(result)
    errors = int(re.search(r"(\d+) py-spy errors \((\d+)%\)", text).group(1))
    tree = text.split("call tree")[1]
    # what py-spy merged is in order; the outer Rust frames it cannot unwind are said to be missing
    assert tree.index("py <module>  cell line") < tree.index("py callback  cell line") < tree.index(
        "rs rustdemo::__pyfunction_square"), text
    assert "`--engine elfutils` unwinds every frame" in text
    if errors:  # py-spy could not merge: counted, with the same run's Python-only view offered
        assert "--show python" in text
        python = release_kernel.run("%native_profile --show python").output
        assert "Python-only view" in python and "py callback  cell line" in python


@pytest.mark.parametrize("engine", ["elfutils", "py-spy"])
def test_threads_shows_the_rust_workers_py_spy_cannot_see(release_kernel, engine):
    result = release_kernel.run(f"%%native_profile --threads --engine {engine}\nrustdemo.busy_workers(2, 1.0)",
                                timeout=120)
    assert result.status == "ok", result.text
    text = profile_text(result)
    assert f"engine {engine}" in text
    tree = text.split("call tree")[1]
    for worker in ("rd-worker-0", "rd-worker-1"):  # py-spy cannot see them; the native sampler does
        block = tree[tree.index(f"  {worker} ("):]
        assert re.search(r"rs rustdemo::busy_workers::\{\{closure\}\}.*src/lib\.rs:\d+\n.*rs rustdemo::busy_until  src/lib\.rs:",
                         block), text
    workers = text.split("threads without Python (sampled")[1].splitlines()[1:]
    assert [w.split(" (")[0].strip() for w in workers[:2]] in (["rd-worker-0", "rd-worker-1"],
                                                              ["rd-worker-1", "rd-worker-0"]), text
    assert all(0.1 <= float(re.search(r"(\d+\.\d\d) s CPU", w).group(1)) <= 1.3 for w in workers[:2]), text


def test_a_short_cell_says_the_profile_is_not_meaningful(release_kernel):
    result = release_kernel.run("%native_profile rustdemo.compute([1, 2, 3])")
    assert result.results == ["42"]
    assert "too few for a meaningful profile" in profile_text(result) and "--rate" in profile_text(result)


def test_the_agent_steps_aside_and_comes_back_with_its_breakpoints(release_kernel):
    kernel = release_kernel
    line = marker_line("compute-result")
    assert kernel.run(f"%native_break src/lib.rs:{line}").status == "ok"
    result = kernel.run("%%native_profile\n" + BUSY, timeout=120)
    assert result.status == "ok", result.text
    assert "mix_round" in profile_text(result)  # py-spy took ptrace: gdb had let go
    # attached again, the breakpoint still there and still pausing
    paused = kernel.run("rustdemo.compute([1, 2, 3])", answers=["c"], timeout=90)
    assert "42" in paused.results and any("(native)" in p for p in paused.prompts), paused.text
    assert re.search(rf"native breakpoint \d+ hit in thread 1: rustdemo::compute at src/lib\.rs:{line}\n", paused.text), paused.text


def test_an_interrupted_cell_still_shows_what_was_sampled(release_kernel):
    import threading

    kernel = release_kernel
    timer = threading.Timer(2.0, kernel.manager.interrupt_kernel)
    timer.start()
    result = kernel.run("%%native_profile\nimport time\nwhile True:\n    rustdemo.busy_work(1_000_000)", timeout=60)
    timer.join()
    assert result.error and result.error["ename"] == "KeyboardInterrupt"
    assert "mix_round" in profile_text(result)
    assert kernel.run("1 + 1").results == ["2"]


def test_py_spy_missing_is_one_line_and_the_cell_still_runs(release_kernel):
    kernel = release_kernel
    kernel.run("import os; os.environ['PYO3_DEBUG_MAGIC_PYSPY'] = '/nonexistent/py-spy'")
    result = kernel.run("%native_profile --engine py-spy 6 * 7")
    assert result.results == ["42"]
    assert "py-spy not found" in result.output and "pip install py-spy" in result.output


def test_terminal_ipython_shows_the_text_form(release_demo, tmp_path):
    script = tmp_path / "profile.ipy"
    script.write_text("%load_ext pyo3_debug_magic\nimport rustdemo, time\n"
                      "get_ipython().run_cell('''%%native_profile\n" + BUSY + "\n''')\n")
    run = subprocess.run([str(Path(sys.executable).parent / "ipython"), "--no-banner", "--colors=NoColor",
                          str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(release_demo)})
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "'done'" in out and out.index("'done'") < out.index("samples shown of")
    assert re.search(r"rustdemo::mix_round\s+src/lib\.rs:\d+\s+\[Rust, yours\]", out), out
    assert "<div" not in out and "<script" not in out
