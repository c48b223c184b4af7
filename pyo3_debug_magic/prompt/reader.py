"""Reading ``(native)`` commands on the pause console's thread, in a way the Interrupt can end.

A pause ended by the Interrupt button leaves the console thread waiting for an answer that
will never come. Left waiting, it would take the answer meant for the next cell's
``input()`` (ipykernel polls one stdin socket from whichever threads ask) or the next line
typed at the terminal. ``cancel()`` ends the wait: in a kernel by raising KeyboardInterrupt
in the waiting thread (ipykernel's input loop polls every 10 ms and lets it through), in a
terminal by the read loop's own check.
"""
from __future__ import annotations

import builtins
import ctypes
import inspect
import os
import select
import sys
import threading


class InputCancelled(Exception):
    """The pause this input was for has ended."""


class CommandReader:
    """``read()`` on the console thread; ``cancel()`` from any other thread."""

    def __init__(self, stdin=None, stdout=None) -> None:
        self.stdin, self.stdout = stdin, stdout  # a terminal of its own (pytest); else sys.std*
        self._lock = threading.Lock()
        self._waiting: int | None = None  # ident of the thread inside a kernel input()
        self._cancelled = threading.Event()

    def read(self, prompt: str) -> str:
        """One line; InputCancelled if cancel() ended the wait, EOFError at end of input."""
        self._cancelled.clear()
        if self.stdin is None and inspect.ismethod(builtins.input):  # ipykernel's raw_input, patched in
            return self._read_from_kernel(prompt)
        return self._read_from_terminal(prompt)

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            if self._waiting is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._waiting),
                                                           ctypes.py_object(KeyboardInterrupt))

    def _read_from_kernel(self, prompt: str) -> str:
        try:
            with self._lock:
                self._waiting = threading.get_ident()
            answer = input(prompt)
            with self._lock:
                self._waiting = None
            return answer
        except KeyboardInterrupt:
            with self._lock:
                self._waiting = None
            if self._cancelled.is_set():
                raise InputCancelled() from None
            raise

    def _read_from_terminal(self, prompt: str) -> str:
        stdin, stdout = self.stdin or sys.stdin, self.stdout or sys.stdout
        try:
            stdin.fileno()
        except (AttributeError, OSError, ValueError):
            return input(prompt)  # a stdin without a file descriptor: cannot be watched, only read
        stdout.write(prompt)
        stdout.flush()
        while not self._cancelled.is_set():
            ready, _, _ = select.select([stdin], [], [], 0.1)
            if ready:
                line = stdin.readline()
                if not line:
                    raise EOFError
                return line.rstrip("\n")
        stdout.write("\n")
        raise InputCancelled()


class TerminalWriter:
    """The console's ``show`` on a terminal descriptor of its own (a test run's, or the one
    the helper was given): one line a call, flushed; a terminal gone away is ignored."""

    def __init__(self, descriptor: int):
        self.stream = os.fdopen(descriptor, "w", closefd=False)

    def __call__(self, text: str, html: str | None = None) -> None:
        try:
            self.stream.write(text if text.endswith("\n") else text + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass
