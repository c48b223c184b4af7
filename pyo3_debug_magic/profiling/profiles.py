"""The profile engine: py-spy's collapsed stacks turned into the model's ``Profile`` (frames
named as a Rust author writes them, the top table, the samples py-spy cut short), and the CPU
time of threads py-spy cannot see. Standard library only: usable without IPython."""
from __future__ import annotations

import os
import re
import threading
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

from pyo3_debug_magic.breakpoints.generated import is_generated
from pyo3_debug_magic.breakpoints.locations import crate_relative, is_user_source
from pyo3_debug_magic.model import FunctionRow, Profile, ProfileFrame, SampledStack, ThreadUsage
from pyo3_debug_magic.profiling.sampled_stacks import threads_of
from pyo3_debug_magic.stacks.merging import HEX_NAME, clean_rust_name, is_cell_file

FRAME = re.compile(r"^(?P<name>.*) \((?P<where>[^()]*)\)$")
FRAME_SEPARATOR = re.compile(r"(?<=\));")   # Rust names may hold ';' ([u8; 4]), never after ')'
THREAD_ROOT = re.compile(r"^thread \((?P<tid>\d+)\)(?:: (?P<name>[^;]*))?;")
# frames of Rust's own libraries: their self time is counted in the Rust frame that called them
RUST_LIBRARY_FILE = re.compile(r"^(core|std|alloc)/src/")
CODEGEN_UNIT = re.compile(r"^[a-z0-9]{20,32}$")  # `__rust_try  esi6tr9v6rkrm8ns73x96k3hy`
WAITING = re.compile(r"(acquire_lock|sem_clockwait|sem_timedwait|pthread_cond|futex|epoll_wait|poll|select|"
                     r"nanosleep|Condition\.wait|Event\.wait|Queue\.get)")
MIN_MEANINGFUL_SAMPLES = 10
ERROR_SHARE_NOTED = 0.10


def parse_collapsed(text: str, demangle=None) -> list[SampledStack]:
    """py-spy's ``raw`` format (``frame;frame;... count``, outermost first, a ``thread (TID)``
    root when recorded with ``--threads``) as SampledStacks. ``demangle`` maps raw names (v0
    symbols py-spy leaves mangled) to readable ones."""
    rows = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        root = THREAD_ROOT.match(stack)
        thread = int(root.group("tid")) if root else None
        if root:
            stack = stack[root.end():]
        rows.append((thread, FRAME_SEPARATOR.split(stack), int(count)))
    names = demangle([FRAME.match(f).group("name") for r in rows for f in r[1] if FRAME.match(f)]) if demangle else {}
    merged: Counter = Counter()
    for thread, frames, count in rows:
        parsed = []
        for raw in frames:
            match = FRAME.match(raw)
            if match is not None:
                parsed.append(_frame(names.get(match.group("name"), match.group("name")), match.group("where")))
        merged[(thread, plumbing_marked(tuple(parsed)))] += count
    return [SampledStack(thread, frames, count, cut_short=is_cut_short(frames))
            for (thread, frames), count in merged.items()]


def plumbing_marked(frames: tuple[ProfileFrame, ...]) -> tuple[ProfileFrame, ...]:
    """PyO3's wrappers (in the user's files) are the user's code only where they may hold it:
    a wrapper with a frame of the user's own deeper in the same Rust run only passes the call
    on; one without may have the user's function inlined (a release build)."""
    marked = list(frames)
    deeper_user = False
    for index in range(len(marked) - 1, -1, -1):  # innermost first
        frame = marked[index]
        if frame.kind == "python":
            deeper_user = False
        elif frame.user and is_generated(frame.function):
            if deeper_user:
                marked[index] = replace(frame, user=False)
        elif frame.user:
            deeper_user = True
    return tuple(marked)


def _frame(name: str, where: str) -> ProfileFrame:
    file, _, line = where.rpartition(":")
    if not file or not line.isdigit():
        file, line = where, "0"
    python = file.endswith(".py") or file.startswith("<")
    if HEX_NAME.match(name):  # no symbol: name the library
        name = f"[{os.path.basename(file)}]" if file not in ("?", "") else "[unknown]"
    if python:
        return ProfileFrame("python", name, file, int(line) or None, is_cell=is_cell_file(file))
    # PyO3's wrapper counts as the user's here: in a release build the user's function is
    # inlined into it, and the samplers name the wrapper for the user's own lines
    user = is_user_source(file)
    return ProfileFrame("native", clean_rust_name(name), crate_relative(file) if user else _short(file),
                        int(line) or None, user=user)


def _short(file: str) -> str:
    """A library's source by its crate and path inside it (``pyo3-0.23.5/src/gil.rs``), a
    shared object by its name."""
    if CODEGEN_UNIT.match(file):  # a function without line info is placed in its codegen unit
        return "no line info"
    parts = Path(file).parts
    if "src" in parts:
        index = len(parts) - 1 - parts[::-1].index("src")
        return "/".join(parts[max(index - 1, 0):])
    return parts[-1] if parts else file


def is_cut_short(frames: tuple[ProfileFrame, ...]) -> bool:
    """py-spy's unwinder often stops inside a PyO3 extension and then glues the Python stack on
    (its "could not unwind" fallback): the Rust run at the top of the stack then lacks PyO3's
    entry trampoline, and any Rust frames between two Python frames are gone."""
    last_python = max((i for i, f in enumerate(frames) if f.kind == "python"), default=None)
    if last_python is None or last_python == len(frames) - 1:
        return False
    run = frames[last_python + 1:]
    return (run[0].file or "").endswith(".rs") and not any("trampoline" in f.function for f in run)


def top_functions(stacks: list[SampledStack], limit: int = 20) -> tuple[FunctionRow, ...]:
    """Functions by self samples, then total: the self time of Rust's own library code (core,
    std, alloc helpers, inlined or not) goes to the frame that called it."""
    self_count, total, lines = Counter(), Counter(), defaultdict(Counter)
    first: dict = {}
    for stack in stacks:
        seen = set()
        for frame in stack.frames:
            key = (frame.kind, frame.function, frame.file)
            first.setdefault(key, frame)
            if key not in seen:
                total[key] += stack.count
                seen.add(key)
        owner = _self_owner(stack.frames)
        if owner is not None:
            key = (owner.kind, owner.function, owner.file)
            self_count[key] += stack.count
            lines[key][owner.line] += stack.count
    # library frames that only pass calls on (PyO3's trampolines, std's catch_unwind) would
    # fill the table's top with 0% self rows: they stay in the call tree
    ranked = sorted((k for k in total if self_count[k] or first[k].kind == "python"
                     or first[k].user and not is_generated(k[1])),
                    key=lambda k: (-self_count[k], -total[k], k[1]))[:limit]
    return tuple(FunctionRow(k[0], k[1], k[2], (lines[k].most_common(1)[0][0] if lines[k] else first[k].line),
                             self_count[k], total[k], user=first[k].user, is_cell=first[k].is_cell)
                 for k in ranked)


def _self_owner(frames: tuple[ProfileFrame, ...]) -> ProfileFrame | None:
    """The leaf frame, or, when it is Rust's own library code, the Rust frame that called it."""
    for frame in reversed(frames):
        if frame.kind == "python":
            break
        if not is_rust_library(frame):
            return frame
    return frames[-1] if frames else None


def is_rust_library(frame: ProfileFrame) -> bool:
    return frame.kind == "native" and not frame.user and bool(RUST_LIBRARY_FILE.match(frame.file or ""))


def waiting(stack: SampledStack) -> bool:
    """A thread blocked in a lock, a queue or a poll (py-spy's idle test misses some)."""
    return any(WAITING.search(frame.function) for frame in stack.frames[-4:])


def trim_to_code(stacks: list[SampledStack], machinery: tuple[str, ...]) -> list[SampledStack]:
    """Each stack from the profiled code on: below the last frame of ``machinery`` (the
    profiler's own files, IPython's), else from the outermost cell frame. A thread whose
    Python frames are all machinery (the kernel's sockets, its output) is left out."""
    trimmed: Counter = Counter()
    flags = {}
    for stack in stacks:
        frames = stack.frames
        cells = [i for i, f in enumerate(frames) if f.is_cell]
        ours = [i for i, f in enumerate(frames) if f.kind == "python" and any(m in (f.file or "") for m in machinery)]
        if ours:
            frames = frames[ours[-1] + 1:]
            if not any(f.kind == "python" for f in frames):
                continue  # a thread of the kernel's own machinery, waiting in native code
        elif cells:
            frames = frames[cells[0]:]
        trimmed[(stack.thread, frames)] += stack.count
        flags[(stack.thread, frames)] = stack.cut_short
    return [SampledStack(thread, frames, count, flags[(thread, frames)])
            for (thread, frames), count in trimmed.items()]


def build(stacks: list[SampledStack], samples: int, errors: int, rate: int, seconds: float, *,
          python_only: list[SampledStack] = (), python_only_samples: int = 0,
          native_threads: tuple[ThreadUsage, ...] = (), thread_names: dict | None = None,
          by_thread: bool = False, output: str | None = None, top: int = 20,
          extra_notes: tuple[str, ...] = (), engine: str = "py-spy", unmatched: int = 0) -> Profile:
    """The Profile, with the notes a person needs to trust it (or not)."""
    profile = Profile(tuple(sorted(stacks, key=lambda s: -s.count)), samples, errors, rate, seconds,
                      top_functions(stacks, top), tuple(python_only), python_only_samples, native_threads,
                      dict(thread_names or {}), by_thread, output=output, engine=engine, unmatched=unmatched)
    notes = []
    if samples < MIN_MEANINGFUL_SAMPLES:
        notes.append(f"only {samples} sample{'s' if samples != 1 else ''}: too few for a meaningful profile; "
                     f"raise the rate (`--rate {min(rate * 5, 1000)}`) or repeat the work in a loop")
    if profile.error_share >= ERROR_SHARE_NOTED and engine == "py-spy":
        notes.append(f"py-spy could not take or merge {errors} of {samples + errors} samples "
                     f"({profile.error_share:.0%}; Rust -> Python callbacks cause this, and with --threads "
                     f"the moments the thread sampler held a worker): the native view "
                     f"lacks them; `%native_profile --show python` shows the same run's Python-only view "
                     f"({python_only_samples} samples)")
    if any(f.function.endswith("::precondition_check") for s in stacks for f in s.frames):
        notes.append("this extension was built with debug assertions (a dev build, unoptimized): its "
                     "profile is not that of a release build" + (", and py-spy unwinds it poorly" if engine == "py-spy" else "")
                     + "; profile `maturin develop --release` (with `[profile.release] debug = true` for the lines)")
    shown = profile.shown_samples
    if unmatched:
        notes.append(f"in {unmatched} of {shown} samples the Python and native frames did not line up (the "
                     "unwinder stopped early, or a frame was changing): their Python frames are put outermost")
    cut = profile.cut_short_samples
    if cut:
        notes.append(f"in {cut} of {shown} samples ({cut / shown:.0%}) py-spy's unwinder stopped at "
                     "the Rust function Python called and glued the Python frames on: PyO3's trampoline is "
                     "missing there, and so are the outer Rust frames of a Rust -> Python -> Rust callback; "
                     "`--engine elfutils` unwinds every frame")
    return replace(profile, notes=tuple(notes) + tuple(extra_notes))


def thread_names(text: str) -> dict[int, str]:
    """The thread names the collapsed format's ``thread (TID): NAME`` roots carry."""
    found = {}
    for line in text.splitlines():
        root = THREAD_ROOT.match(line)
        if root and root.group("name"):
            found[int(root.group("tid"))] = root.group("name")
    return found


# ----- threads py-spy cannot see ------------------------------------------------------------


class ThreadClock:
    """Polls ``/proc/PID/task`` while a profile runs: the CPU time of every thread, also of
    the short-lived ones a Rust worker pool starts and joins within the cell."""

    def __init__(self, pid: int | None = None, interval: float = 0.05):
        self.pid = pid or os.getpid()
        self.interval = interval
        self.start_cpu: dict[int, float] = {}
        self.last: dict = {}  # OS thread id -> its latest TaskStat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.start_cpu = {tid: task.cpu_seconds for tid, task in threads_of(self.pid).items()}
        self._thread = threading.Thread(target=self._poll, name="pyo3-debug-magic-thread-clock", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.last.update(threads_of(self.pid))

    def stop(self, python_threads: set[int]) -> tuple[ThreadUsage, ...]:
        """Threads outside ``python_threads`` that used CPU while the clock ran."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        self.last.update(threads_of(self.pid))
        used = []
        for tid, task in self.last.items():
            spent = task.cpu_seconds - self.start_cpu.get(tid, 0.0)
            if tid not in python_threads and spent >= self.interval / 2:
                used.append(ThreadUsage(tid, task.name, round(spent, 3)))
        return tuple(sorted(used, key=lambda u: -u.cpu_seconds))
