"""Where an error crossed between Rust and Python, recorded as it happened.

A Python traceback of a failure that went through Rust shows no Rust frame: by the time it is
read, the Rust code has returned. Log breakpoints (they never stop the test) record the
native stack at each crossing: a Rust panic, PyO3 taking a Python exception (a call into
Python raised, e.g. a callback), PyO3 handing an error to Python. They sit on PyO3's own
functions in each extension, so the interpreter's many internal error checks never stop.
pytest's ``--pdb`` prompt shows them with the ``native`` command (``pytest --native-pdb --pdb``).
"""
from __future__ import annotations

import re

from pyo3_debug_magic.errors import DebugMagicError
from pyo3_debug_magic.breakpoints.locations import is_user_source
from pyo3_debug_magic.model import LogHit

CROSSINGS = (  # (function, what a call means)
    ("__rustc::rust_begin_unwind", "a Rust panic"),  # the panic handler, as rustc names it now
    ("rust_begin_unwind", "a Rust panic"),           # ... and did before Rust 1.87
    # fetch, not take: PyO3 calls take at the end of every Python iterator (a NULL from
    # PyIter_Next may mean "exhausted"), so a stop there made a pooled test 100x slower; fetch
    # runs only after a call into Python returned an error
    ("pyo3::err::PyErr::fetch", "PyO3 took a Python exception (a call into Python raised)"),
    ("pyo3::err::PyErr::restore", "Rust handed an error to Python"),
)
LIBRARY = re.compile(r"^(<)?(pyo3|pyo3_ffi|core|std|alloc|__rustc)::")
GENERIC_ARGUMENT_CRATE = re.compile(r"(?:<|,\s*|\*mut |\*const |&)([a-z_][a-z0-9_]*)::")  # first segment of each
LIBRARY_CRATES = {"pyo3", "pyo3_ffi", "core", "std", "alloc", "__rustc"}
SHOWN = 6  # crossings shown, the latest


class ErrorTrail:
    """The crossing breakpoints of one attached debugger, and what their hits mean."""

    def __init__(self, debugger):
        self.kinds: dict[int, tuple[str, str]] = {}
        for function, meaning in CROSSINGS:
            try:
                number = debugger.log_calls(function, f"(error trail) {function}")
            except DebugMagicError:
                continue  # no such function in this toolchain's std
            self.kinds[number] = (function, meaning)

    def split(self, records: list[LogHit]) -> tuple[list[LogHit], list[LogHit]]:
        """(crossings, every other record)."""
        ours = [r for r in records if r.number in self.kinds]
        return ours, [r for r in records if r.number not in self.kinds]

    def render(self, crossings: list[LogHit]) -> str:
        """The Rust frames at each crossing, oldest first; library frames folded."""
        if not crossings:
            return ("no error crossed between Rust and Python during this test's call: the failure "
                    "did not come from Rust, or from a thread other Rust code started")
        lines = [f"Rust at each crossing between Rust and Python during the test ({len(crossings)} "
                 f"recorded{', the latest ' + str(SHOWN) if len(crossings) > SHOWN else ''}), oldest first:"]
        for index, record in enumerate(crossings[-SHOWN:], 1):
            function, meaning = self.kinds.get(record.number, ("?", "?"))
            lines.append(f"[{index}] {meaning} ({function}, thread {record.thread}):")
            lines += _frames(record.backtrace)
        return "\n".join(lines)


def _users(place) -> bool:
    return is_user_source(place.fullname) and not LIBRARY.match(place.func or "")


def _frames(places) -> list[str]:
    lines, folded = [], 0
    for place in places:
        if _users(place):
            if folded:
                lines.append(f"      ... {folded} library frames")
                folded = 0
            lines.append(f"      {place.func}  at {place.file}:{place.line}")
        else:
            folded += 1
    if lines:
        return lines
    # no frame of the user's code is left (an error built in Rust and returned): PyO3's frames
    # that name the user's crate in their generic parameters say which function it was
    naming = [p for p in places if set(GENERIC_ARGUMENT_CRATE.findall(p.func or "")) - LIBRARY_CRATES]
    if naming:
        return ["      (the Rust function had returned; PyO3's frames for it:)"] + [
            f"      {p.func}  at {p.file or '?'}:{p.line or '?'}" for p in naming[:3]]
    return [f"      {p.func}  at {p.file or '?'}:{p.line or '?'}" for p in places[:4]]
