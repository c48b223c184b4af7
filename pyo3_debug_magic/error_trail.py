"""Where an error crossed between Rust and Python, recorded as it happened.

A Python traceback of a failure that went through Rust shows no Rust frame: by the time it is
read, the Rust code has returned. Log breakpoints (never stopping) record the native stack
at each crossing: a Rust panic, a Python exception taken by PyO3 (a callback's error coming
back into Rust), an error PyO3 hands to Python. pytest's ``--pdb`` prompt shows them with the
``native`` command (``pytest --native-pdb --pdb``).
"""
from __future__ import annotations

from .errors import DebugMagicError
from .locations import is_user_source
from .model import LogRecord

PYO3_CALLER = r"^pyo3::"
CROSSINGS = (  # (function, the caller it must be called from, what a call means)
    ("__rustc::rust_begin_unwind", None, "a Rust panic"),  # the panic handler, as rustc names it now
    ("rust_begin_unwind", None, "a Rust panic"),           # ... and did before Rust 1.87
    ("PyErr_Fetch", PYO3_CALLER, "a Python exception came back into Rust"),               # Python < 3.12
    ("PyErr_GetRaisedException", PYO3_CALLER, "a Python exception came back into Rust"),  # 3.12+
    ("PyErr_Restore", PYO3_CALLER, "Rust handed an error to Python"),                     # Python < 3.12
    ("PyErr_SetRaisedException", PYO3_CALLER, "Rust handed an error to Python"),          # 3.12+
)
SHOWN = 6  # crossings shown, the latest


class ErrorTrail:
    """The crossing breakpoints of one attached debugger, and what their hits mean."""

    def __init__(self, debugger):
        self.kinds: dict[int, tuple[str, str]] = {}
        for function, caller, meaning in CROSSINGS:
            try:
                number = debugger.log_calls(function, caller, f"(error trail) {function}")
            except DebugMagicError:
                continue  # this interpreter has no such function
            self.kinds[number] = (function, meaning)

    def split(self, records: list[LogRecord]) -> tuple[list[LogRecord], list[LogRecord]]:
        """(crossings, every other record)."""
        ours = [r for r in records if r.number in self.kinds]
        return ours, [r for r in records if r.number not in self.kinds]

    def render(self, crossings: list[LogRecord]) -> str:
        """The Rust frames at each crossing, oldest first; library frames folded."""
        if not crossings:
            return ("no error crossed between Rust and Python during this test's call: the failure "
                    "did not come from Rust, or from a thread other Rust code started")
        lines = [f"Rust at each crossing between Rust and Python during the test ({len(crossings)} "
                 f"recorded{', the latest ' + str(SHOWN) if len(crossings) > SHOWN else ''}), oldest first:"]
        for index, record in enumerate(crossings[-SHOWN:], 1):
            function, meaning = self.kinds.get(record.number, ("?", "?"))
            lines.append(f"[{index}] {meaning} ({function}, thread {record.thread}):")
            lines += _frames(record.backtrace[1:])
        return "\n".join(lines)


def _frames(places) -> list[str]:
    lines, folded = [], 0
    for place in places:
        if is_user_source(place.fullname):
            if folded:
                lines.append(f"      ... {folded} library frames")
                folded = 0
            lines.append(f"      {place.func}  at {place.file}:{place.line}")
        else:
            folded += 1
    if not lines:  # no frame of the user's crates: the nearest ones say where it happened
        return [f"      {p.func}  at {p.file or '?'}:{p.line or '?'}" for p in places[:4]]
    return lines
