"""What a test run asks of a crash besides the report file (``model.CrashHandling``): the
process that crashed cannot report itself, so the agent prints the report on the terminal the
run gave it, writes a JUnit file naming the crashed test, and, for ``--native-pdb``, opens the
``(native)`` prompt at the faulting frame before letting the signal through."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from pyo3_debug_magic import model, userinput
from pyo3_debug_magic.stacks import merging, sources
from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.prompt.commands import crash_prompt
from pyo3_debug_magic.prompt.reader import CommandReader, TerminalWriter
from pyo3_debug_magic.crash.in_test_run import crash_text, junit_xml
from pyo3_debug_magic.agent.context import AgentContext
from pyo3_debug_magic.breakpoints.generated import first_user_level
from pyo3_debug_magic.gdb.mi import GdbCommandError, GdbTimeoutError

RUNNING_LIMIT = 4096  # bytes of the running file read: a node id, never a whole file


def read_running(path: str | None) -> str:
    """What the process was running (a test's node id), from the file it keeps up to date."""
    if not path:
        return ""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return ""
    try:
        return os.read(descriptor, RUNNING_LIMIT).decode(errors="replace").strip()
    finally:
        os.close(descriptor)


class CrashTerminal:
    """The terminal a test run gave the agent (``--terminal-in``/``--terminal-out``)."""

    def __init__(self, context: AgentContext, terminal_in: int | None, terminal_out: int | None):
        self.context = context
        self.input = os.fdopen(terminal_in, "r", closefd=False) if terminal_in is not None else None
        self.writer = TerminalWriter(terminal_out) if terminal_out is not None else None

    def write(self, text: str, html: str | None = None) -> None:
        if self.writer is not None:  # (a terminal gone away: the report file still holds everything)
            self.writer(text)

    def after_capture(self, record: model.CrashRecord, path: str | None) -> None:
        """Called with the written record, before the signal is let through."""
        handling = self.context.crash
        text = crash_text(record, path, handling.echo_note)
        if handling.prompt and self.available:
            self.write(f"\n{record.running or 'the process'} crashed: {record.summary}")
            self.prompt(record)
            self.write(f"(report: {path})" if path else "")
        elif handling.echo:
            self.write(text)
        if handling.junit_xml:
            try:
                Path(handling.junit_xml).write_bytes(junit_xml(record, text))
            except OSError as error:
                self.write(f"pyo3_debug_magic: cannot write {handling.junit_xml}: {error}")

    @property
    def available(self) -> bool:
        return self.input is not None and self.writer is not None

    def prompt(self, record: model.CrashRecord) -> None:
        """The (native) prompt at the faulting frame, on gdb's view of the stopped process."""
        row = next((r for r in record.threads if r.thread == record.thread), None)
        if row is None:
            self.write("(no stack was captured for the crashed thread: no prompt)")
            return
        signal = record.signal
        self._console(row, record.python, record.locals, record.faulting_user_frame or 0, "signal-received",
                      signal, record.running.partition("::")[0], ending=f"letting the process die of {signal}",
                      stuck=f"the thread crashed ({signal}): it cannot run on; `c` or `q` lets the process die")

    def held_prompt(self, reason: str, row: model.ThreadRow, python: model.PythonStacks) -> None:
        """A hung thread that keeps the GIL outside the user's crate (no Python can run in the
        kernel to show anything): the prompt on the terminal, the thread held meanwhile."""
        level = first_user_level(row.frames)
        try:
            variables = self.context.gdb.locals(row.thread, level, row.frames) if level is not None else ()
        except (GdbCommandError, GdbTimeoutError):
            variables = ()
        self.write(f"\nnative debugger: the main thread looks stuck ({reason}) and keeps the GIL outside your "
                   "crate, so no Python can run to show it; it is held here meanwhile")
        self._console(row, python, variables, level or 0, "hang-held", None, "", ending="letting it run on",
                      stuck="stepping is not offered here (a step would run code that keeps the GIL); "
                            "`c` lets it run on")

    def _console(self, row, python_stacks, variables, selected, reason, signal, test_file, ending, stuck) -> None:
        native = merging.native_frames(row.frames)
        python_thread = merging.python_thread_for(row, python_stacks)
        python = merging.python_frames_from_memory(python_thread.frames) if python_thread else ()
        python = merging.through_test_file(python, test_file)
        stop = model.Stop(row.thread, reason, None, False, native, merging.merge(native, python), variables,
                          selected=selected, signal=signal)
        stop = replace(stop, source_lines=sources.around(stop.frame))
        crash_prompt(stop, _StoppedProcess(self.context), self.write, CommandReader(self.input, self.writer.stream),
                     ending=ending, stuck=stuck)


class _StoppedProcess:
    """What the crash console asks of a debugger, answered by the agent's own gdb."""

    def __init__(self, context: AgentContext):
        self.context = context

    def locals(self, thread: int, frame: int = 0):
        return self._ask(lambda gdb: gdb.locals(int(thread), int(frame)))

    def evaluate(self, thread: int, frame: int, expression: str, raw: bool = False) -> str:
        userinput.check_expression(expression)
        return self._ask(lambda gdb: gdb.evaluate(int(thread), int(frame), expression, raw))

    def _ask(self, question):
        try:
            return question(self.context.gdb)
        except (GdbCommandError, GdbTimeoutError) as error:
            raise UsageProblem(f"gdb: {error}", "try another expression or frame") from None
