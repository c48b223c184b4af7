"""HTML renderings for notebooks; each has a plain-text twin in ``text.py``."""
from __future__ import annotations

import re
from html import escape

from pyo3_debug_magic.model import PythonFrame, Stop
from pyo3_debug_magic.render import refcheck_text, text

_STYLE = {"OK": "color:#1a7f37", "LEAK": "color:#cf222e;font-weight:bold",
          "OVER-RELEASE": "color:#cf222e;font-weight:bold", "NOT MEASURABLE": "color:#6e7781",
          "UNCONFIRMED": "color:#9a6700"}


def _verdict_style(verdict: str) -> str:
    return next((style for key, style in _STYLE.items() if verdict.startswith(key)), "")


def with_code(words: str) -> str:
    """Escaped text whose `backticked` spans become <code>: the text twin's markdown, rendered."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(words))


def refcheck_html(report) -> str:
    """The refcheck report as one HTML table plus counters and the verdict line."""
    head = "".join(f"<th>{escape(h)}</th>" for h in
                   ("object", "type", "refs before", "after", "change/call", "verdict"))
    body = []
    for row in refcheck_text.refcheck_rows(report):
        cells = "".join(f"<td><code>{escape(c)}</code></td>" if i == 0 else f"<td>{escape(c)}</td>"
                        for i, c in enumerate(row[:5]))
        body.append(f"<tr>{cells}<td style=\"{_verdict_style(row[5])}\">{escape(row[5])}</td></tr>")
    counters = "".join(f"<li>{with_code(line)}</li>" for line in refcheck_text.counter_lines(report))
    trace = ""
    if report.exception:
        trace = (f"<details><summary>the call raised on {report.raised_calls} call(s)</summary>"
                 f"<pre>{escape(report.exception)}</pre></details>")
    verdict = report.verdict
    colour = "#1a7f37" if report.ok else "#cf222e"
    return (f"<div class=\"pyo3-refcheck\"><p><b>refcheck</b> <code>{escape(report.label)}</code>: "
            f"{escape(refcheck_text.refcheck_calls(report))}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<ul>{counters}</ul>{trace}<p style=\"color:{colour}\"><b>verdict:</b> {with_code(verdict)}</p></div>")


def source_snippet(frame, source, context: int = 3) -> str:
    """Syntax-highlighted source around the frame's line (``source``, read when the view was
    built), current line highlighted."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import RustLexer

    if frame is None or not frame.line:
        return "<pre>no source for this frame</pre>"
    shown = text.source_range(frame, source, context)
    if shown is None:
        return (f"<pre>{escape(frame.where)}: source not available ({escape(frame.fullname or '?')}; built "
                "elsewhere? <code>%native_break LOCATION --source DIR</code> reads it from your checkout)</pre>")
    start, end = shown
    lines = source.lines[start - source.first:end - source.first + 1]
    formatter = HtmlFormatter(noclasses=True, linenos="inline", linenostart=start,
                              hl_lines=[frame.line - start + 1], style="default")
    # stripnl=False: by default the lexer drops leading blank lines, and every number and the
    # highlight after them went one line off
    return highlight("\n".join(lines) + "\n", RustLexer(stripnl=False), formatter)


def backtrace(merged, selected: int = 0) -> str:
    """The stop's backtrace: the user's Rust frames coloured, runs of pyo3/std frames folded
    and unfoldable in the page, each Python frame where it runs."""
    rows = []
    parts = list(text.backtrace_parts(merged, selected))
    note = text.hidden_note_at(parts, merged)
    hidden = _pre(escape(f"      ({merged.hidden_runtime_frames} interpreter and runtime frames hidden)"))
    for index, part in enumerate(parts):
        if index == note:
            rows.append(hidden)
        if isinstance(part, PythonFrame):
            cell = "  &lt;- cell" if part.is_cell else ""
            rows.append(_pre(f"<span style=\"{PYTHON_STYLE}\">  py  {escape(part.function)}  at "
                             f"{place(part.file, part.line)}{cell}</span>"))
        elif isinstance(part, list):
            inner = "\n".join(escape(text.native_frame_line(frame, selected)) for frame in part)
            rows.append(f"<details style=\"{LIBRARY_STYLE}\"><summary>      ... {len(part)} frames in pyo3/std "
                        f"(#{part[0].level}-#{part[-1].level})</summary>{_pre(inner)}</details>")
        else:
            marker = ">" if part.level == selected else " "
            where = place(part.file, part.line) if part.file and part.line else escape(part.where)
            line = f"{marker}#{part.level:<3} {escape(part.function)}  at {where}"
            rows.append(_pre(f"<span style=\"{RUST_STYLE}\"><b>{line}</b></span>" if part.user else line))
    if note == len(parts):
        rows.append(hidden)
    return "".join(rows)


def stop_view(state: Stop, compact: bool = False) -> str:
    frame = state.frame
    title, where = text.stop_title(state)
    parts = [f"<div class=\"pyo3-native-stop\"><p><b>{escape(title)}</b> <code>{escape(where)}</code></p>",
             source_snippet(frame, state.source_lines, context=1 if compact else 4)]
    if not compact:
        parts.append(f"<details open><summary>backtrace</summary>{backtrace(state.stack, state.selected)}</details>")
    shown = _pre(escape(state.locals_note)) if state.locals_note else locals_html(state.locals)
    parts.append(f"<details open><summary>locals</summary>{shown}</details>")
    if state.handed_off and not compact and state.gil_explained:
        parts.append(f"<p><i>{escape(text.GIL_MARKER)}</i></p>")
    elif state.handed_off and not compact:
        parts.append("<p><i>The GIL was released at this line so the process's other Python threads keep running (an implicit "
                     "<code>allow_threads</code>); it is taken back before the thread runs on.</i></p>")
    return "".join(parts) + "</div>"


# ----- stacks, reports, breakpoints: the rich twins of text.py ------------------------------------
RUST_STYLE = "color:#8250df"      # native frames of the user's crate
LIBRARY_STYLE = "color:#6e7781"   # folded library frames
PYTHON_STYLE = "color:#0550ae"    # Python frames


def _pre(content: str, style: str = "") -> str:
    return f"<pre style=\"margin:0;{style}\">{content}</pre>"


SHORTER_PATHS = ((re.compile(r"^.*/site-packages/"), "…/site-packages/"),
                 (re.compile(r"^.*/lib/python(\d+\.\d+)/"), r"python\1/"),
                 (re.compile(r"^.*/\.cargo/registry/src/[^/]+/"), "…/"),
                 (re.compile(r"^/rustc/[0-9a-f]+/library/"), "rust/"),
                 (re.compile(r"^/.*/([^/]+/src/)"), r"\1"))  # a crate's own source: crate/src/...


def short_path(path: str) -> str:
    """A long library path as its telling end (``…/site-packages/pkg/mod.py``, ``…/pyo3-0.23.5/src/err.rs``)."""
    for pattern, replacement in SHORTER_PATHS:
        shorter, count = pattern.subn(replacement, path, count=1)
        if count:
            return shorter
    return path


def place(file: str | None, line: int | None) -> str:
    """``file:line`` shortened, the whole path on hover."""
    if not file:
        return ""
    where = f"{file}:{line}" if line else file
    short = f"{short_path(file)}:{line}" if line else short_path(file)
    return f"<span title=\"{escape(where)}\">{escape(short)}</span>" if short != where else escape(where)


def _entry(entry) -> str:
    style = PYTHON_STYLE if entry.kind == "python" else (RUST_STYLE if entry.user else "")
    prefix = "py" if entry.kind == "python" else "  "
    where = place(entry.file, entry.line)
    line = (f"  {prefix} {escape(entry.function)}  " + (f"at {where}" if where else "")).rstrip()
    line += "  &lt;- cell" if entry.is_cell else ""
    return f"<span style=\"{style}\">{'<b>' + line + '</b>' if entry.is_cell or entry.user else line}</span>"


def thread_stacks(threads, full: bool = False, open_: bool = True) -> str:
    """Each thread a foldable block; Rust frames of the user's crate and Python frames coloured,
    runs of library frames folded (unfoldable in the page: no kernel round-trip)."""
    blocks = []
    for thread in threads:
        rows = []
        for entry in text.folded_entries(thread, full):
            if isinstance(entry, list):
                inner = "\n".join(escape(text.entry_line(e)) for e in entry)
                plural = "s" if len(entry) > 1 else ""
                rows.append(f"<details style=\"{LIBRARY_STYLE}\"><summary>     ... {len(entry)} library "
                            f"frame{plural}</summary>{_pre(inner)}</details>")
            else:
                rows.append(_pre(_entry(entry)))
        if thread.locals:
            rows.append(f"<p style=\"margin:4px 0 0 0\">locals of {escape(thread.locals_of or 'the top frame')}:</p>"
                        + _pre(escape("\n".join(f"    {v.name} = {v.value}" for v in thread.locals))))
        blocks.append(f"<details{' open' if open_ else ''}><summary><code>{escape(text.thread_title(thread))}"
                      f"</code></summary>{''.join(rows)}</details>")
    return "".join(blocks)


def snapshot(view, full: bool = False) -> str:
    notes = [line for line in (*view.notes, text.hidden_threads(view.hidden)) if line]
    return (f"<div class=\"pyo3-native-bt\">{thread_stacks(view.threads, full)}"
            + "".join(f"<p><i>{with_code(note)}</i></p>" for note in notes) + "</div>")


def locals_html(variables) -> str:
    """One row a variable; a compiler-internal value folded, its whole form one click away
    (in the page: nothing asks the kernel)."""
    if not variables:
        return _pre("no locals")
    width = max(len(v.name) for v in variables)
    rows = []
    for variable in variables:
        label = escape(f"{variable.name:<{width}} = ")
        short = text.folded_value(variable.value)
        if short is None:
            rows.append(_pre(label + escape(variable.value)))
        else:
            rows.append(f"<details><summary style=\"font-family:monospace;white-space:pre\">{label}{escape(short)}"
                        f"</summary>{_pre(escape(variable.value), 'white-space:pre-wrap;padding-left:2em')}</details>")
    return "".join(rows)


def crash_head(report) -> str:
    """What happened and where: the summary, the signal, the Rust source at the fault."""
    head = text.crash_report(report).splitlines()[1:2]
    return (f"<p><b style=\"color:#cf222e\">{escape(report.summary)}</b><br>{escape(head[0] if head else '')}</p>"
            + (source_snippet(report.source, report.source_lines, context=2) if report.source is not None else ""))


def crash_report(report) -> str:
    """What happened and where first (with the Rust source), the crashed thread and its
    locals, then the threads of interest; the kernel's own threads folded, everything in the page."""
    parts = [f"<div class=\"pyo3-native-crash\">{crash_head(report)}"]
    if report.stack_overflow:
        parts.append(f"<p>stack overflow: the fault is at the thread's stack guard (stack pointer "
                     f"{escape(str(report.stack_pointer))}, {escape(str(report.stack_depth))} frames deep)</p>")
    if report.threads:
        parts.append("<p><b>crashed thread</b></p>" + thread_stacks(report.threads[:1]))
    if report.locals:
        parts.append(f"<p><b>locals of {escape(str(report.locals_of))}</b></p>" + locals_html(report.locals))
    if report.instruction:
        parts.append(f"<p>faulting instruction: <code>{escape(report.instruction)}</code></p>")
    if report.stderr_tail.strip():
        tail = "\n".join(report.stderr_tail.strip().splitlines()[-12:])
        parts.append(f"<p><b>end of the process's stderr</b></p>{_pre(escape(tail))}")
    if len(report.threads) > 1:
        parts.append(f"<details><summary>other threads ({len(report.threads) - 1})</summary>"
                     f"{thread_stacks(report.threads[1:], open_=False)}</details>")
    if report.hidden:
        parts.append(f"<details><summary>the kernel's own threads ({len(report.hidden)})</summary>"
                     f"{thread_stacks(report.hidden, open_=False)}</details>")
    if report.capture_error:
        parts.append(f"<p><i>part of the report could not be captured: {escape(report.capture_error)}</i></p>")
    if report.path:
        parts.append(f"<p><i>report: <code>{escape(report.path)}</code></i></p>")
    return "".join(parts) + "</div>"


def hang_report(report) -> str:
    return (f"<div class=\"pyo3-native-hang\"><p><b>native debugger: the main thread looks stuck</b> "
            f"({with_code(report.reason)}); {with_code(text.hang_gil(report.stack))}.</p>"
            f"{thread_stacks([report.stack])}<p>{with_code(text.HANG_PAUSE_OFFER if report.can_pause else text.HANG_ADVICE)}</p>"
            + (f"<p><i>({with_code(report.note)})</i></p>" if report.note else "") + "</div>")


def breakpoint_table(rows) -> str:
    if not rows:
        return "<p>no native breakpoints</p>"
    head = "".join(f"<th>{h}</th>" for h in ("Num", "Type", "Enabled", "Hits", "Location", "Where", "Condition"))
    body = []
    for row in rows:
        where = ", ".join(row.resolved) if row.resolved else ("&lt;pending&gt;" if row.pending else "-")
        body.append(f"<tr><td>{row.number}</td><td>{escape(row.kind)}</td><td>{'y' if row.enabled else 'n'}</td>"
                    f"<td>{row.hits}</td><td><code>{escape(row.location)}</code></td>"
                    f"<td><code>{escape(where) if row.resolved else where}</code></td>"
                    f"<td><code>{escape(row.condition or '')}</code></td></tr>")
    return f"<table class=\"pyo3-native-breakpoints\"><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def breakpoint_created(info) -> str:
    kind = "log breakpoint" if info.kind == "log" else "breakpoint"
    where = ", ".join(place(*split_place(r)) for r in info.resolved) if info.resolved else "pending"
    note = f"\n{escape(info.note)}" if info.note else ""
    return _pre(f"native {kind} {info.number} at {escape(info.location)} -&gt; {where}{note}")


def split_place(resolved: str) -> tuple[str, int | None]:
    path, _, line = resolved.rpartition(":")
    return (path, int(line)) if path and line.isdigit() else (resolved, None)


def log_hits(hits) -> str:
    return f"<div class=\"pyo3-native-log\">{_pre(escape(text.log_hits(hits)))}</div>"


def after_cell(notes: list[str], hits) -> str:
    items = "".join(f"<li>{with_code(note)}</li>" for note in notes)
    return (f"<div class=\"pyo3-native-after-cell\" style=\"border-left:3px solid #888;padding-left:6px\">"
            f"<b>{escape(text.AFTER_CELL_TITLE)}</b>" + (f"<ul>{items}</ul>" if items else "")
            + (log_hits(hits) if hits else "") + "</div>")


def attach_status(status) -> str:
    return _pre(escape(text.attach_status(status)))
