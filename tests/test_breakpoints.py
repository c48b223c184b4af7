"""Native breakpoints with the interactive pause, in real Jupyter kernels on the demo crate."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import nbformat
import pytest

from harness import (IPYKERNEL6_PYTHON, LIB_RS, ROOT, KernelHarness, agent_processes, gdb_processes,
                     marker_line, thread_stat, tracer_of, wait_for)

pytestmark = [pytest.mark.kernel, pytest.mark.gdb, pytest.mark.timeout(150)]


@pytest.fixture
def debug_kernel(loaded_kernel, gdb_path):
    """A kernel with the extension loaded and rustdemo imported; gdb must be there."""
    return loaded_kernel


def shown(result) -> list[str]:
    return [d.get("text/plain", "") for d in result.displays]


def break_at(kernel, marker: str, options: str = "") -> str:
    result = kernel.run(f"%native_break src/lib.rs:{marker_line(marker)} {options}", timeout=60)
    assert result.status == "ok", result.text
    return result.output


def test_pause_print_next_finish_continue(debug_kernel):
    kernel = debug_kernel
    line = marker_line("compute-loop")
    created = break_at(kernel, "compute-loop")
    assert f"-> {LIB_RS}:{line}" in created
    answers = ["p total", "n", "p term", "bt", "c"]
    result = kernel.run("values = [1, 2, 3]\nrustdemo.compute(values)", answers=list(answers),
                        timeout=90)
    views = shown(result)
    assert result.status == "ok" and result.results == ["42"], result.text
    first = views[0]
    assert f"native breakpoint 1 hit in thread 1: rustdemo::compute at src/lib.rs:{line}" in first
    assert f"-> {line:>2}" in first or f"-> {line}" in first          # current line marked
    assert re.search(rf"#0\s+rustdemo::compute\s+at src/lib.rs:{line}", first)
    assert re.search(r"py\s+<module>\s+at \S*ipykernel_\d+/\d+\.py:2\s+<- cell", first)
    assert "values = Vec(size=3) = {1, 2, 3}" in first                 # Rust pretty-printers
    assert "total = 0" in views
    stepped = next(v for v in views if "thread 1 stepped to rustdemo::compute" in v)
    assert f"src/lib.rs:{line + 1}" in stepped                         # `n` moved one line, said in words
    assert "end-stepping-range" not in views and "allow_threads" not in stepped  # no jargon, no repeated GIL note
    # the hand-off is explained at the session's first stop; the loop's later hits carry a marker
    assert "implicit allow_threads" in first
    hits = [v for v in views if "native breakpoint 1 hit" in v]
    assert len(hits) >= 2 and all("allow_threads" not in v and "(GIL handed over while paused)" in v for v in hits[1:])
    assert "term = 3" in views
    # the breakpoint is in a loop: the remaining hits were answered with `c` by the harness
    assert len(result.prompts) >= len(answers)


def test_finish_returns_to_the_rust_caller_with_the_value(debug_kernel):
    break_at(debug_kernel, "busy-inner", "--temporary")
    result = debug_kernel.run("rustdemo.busy_work(3)", answers=["finish", "c"], timeout=90)
    assert result.status == "ok" and len(result.prompts) == 2, result.text
    finished = next(v for v in shown(result) if "thread 1 returned" in v)
    assert re.search(r"thread 1 returned \(value \d+\) to rustdemo::busy_work at src/lib.rs:\d+", finished), finished


def test_leaving_a_pyfunction_never_stops_in_pyo3s_wrapper(debug_kernel):
    """`finish` or `n` off the end of a #[pyfunction] returns into PyO3's generated wrapper
    (junk locals, no code of the user's): the thread runs on, and the value is said."""
    break_at(debug_kernel, "compute-result")
    finished = debug_kernel.run("rustdemo.compute([1, 2, 3])", answers=["finish"], timeout=90)
    assert finished.results == ["42"] and len(finished.prompts) == 1, finished.text
    assert "left rustdemo::compute (returned 42) for PyO3's wrapper" in finished.output, finished.text
    assert not any("__pyfunction_compute" in v.split("backtrace:")[0] for v in shown(finished)), finished.text
    stepped = debug_kernel.run("rustdemo.compute([1, 2, 3])", answers=["n", "n", "n", "n"], timeout=90)
    assert stepped.results == ["42"] and 2 <= len(stepped.prompts) <= 4, stepped.text
    assert "left rustdemo::compute for PyO3's wrapper" in stepped.output, stepped.text
    views = [v for v in shown(stepped) if "stepped to" in v]
    assert views and all("stepped to rustdemo::compute at src/lib.rs" in v for v in views), views


def test_step_over_a_pyo3_call_stays_in_the_users_code(debug_kernel):
    """`s` on a line that calls a PyO3 API (`callback.call1`) goes to the next line of the
    user's function, not into pyo3/src/types/any.rs."""
    line = marker_line("call-python")
    break_at(debug_kernel, "call-python")
    result = debug_kernel.run("rustdemo.call_python(lambda v: v + 1, 4)", answers=["s", "c"], timeout=90)
    assert result.results == ["5"], result.text
    stepped = next(v for v in shown(result) if "stepped to" in v)
    assert f"stepped to rustdemo::call_python at src/lib.rs:{line + 1}" in stepped, stepped
    assert "pyo3" not in stepped.split("\n")[0] and "result   = 5 (int" in stepped, stepped


def test_a_misspelt_crate_is_refused_with_the_name_meant(debug_kernel):
    """A crate typo would wait, pending, for a module that never comes: refused, with the
    name meant; a function typo's close matches are the user's functions, not PyO3's wrappers."""
    for typed, meant in [(f"src/lib.rs:{marker_line('square')} --crate rustdmo", "did you mean `--crate rustdemo`?"),
                         ("rustdmo::compute", "did you mean `rustdemo::compute`?")]:
        refused = debug_kernel.run(f"%native_break {typed}", timeout=60)
        assert refused.status == "error" and meant in refused.stderr, refused.text
    assert "no native breakpoints" in debug_kernel.run("%native_break").output
    typo = debug_kernel.run("%native_break rustdemo::compte", timeout=60)
    assert "close matches: rustdemo::compute" in typo.stderr and "__pyfunction" not in typo.stderr, typo.text


def test_a_pymethods_line_is_refused_with_the_functions_to_break_on(debug_kernel):
    """Only PyO3's generated code sits on `#[pymethods]`: nine locations in generated
    trampolines before; now a refusal that names the methods."""
    line = next(n for n, text in enumerate(LIB_RS.read_text().splitlines(), 1) if text.startswith("#[pymethods]"))
    refused = debug_kernel.run(f"%native_break src/lib.rs:{line}", timeout=60)
    assert refused.status == "error" and "holds only code PyO3 generated" in refused.stderr, refused.text
    assert "`%native_break rustdemo::Basket::describe`" in refused.stderr, refused.text
    assert "no native breakpoints" in debug_kernel.run("%native_break").output  # nothing was left behind
    signature = marker_line("call-python") - 1  # `fn call_python(...)`: the wrapper converts arguments there too
    moved = debug_kernel.run(f"%native_break src/lib.rs:{signature}", timeout=60)
    assert moved.status == "ok" and f"the breakpoint is on line {signature + 1}" in moved.output, moved.text
    paused = debug_kernel.run("rustdemo.call_python(lambda v: v, 2)", answers=["c"], timeout=90)
    assert paused.results == ["2"] and len(paused.prompts) == 1, paused.text  # one pause, in the function
    stop = next(v for v in shown(paused) if "native breakpoint" in v)
    assert f"rustdemo::call_python at src/lib.rs:{signature + 1}" in stop.splitlines()[0], stop


def test_a_pause_in_a_callback_chain_shows_each_python_frame_where_it_runs(debug_kernel):
    """Cell -> Rust (call_python) -> Python (the lambda) -> Rust (square), paused in square:
    the lambda sits between square and call_python, the cell below call_python; in both views."""
    break_at(debug_kernel, "square")
    result = debug_kernel.run("rustdemo.call_python(lambda v: rustdemo.square(v) + 1, 4)", answers=["c"], timeout=90)
    assert result.results == ["17"], result.text
    stop = next(v for v in shown(result) if "native breakpoint 1 hit" in v)
    order = [re.search(p, stop, re.M) for p in (r"^>?#0\s+rustdemo::square\s", r"^\s*py\s+<lambda>\s+at .*:1\s",
                                                r"^\s*#\d+\s+rustdemo::call_python\s", r"^\s*py\s+<module>\s+at .*:1\s+<- cell")]
    assert all(order) and [m.start() for m in order] == sorted(m.start() for m in order), stop
    page = next(d["text/html"] for d in result.displays if "native breakpoint 1 hit" in d.get("text/html", ""))
    places = [page.find(name) for name in ("rustdemo::square", "&lt;lambda&gt;", "rustdemo::call_python", "&lt;module&gt;")]
    assert -1 not in places and places == sorted(places), page


def test_py_evaluates_in_the_python_frame_that_called_rust(debug_kernel):
    break_at(debug_kernel, "square")
    result = debug_kernel.run("secret = {'k': 41}\nrustdemo.square(secret['k'] + 1)",
                              answers=["py secret['k'] * 2", "py undefined_name", "c"], timeout=90)
    assert result.results == ["1764"], result.text
    assert "82" in shown(result)
    assert any("NameError" in v for v in shown(result))


def test_pending_breakpoint_resolves_on_import(demo_crate, gdb_path):
    kernel = KernelHarness()
    try:
        kernel.run("%load_ext pyo3_debug_magic")
        created = kernel.run(f"%native_break src/lib.rs:{marker_line('square')}", timeout=60)
        assert created.status == "ok" and "pending" in created.output, created.text
        listing = kernel.run("%native_break")
        assert "<pending>" in listing.output, listing.text
        result = kernel.run("import rustdemo\nrustdemo.square(9)", answers=["p value", "c"], timeout=90)
        assert result.results == ["81"], result.text
        assert "value = 9" in shown(result)
        hits = kernel.run("%native_break").output
        assert re.search(r"^1\s+pause\s+y\s+1\s", hits, re.M), hits
    finally:
        assert kernel.shutdown() == []


def test_condition_pauses_only_when_true(debug_kernel):
    break_at(debug_kernel, "compute-loop", '--if "index == 2"')
    result = debug_kernel.run("rustdemo.compute([5, 6, 7, 8])", answers=["p index", "c"], timeout=90)
    assert result.status == "ok" and len(result.prompts) == 2, result.text
    assert "index = 2" in shown(result)


def test_ignore_skips_the_first_hits(debug_kernel):
    break_at(debug_kernel, "compute-loop", "--ignore 3")
    result = debug_kernel.run("rustdemo.compute([5, 6, 7, 8, 9])", answers=["p index", "c", "p index", "c"],
                              timeout=90)
    assert result.status == "ok" and len(result.prompts) == 4, result.text
    assert "index = 3" in shown(result) and "index = 4" in shown(result)


def test_log_breakpoint_records_every_hit_without_pausing(debug_kernel):
    created = break_at(debug_kernel, "compute-loop", '--log "index, total"')
    assert "native log breakpoint 1" in created
    result = debug_kernel.run("rustdemo.compute(list(range(25)))", answers=[], timeout=90)
    assert result.status == "ok" and result.prompts == [], result.text
    log = "\n".join(shown(result))
    assert len(re.findall(r"\[log breakpoint 1 hit \d+\]", log)) == 25, log
    assert "[log breakpoint 1 hit 25] rustdemo::compute at src/lib.rs" in log
    assert "index = 24" in log and "total = " in log
    blocks = [text for text in shown(result) if "[log breakpoint 1 hit" in text]
    assert len(blocks) == 1 and blocks[0].startswith("native debugger, after this cell:"), blocks  # one titled block
    listing = debug_kernel.run("%native_break").output
    assert re.search(r"^1\s+log\s+y\s+25\s", listing, re.M), listing


def test_breakpoint_in_a_native_worker_thread_pauses_only_that_thread(debug_kernel):
    break_at(debug_kernel, "thread-sum", "--temporary")
    result = debug_kernel.run("rustdemo.threaded_sum(list(range(100)), 4)", answers=["bt", "p partial", "c"],
                              timeout=90)
    assert result.results == ["4950"], result.text
    view = shown(result)[0]
    assert "rustdemo::sum_chunk" in view and "thread 1:" not in view  # a worker, not the main thread
    assert "partial = 0" in shown(result)


def test_heartbeat_and_control_channel_answer_while_paused(debug_kernel):
    break_at(debug_kernel, "square")
    measured = {}

    def answer(prompt):
        if not measured:
            started = time.monotonic()
            message = debug_kernel.client.session.msg("kernel_info_request")
            debug_kernel.client.control_channel.send(message)
            reply = debug_kernel.client.control_channel.get_msg(timeout=10)
            measured["control_seconds"] = time.monotonic() - started
            measured["control_status"] = reply["content"]["status"]
            measured["heartbeat"] = debug_kernel.heartbeat_ok()
        return "c"

    result = debug_kernel.run("rustdemo.square(3)", answers=answer, timeout=90)
    assert result.results == ["9"], result.text
    assert measured["heartbeat"] and measured["control_status"] == "ok"
    assert measured["control_seconds"] < 5, measured
    print(f"control channel reply while paused: {measured['control_seconds'] * 1000:.1f} ms")


def test_quit_removes_all_breakpoints_and_continues(debug_kernel):
    break_at(debug_kernel, "compute-loop")
    result = debug_kernel.run("rustdemo.compute([1, 2, 3])", answers=["q"], timeout=90)
    assert result.results == ["42"] and len(result.prompts) == 1, result.text
    assert debug_kernel.run("%native_break").output.strip() == "no native breakpoints"


def test_delete_disable_enable(debug_kernel):
    break_at(debug_kernel, "square")
    assert "disabled" in debug_kernel.run("%native_disable 1").output
    listed = debug_kernel.run("%native_break").output  # a disabled breakpoint still says where it is
    assert re.search(rf"^1 +pause +n +0 +src/lib.rs:{marker_line('square')} -> \S+/src/lib.rs:{marker_line('square')}$",
                     listed, re.M), listed
    quiet = debug_kernel.run("rustdemo.square(4)", answers=[], timeout=60)
    assert quiet.results == ["16"] and quiet.prompts == []
    debug_kernel.run("%native_enable 1")
    paused = debug_kernel.run("rustdemo.square(4)", answers=["c"], timeout=60)
    assert len(paused.prompts) == 1
    assert "deleted native breakpoints 1" in debug_kernel.run("%native_delete all").output
    bad = debug_kernel.run("%native_delete 7")
    assert "no breakpoint number 7" in bad.stderr


def test_detach_unload_keep_the_kernel_and_its_variables(debug_kernel):
    break_at(debug_kernel, "square")
    debug_kernel.run("kept = [1, 2, 3]")
    assert "detached" in debug_kernel.run("%native_detach").output
    assert tracer_of(debug_kernel.pid) == 0  # the helper stays, idle, for the next attach
    assert debug_kernel.run("rustdemo.square(5)", answers=[], timeout=60).results == ["25"]  # no pause
    break_at(debug_kernel, "square")  # attaches again
    debug_kernel.run("%unload_ext pyo3_debug_magic")
    assert not agent_processes(debug_kernel.pid)
    after = debug_kernel.run("rustdemo.square(6), kept", answers=[], timeout=60)
    assert after.results == ["(36, [1, 2, 3])"], after.text


def test_interrupt_while_paused_resumes_and_raises_keyboard_interrupt(debug_kernel):
    break_at(debug_kernel, "compute-loop")
    interrupted = {}

    def answer(prompt):
        if not interrupted:
            interrupted["sent"] = True
            debug_kernel.manager.interrupt_kernel()
            # the agent ends the pause: the main thread leaves its ptrace stop ("t")
            wait_for(lambda: (thread_stat(debug_kernel.pid) or ("gone",))[0] != "t", 20,
                     "the paused main thread resuming after the Interrupt")
        return "c"

    result = debug_kernel.run("rustdemo.compute([1, 2, 3])\nafter = 'not reached'", answers=answer,
                              timeout=60)
    assert result.status == "error" and result.error["ename"] == "KeyboardInterrupt", result.text
    assert any("ended by the Interrupt button" in v for v in shown(result)), (shown(result), result.stderr[-2000:])
    # the breakpoint still pauses in the next cell, and `c` finishes it: 2 * ((1*3+0) + (2*3+1))
    after = debug_kernel.run("rustdemo.compute([1, 2])", answers=[], timeout=30)
    assert after.status == "ok" and after.results == ["20"], after.text
    assert not any("no stdin" in v for v in shown(result) + shown(after))  # the cell had stdin
    debug_kernel.run("%native_delete all")
    assert debug_kernel.run("rustdemo.compute([1, 2, 3])", answers=[], timeout=30).results == ["42"]


def test_interrupt_of_a_pause_in_a_long_rust_loop_says_the_rust_runs_on_and_for_how_long(debug_kernel):
    """Rust code cannot be stopped midway: the Interrupt ends the pause at once, and the cell
    says why the loop runs on (until it returns or calls py.check_signals()) and for how long."""
    break_at(debug_kernel, "busy-inner", "--temporary")

    def interrupt(prompt):
        debug_kernel.manager.interrupt_kernel()
        return None

    result = debug_kernel.run("rustdemo.busy_work(500_000_000)", answers=interrupt, timeout=120)
    assert result.status == "error" and result.error["ename"] == "KeyboardInterrupt", result.text
    assert "Rust code cannot be stopped midway" in result.output and "py.check_signals()" in result.output
    assert re.search(r"the cell ran on for \d+\.\d s after the Interrupt ended its pause", result.output), result.text


@pytest.mark.parametrize("python", [None, IPYKERNEL6_PYTHON], ids=["ipykernel7", "ipykernel6.29"])
def test_interrupt_with_the_prompt_unanswered_leaves_no_stale_reader(demo_crate, gdb_path, python):
    """The user presses Interrupt instead of answering `(native)`: the console's wait must end,
    or it would take the answer to the next cell's input()."""
    kernel = KernelHarness(python=python)
    try:
        kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo")
        break_at(kernel, "compute-loop")

        def interrupt_instead(prompt):
            kernel.manager.interrupt_kernel()
            return None

        paused = kernel.run("rustdemo.compute([1, 2, 3])", answers=interrupt_instead, timeout=60)
        assert paused.status == "error" and paused.error["ename"] == "KeyboardInterrupt", paused.text
        assert paused.prompts == ["(native) "]
        asked = kernel.run("name = input('name? ')\nname", answers=lambda p: "alice" if p == "name? " else None,
                           timeout=30)
        assert asked.results == ["'alice'"] and asked.prompts == ["name? "], asked.text
        assert kernel.heartbeat_ok()
    finally:
        assert kernel.shutdown() == []


@pytest.mark.parametrize("location", ["src/lib.rs:1\n-gdb-exit", 'src/lib.rs:1"; -gdb-exit', "$(rm -rf /)",
                                      "'src/lib.rs:1\\n-gdb-exit'", "src/lib.rs:1;shell"])
def test_hostile_locations_are_refused_before_gdb(debug_kernel, location):
    result = debug_kernel.run(f"get_ipython().run_line_magic('native_break', {location!r})")
    assert result.status == "error" and result.stderr.startswith("UsageError:"), result.text
    assert not gdb_processes(debug_kernel.pid)  # refused before gdb was even started
    assert debug_kernel.run("1 + 1").results == ["2"]


def test_hostile_condition_is_quoted_not_executed(debug_kernel):
    refused = debug_kernel.run(f"%native_break src/lib.rs:{marker_line('square')} --if 'value == 1\" -gdb-exit'",
                               timeout=60)
    # gdb parses the whole text as one expression and rejects it; -gdb-exit never runs
    assert refused.stderr.startswith("UsageError: gdb: ") and "string" in refused.stderr, refused.text
    status = debug_kernel.run("%native_attach")
    assert "attached" in status.output and gdb_processes(debug_kernel.pid)
    assert debug_kernel.run("rustdemo.square(2)", answers=[], timeout=60).results == ["4"]


@pytest.mark.serial  # gdb's bound at 3 s: on a busy machine an ordinary command could pass it
def test_a_hung_gdb_command_is_abandoned_and_the_pause_ends(demo_crate, gdb_path):
    kernel = KernelHarness(env={"PYO3_DEBUG_MAGIC_GDB_TIMEOUT": "3"})
    try:
        kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo")
        set_up = kernel.run(f"%native_break src/lib.rs:{marker_line('square')}", timeout=60)
        assert set_up.status == "ok" and "native breakpoint 1" in set_up.output, set_up.text
        started = time.monotonic()
        result = kernel.run("rustdemo.square(12)", answers=["p rustdemo::spin_forever()", "c"], timeout=60)
        assert time.monotonic() - started < 25
        assert result.results == ["144"], result.text
        assert any("did not answer" in v for v in shown(result)), shown(result)
        assert kernel.run("1 + 1").results == ["2"]
    finally:
        kernel.shutdown()


def test_unattended_nbclient_run_logs_instead_of_pausing(demo_crate, gdb_path, tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext pyo3_debug_magic\nimport rustdemo"),
        nbformat.v4.new_code_cell(f"%native_break src/lib.rs:{marker_line('compute-loop')}"),
        nbformat.v4.new_code_cell("rustdemo.compute([1, 2, 3])"),
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "unattended.ipynb"
    nbformat.write(notebook, path)
    started = time.monotonic()
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebook.py"), str(path),
                          "--output", str(tmp_path / "out.ipynb"), "--timeout", "60"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert time.monotonic() - started < 60
    assert "42" in run.stdout
    assert run.stdout.count("breakpoint (no stdin: not paused) 1 hit") == 3, run.stdout


@pytest.mark.serial  # touches the demo crate's lib.rs: no other test may set a breakpoint meanwhile
def test_stale_build_is_refused_with_restart_advice(debug_kernel):
    stat = os.stat(LIB_RS)
    try:
        os.utime(LIB_RS, (stat.st_atime, time.time() + 3600))
        result = debug_kernel.run(f"%native_break src/lib.rs:{marker_line('square')}", timeout=60)
        assert "changed after rustdemo" in result.stderr and "restart the kernel" in result.stderr, result.text
    finally:
        os.utime(LIB_RS, (stat.st_atime, stat.st_mtime))


def test_line_without_code_moves_to_the_next_line_and_says_so(debug_kernel):
    comment = marker_line("over-release") - 1   # the `}` closing an `if` inside the body
    assert LIB_RS.read_text().splitlines()[comment - 1].strip() == "}"
    result = debug_kernel.run(f"%native_break src/lib.rs:{comment}", timeout=60)
    assert result.status == "ok" and f"line {comment} has no code" in result.output, result.text
    moved_to = re.search(r"the breakpoint is on line (\d+)", result.output)
    assert moved_to and int(moved_to.group(1)) > comment, result.output
    assert f"src/lib.rs:{moved_to.group(1)}" in result.output.splitlines()[0], result.output


def test_unknown_file_stays_pending_and_names_close_matches(debug_kernel):
    result = debug_kernel.run("%native_break src/lbi.rs:3", timeout=60)
    assert result.status == "ok" and "-> pending" in result.output, result.text
    assert "(did you mean src/lib.rs? loaded in rustdemo)" in result.output, result.text


def test_what_cannot_resolve_in_a_loaded_module_is_an_error_not_a_pending_breakpoint(debug_kernel):
    length = len(LIB_RS.read_text().splitlines())
    past_the_end = debug_kernel.run("%native_break src/lib.rs:9999", timeout=60)
    assert past_the_end.stderr.startswith("UsageError: no code at or after src/lib.rs:9999 in rustdemo"), \
        past_the_end.text
    assert f"(the file has {length} lines)" in past_the_end.stderr
    typo = debug_kernel.run("%native_break rustdemo::compue --log")
    assert "no function rustdemo::compue in rustdemo" in typo.stderr, typo.text
    assert "close matches: rustdemo::compute" in typo.stderr
    assert debug_kernel.run("%native_break").output.strip() == "no native breakpoints"  # none left behind
    # a crate not loaded yet may be imported later: pending, and never bound to another crate
    unknown_crate = debug_kernel.run("%native_break src/lib.rs:20 --crate nosuch")
    assert "-> pending" in unknown_crate.output and "binds to crate nosuch" in unknown_crate.output, \
        unknown_crate.text
    assert "the loaded modules with your sources are: rustdemo" in unknown_crate.output
    listing = debug_kernel.run("%native_break").output
    assert re.search(r"^\d+\s+pause\s+y\s+0\s+src/lib.rs:20 -> <pending>", listing, re.M), listing
    assert debug_kernel.run("rustdemo.compute([1, 2, 3])", answers=[], timeout=30).results == ["42"]  # no pause
    debug_kernel.run("%native_delete all")
    later = debug_kernel.run("%native_break othercrate::run").output  # not imported yet: pending
    assert "-> pending" in later and "no loaded module has othercrate::" in later, later


@pytest.mark.parametrize("python", [None, IPYKERNEL6_PYTHON], ids=["ipykernel7", "ipykernel6.29"])
def test_core_pause_works_with_ipykernel_6_and_7(demo_crate, gdb_path, python):
    if python is not None and not python.exists():
        pytest.fail(f"{python} is missing: scripts/setup.sh builds it")
    kernel = KernelHarness(python=python)
    try:
        version = kernel.run("import ipykernel; ipykernel.__version__").results[0]
        assert version.strip("'").startswith("6.29" if python else "7."), version
        kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo")
        kernel.run(f"%native_break src/lib.rs:{marker_line('compute-result')}", timeout=60)
        result = kernel.run("rustdemo.compute([1, 2, 3])", answers=["p total", "py 6 * 7", "c"], timeout=90)
        assert result.results == ["42"] and len(result.prompts) == 3, result.text
        views = shown(result)
        assert "native breakpoint 1 hit" in views[0] and "<- cell" in views[0]
        assert "total = 21" in views and "42" in views and "continuing" in views
    finally:
        assert kernel.shutdown() == []


def test_a_breakpoint_on_a_doc_comment_lands_on_the_first_statement_not_the_trampoline(debug_kernel):
    doc_line = next(n for n, text in enumerate(LIB_RS.read_text().splitlines(), 1)
                    if text.startswith("/// A multi-line computation"))
    start = marker_line("compute-start")
    made = debug_kernel.run(f"%native_break src/lib.rs:{doc_line}", timeout=60)
    assert made.status == "ok", made.text
    assert f"line {doc_line} is a doc comment of `compute`: the breakpoint is on line {start}" in made.output
    listed = debug_kernel.run("%native_break").output
    assert listed.count(f"src/lib.rs:{start}") == 1 and "trampoline" not in listed, listed
    result = debug_kernel.run("rustdemo.compute([1, 2, 3])", answers=["c"], timeout=90)
    assert result.results == ["42"] and len(result.prompts) == 1, result.text   # one pause, in compute
    assert f"native breakpoint 1 hit in thread 1: rustdemo::compute at src/lib.rs:{start}" in shown(result)[0]


def test_a_refused_breakpoint_uses_up_no_number(debug_kernel):
    break_at(debug_kernel, "square")
    past_the_end = debug_kernel.run("%native_break src/lib.rs:99999")
    assert "no code at or after src/lib.rs:99999" in past_the_end.stderr, past_the_end.text
    no_such = debug_kernel.run("%native_break rustdemo::no_such_function")
    assert "no function rustdemo::no_such_function" in no_such.stderr, no_such.text
    second = debug_kernel.run(f"%native_break src/lib.rs:{marker_line('compute-loop')}")
    assert "native breakpoint 2 at" in second.output, second.text  # not 4
