"""Hang diagnosis (Interrupt not honoured, %native_watch) and %native_core post-mortems."""
from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time

import pytest

from harness import LIB_RS, marker_line, spinning, wait_for

pytestmark = [pytest.mark.gdb, pytest.mark.timeout(120)]


def displays_within(kernel, seconds: float) -> list[str]:
    """display_data texts that reach iopub within ``seconds`` (the stuck cell never ends)."""
    shown, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            message = kernel.client.iopub_channel.get_msg(timeout=0.2)
        except queue.Empty:
            continue
        if message["msg_type"] == "display_data":
            shown.append(message["content"]["data"].get("text/plain", ""))
            if "looks stuck" in shown[-1]:
                break
    return shown


@pytest.mark.kernel
def test_an_interrupt_the_kernel_cannot_honour_is_diagnosed(loaded_kernel):
    kernel = loaded_kernel
    assert "attached" in kernel.run("%native_attach").output
    kernel.client.execute("rustdemo.spin_forever()")
    wait_for(spinning(kernel.pid), 30, "the main thread spinning in spin_forever")
    started = time.monotonic()
    kernel.manager.interrupt_kernel()
    shown = displays_within(kernel, 20)
    elapsed = time.monotonic() - started
    report = next(text for text in shown if "looks stuck" in text)
    assert elapsed < 10, f"diagnosis took {elapsed:.1f} s"
    assert "the Interrupt was not honoured" in report and "it holds the GIL" in report
    # the interrupted PC is anywhere in the loop: its body, or the jump back on `loop {` / `}`
    loop_lines = "|".join(str(marker_line("spin") + offset) for offset in (-1, 0, 1))
    assert re.search(rf"rustdemo::spin_forever\s+at src/lib.rs:({loop_lines})\b", report), report
    assert kernel.heartbeat_ok()  # the tool never kills the thread; the kernel is alive


@pytest.mark.kernel
def test_an_interrupt_of_an_idle_kernel_is_no_hang(loaded_kernel):
    """Interrupt pressed with no cell running: nothing is reported, nothing is appended to the
    cell that ended last (the main thread idles in epoll_wait, which is no hang)."""
    kernel = loaded_kernel
    assert "attached" in kernel.run("%native_attach").output
    kernel.manager.interrupt_kernel()
    shown = displays_within(kernel, 4)  # the hang check would come after 2 s
    assert not any("looks stuck" in text for text in shown), shown
    assert kernel.run("1 + 1").results == ["2"] and kernel.heartbeat_ok()


@pytest.mark.kernel
def test_interrupt_pressed_again_and_again_on_a_hung_cell_keeps_questions_and_answers_in_step(loaded_kernel):
    """Interrupt (a report asks), Interrupt again with the question up, `p`; Interrupt while
    paused (the pause ends and says its box has closed), then a new report asks again and
    pauses again: every prompt is a live one, answered in order."""
    kernel = loaded_kernel
    question = "(native) p pauses the stuck thread here"
    assert "attached" in kernel.run("%native_attach").output
    asked = []

    def answer(prompt):
        asked.append(prompt)
        if len(asked) in (1, 2):  # with the question up, then at the pause: Interrupt again
            kernel.manager.interrupt_kernel()
            time.sleep(3)
        if len(asked) == 2:
            return None  # a user who pressed Interrupt types nothing
        return "p" if prompt.startswith(question) else "c"

    def interrupt_once_spinning():
        wait_for(spinning(kernel.pid), 30, "the main thread spinning in spin_forever")
        kernel.manager.interrupt_kernel()

    threading.Thread(target=interrupt_once_spinning, daemon=True).start()
    stuck = kernel.run("rustdemo.spin_forever()", answers=answer, timeout=90,
                       until=lambda shown: len(asked) >= 4 and shown.output.rstrip().endswith("continuing"))
    assert stuck.status == "running", stuck.text
    assert [p.startswith(question) for p in asked] == [True, False, True, False] and asked[1] == "(native) ", asked
    text = stuck.output
    assert text.count("thread 1 paused where it was stuck") == 2, text
    assert "native pause ended by the Interrupt button" in text and "the (native) box above has closed" in text, text
    assert "no longer held" not in text, text
    assert kernel.heartbeat_ok()


@pytest.mark.kernel
def test_native_watch_reports_a_long_cell_by_itself(loaded_kernel):
    kernel = loaded_kernel
    assert "longer than 1 s" in kernel.run("%native_watch --after 1").output
    assert kernel.run("rustdemo.compute([1, 2, 3])").results == ["42"]  # short cells: nothing
    kernel.client.execute("rustdemo.spin_forever()")
    shown = displays_within(kernel, 15)
    report = next(text for text in shown if "looks stuck" in text)
    assert "longer than 1 s (%native_watch)" in report and "rustdemo::spin_forever" in report


def test_native_core_shows_the_faulting_rust_line(demo_crate, gdb_path, tmp_path, shell):
    core = tmp_path / "rustdemo.core"
    subprocess.run([gdb_path, "-nx", "-batch", "-ex", "run", "-ex", f"generate-core-file {core}",
                    "--args", sys.executable, "-c", "import rustdemo\nrustdemo.segfault()"],
                   capture_output=True, timeout=90)
    assert core.is_file(), "gdb did not write the core file"
    shell.run_line_magic("load_ext", "pyo3_debug_magic")
    from pyo3_debug_magic.stacks.backtrace import crash_report
    from pyo3_debug_magic.crash.core import open_core
    from pyo3_debug_magic.render import text as render_text

    report = open_core(str(core))
    text = render_text.crash_report(crash_report(report))
    assert text.startswith(f"SIGSEGV in rustdemo::segfault at src/lib.rs:{marker_line('segfault')}"), text
    assert "core file" in text and "py <module>  at <string>:2" in text
    assert report.fault_address == "0x0"
    from pyo3_debug_magic.stacks.backtrace import capture

    snapshot = capture("gdb core", core=str(core))  # the same pipeline as %native_bt
    assert snapshot.engine == "gdb core" and snapshot.problem is None
    assert any(e.function == "rustdemo::segfault" and e.user for e in snapshot.threads[0].entries)


def test_native_core_prints_rust_values_as_a_live_pause_does(demo_crate, gdb_path, tmp_path, shell):
    """A core written while compute() sat at its result line: its locals go through the same
    gdb set-up as a live pause, Rust pretty-printers included."""
    core = tmp_path / "compute.core"
    subprocess.run([gdb_path, "-nx", "-batch", "-ex", "set breakpoint pending on",
                    "-ex", f"break {LIB_RS}:{marker_line('compute-result')}", "-ex", "run",
                    "-ex", f"generate-core-file {core}",
                    "--args", sys.executable, "-c", "import rustdemo\nrustdemo.compute([1, 2, 3])"],
                   capture_output=True, timeout=90)
    assert core.is_file(), "gdb did not write the core file"
    from pyo3_debug_magic.crash.core import open_core

    report = open_core(str(core))
    values = {v.name: v.value for v in report.locals}
    assert values.get("label") == '"total=21"', report.locals  # a String, not its raw struct
    assert values.get("values", "").endswith("{1, 2, 3}") and "RawVec" not in values["values"], report.locals


def test_native_core_refuses_a_missing_file(shell):
    from IPython.core.error import UsageError

    shell.run_line_magic("load_ext", "pyo3_debug_magic")
    with pytest.raises(UsageError, match="no core file at"):
        shell.run_line_magic("native_core", "/nonexistent/core")


@pytest.mark.kernel
def test_a_hung_cell_is_debugged_in_place_from_the_cell_itself(loaded_kernel):
    kernel = loaded_kernel
    spin = marker_line("spin")
    assert "longer than 1 s" in kernel.run("%native_watch --after 1").output
    answers = ["p", "p counter", f"break src/lib.rs:{spin}", "c", "q"]
    stuck = kernel.run("rustdemo.spin_forever()", timeout=60, answers=answers,
                       until=lambda shown: "deleting native breakpoints [1] and continuing" in shown.output)
    assert stuck.status == "running"  # the cell runs on (the loop never ends); the kernel is alive
    assert stuck.prompts[0].startswith("(native) p pauses the stuck thread here"), stuck.prompts
    assert stuck.prompts[1:] == ["(native) "] * 4, stuck.prompts
    text = stuck.output
    assert "answer `p` below to pause it there" in text
    assert "thread 1 paused where it was stuck, in rustdemo::spin_forever at src/lib.rs:" in text, text
    assert re.search(r"counter = \d+", text), text
    assert f"native breakpoint 1 at src/lib.rs:{spin}" in text, text
    assert "native breakpoint 1 hit in thread 1:" in text, text   # set from the prompt, hit after `c`
    assert "deleting native breakpoints [1] and continuing" in text, text
    assert kernel.heartbeat_ok()
