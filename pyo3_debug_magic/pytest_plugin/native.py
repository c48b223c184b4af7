"""The native debugger in a pytest run: one agent per test process, attached once.

Every process that runs tests (pytest itself, each pytest-xdist worker, each pytest-forked
child) attaches its own agent at its first test, not per test. Before each test it writes
the test's node id to a small file the agent reads when the process crashes, so the report
names the test. The process that crashed cannot report itself:

* run plainly, the agent prints the report on the run's terminal (and writes the JUnit file)
  before the signal kills pytest;
* under pytest-xdist or pytest-forked, the process that survives (the controller, the
  forking parent) finds the report by node id and puts it in the test's failure report, so
  it reaches the terminal summary and JUnit XML like any failure.
"""
from __future__ import annotations

import os
import secrets
import threading
from dataclasses import replace

from pyo3_debug_magic.crash import report_files
from pyo3_debug_magic.prompt.reader import CommandReader, TerminalWriter
from pyo3_debug_magic.debugger import BreakpointRequest, NativeDebugger
from pyo3_debug_magic.crash.error_trail import ErrorTrail
from pyo3_debug_magic.errors import DebugMagicError
from pyo3_debug_magic.model import CrashHandling, HelperSetup, LogHit, Stop
from pyo3_debug_magic.stacks.merging import through_test_file
from pyo3_debug_magic.paths import private_subdir
from pyo3_debug_magic.render import text as render_text

RUN_ENV = "PYO3_DEBUG_MAGIC_PYTEST_RUN"  # one id per run, inherited by workers and forked children
NATIVE_PDB_HELP = """native commands (pyo3_debug_magic, with --native-pdb):
  native bt    the Rust frames at each point the failing call's error crossed between Rust and
               Python (a panic, an exception coming back into Rust, an error handed to Python)
  native help  this text"""
PLAIN_RUN_NOTE = ("pytest's process died with it: the tests after this one did not run. "
                  "`-p xdist -n 2` or `--forked` go on past a crash, reporting it as this test's failure.")


class NativeTestRun:
    """One pytest run with ``--native-crash``, ``--native-break`` or ``--native-pdb``."""

    def __init__(self, config, breaks: list[str], pdb: bool):
        self.config = config
        self.breaks = list(breaks)
        self.pdb = pdb
        self.run_id = os.environ.get(RUN_ENV) or secrets.token_hex(6)
        os.environ[RUN_ENV] = self.run_id
        self.identity = f"pytest-{self.run_id}"
        self.directory = private_subdir(report_files.report_dir(), "pytest")
        self.worker = hasattr(config, "workerinput")  # a pytest-xdist worker
        self.main_pid = os.getpid()
        # the terminal as it is before capture takes fds 0-2: a crash report and a prompt go there
        self.terminal = None if self.worker else (os.dup(_original_stdin(config)), os.dup(1))
        self.interactive = self.terminal is not None and os.isatty(self.terminal[0])
        self.say = TerminalWriter(self.terminal[1]) if self.terminal is not None else None
        self.debugger: NativeDebugger | None = None
        self.node_id = ""
        self.trail: ErrorTrail | None = None  # --native-pdb: where errors crossed, for --pdb's prompt
        self.crossings: list = []             # the current test's
        self.pid: int | None = None
        self.problem: str | None = None
        self._running_fd: int | None = None
        self.crashes: list[tuple[str, str]] = []   # (node id, summary) reported in this process
        self.hits: list[tuple[str, int]] = []       # (node id, breakpoint hits logged)
        self._claimed: set[str] = set()
        self._early: threading.Thread | None = None
        self._early_error: BaseException | None = None

    def start_early(self) -> None:
        """Attach in the background while pytest collects, in a process that runs tests itself
        (not xdist's controller, not the parent pytest-forked forks for every test)."""
        option = self.config.option
        if getattr(option, "forked", False) or (not self.worker and getattr(option, "dist", "no") != "no"):
            return

        def start() -> None:
            try:
                self._start_in_this_process()
            except BaseException as error:  # noqa: BLE001 - raised again by the first test
                self._early_error = error

        self._early = threading.Thread(target=start, name="pyo3-native-attach", daemon=True)
        self._early.start()

    @property
    def forked_child(self) -> bool:
        """This process is a child pytest-forked made for one test."""
        return os.getpid() != self.main_pid and not self.worker

    # ----- the test process -----------------------------------------------------------
    def test_starts(self, node_id: str) -> None:
        """Attach on this process's first test (again in a forked child); name the test."""
        self.node_id = node_id
        if self._early is not None:
            self._early.join()
            self._early, error, self._early_error = None, self._early_error, None
            if error is not None:
                raise error
        if self.pid != os.getpid():
            self._start_in_this_process()
        self.crossings = []
        if self.trail is not None:
            self.debugger.take_log_hits()  # crossings between tests belong to no test
        if self._running_fd is not None:
            data = node_id.encode(errors="replace")
            os.ftruncate(self._running_fd, 0)
            os.pwrite(self._running_fd, data, 0)

    def _start_in_this_process(self) -> None:
        inherited, self.debugger = self.debugger, None
        if inherited is not None:
            inherited._session = None  # the forking parent's agent: never talk to it or close it
        self.pid = os.getpid()
        running = self.directory / f"running-{self.run_id}-{self.pid}"
        self._running_fd = os.open(running, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        plain = not self.worker and not self.forked_child
        debugger = NativeDebugger(setup=HelperSetup(
            crash_identity=self.identity, crash_directory=str(self.directory), terminal=self.terminal,
            tee_stderr=False,  # pytest's capture owns fd 2
            defer_symbols=not (self.breaks or self.pdb),  # read at a crash (or a fixture's first request)
            crash_handling=CrashHandling(
                running_file=str(running), echo=plain, prompt=self.pdb and self.interactive,
                junit_xml=getattr(self.config.option, "xmlpath", None) if plain else None,
                echo_note=PLAIN_RUN_NOTE)))
        try:
            debugger.attach()
            if self.interactive:
                self._start_console(debugger)
            # without a terminal, a hit is logged (the test's report carries it) and the thread runs on
            debugger.set_pausing_allowed(self.interactive, "no terminal")
            for location in self.breaks:
                info = debugger.set_breakpoint(BreakpointRequest(location))
                if self.interactive:
                    self.say(render_text.breakpoint_created(info))
            self.trail = ErrorTrail(debugger) if self.pdb else None
        except DebugMagicError as error:
            debugger.close()
            self.problem = f"native debugger not attached in pid {self.pid}: {error}"
            raise
        self.debugger = debugger

    def _start_console(self, debugger: NativeDebugger) -> None:
        """The (native) prompt of a pause, on the run's terminal (capture does not reach it)."""
        from pyo3_debug_magic.notebook.console import PauseConsole

        terminal_in = os.fdopen(self.terminal[0], "r", closefd=False)
        console = PauseConsole(debugger, show=self.say, reader=CommandReader(terminal_in, self.say.stream),
                               shape_stop=self._down_to_test)
        debugger.add_listener(console.handle)
        console.start()

    def _down_to_test(self, stop: Stop) -> Stop:
        test_file = self.node_id.partition("::")[0]
        return replace(stop, stack=replace(stop.stack, python=through_test_file(stop.stack.python, test_file)))

    def test_hits(self, node_id: str) -> list[LogHit]:
        """Breakpoint hits logged during the test (no terminal to pause at); the test's error
        crossings are kept for ``--pdb``'s ``native`` command."""
        if self.debugger is None or not (self.breaks or self.trail):
            return []
        hits = self.debugger.take_log_hits()
        if self.trail is not None:
            crossings, hits = self.trail.split(hits)
            self.crossings += crossings
        if hits:
            self.hits.append((node_id, len(hits)))
        return hits

    def native_command(self, argument: str) -> str:
        """``native`` at pytest's ``--pdb`` prompt."""
        if argument.strip() in ("", "bt", "backtrace", "where"):
            if self.trail is None:
                return "no error trail in this process (the native debugger did not attach)"
            return self.trail.render(self.crossings)
        return NATIVE_PDB_HELP

    def close(self) -> None:
        if self._early is not None:
            self._early.join()
        if self.debugger is not None and self.pid == os.getpid():
            self.debugger.close(wait=False)  # pytest is exiting: the agent detaches on its own
        if self._running_fd is not None and self.pid == os.getpid():
            os.close(self._running_fd)
            self._running_fd = None
        if os.getpid() == self.main_pid and not self.worker:  # the run is over: its workers' files too
            for path in self.directory.glob(f"running-{self.run_id}-*"):
                path.unlink(missing_ok=True)

    # ----- the process that outlives a crash (xdist's controller, pytest-forked's parent) --
    def crash_report_for(self, node_id: str) -> report_files.CrashFile | None:
        """The report an agent of this run wrote for ``node_id``'s crash, once."""
        if node_id in self._claimed:
            return None
        for report in reversed(report_files.reports(self.identity, self.directory)):
            if report.data.get("running") == node_id:
                self._claimed.add(node_id)
                return report
        return None


def _original_stdin(config) -> int:
    """The descriptor of the run's own stdin: pytest's fd capture keeps stdin on /dev/null even
    between tests (its saved copy of fd 0 is the terminal); fd 0 itself with ``-s``."""
    capture = config.pluginmanager.getplugin("capturemanager")
    stdin_capture = getattr(getattr(capture, "_global_capturing", None), "in_", None)
    return getattr(stdin_capture, "targetfd_save", 0)
