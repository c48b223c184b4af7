"""Plain-text renderings (terminal IPython, and the text twin of every rich output)."""
from __future__ import annotations

import re
from collections import Counter

from pyo3_debug_magic.model import (AttachStatus, CrashReport, HangReport, MergedStack, PythonFrame, Snapshot,
                                    SourceLines, StackEntry, Stop, ThreadStack, Variable)


def attach_status(status: AttachStatus) -> str:
    took = f" in {status.attach_seconds:.2f} s" if status.attach_seconds is not None else ""
    shown = (f"native debugger attached to kernel pid {status.target_pid}{took} "
             f"({status.thread_count} threads, non-stop; {status.gdb_version})")
    notes = [note for note in (None if status.printers == "loaded" else status.printers, status.crash_capture,
                               *status.notes) if note]
    return "\n".join([shown, *notes])


def attach_progress(seconds: float, doing: str, finished: bool, verb: str = "attach") -> str:
    """The one line an attach (or a detach) that takes a while updates."""
    if finished:
        return f"native debugger: gdb {verb}ed in {seconds:.1f} s"
    return f"native debugger: {verb}ing, {doing or ('starting' if verb == 'attach' else 'letting the threads go')} " \
           f"({seconds:.1f} s)"


def detached(how: str) -> str:
    if how == "kept":
        return ("native debugger detached; the kernel keeps running (the helper stays idle with what gdb "
                "read, so the next attach is quick; `%native_detach --stop` ends it)")
    if how == "exited":
        return "native debugger detached; the kernel keeps running"
    return f"native debugger detached (helper process {how}); the kernel keeps running"


# ----- refcheck ----------------------------------------------------------------------
def source_range(frame, source: SourceLines | None, context: int) -> tuple[int, int] | None:
    """The line numbers ``source`` holds within ``context`` of ``frame``'s line (None: it holds
    no lines of that frame's file)."""
    if source is None or source.fullname != frame.fullname or not source.lines:
        return None
    return max(frame.line - context, source.first), min(frame.line + context, source.first + len(source.lines) - 1)


def source_snippet(frame, source: SourceLines | None, context: int = 3) -> str:
    """Lines around ``frame``'s line (``source``, read when the view was built), the current
    one marked with ``->``."""
    if frame is None or not frame.line:
        return "no source for this frame"
    shown = source_range(frame, source, context)
    if shown is None:
        return (f"{frame.where}: source not available ({frame.fullname}; built elsewhere? "
                "`%native_break LOCATION --source DIR` reads it from your checkout)")
    start, end = shown
    width = len(str(end))
    return "\n".join(f"{'->' if n == frame.line else '  '} {n:>{width}}  {source.lines[n - source.first]}"
                     for n in range(start, end + 1))


def _fold_runs(items, shown):
    """``items`` in order, each run of items not ``shown`` replaced by a list of them."""
    run = []
    for item in items:
        if shown(item):
            if run:
                yield run
                run = []
            yield item
        else:
            run.append(item)
    if run:
        yield run


def backtrace_parts(merged: MergedStack, selected: int = 0):
    """The frames as shown, innermost first, each Python frame where it runs: a native or
    Python frame, or a run of pyo3/std frames (a list) folded."""
    return _fold_runs(merged.in_order(), lambda frame: isinstance(frame, PythonFrame) or frame.level in (0, selected)
                      or frame.user)


def hidden_note_at(parts: list, merged: MergedStack) -> int | None:
    """Where "(N interpreter and runtime frames hidden)" goes: before the first Python frame."""
    if not merged.hidden_runtime_frames:
        return None
    return next((i for i, part in enumerate(parts) if isinstance(part, PythonFrame)), len(parts))


def native_frame_line(frame, selected: int = 0) -> str:
    marker = ">" if frame.level == selected else " "
    return f"{marker}#{frame.level:<3} {frame.function}  at {frame.where}"


def backtrace(merged: MergedStack, selected: int = 0) -> str:
    """User frames in full; runs of pyo3/std frames folded into one line (`bt` shows levels)."""
    rows = []
    parts = list(backtrace_parts(merged, selected))
    note = hidden_note_at(parts, merged)
    for index, part in enumerate(parts):
        if index == note:
            rows.append(f"      ({merged.hidden_runtime_frames} interpreter and runtime frames hidden)")
        if isinstance(part, list):
            rows.append(f"      ... {len(part)} frames in pyo3/std (#{part[0].level}-#{part[-1].level})")
        elif isinstance(part, PythonFrame):
            rows.append(f"  py  {part.function}  at {part.file}:{part.line}{'  <- cell' if part.is_cell else ''}")
        else:
            rows.append(native_frame_line(part, selected))
    if note == len(parts):
        rows.append(f"      ({merged.hidden_runtime_frames} interpreter and runtime frames hidden)")
    return "\n".join(rows)


INTERNAL_VALUE = re.compile(r"^(core|alloc|std)::[\w:]+(<.*?>)? \{")
PATH_PREFIX = re.compile(r"\b(?:[a-z_][a-z0-9_]*::)+")
FOLD_AFTER = 60  # characters


def folded_value(value: str) -> str | None:
    """A compiler-internal value (a std iterator, an adapter) as one short line: its type's
    names without their paths, ``{…}``; None when the value is shown as it is."""
    if len(value) <= FOLD_AFTER or not INTERNAL_VALUE.match(value):
        return None
    depth = 0
    for index, char in enumerate(value):  # the type ends at the first " {" outside <...>
        depth += char == "<"
        depth -= char == ">"
        if char == "{" and depth == 0:
            return PATH_PREFIX.sub("", value[:index].strip()) + " {…}"
    return None


def locals_table(variables: tuple[Variable, ...], raw: bool = False) -> str:
    """One line a variable; compiler-internal values folded unless ``raw`` (`locals --raw`)."""
    if not variables:
        return "no locals"
    width = max(len(v.name) for v in variables)
    rows = [(v, None if raw else folded_value(v.value)) for v in variables]
    lines = [f"{v.name:<{width}} = {short or v.value}" for v, short in rows]
    if any(short for _, short in rows):
        lines.append("(values marked {…} are the standard library's internals: `locals --raw` shows them)")
    return "\n".join(lines)


STOP_REASONS = {"hang": "paused where it was stuck, in",
                "hang-held": "held where it was stuck (it keeps the GIL), in",
                "end-stepping-range": "stepped to", "function-finished": "returned to",
                "location-reached": "ran to", "signal-received": "stopped by a signal in"}


def stop_title(state: Stop) -> tuple[str, str]:
    """(what happened, where) in words: "native breakpoint 2 hit in thread 1", "thread 1
    stepped to"; gdb's reason itself only when it has no words here."""
    frame = state.frame
    where = f"{frame.function} at {frame.where}" if frame else "unknown location"
    if state.signal:
        return f"{state.signal} in thread {state.thread}, stopped before the process dies, at", where
    if state.breakpoint and state.reason == "breakpoint-hit":
        return f"native breakpoint {state.breakpoint} hit in thread {state.thread}:", where
    said = STOP_REASONS.get(state.reason)
    if state.reason == "function-finished" and state.returned is not None:
        return f"thread {state.thread} returned (value {state.returned}) to", where
    if said:
        return f"thread {state.thread} {said}", where
    return f"thread {state.thread} stopped ({state.reason or 'no reason given'}):", where


GIL_MARKER = "(GIL handed over while paused)"


def stop_view(state: Stop, compact: bool = False) -> str:
    """The whole stop: where, source, merged backtrace, locals, and, on a pause's first view
    (not after each step), the GIL note: in full the first time, then as a short marker."""
    frame = state.frame
    title, where = stop_title(state)
    parts = [f"{title} {where}", source_snippet(frame, state.source_lines, context=1 if compact else 4)]
    if not compact:
        parts += ["backtrace:", backtrace(state.stack, state.selected)]
    parts += ["locals:", state.locals_note if state.locals_note else locals_table(state.locals)]
    if state.handed_off and not compact:
        parts.append(GIL_MARKER if state.gil_explained else
                     "(the GIL was released at this line so the process's other Python threads keep running, an implicit "
                     "allow_threads; it is taken back before the thread runs on)")
    if state.signal:
        parts.append("commands: bt up down frame N list locals p EXPR help; c or q lets the process die")
    elif state.reason == "hang-held":
        parts.append("commands: bt up down frame N list locals p EXPR help; c lets it run on")
    elif not compact:
        parts.append("commands: n s finish c bt up down list locals p EXPR py EXPR q help")
    return "\n".join(parts)


def breakpoint_created(info) -> str:
    kind = "log breakpoint" if info.kind == "log" else "breakpoint"
    where = ", ".join(info.resolved) if info.resolved else "pending"
    text = f"native {kind} {info.number} at {info.location} -> {where}"
    return text + (f"\n{info.note}" if info.note else "")


def breakpoint_table(rows) -> str:
    if not rows:
        return "no native breakpoints"
    lines = ["Num  Type   Enb  Hits  Where"]
    for row in rows:
        where = ", ".join(row.resolved) if row.resolved else ("<pending>" if row.pending else "-")
        condition = f"  if {row.condition}" if row.condition else ""
        lines.append(f"{row.number:<4} {row.kind:<6} {'y' if row.enabled else 'n':<4} {row.hits:<5} "
                     f"{row.location} -> {where}{condition}")
    return "\n".join(lines)


AFTER_CELL_TITLE = "native debugger, after this cell:"


def after_cell(notes: list[str], hits) -> str:
    """Everything the native debugger has to say once a cell ended, as one titled block (it
    comes after the cell's result: the result is out before the cell's end is known)."""
    parts = [AFTER_CELL_TITLE] + [f"  {note}" for note in notes]
    if hits:
        parts.append(log_hits(hits))
    return "\n".join(parts)


def log_hits(hits) -> str:
    lines = []
    for hit in hits:
        where = f"{hit.function} at {hit.file}:{hit.line}" if hit.file else (hit.function or "?")
        kind = (f"breakpoint ({hit.not_paused_because or 'no stdin'}: not paused)" if hit.unattended
                else "log breakpoint")
        values = "  " + ", ".join(f"{name} = {value}" for name, value in hit.values) if hit.values else ""
        error = f"  <error: {hit.error}>" if hit.error else ""
        lines.append(f"[{kind} {hit.number or 0} hit {hit.hit}] {where}{values}{error}")
        lines += [f"    {frame}" for frame in hit.backtrace_lines]
    return "\n".join(lines)


def thread_title(thread: ThreadStack) -> str:
    """`Thread 1 "MainThread" (LWP 42): holds the GIL, running this cell`."""
    flags = []
    if thread.holds_gil:
        flags.append("holds the GIL")
    if thread.paused:
        flags.append("paused at a breakpoint")
    if thread.current:
        flags.append("running this cell")
    else:
        flags.append("idle" if thread.idle else "running")
    name = f' "{thread.name}"' if thread.name else ""
    lwp = f" (LWP {thread.os_thread_id})" if thread.os_thread_id else ""
    return f"Thread {thread.label}{name}{lwp}: {', '.join(flags)}"


def folded_entries(thread: ThreadStack, full: bool = False):
    """The thread's entries, each run of library frames below its top frame as one list."""
    top = thread.entries[0] if thread.entries else None
    return _fold_runs(thread.entries, lambda entry: full or entry is top or entry.kind != "native" or entry.user)


def entry_line(entry: StackEntry) -> str:
    where = f"{entry.file}:{entry.line}" if entry.file and entry.line else (entry.file or "")
    prefix = "py" if entry.kind == "python" else (f"#{entry.level}" if entry.level is not None else "  ")
    cell = "  <- cell" if entry.is_cell else ""
    return f"  {prefix} {entry.function}  {('at ' + where) if where else ''}{cell}".rstrip()


def thread_stacks(threads, note: str | None = None, full: bool = False) -> str:
    """One merged stack per thread, GIL holder and idle threads marked. Unless ``full``, runs
    of library frames (pyo3, std, libc, libpython) below a thread's top frame are folded."""
    blocks = []
    for thread in threads:
        lines = [thread_title(thread)]
        for entry in folded_entries(thread, full):
            if isinstance(entry, list):
                lines.append(f"     ... {len(entry)} library frame{'s' if len(entry) > 1 else ''}")
                continue
            lines.append(entry_line(entry))
        if thread.locals:
            lines.append(f"  locals of {thread.locals_of or 'the top frame'}:")
            lines += [f"    {v.name} = {v.value}" for v in thread.locals]
        blocks.append("\n".join(lines))
    if note:
        blocks.append(note)
    return "\n\n".join(blocks)


def snapshot(view: Snapshot, full: bool = False) -> str:
    """A ``%native_bt`` view: its threads, then its notes and the hidden threads' names."""
    notes = [line for line in (*view.notes, hidden_threads(view.hidden)) if line]
    return thread_stacks(view.threads, "\n".join(notes) or None, full=full)


def hidden_threads(hidden) -> str | None:
    """The note naming the kernel's own threads that %native_bt left out."""
    if not hidden:
        return None
    counts = Counter(thread.name or thread.label for thread in hidden)
    names = ", ".join(f"{name} x{count}" if count > 1 else name for name, count in sorted(counts.items()))
    return f"({len(hidden)} threads of the kernel's own machinery hidden: {names}; `--all` shows them)"


def crash_report(report: CrashReport) -> str:
    """A crash report (written by the agent as the process died, or read from a core) as text:
    what happened and where (with the Rust source), the crashed thread and its locals, then
    the threads of interest; the kernel's own threads folded as %native_bt folds them."""
    lines = [report.summary,
             f"signal {report.signal} in thread {report.thread} of {report.origin}"
             + (f", fault address {report.fault_address}" if report.fault_address else "")]
    if report.source is not None:
        lines.append(source_snippet(report.source, report.source_lines, context=2))
    if report.stack_overflow:
        lines.append(f"stack overflow: the fault is at the thread's stack guard "
                     f"(stack pointer {report.stack_pointer}, {report.stack_depth} frames deep)")
    if report.threads:
        lines += ["", "crashed thread:", thread_stacks(report.threads[:1])]
    if report.locals:
        lines += ["", f"locals of {report.locals_of}:", locals_table(report.locals)]
    if report.instruction:
        lines.append(f"faulting instruction: {report.instruction}")
    if report.stderr_tail.strip():
        tail = report.stderr_tail.strip().splitlines()[-12:]
        lines += ["", "end of the process's stderr:"] + [f"  {line}" for line in tail]
    if len(report.threads) > 1:
        lines += ["", "other threads:", thread_stacks(report.threads[1:])]
    hidden = hidden_threads(report.hidden)
    if hidden:
        lines.append(hidden.replace("`--all` shows them", "the report file has them"))
    if report.capture_error:
        lines.append(f"(part of the report could not be captured: {report.capture_error})")
    if report.path:
        lines += ["", f"(report: {report.path})"]
    return "\n".join(lines)


def hang_gil(stack: ThreadStack) -> str:
    """What the hung thread's hold on the GIL means for the user."""
    in_native_code = any(entry.kind == "native" and entry.user for entry in stack.entries)
    if stack.holds_gil and in_native_code:
        gil = "it holds the GIL, so no Python code can run and the Interrupt cannot be honoured"
    elif stack.holds_gil:
        gil = "it is running Python code (other threads get the GIL in turns)"
    elif stack.holds_gil is None:
        gil = "whether it holds the GIL could not be read"
    else:
        gil = "it does not hold the GIL"
    return gil


HANG_ADVICE = ("The thread keeps running; nothing is killed for you. Wait, interrupt the kernel, or "
               "restart it.")
HANG_PAUSE_OFFER = ("It is held at a line of your crate: answer `p` below to pause it there with the "
                    "(native) prompt (`break FILE:LINE` sets a breakpoint from it; `c` lets it run on).")


def hang_report(report: HangReport) -> str:
    """Where a stuck main thread is, and what the user can do (the tool never kills threads)."""
    lines = [f"native debugger: the main thread looks stuck ({report.reason}); {hang_gil(report.stack)}.",
             thread_stacks([report.stack]), HANG_PAUSE_OFFER if report.can_pause else HANG_ADVICE]
    if report.note:
        lines.append(f"({report.note})")
    return "\n".join(lines)
