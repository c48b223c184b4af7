"""A bound on ``pytest --refcheck``'s repetitions: a test whose repeated runs stop making progress
is stopped with every thread's stack, so a suite never runs on without end.

Progress is a repetition that returns. After ``limit`` seconds without one, the watchdog reads
every thread's merged Rust + Python stack, then interrupts the main thread with a signal (a
blocked ``lock.acquire()`` returns to run its handler) and the handler raises
``RepetitionsStalled``. A main thread that cannot run Python any more (it waits for a GIL that
another thread keeps) never runs the handler: after ``limit`` more seconds the watchdog writes
the stacks to the terminal and ends the process, as pytest-timeout's thread method does. A
thread that keeps the GIL forever freezes every Python thread, this one too: for that case
faulthandler's C watchdog (no GIL needed) prints the Python frames and ends the process after
twice the limit.
"""
from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
import traceback
from typing import Callable

from pyo3_debug_magic.refchecker.engine import RefcheckInterrupted

INTERRUPT_SIGNAL = signal.SIGUSR2
RETRY_EVERY = 1.0  # s between interrupts while the main thread has not left the stalled call


class RepetitionsStalled(RefcheckInterrupted):
    """Raised in the main thread when the repetitions made no progress for the limit."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def every_threads_stack(debugger=None, test_file: str = "") -> str:
    """Every thread's merged stack but the caller's own, through gdb (the attached native
    debugger, else one attached for this), else py-spy's (it may drop middle Rust frames), else
    (no ptrace) the Python frames the interpreter itself knows. Stacks that run through
    ``test_file`` end at its outermost frame (pytest's own left out)."""
    from dataclasses import replace

    from pyo3_debug_magic.stacks import backtrace
    from pyo3_debug_magic.stacks import merging
    from pyo3_debug_magic.debugger import NativeDebugger
    from pyo3_debug_magic.model import HelperSetup
    from pyo3_debug_magic.render import text

    own = threading.get_native_id()
    try:
        if debugger is not None and debugger.attached:
            snapshot = debugger.snapshot()
        else:
            once = NativeDebugger(setup=HelperSetup(tee_stderr=False))  # pytest's capture owns fd 2
            try:
                once.attach()
                snapshot = once.snapshot()
            except Exception:  # noqa: BLE001 - gdb missing or not permitted: py-spy next
                snapshot = backtrace.capture("py-spy", pid=os.getpid())
            finally:
                once.close()
        threads = tuple(replace(t, entries=merging.through_test_file(t.entries, test_file, lambda e: e.kind == "python"))
                        for t in snapshot.threads if t.os_thread_id != own and not _ours(t))
        return text.snapshot(replace(snapshot, threads=threads))
    except Exception as error:  # noqa: BLE001 - the Python frames still say where it stands
        names = {t.ident: t.name for t in threading.enumerate()}
        parts = [f"(merged stacks unavailable: {error}; Python frames only)"]
        for ident, frame in sys._current_frames().items():
            if ident != threading.get_ident():
                parts.append(f'Thread "{names.get(ident, ident)}":\n' + "".join(traceback.format_stack(frame)))
        return "\n".join(parts)


def _ours(thread) -> bool:
    """The debugger's own threads: nothing the test runs."""
    return (thread.name or "").startswith(("pyo3-debug", "refcheck-watchdog"))


class StallWatchdog:
    """Use as a context manager around the repetitions; call ``progress()`` after each one."""

    def __init__(self, limit: float, describe: Callable[[float, str], str],
                 stacks: Callable[[], str] = every_threads_stack,
                 give_up: Callable[[str], None] | None = None, backstop_fd: int | None = None):
        """``describe(seconds, stacks)`` words the failure; ``give_up(text)`` is called when the
        main thread cannot be interrupted (default: write to stderr and exit); ``backstop_fd``
        (a terminal's descriptor) arms faulthandler's last resort."""
        self.limit = limit
        self.describe = describe
        self.stacks = stacks
        self.give_up = give_up or _exit_with
        self._last = time.monotonic()
        self._done = threading.Event()
        self._message: str | None = None
        self._thread: threading.Thread | None = None
        self._previous_handler = None
        self._can_interrupt = threading.current_thread() is threading.main_thread()
        self._backstop_fd = backstop_fd

    def progress(self, _calls: int = 0) -> None:
        self._last = time.monotonic()
        self._arm_backstop()

    def _arm_backstop(self) -> None:
        if self._backstop_fd is not None:
            faulthandler.dump_traceback_later(2 * self.limit + 5, exit=True, file=self._backstop_fd)

    def __enter__(self) -> "StallWatchdog":
        self._last = time.monotonic()
        self._arm_backstop()
        if self._can_interrupt:
            self._previous_handler = signal.signal(INTERRUPT_SIGNAL, self._interrupted)
        self._thread = threading.Thread(target=self._watch, name="refcheck-watchdog", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._backstop_fd is not None:
            faulthandler.cancel_dump_traceback_later()
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self._can_interrupt:
            signal.signal(INTERRUPT_SIGNAL, self._previous_handler)

    def _interrupted(self, signum, frame) -> None:
        if self._message is not None and not self._done.is_set():
            raise RepetitionsStalled(self._message)

    def _watch(self) -> None:
        while not self._done.wait(0.2):
            stalled_for = time.monotonic() - self._last
            if stalled_for < self.limit:
                continue
            if self._backstop_fd is not None:  # its thread ends: not one of the stacks shown
                faulthandler.cancel_dump_traceback_later()
            self._message = self.describe(stalled_for, self.stacks())
            self._arm_backstop()
            deadline = time.monotonic() + self.limit
            while not self._done.is_set() and time.monotonic() < deadline:
                if self._can_interrupt:
                    signal.pthread_kill(threading.main_thread().ident, INTERRUPT_SIGNAL)
                self._done.wait(RETRY_EVERY)
            if not self._done.is_set():
                self.give_up(self._message + "\nthe main thread could not be interrupted (it waits for "
                                             "something no Python code can run for): ending the process")
            return


def _exit_with(text: str) -> None:
    os.write(2, ("\n" + text + "\n").encode(errors="replace"))
    os._exit(1)
