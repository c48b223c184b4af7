"""Every setting in one place, as IPython does it: a traitlets ``Configurable``.

``NativeDebugger`` (``debugger.py``) is this class, so ``%config NativeDebugger.hang_after = 5``
works in a session and ``c.NativeDebugger.hang_after = 5`` in ``ipython_config.py``. Each
setting left at its default follows its environment variable, so the variables keep working.
"""
from __future__ import annotations

import os

from traitlets import Float, TraitError, Unicode, validate
from traitlets.config import Configurable

from pyo3_debug_magic.model import AgentSettings
from pyo3_debug_magic.session import DEFAULT_REQUEST_TIMEOUT  # each default is written once, beside its user


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


# The agent bounds each gdb command by gdb_timeout and gdb each call into the kernel by 5 s;
# every request also carries the kernel's own wait, which the agent's inner waits never outlast.
MIN_REQUEST_MARGIN = 5.0


class DebuggerSettings(Configurable):
    """Settings of the native debugger (``%config NativeDebugger`` lists them)."""

    # empty: the environment variable when it is used, then the default search
    gdb = Unicode(help="gdb to run (empty: $PYO3_DEBUG_MAGIC_GDB, then the gdb next to this Python, "
                       "then PATH)").tag(config=True)
    py_spy = Unicode(help="py-spy to run (empty: $PYO3_DEBUG_MAGIC_PYSPY, then next to this Python, "
                          "then PATH)").tag(config=True)
    rustc = Unicode(help="rustc whose toolchain's gdb pretty-printers print Rust values (empty: "
                         "$PYO3_DEBUG_MAGIC_RUSTC, then PATH, ~/.cargo/bin, ~/.rustup)").tag(config=True)
    debug_file_directory = Unicode(
        help="colon-separated directories where gdb looks for separate debug info (empty: "
             "$PYO3_DEBUG_MAGIC_DEBUG_FILE_DIRECTORY, then gdb's /usr/lib/debug)").tag(config=True)
    hang_after = Float(help="seconds after an unhonoured Interrupt before a hang is reported; "
                            "env PYO3_DEBUG_MAGIC_HANG_AFTER").tag(config=True)
    safe_point_bound = Float(help="seconds a GIL-holding hung thread may run to a line of your crate "
                                  "before it is shown without a hand-off; "
                                  "env PYO3_DEBUG_MAGIC_SAFE_POINT_BOUND").tag(config=True)
    gdb_timeout = Float(help="seconds the helper waits for one gdb command; "
                             "env PYO3_DEBUG_MAGIC_GDB_TIMEOUT").tag(config=True)
    request_timeout = Float(help="seconds the kernel waits for the helper (at least gdb_timeout + 5); "
                                 "env PYO3_DEBUG_MAGIC_REQUEST_TIMEOUT").tag(config=True)
    attach_progress_after = Float(help="seconds an attach may take before the cell shows what it is doing "
                                       "(0: always show it); env PYO3_DEBUG_MAGIC_ATTACH_PROGRESS_AFTER"
                                  ).tag(config=True)

    def _hang_after_default(self):
        return _env_float("PYO3_DEBUG_MAGIC_HANG_AFTER", AgentSettings.hang_after)

    def _safe_point_bound_default(self):
        return _env_float("PYO3_DEBUG_MAGIC_SAFE_POINT_BOUND", AgentSettings.safe_point_bound)

    def _gdb_timeout_default(self):
        return _env_float("PYO3_DEBUG_MAGIC_GDB_TIMEOUT", AgentSettings.gdb_timeout)

    def _request_timeout_default(self):
        return _env_float("PYO3_DEBUG_MAGIC_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT)

    def _attach_progress_after_default(self):
        return _env_float("PYO3_DEBUG_MAGIC_ATTACH_PROGRESS_AFTER", 1.0)

    @validate("attach_progress_after")
    def _not_negative(self, proposal):
        if not 0 <= proposal["value"] < 1e6:
            raise TraitError("attach_progress_after must be 0 or a positive number of seconds")
        return proposal["value"]

    @validate("hang_after", "safe_point_bound", "gdb_timeout", "request_timeout")
    def _positive(self, proposal):
        if not 0 < proposal["value"] < 1e6:
            raise TraitError(f"{proposal['trait'].name} must be a positive number of seconds")
        return proposal["value"]

    @property
    def request_wait(self) -> float:
        """The kernel's wait for one request: never shorter than the agent's own bound on it."""
        return max(self.request_timeout, self.gdb_timeout + MIN_REQUEST_MARGIN)

    def agent_settings(self) -> AgentSettings:
        """The part of the settings the agent applies."""
        return AgentSettings(gdb_timeout=self.gdb_timeout, hang_after=self.hang_after,
                        safe_point_bound=self.safe_point_bound,
                        debug_file_directory=self.debug_file_directory, rustc=self.rustc,
                        py_spy=self.py_spy)
