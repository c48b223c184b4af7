"""Interactive views (ipywidgets) for a kernel that is idle: their callbacks run in the kernel,
so they work between cells, never while a cell is paused (the pause has the self-contained
HTML view and the ``(native)`` prompt).

Each view is displayed as one bundle: the widget for front ends with a widget manager
(JupyterLab, Notebook 7), its HTML form for those without (nbconvert, a notebook viewer),
its text for terminals and logs. Outside a Jupyter kernel only the text is shown.
"""
from __future__ import annotations

import importlib.util
from dataclasses import replace
from html import escape

from pyo3_debug_magic.errors import DebugMagicError
from pyo3_debug_magic.model import BreakpointInfo
from pyo3_debug_magic.render import html as render_html
from pyo3_debug_magic.render import text as render_text


def kernel_has_widgets(shell) -> bool:
    """A Jupyter kernel (a comm to a front end that may have a widget manager)."""
    if getattr(shell, "kernel", None) is None:
        return False
    return importlib.util.find_spec("ipywidgets") is not None


def bundle(widget, plain: str, html: str) -> dict:
    """The widget's own mimebundle with our text and HTML forms as the fallbacks."""
    data = dict(widget._repr_mimebundle_() or {})
    data["text/plain"] = plain
    data["text/html"] = html
    return data


class BreakpointPanel:
    """``%native_break`` with no argument: every breakpoint with its enabled box, condition
    and delete button; changes go to gdb at once; the list is read again after each."""

    def __init__(self, debugger, rows: list[BreakpointInfo] | None = None):
        import ipywidgets as w

        self.debugger = debugger
        self._w = w
        self.rows: dict[int, dict] = {}   # number -> its widgets (tests drive them through these)
        self.status = w.HTML(value="")
        self.refresh_button = w.Button(description="refresh", tooltip="read the breakpoints again")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.table = w.VBox()
        self.widget = w.VBox([w.HTML("<b>native breakpoints</b>"), self.table,
                              w.HBox([self.refresh_button, self.status])],
                             layout=w.Layout(border="1px solid #ccc", padding="4px"))
        self.widget.add_class("pyo3-native-breakpoint-panel")
        self.refresh(rows)

    def refresh(self, infos: list[BreakpointInfo] | None = None) -> None:
        """Show ``infos`` (as the caller just read them), else read the breakpoints again."""
        if infos is None:
            try:
                infos = self.debugger.breakpoints()
            except DebugMagicError as error:
                self._say(f"{error}", error=True)
                return
        self.rows = {info.number: self._row(info) for info in infos}
        self.table.children = [row["box"] for row in self.rows.values()] or [
            self._w.HTML("<i>no native breakpoints: <code>%native_break src/lib.rs:42</code> sets one</i>")]

    def _row(self, info: BreakpointInfo) -> dict:
        w = self._w
        enabled = w.Checkbox(value=info.enabled, description="", indent=False, layout=w.Layout(width="2em"))
        where = ", ".join(f"<code>{render_html.place(*render_html.split_place(r))}</code>" for r in info.resolved) or (
            "pending" if info.pending else "-")
        label = w.HTML(f"<code>{info.number}</code> {escape(info.kind)} <code>{escape(info.location)}</code> "
                       f"&rarr; {where} <span>({info.hits} hit{'s' if info.hits != 1 else ''})</span>")
        condition = w.Text(value=info.condition or "", placeholder="condition, e.g. index > 2",
                           continuous_update=False, layout=w.Layout(width="16em"))
        delete = w.Button(description="delete", button_style="warning", layout=w.Layout(width="6em"))
        number = info.number
        enabled.observe(lambda change: self._act(lambda: self.debugger.enable_breakpoints(
            [number], change["new"]), f"breakpoint {number} {'enabled' if change['new'] else 'disabled'}"),
            names="value")
        condition.observe(lambda change: self._act(lambda: self.debugger.set_condition(
            number, change["new"].strip()), f"breakpoint {number}: "
            + (f"only when {change['new'].strip()}" if change["new"].strip() else "no condition")), names="value")
        delete.on_click(lambda _: self._act(lambda: self.debugger.delete_breakpoints([number]),
                                            f"breakpoint {number} deleted", refresh=True))
        box = w.HBox([enabled, label, condition, delete])
        box.add_class(f"pyo3-native-breakpoint-{number}")
        return {"box": box, "enabled": enabled, "condition": condition, "delete": delete, "label": label}

    def _act(self, action, done: str, refresh: bool = False) -> None:
        try:
            action()
        except DebugMagicError as error:
            self._say(str(error), error=True)
            self.refresh()  # show what gdb has, not what was typed
            return
        self._say(done)
        if refresh:
            self.refresh()

    def _say(self, message: str, error: bool = False) -> None:
        color = "#b00" if error else "#555"
        self.status.value = f"<span style=\"color:{color}\">{escape(message)}</span>"


def breakpoint_list(shell, debugger, rows: list[BreakpointInfo]) -> dict:
    """What ``%native_break`` with no argument displays: the panel in a kernel, else text."""
    plain = render_text.breakpoint_table(rows)
    if not kernel_has_widgets(shell):
        return {"text/plain": plain}
    return bundle(BreakpointPanel(debugger, rows).widget, plain, render_html.breakpoint_table(rows))


class ThreadExplorer:
    """Threads, their frames and locals (``%native_bt``, ``%native_crash``): a thread picked in
    the list shows its merged stack; the frames of the user's crate are in bold, and a frame
    picked shows where it is and the locals captured with the stack. Everything comes from
    the report already captured: nothing is read from the process again."""

    def __init__(self, threads, title: str, hidden=(), head_html: str = ""):
        import ipywidgets as w

        self.threads = list(threads) + list(hidden)
        options = [(render_text.thread_title(t) + ("  [kernel machinery]" if t in hidden else ""), i)
                   for i, t in enumerate(self.threads)]
        self.thread_list = w.Dropdown(options=options, layout=w.Layout(width="95%"))
        self.frame_list = w.Select(options=[], rows=12, layout=w.Layout(width="95%"))
        self.detail = w.HTML()
        self.thread_list.observe(lambda change: self._show_thread(change["new"]), names="value")
        self.frame_list.observe(lambda change: self._show_frame(change["new"]), names="value")
        self.widget = w.VBox([w.HTML(head_html or f"<b>{escape(title)}</b>"), self.thread_list, self.frame_list,
                              self.detail],
                             layout=w.Layout(border="1px solid #ccc", padding="4px"))
        self.widget.add_class("pyo3-native-thread-explorer")
        if self.threads:
            self._show_thread(0)

    def _show_thread(self, index: int) -> None:
        thread = self.threads[index]
        self.frame_list.options = [(("» " if e.user else "  ") + render_text.entry_line(e).strip(), i)
                                   for i, e in enumerate(thread.entries)]
        first_user = next((i for i, e in enumerate(thread.entries) if e.user), 0)
        self.frame_list.value = first_user if thread.entries else None
        self._show_frame(self.frame_list.value)

    def _show_frame(self, index) -> None:
        thread = self.threads[self.thread_list.value]
        if index is None or not thread.entries:
            self.detail.value = "<i>no frames</i>"
            return
        entry = thread.entries[index]
        kind = "Python" if entry.kind == "python" else ("your crate" if entry.user else "library / runtime")
        parts = [f"<p><code>{escape(entry.function)}</code> at <code>{escape(str(entry.file))}:{entry.line}</code>"
                 f" ({kind})</p>"]
        if thread.locals and index == next((i for i, e in enumerate(thread.entries) if e.user), 0):
            parts.append(f"<p>locals of {escape(thread.locals_of or 'this frame')}:</p>"
                         + render_html.locals_html(thread.locals))
        self.detail.value = "".join(parts)


def threads_view(shell, threads, title: str, plain: str, html: str, hidden=(), head_html: str = "") -> dict:
    """A stack view: the explorer in a kernel (its HTML and text as fallbacks), else the text.
    ``head_html`` leads the explorer (a crash: what happened and where)."""
    if not kernel_has_widgets(shell) or not threads:
        return {"text/plain": plain, "text/html": html}
    return bundle(ThreadExplorer(threads, title, hidden, head_html).widget, plain, html)


def crash_view(shell, report) -> dict:
    """``%native_crash``: what happened and where, then the explorer of its threads (the
    crashed one first, with the locals of its faulting frame); the report's HTML and text
    as the fallbacks."""
    threads = list(report.threads)
    if threads and report.locals:
        threads[0] = replace(threads[0], locals=report.locals, locals_of=report.locals_of)
    return threads_view(shell, threads, report.summary, render_text.crash_report(report),
                        render_html.crash_report(report), report.hidden, render_html.crash_head(report))


class RefcheckExplorer:
    """A refcheck report: the verdict, then each measured row (the call's arguments, its
    result, the process-wide counters); a row picked shows its per-call numbers as bars."""

    def __init__(self, report):
        import ipywidgets as w

        self.report = report
        self.rows = [*report.objects, *([report.result] if report.result else []), *report.counters]
        self.row_list = w.Select(options=[(self._label(row), i) for i, row in enumerate(self.rows)],
                                 rows=min(max(len(self.rows), 2), 8), layout=w.Layout(width="95%"))
        self.detail = w.HTML()
        self.row_list.observe(lambda change: self._show(change["new"]), names="value")
        verdict = "OK" if report.ok else "LEAK"
        self.widget = w.VBox([w.HTML(f"<b>refcheck {escape(report.label)}: {verdict}</b><br>{render_html.with_code(report.verdict)}"),
                              self.row_list, self.detail], layout=w.Layout(border="1px solid #ccc", padding="4px"))
        self.widget.add_class("pyo3-refcheck-explorer")
        if self.rows:
            problems = [i for i, row in enumerate(self.rows) if row.verdict.name in ("LEAK", "OVER_RELEASE")]
            self.row_list.value = problems[0] if problems else 0
            self._show(self.row_list.value)

    @staticmethod
    def _label(row) -> str:
        per_call = "-" if row.per_call is None else f"{row.per_call:+g}"
        unit = getattr(row, "unit", "references")
        return f"{row.verdict.name:<13} {row.name}: {per_call} {unit}/call"

    def _show(self, index) -> None:
        if index is None:
            return
        row = self.rows[index]
        deltas = getattr(row, "deltas", ())
        parts = [f"<p><code>{escape(row.name)}</code>: {escape(row.verdict.name)}"
                 + (f" ({escape(row.note)})" if row.note else "") + "</p>"]
        if deltas:
            top = max(abs(d) for d in deltas) or 1
            bars = "".join(f"<div title=\"call {n}: {d:+g}\" style=\"display:inline-block;width:10px;margin-right:2px;"
                           f"height:{max(int(40 * abs(d) / top), 1)}px;background:{'#cf222e' if d > 0 else '#8c959f'}\"></div>"
                           for n, d in enumerate(deltas, 1))
            parts.append(f"<p>change on each measured call:</p><div style=\"display:flex;align-items:flex-end;"
                         f"height:42px\">{bars}</div><pre>{escape(', '.join(f'{d:+g}' for d in deltas))}</pre>")
        elif getattr(row, "refcount_before", None) is not None:
            parts.append(f"<p>refcount {row.refcount_before} before the calls, {row.refcount_after} after</p>")
        self.detail.value = "".join(parts)


def refcheck_bundle(report, include=None, exclude=None):
    """IPython's mimebundle formatter for a refcheck report: the explorer, with the report's
    own HTML and text; None outside a kernel (the plain formatters apply)."""
    from IPython import get_ipython

    if not kernel_has_widgets(get_ipython()):
        return None
    return bundle(RefcheckExplorer(report).widget, repr(report), report._repr_html_())
