"""Faults of the debugger's own processes, each from three states of a kernel: paused at a
breakpoint, running through a log breakpoint, and attached but idle.

The faults: SIGKILL of gdb and of the agent, SIGSTOP of each (SIGCONT after 40 s), and the
kernel-agent socket shut down. After each the cell that was running gives its right result,
the kernel's state is intact, no gdb outlives its agent, and the debugger works again.
"""
from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import threading
import time

import pytest

from harness import agent_processes, gdb_processes
from test_reliability import break_at, shown, start_kernel, still_intact, wait_until

pytestmark = [pytest.mark.kernel, pytest.mark.gdb, pytest.mark.reliability, pytest.mark.slow]

# The fault matrix runs its kernels with shorter bounds than the defaults (gdb 10 s, the helper
# 25 s): the same paths (a stopped gdb or helper noticed, said, survived) in half the wait. A
# stopped process stays stopped past both.
FAULT_BOUNDS = {"PYO3_DEBUG_MAGIC_GDB_TIMEOUT": "5", "PYO3_DEBUG_MAGIC_REQUEST_TIMEOUT": "12"}
STOP_SECONDS = 20
FAULTS = ["gdb SIGKILL", "gdb SIGSTOP", "agent SIGKILL", "agent SIGSTOP", "socket shut down"]
STATES = ["paused", "logging", "idle"]
LOOP = "sum(rustdemo.square(i) for i in range({}))"  # square(i) is a log breakpoint's line
# what the paused cell tells the user about each fault it survives
EXPLAINED = {"gdb SIGSTOP": "is stopped", "agent SIGKILL": "exited unexpectedly",
             "agent SIGSTOP": "did not answer", "socket shut down": "connection to the debugger helper broke"}


def shut_down_agent_socket(agent: int) -> None:
    """Shut the agent's end of its socketpair down from outside (pidfd_getfd): both sides read
    end-of-file, as when either process's socket code fails."""
    pidfd = os.pidfd_open(agent)
    try:
        for name in os.listdir(f"/proc/{agent}/fd"):
            if os.readlink(f"/proc/{agent}/fd/{name}").startswith("socket:"):
                libc = ctypes.CDLL(None, use_errno=True)
                copy = libc.syscall(438, pidfd, int(name), 0)  # SYS_pidfd_getfd
                assert copy >= 0, os.strerror(ctypes.get_errno())
                with socket.socket(fileno=copy) as ours:
                    ours.shutdown(socket.SHUT_RDWR)
                return
    finally:
        os.close(pidfd)
    raise AssertionError(f"agent {agent} has no socket")


class Fault:
    """One fault, injected once; stopped processes get SIGCONT after STOP_SECONDS."""

    def __init__(self, kernel, name: str):
        self.kernel, self.name = kernel, name
        self.victims: list[int] = []
        self.resumed = threading.Event()
        self.injected_at: float | None = None

    def inject(self) -> None:
        target, _, how = self.name.partition(" ")
        finder = gdb_processes if target == "gdb" else agent_processes
        self.victims = finder(self.kernel.pid)
        assert self.victims, f"no {target} process to fault"
        self.injected_at = time.monotonic()
        if how == "shut down":
            shut_down_agent_socket(self.victims[0])
            self.resumed.set()
            return
        for pid in self.victims:
            os.kill(pid, getattr(signal, how))
        if how == "SIGSTOP":
            threading.Timer(STOP_SECONDS, self.cont).start()
        else:
            self.resumed.set()

    def cont(self) -> None:
        for pid in self.victims:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.resumed.set()

    def wait_resumed(self) -> None:
        assert self.resumed.wait(STOP_SECONDS + 10)


@pytest.mark.timeout(STOP_SECONDS + 200)
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("fault_name", FAULTS)
def test_fault(demo_crate, tmp_path, reliability, fault_name, state):
    kernel = start_kernel(env={"PYO3_DEBUG_MAGIC_STATE": str(tmp_path / "state"), **FAULT_BOUNDS})
    fault = Fault(kernel, fault_name)
    try:
        outcome = run_into(kernel, fault, state)
        if outcome == "died":
            outcome = died_with_a_report(kernel, fault, state)
        fault.wait_resumed()
        still_intact(kernel)
        # no gdb outlives its agent; the debugger works again (attaching anew where needed)
        assert wait_until(lambda: len(gdb_processes(kernel.pid)) <= len(agent_processes(kernel.pid)), 15)
        break_at(kernel, "square")
        again = kernel.run("rustdemo.square(5)", answers=["c"], timeout=90)
        assert again.status == "ok" and again.results == ["25"], again.text
        assert any("native breakpoint" in v and "hit" in v for v in shown(again)), shown(again)
        reliability.fault(f"{fault_name} ({state})", outcome)
    finally:
        fault.cont()
        assert kernel.shutdown() == [], "the agent or gdb outlived the kernel"


def died_with_a_report(kernel, fault: Fault, state: str) -> str:
    """Only gdb's death can take a kernel with it (a thread stopped at its breakpoint gets the
    SIGTRAP), and then the next kernel says so."""
    assert fault.name == "gdb SIGKILL" and state in ("paused", "logging"), f"{fault.name} ({state}) killed the kernel"
    kernel.manager.restart_kernel(now=True)
    kernel.client.wait_for_ready(timeout=60)
    loaded = kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo\nkeep = {'set': 'before'}")
    announced = loaded.output
    assert "The previous kernel crashed: SIGTRAP: gdb (pid" in announced, loaded.text
    assert ("was paused at breakpoint 1 in rustdemo::square" if state == "paused"
            else "at log breakpoint 1") in announced, announced
    return "kernel died of SIGTRAP; the next kernel's crash report says gdb was killed"


def run_into(kernel, fault: Fault, state: str) -> str:
    """Bring the kernel into ``state``, inject the fault there; what the user saw, in short
    ("died" when the kernel died)."""
    if state == "paused":
        break_at(kernel, "square")
        answers = []

        def at_prompt(prompt):
            answers.append(prompt)
            if len(answers) == 1:
                fault.inject()
            elif fault.name.endswith("SIGSTOP") and not fault.resumed.is_set():
                fault.wait_resumed()  # the user tries again once the process is back
            return "c"

        started = time.monotonic()
        result = kernel.run("rustdemo.square(12)", answers=at_prompt, timeout=STOP_SECONDS + 100)
        if result.status == "died":
            return "died"
        assert result.status == "ok" and result.results == ["144"], f"{result.status}: {result.text}"
        messages = [v.splitlines()[0] for v in shown(result) if not v.startswith("native breakpoint")]
        explained = [m for m in messages if EXPLAINED[fault.name] in m]
        assert explained, f"the fault went unexplained: {messages}"
        return f"cell done in {time.monotonic() - started:.0f} s; {explained[0][:100]}"
    if state == "logging":
        break_at(kernel, "square", "--log value")
        calls = 20_000
        timer = threading.Timer(1.0, fault.inject)
        timer.start()
        started = time.monotonic()
        result = kernel.run(LOOP.format(calls), timeout=STOP_SECONDS + 100)
        timer.join()
        if result.status == "died":
            return "died"
        expected = str(sum(i * i for i in range(calls)))
        assert result.status == "ok" and result.results == [expected], f"{result.status}: {result.text}"
        assert fault.injected_at is not None and fault.injected_at - started < time.monotonic() - started
        took = time.monotonic() - started
        if fault.name.endswith("SIGSTOP") and took > STOP_SECONDS:
            # the cell waited for the stopped process: it is told so
            told = [v for v in shown(result) if "was stopped for" in v]
            assert told, shown(result)
            return f"logging cell done in {took:.0f} s, right result; {told[0][:90]}"
        return f"logging cell done in {took:.0f} s, right result"
    assert "attached" in kernel.run("%native_attach", timeout=60).output
    fault.inject()
    still_intact(kernel)  # cells that do not use the debugger run through any fault
    started = time.monotonic()
    shown_bt = kernel.run("%native_bt", timeout=STOP_SECONDS + 60)
    assert shown_bt.status in ("ok", "error"), shown_bt.text
    if shown_bt.status == "error":
        said = shown_bt.stderr.strip().splitlines()  # a message, not a traceback; what the helper
        assert len(said) <= 2 and "Traceback" not in shown_bt.text, shown_bt.text  # noticed follows it
        assert "native" in shown_bt.text or "helper" in shown_bt.text or "gdb" in shown_bt.text, shown_bt.text
    else:  # answered: the running cell's thread, as gdb or py-spy saw it
        assert re.search(r'Thread 1 "MainThread".*running this cell', shown_bt.output), shown_bt.text
    return f"%native_bt answered in {time.monotonic() - started:.0f} s ({shown_bt.status}): {shown_bt.text[:80]!r}"


@pytest.mark.timeout(180)
def test_interrupt_while_a_hit_waits_for_its_hand_off(demo_crate, reliability):
    """gdb is stopped when the breakpoint is hit, so the hit (and its GIL hand-off) waits; the
    Interrupt arrives meanwhile; then gdb continues and finds both at once."""
    kernel = start_kernel()
    gdbs: list[int] = []
    try:
        break_at(kernel, "square")
        gdbs = gdb_processes(kernel.pid)

        def interrupt_then_continue_gdb():
            time.sleep(1.5)  # the thread sits at the breakpoint, waiting for gdb
            kernel.manager.interrupt_kernel()
            time.sleep(1.5)
            for pid in gdbs:
                os.kill(pid, signal.SIGCONT)

        for pid in gdbs:
            os.kill(pid, signal.SIGSTOP)
        helper = threading.Thread(target=interrupt_then_continue_gdb)
        helper.start()
        result = kernel.run("rustdemo.square(12)", answers=lambda prompt: "c", timeout=90)
        helper.join()
        assert result.status == "error" and result.error["ename"] == "KeyboardInterrupt", result.text
        assert len(result.prompts) <= 1, result.prompts  # never a prompt for a pause already ended
        still_intact(kernel)
        again = kernel.run("rustdemo.square(5)", answers=["c"], timeout=90)
        assert again.status == "ok" and again.results == ["25"], again.text
        reliability.fault("Interrupt while a hit waits for its hand-off (gdb stopped, then continued)",
                          f"KeyboardInterrupt after {len(result.prompts)} prompt(s), kernel intact")
    finally:
        for pid in gdbs:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        assert kernel.shutdown() == []
