"""HTML renderings for notebooks; each has a plain-text twin in ``text.py``."""
from __future__ import annotations

from html import escape

from . import text

_STYLE = {"OK": "color:#1a7f37", "LEAK": "color:#cf222e;font-weight:bold",
          "OVER-RELEASE": "color:#cf222e;font-weight:bold", "NOT MEASURABLE": "color:#6e7781"}


def _verdict_style(verdict: str) -> str:
    return next((style for key, style in _STYLE.items() if verdict.startswith(key)), "")


def refcheck_html(report) -> str:
    """The refcheck report as one HTML table plus counters and the verdict line."""
    head = "".join(f"<th>{escape(h)}</th>" for h in
                   ("object", "type", "refs before", "after", "change/call", "verdict"))
    body = []
    for row in text.refcheck_rows(report):
        cells = "".join(f"<td><code>{escape(c)}</code></td>" if i == 0 else f"<td>{escape(c)}</td>"
                        for i, c in enumerate(row[:5]))
        body.append(f"<tr>{cells}<td style=\"{_verdict_style(row[5])}\">{escape(row[5])}</td></tr>")
    counters = "".join(f"<li>{escape(line)}</li>" for line in text.counter_lines(report))
    trace = ""
    if report.exception:
        trace = (f"<details><summary>the call raised on {report.raised_calls} call(s)</summary>"
                 f"<pre>{escape(report.exception)}</pre></details>")
    verdict = text.refcheck_verdict(report)
    colour = "#1a7f37" if report.ok else "#cf222e"
    return (f"<div class=\"pyo3-refcheck\"><p><b>refcheck</b> <code>{escape(report.label)}</code>: "
            f"{escape(text.refcheck_calls(report))}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<ul>{counters}</ul>{trace}<p style=\"color:{colour}\"><b>verdict:</b> {escape(verdict)}</p></div>")


def source_snippet(frame, context: int = 3) -> str:
    """Syntax-highlighted source around the frame's line, current line highlighted."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import RustLexer

    if frame is None or not frame.line:
        return "<pre>no source for this frame</pre>"
    lines = text._read_lines(frame.fullname)
    if not lines:
        return f"<pre>{escape(frame.where)}: source not available</pre>"
    start, end = max(frame.line - context, 1), min(frame.line + context, len(lines))
    formatter = HtmlFormatter(noclasses=True, linenos="inline", linenostart=start,
                              hl_lines=[frame.line - start + 1], style="default")
    return highlight("\n".join(lines[start - 1:end]) + "\n", RustLexer(), formatter)


def stop_view(state, compact: bool = False) -> str:
    frame = state.frame
    where = f"{frame.function} at {frame.where}" if frame else "unknown location"
    title = (f"native breakpoint {state.breakpoint} hit in thread {state.thread}"
             if state.breakpoint and state.reason == "breakpoint-hit"
             else f"thread {state.thread} stopped ({state.reason})")
    parts = [f"<div class=\"pyo3-native-stop\"><p><b>{escape(title)}</b>: <code>{escape(where)}</code></p>",
             source_snippet(frame, context=1 if compact else 4)]
    if not compact:
        parts.append(f"<details open><summary>backtrace</summary><pre>{escape(text.backtrace(state.merged, state.selected))}</pre></details>")
    parts.append(f"<details open><summary>locals</summary><pre>{escape(text.locals_table(state.locals))}</pre></details>")
    if state.handed_off:
        parts.append("<p><i>The GIL was released at this line so the kernel stays responsive (an implicit "
                     "<code>allow_threads</code>); it is taken back before the thread runs on.</i></p>")
    return "".join(parts) + "</div>"
