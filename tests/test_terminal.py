"""The pause in terminal IPython and jupyter console (real ptys), and kernel restart leaving nothing behind."""
from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

import pexpect
import pytest

from harness import ROOT, KernelHarness, agent_processes, gdb_processes, is_alive, marker_line

pytestmark = [pytest.mark.gdb, pytest.mark.timeout(120)]


def interruptible() -> None:
    """Give the frontend a terminal's default SIGINT: a test run started in the background by
    a non-interactive shell (CI, readme-check) inherits SIGINT ignored, and Python keeps an
    ignored SIGINT ignored, so Ctrl-C could never raise KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def uninterruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def loaded_frontend(program: str, *args: str, sigint=interruptible) -> pexpect.spawn:
    """A terminal frontend (``ipython``, ``jupyter console``) with a PATH that lacks
    ~/.cargo/bin, the extension loaded and rustdemo imported, at ``In [3]``."""
    frontend = pexpect.spawn(str(Path(sys.executable).with_name(program)), list(args), cwd=str(ROOT),
                             env={"TERM": "dumb", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
                             encoding="utf-8", timeout=60, preexec_fn=sigint)
    try:
        frontend.expect(r"In \[1\]: ")
        frontend.sendline("%load_ext pyo3_debug_magic")
        frontend.expect(r"In \[2\]: ")
        frontend.sendline("import rustdemo")
        frontend.expect(r"In \[3\]: ")
    except BaseException:
        frontend.close(force=True)
        raise
    return frontend


def watched_ipython() -> pexpect.spawn:
    """Terminal IPython, loaded, with `%native_watch --after 1`: at ``In [4]``."""
    shell = loaded_frontend("ipython", "--simple-prompt", "--no-banner", "--colors=NoColor")
    shell.sendline("%native_watch --after 1")
    shell.expect(r"In \[4\]: ")
    return shell


def leave(shell: pexpect.spawn, result: str, prompt: str) -> None:
    """The stuck cell's result, the next prompt, then exit."""
    shell.expect(result, timeout=90)
    shell.expect(prompt)
    shell.sendline("exit")
    shell.expect(pexpect.EOF)


def paused_frontend(program: str, *args: str, sigint=interruptible) -> tuple[pexpect.spawn, str]:
    """A loaded frontend that breaks at compute-result and runs into it: at its first
    ``(native)`` prompt (the stop view in ``.before``), with what ``%native_break`` printed."""
    frontend = loaded_frontend(program, *args, sigint=sigint)
    try:
        frontend.sendline(f"%native_break src/lib.rs:{marker_line('compute-result')}")
        frontend.expect(r"In \[4\]: ")
        created = frontend.before
        frontend.sendline("rustdemo.compute([1, 2, 3])")
        frontend.expect("native breakpoint 1 hit in thread 1: rustdemo::compute")
        frontend.expect(r"\(native\) ")
    except BaseException:
        frontend.close(force=True)
        raise
    return frontend, created


def continue_and_exit(frontend: pexpect.spawn) -> None:
    frontend.sendline("p total")
    frontend.expect("total = 21")
    frontend.expect(r"\(native\) ")
    frontend.sendline("c")
    frontend.expect(r"Out\[4\]: 42")
    frontend.expect(r"In \[5\]: ")


def test_pause_in_terminal_ipython(demo_crate, gdb_path):
    shell, created = paused_frontend("ipython", "--simple-prompt", "--no-banner", "--colors=NoColor")
    try:
        assert "native breakpoint 1 at" in created
        continue_and_exit(shell)
        shell.sendline("%refcheck rustdemo.leak_reference([1.5])")
        # the report is the cell's Out[5], shown once, as text
        shell.expect(r"Out\[5\]: \r?\nrefcheck rustdemo.leak_reference\(\[1.5\]\): 3 warm-up \+ 10 measured calls")
        shell.expect(r"In \[6\]: ")
        assert "LEAK +1/call" in shell.before and "warm-up" not in shell.before  # not shown a second time
        shell.sendline("%native_break")  # the breakpoint list: its text form, no widget in a terminal
        shell.expect(r"In \[7\]: ")
        assert "Num  Type   Enb  Hits  Where" in shell.before and "Box(" not in shell.before, shell.before
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)


def test_ctrl_c_at_the_native_prompt_ends_the_pause_and_frees_the_terminal(demo_crate, gdb_path):
    shell, _ = paused_frontend("ipython", "--simple-prompt", "--no-banner", "--colors=NoColor")
    try:
        shell.sendintr()
        shell.expect("KeyboardInterrupt")
        shell.expect(r"In \[5\]: ")
        shell.sendline("6 * 7")  # read by IPython, not by a console still waiting for `(native)`
        shell.expect(r"Out\[5\]: 42")
        shell.expect(r"In \[6\]: ")
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)


def test_ctrl_c_in_a_python_that_ignores_sigint_says_why_the_cell_ran_on(demo_crate, gdb_path):
    shell, _ = paused_frontend("ipython", "--simple-prompt", "--no-banner", "--colors=NoColor",
                               sigint=uninterruptible)
    try:
        shell.sendintr()
        shell.expect(r"Out\[4\]: 42")
        shell.expect(r"In \[5\]: ")
        assert "native pause ended by the Interrupt" in shell.before, shell.before
        assert "ignores SIGINT" in shell.before and "KeyboardInterrupt" in shell.before, shell.before
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)


@pytest.mark.kernel
@pytest.mark.serial  # jupyter console reads IOPub and stdin apart: on a loaded machine the prompt can come first
def test_terminal_ipython_shows_an_attach_in_progress_as_one_redrawn_line(demo_crate, gdb_path):
    """Terminal IPython prints each display update as a new line: the progress of an attach
    (shown from the start with attach_progress_after = 0) is one line redrawn in place instead."""
    shell = loaded_frontend("ipython", "--simple-prompt", "--no-banner", "--colors=NoColor")
    try:
        shell.sendline("%config NativeDebugger.attach_progress_after = 0")
        shell.expect(r"In \[4\]: ")
        shell.sendline("%native_attach")
        shell.expect(r"In \[5\]: ")
        out = shell.before
        assert "native debugger attached to kernel pid" in out, repr(out)
        assert "\r\x1b[Knative debugger: attaching" in out, repr(out)  # drawn in place
        assert not re.search(r"native debugger: attaching[^\r\n]*\n", out), repr(out)  # never a line of its own
        assert len(re.findall(r"native debugger: gdb attached in \d+\.\d s\r?\n", out)) == 1, repr(out)
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)


def test_pause_in_jupyter_console_without_cargo_on_path(demo_crate, gdb_path):
    """jupyter console is a kernel client with a terminal: the (native) prompt arrives as an
    input request. Its kernel's PATH lacks ~/.cargo/bin, as when Jupyter is started by a
    desktop launcher: the Rust pretty-printers must still be found."""
    console, created = paused_frontend("jupyter", "console", "--simple-prompt")
    try:
        assert "native breakpoint 1 at" in created and "print raw" not in created
        assert 'label  = "total=21"' in console.before, console.before  # a String, pretty-printed
        assert "values = Vec(size=3) = {1, 2, 3}" in console.before
        continue_and_exit(console)
        console.sendline("exit")
        console.expect(pexpect.EOF)
    finally:
        console.close(force=True)


@pytest.mark.kernel
def test_attach_says_when_rust_values_will_print_raw(demo_crate, gdb_path, tmp_path):
    nowhere = str(tmp_path / "no-toolchain")
    kernel = KernelHarness(env={"PATH": "/usr/bin:/bin", "CARGO_HOME": nowhere, "RUSTUP_HOME": nowhere})
    try:
        kernel.run("%load_ext pyo3_debug_magic")
        attached = kernel.run("%native_attach", timeout=60).output
        assert "Rust pretty-printers not found" in attached and "PYO3_DEBUG_MAGIC_RUSTC" in attached, attached
    finally:
        kernel.shutdown()


@pytest.mark.kernel
def test_kernel_restart_leaves_no_agent_or_gdb(demo_crate, gdb_path):
    kernel = KernelHarness()
    try:
        kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo")
        kernel.run(f"%native_break src/lib.rs:{marker_line('square')}", timeout=60)
        old = agent_processes(kernel.pid) + gdb_processes(kernel.pid)
        assert len(old) >= 2
        kernel.manager.restart_kernel(now=False)
        kernel.client.wait_for_ready(timeout=60)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(is_alive(pid) for pid in old):
            time.sleep(0.2)
        assert not any(is_alive(pid) for pid in old), "the old agent/gdb outlived the restart"
        assert kernel.run("1 + 1").results == ["2"]
    finally:
        kernel.shutdown()


def test_a_hung_cell_is_debugged_in_place_in_terminal_ipython(demo_crate, gdb_path):
    shell = watched_ipython()
    try:
        # ~11 s of work: on a loaded machine the view and the question can take seconds to come,
        # and the loop must still be running when `p` arrives
        shell.sendline("rustdemo.busy_work(1_000_000_000)")
        shell.expect("the main thread looks stuck")                      # the hang view, as text
        shell.expect(r"\(native\) p pauses the stuck thread here, Enter lets it run on: ")
        shell.sendline("p")
        # caught in busy_work's loop, in the mix_round it calls or in the std rotate_left that
        # calls (a debug build): the pause is where it was
        shell.expect(r"thread 1 paused where it was stuck, in (rustdemo::(busy_work|mix_round)|\S*rotate_left) at ")
        shell.expect(r"\(native\) ")
        shell.sendline("bt")
        shell.expect(r"\(native\) ")
        level = re.search(r"#(\d+)\s+rustdemo::(busy_work|mix_round)\s", shell.before).group(1)
        shell.sendline(f"frame {level}")  # both have a `state`
        shell.expect(r"\(native\) ")
        shell.sendline("p state")
        shell.expect(r"state = \d+")
        shell.expect(r"\(native\) ")
        shell.sendline("c")
        leave(shell, r"Out\[4\]: \d+", r"In \[5\]: ")
    finally:
        shell.close(force=True)


def test_a_hung_thread_that_keeps_the_gil_gets_the_prompt_from_the_helper(demo_crate, gdb_path):
    """Asleep in libc holding the GIL: no line of the crate is reached, no Python can run in
    the process; the helper asks on the terminal, reading only what needs no call into it."""
    shell = watched_ipython()
    try:
        shell.sendline("rustdemo.sleep_holding_gil(12)")
        shell.expect("keeps the GIL outside your crate, so no Python can run to show it", timeout=30)
        shell.expect("thread 1 held where it was stuck \\(it keeps the GIL\\), in")
        shell.expect(r"\(native\) ")
        shell.sendline("bt")
        shell.expect(f"rustdemo::sleep_holding_gil  at src/lib.rs:{marker_line('sleep-holding-gil')}")
        shell.expect(r"\(native\) ")
        shell.sendline("n")
        shell.expect("stepping is not offered here")
        shell.expect(r"\(native\) ")
        shell.sendline("c")
        shell.expect("letting it run on")
        leave(shell, r"Out\[4\]: 12", r"In \[5\]: ")
    finally:
        shell.close(force=True)
