"""Every renderer over hand-built model objects (as pystack tests its formatter): text and
HTML forms, no gdb, no kernel. ``test_layout.py`` checks that ``render/`` imports only the model."""
from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

from pyo3_debug_magic import model
from pyo3_debug_magic.model import (AttachStatus, BreakpointInfo, BreakpointLocation, CrashReport, HangReport, HitPlace, LogHit,
                                    MergedStack, NativeFrame, PythonFrame, Snapshot, StackEntry, Stop,
                                    ThreadStack, Variable)
from pyo3_debug_magic.stacks import sources
from pyo3_debug_magic.render import html as render_html
from pyo3_debug_magic.render import text as render_text


def source_file(tmp_path):
    path = tmp_path / "lib.rs"
    path.write_text("\n".join(f"    let line{n} = {n};" for n in range(1, 41)) + "\n")
    return path


def a_stop(tmp_path, reason="breakpoint-hit", handed_off=True) -> Stop:
    lib = str(source_file(tmp_path))
    native = (NativeFrame(0, "mycrate::compute", "src/lib.rs", lib, 20, user=True),
              NativeFrame(1, "pyo3::impl_::trampoline", "src/impl_/trampoline.rs", "/cargo/pyo3/trampoline.rs", 9),
              NativeFrame(2, "pyo3::impl_::panic", "src/impl_/panic.rs", "/cargo/pyo3/panic.rs", 3),
              NativeFrame(3, "_PyEval_EvalFrameDefault", "Python/ceval.c", None, 100, runtime=True))
    stack = MergedStack(native[:3], (PythonFrame("/tmp/ipykernel_1/2.py", 3, "<module>", True),), 1)
    return Stop(1, reason, 1, handed_off, native, stack, (Variable("total", "21"), Variable("values", "Vec(size=3) = {1, 2, 3}", True)),
                source_lines=sources.around(native[0]))


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.open: list[str] = []
        self.seen: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.seen.append(tag)
        if tag not in ("br", "img", "meta", "input", "hr"):
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def well_formed(markup: str) -> list[str]:
    parser = Tags()
    parser.feed(markup)
    parser.close()
    assert parser.open == [], f"unclosed {parser.open}"
    return parser.seen


def test_stop_view_text_has_where_source_backtrace_locals_and_the_gil_note(tmp_path):
    view = render_text.stop_view(a_stop(tmp_path))
    lines = view.splitlines()
    assert lines[0].startswith("native breakpoint 1 hit in thread 1: mycrate::compute at src/lib.rs:20")
    assert "-> 20      let line20 = 20;" in view
    assert "      ... 2 frames in pyo3/std (#1-#2)" in view  # library frames fold
    assert "(1 interpreter and runtime frames hidden)" in view
    assert "  py  <module>  at /tmp/ipykernel_1/2.py:3  <- cell" in view
    assert "total  = 21" in view and "values = Vec(size=3) = {1, 2, 3}" in view
    assert "implicit allow_threads" in view and view.rstrip().endswith("py EXPR q help")


def test_the_gil_note_is_said_in_full_once_then_as_a_marker(tmp_path):
    from dataclasses import replace as replaced

    later = replaced(a_stop(tmp_path), gil_explained=True)
    for view in (render_text.stop_view(later), render_html.stop_view(later)):
        assert "allow_threads" not in view and "GIL handed over while paused" in view


def test_stop_view_compact_after_a_step_and_without_a_hand_off(tmp_path):
    view = render_text.stop_view(a_stop(tmp_path, reason="end-stepping-range", handed_off=False), compact=True)
    assert view.startswith("thread 1 stepped to mycrate::compute at src/lib.rs:20")
    assert "backtrace:" not in view and "allow_threads" not in view
    assert view.count("\n") < 10


def test_stop_view_html_is_self_contained_and_highlights_the_line(tmp_path):
    markup = render_html.stop_view(a_stop(tmp_path))
    tags = well_formed(markup)
    assert "details" in tags and "pre" in tags
    assert "background-color" in markup  # pygments marks the current line
    assert "mycrate::compute" in markup and "&lt;module&gt;" in markup
    assert "<script" not in markup and "http" not in markup  # nothing loaded from anywhere
    # the folded pyo3/std run unfolds in the page: its frames are there, inside a <details>
    folded = markup.split("frames in pyo3/std (#1-#2)</summary>")[1].split("</details>")[0]
    assert "#1   pyo3::impl_::trampoline  at src/impl_/trampoline.rs:9" in folded


def test_backtrace_keeps_the_selected_frame_unfolded(tmp_path):
    text = render_text.backtrace(a_stop(tmp_path).stack, selected=2)
    assert ">#2   pyo3::impl_::panic  at src/impl_/panic.rs:3" in text
    assert "... 1 frames in pyo3/std (#1-#1)" in text


def a_thread(label="1", **changes) -> ThreadStack:
    fields = dict(label=label, name="MainThread", os_thread_id=100, holds_gil=True, idle=False, entries=(
        StackEntry("native", "mycrate::busy", "src/lib.rs", 30, user=True, level=0),
        StackEntry("native", "pyo3::trampoline", "trampoline.rs", 9, level=1),
        StackEntry("native", "std::panicking::try", "panicking.rs", 5, level=2),
        StackEntry("python", "<module>", "/tmp/ipykernel_1/3.py", 1, is_cell=True)))
    fields.update(changes)
    return ThreadStack(**fields)


def test_snapshot_text_folds_library_frames_and_names_hidden_threads():
    hidden = (a_thread("5", name="IOPub", holds_gil=False, idle=True), a_thread("6", name="IOPub"))
    view = Snapshot("gdb", (a_thread(locals=(Variable("n", "3"),), locals_of="#0 mycrate::busy"),),
                    hidden=hidden, notes=("(a note)",))
    text = render_text.snapshot(view)
    assert text.startswith('Thread 1 "MainThread" (LWP 100): holds the GIL, running')
    assert "  #0 mycrate::busy  at src/lib.rs:30" in text and "     ... 2 library frames" in text  # numbered as in gdb
    assert "  py <module>  at /tmp/ipykernel_1/3.py:1  <- cell" in text
    assert "  locals of #0 mycrate::busy:\n    n = 3" in text
    assert text.endswith("(a note)\n(2 threads of the kernel's own machinery hidden: IOPub x2; `--all` shows them)")
    assert "pyo3::trampoline" in render_text.snapshot(view, full=True)


def test_crash_report_leads_with_the_summary_then_the_faulting_thread():
    report = CrashReport(
        signal="SIGSEGV", thread=1, summary="SIGSEGV in mycrate::segfault at src/lib.rs:57, called from cell line 3",
        origin="pid 42", fault_address="0x0", instruction="=> 0x7f: mov %eax,(%rdx)",
        threads=(a_thread(), a_thread("2", name="worker", holds_gil=False, idle=True)),
        locals=(Variable("pointer", "0x0"),), locals_of="mycrate::segfault (src/lib.rs:57)",
        stderr_tail="thread panicked\n", capture_error=None, path="/state/crash-42-1.json",
        hidden=(a_thread("3", name="IOPub", holds_gil=False, idle=True),))
    text = render_text.crash_report(report)
    lines = text.splitlines()
    assert lines[0] == report.summary
    assert lines[1] == "signal SIGSEGV in thread 1 of pid 42, fault address 0x0"
    assert (text.index("crashed thread:") < text.index("locals of mycrate::segfault (src/lib.rs:57):")
            < text.index("faulting instruction") < text.index("other threads:"))
    assert "end of the process's stderr:\n  thread panicked" in text
    assert "(1 threads of the kernel's own machinery hidden: IOPub; the report file has them)" in text
    assert text.endswith("(report: /state/crash-42-1.json)")


def test_stack_overflow_and_a_partial_capture_are_said():
    report = CrashReport(signal="SIGSEGV", thread=3, summary="stack overflow (SIGSEGV)", origin="core file /tmp/c",
                         stack_pointer="0x7ff0", stack_depth=4096, stack_overflow=True,
                         capture_error="GdbTimeoutError: slow")
    text = render_text.crash_report(report)
    assert "of core file /tmp/c" in text
    assert "stack overflow: the fault is at the thread's stack guard (stack pointer 0x7ff0, 4096 frames deep)" in text
    assert text.endswith("(part of the report could not be captured: GdbTimeoutError: slow)")


def test_hang_report_says_whether_the_gil_is_held_and_what_to_do():
    held = render_text.hang_report(HangReport("the Interrupt was not honoured within 2 s", a_thread(), "a note"))
    assert "looks stuck (the Interrupt was not honoured within 2 s); it holds the GIL, so no Python" in held
    assert "nothing is killed for you." in held and held.endswith("(a note)")
    free = render_text.hang_report(HangReport("watch", a_thread(holds_gil=False)))
    assert "it does not hold the GIL" in free
    unknown = render_text.hang_report(HangReport("watch", a_thread(holds_gil=None)))
    assert "whether it holds the GIL could not be read" in unknown


def test_breakpoints_log_hits_and_attach_status():
    info = BreakpointInfo(2, "log", "src/lib.rs:20", True, 0, None, False, (BreakpointLocation(fullname="/c/src/lib.rs", line=20),),
                          "line 19 has no code; the breakpoint is on line 20")
    assert render_text.breakpoint_created(info) == ("native log breakpoint 2 at src/lib.rs:20 -> /c/src/lib.rs:20\n"
                                                    "line 19 has no code; the breakpoint is on line 20")
    table = render_text.breakpoint_table([info, BreakpointInfo(3, "pause", "mycrate::f", False, 4, "x > 1", True, ())])
    assert table.splitlines()[2] == "3    pause  n    4     mycrate::f -> <pending>  if x > 1"
    assert render_text.breakpoint_table([]) == "no native breakpoints"
    compute, f = HitPlace("mycrate::compute", "src/lib.rs", line=20), HitPlace("f", "src/lib.rs", line=9)
    hits = render_text.log_hits([LogHit(2, 1, None, "src/lib.rs:20", compute, (("total", "21"),), (compute,)),
                                 LogHit(1, 1, None, "src/lib.rs:9", f, unattended=True),
                                 LogHit(1, 2, None, "src/lib.rs:9", f, unattended=True,
                                        not_paused_because="the Interrupt ended this cell's pauses")])
    assert hits.splitlines() == ["[log breakpoint 2 hit 1] mycrate::compute at src/lib.rs:20  total = 21",
                                 "    src/lib.rs:20 mycrate::compute",
                                 "[breakpoint (no stdin: not paused) 1 hit 1] f at src/lib.rs:9",
                                 "[breakpoint (the Interrupt ended this cell's pauses: not paused) 1 hit 2] f at src/lib.rs:9"]
    status = AttachStatus(True, 42, "GNU gdb 18.1", 0.5, 12, "Rust values print raw")
    assert render_text.attach_status(status) == ("native debugger attached to kernel pid 42 in 0.50 s "
                                                 "(12 threads, non-stop; GNU gdb 18.1)\nRust values print raw")


def test_signed_bytes():
    assert [model.signed_bytes(v) for v in (12, -2048, 3 << 20)] == ["+12 B", "-2.0 KiB", "+3.0 MiB"]


def test_every_view_has_an_html_twin_that_is_well_formed_and_escaped():
    thread = a_thread(locals=(Variable("s", '"<b>not markup</b>"'),), locals_of="#0 mycrate::busy")
    crash = CrashReport(signal="SIGSEGV", thread=1, summary="SIGSEGV in mycrate::segfault at src/lib.rs:57",
                        origin="pid 42", threads=(thread, a_thread("2", name="worker")),
                        locals=(Variable("p", "0x0"),), locals_of="#0", stderr_tail="panicked at <here>",
                        path="/s/crash.json")
    views = {
        "snapshot": render_html.snapshot(Snapshot("gdb", (thread,), hidden=(a_thread("3", name="IOPub"),))),
        "crash": render_html.crash_report(crash),
        "hang": render_html.hang_report(HangReport("watch", thread, "a <note>")),
        "breakpoints": render_html.breakpoint_table([BreakpointInfo(1, "pause", "src/lib.rs:20", True, 2, "a < b",
                                                                    True, ())]),
        "created": render_html.breakpoint_created(BreakpointInfo(1, "pause", "x", True, 0, None, True, ())),
        "log": render_html.log_hits([LogHit(1, 1, None, "l", HitPlace("f", "src/lib.rs", line=3), (("v", "<1>"),))]),
        "attach": render_html.attach_status(AttachStatus(True, 1, "gdb", None, 3)),
    }
    for name, markup in views.items():
        well_formed(markup)
        assert "<b>not markup</b>" not in markup and "<here>" not in markup and "<note>" not in markup, name
        assert "<script" not in markup, name
    assert "&lt;b&gt;not markup&lt;/b&gt;" in views["snapshot"]
    assert views["crash"].index("crashed thread") < views["crash"].index("other threads (1)")
    assert "<details" in views["snapshot"] and "library frames" in views["snapshot"]  # folded, unfoldable
    assert "IOPub" in views["snapshot"] and "&lt;pending&gt;" in views["breakpoints"]


def test_a_stop_without_variable_information_says_why(tmp_path):
    from dataclasses import replace

    stop = replace(a_stop(tmp_path), locals=(), locals_note="no locals: line information only")
    assert "locals:\nno locals: line information only" in render_text.stop_view(stop)
    assert "no locals: line information only" in render_html.stop_view(stop)


ENUMERATE = ("core::iter::adapters::enumerate::Enumerate<core::slice::iter::Iter<i64>> {iter: core::slice::iter::"
             "Iter<i64> {ptr: core::ptr::non_null::NonNull<i64> {pointer: &2}, end_or_len: &1249, _marker: "
             "core::marker::PhantomData<&i64>}, count: 1}")


def test_std_internals_fold_to_one_line_and_locals_raw_unfolds_them():
    from pyo3_debug_magic.model import Variable
    from pyo3_debug_magic.render import html, text

    variables = (Variable("value", "&1"), Variable("iter", ENUMERATE), Variable("values", "Vec(size=3) = {1, 2, 3}"))
    folded = text.locals_table(variables)
    assert "iter   = Enumerate<Iter<i64>> {…}" in folded and "value  = &1" in folded
    assert "`locals --raw` shows them" in folded and ENUMERATE not in folded
    assert ENUMERATE in text.locals_table(variables, raw=True)
    assert text.folded_value("core::option::Option<i64>::Some(3)") is None  # short: as it is
    page = html.locals_html(variables)
    assert "<details><summary" in page and "Enumerate&lt;Iter&lt;i64&gt;&gt; {…}" in page
    assert html.escape(ENUMERATE) in page  # the whole value is in the page, one click away


def test_what_follows_a_cell_is_one_titled_block():
    from pyo3_debug_magic.model import HitPlace, LogHit

    hit = LogHit(1, 1, None, "src/lib.rs:9", HitPlace("f", "src/lib.rs", line=9), (("x", "1"),))
    text = render_text.after_cell(["native pause ended by the Interrupt button"], [hit])
    assert text.splitlines()[0] == "native debugger, after this cell:"
    assert text.splitlines()[1] == "  native pause ended by the Interrupt button"
    assert "[log breakpoint 1 hit 1] f at src/lib.rs:9  x = 1" in text
    markup = render_html.after_cell([], [hit])
    assert markup.count("pyo3-native-after-cell") == 1 and "<ul>" not in markup


def test_library_paths_are_shortened_with_the_whole_path_on_hover():
    from pyo3_debug_magic.model import StackEntry, ThreadStack

    full = "/work/.venv/lib/python3.11/site-packages/_pytest/python.py"
    assert render_html.short_path(full) == "…/site-packages/_pytest/python.py"
    assert render_html.short_path("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pyo3-0.23.5/src/err/mod.rs") \
        == "…/pyo3-0.23.5/src/err/mod.rs"
    assert render_html.short_path("/rustc/59807616e1fa/library/core/src/ptr/mod.rs") == "rust/core/src/ptr/mod.rs"
    assert render_html.short_path("src/lib.rs") == "src/lib.rs"
    thread = ThreadStack("1", "MainThread", 1, None, False, (StackEntry("python", "pytest_pyfunc_call", full, 187),))
    markup = render_html.thread_stacks([thread])
    assert f'title="{full}:187"' in markup and "…/site-packages/_pytest/python.py:187</span>" in markup


def test_renderers_show_the_source_lines_the_model_carries_and_never_read_files(tmp_path):
    stop = a_stop(tmp_path)
    Path(stop.frame.fullname).unlink()  # read when the stop was built: the view still has it
    assert "-> 20      let line20 = 20;" in render_text.stop_view(stop)
    assert "line20" in render_html.stop_view(stop)
    # a stop without its lines says so, in both forms, rather than showing another frame's
    bare = replace(stop, source_lines=None)
    assert "source not available" in render_text.stop_view(bare) and "source not available" in render_html.stop_view(bare)
    moved = replace(stop, selected=1)  # lines of frame 0 are not shown for frame 1
    assert "let line20" not in render_text.stop_view(moved)


def test_the_html_source_excerpt_numbers_and_marks_the_right_lines_around_blank_ones():
    """Pygments' lexers drop leading blank lines by default: an excerpt starting on one was
    numbered one line off and marked the line after the stop."""
    import re as regex
    from html import unescape

    lines = tuple("" if n in (27, 33) else f"let x{n} = {n};" for n in range(1, 41))
    frame = NativeFrame(0, "mycrate::compute", "src/lib.rs", "/x/src/lib.rs", 30, user=True)
    page = render_html.source_snippet(frame, model.SourceLines("/x/src/lib.rs", 1, lines))
    marked = regex.search(r'<span style="background-color: #ffffcc">(.*?)\n', page, regex.S).group(1)
    body = page.split("<pre", 1)[1].split(">", 1)[1].split("</pre>")[0]
    shown = [unescape(regex.sub(r"<[^>]+>", "", row)) for row in body.rstrip("\n").split("\n")]
    assert [row[:2] for row in shown] == [str(n) for n in range(27, 34)]
    assert all(row[2:] == lines[int(row[:2]) - 1] for row in shown), shown
    assert unescape(regex.sub(r"<[^>]+>", "", marked)) == "30" + lines[29]


def test_a_crash_report_of_another_process_says_it_was_earlier_and_when():
    import os
    import time

    from pyo3_debug_magic.stacks.backtrace import crash_report

    died = time.time() - 300
    report = crash_report(model.CrashRecord(signal="SIGSEGV", thread=1, pid=os.getpid() + 1, time=died))
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(died))
    assert report.origin == (f"pid {os.getpid() + 1}, an earlier process than this one (pid {os.getpid()}), "
                             f"crashed {when} (5 min ago)")
    assert crash_report(model.CrashRecord(signal="SIGSEGV", thread=1, pid=os.getpid(), time=died)).origin == \
        f"pid {os.getpid()}"


def test_the_stop_backtrace_puts_each_python_frame_where_it_runs():
    from pyo3_debug_magic.stacks.merging import merge

    lib, crate = "/usr/lib/libpython3.11.so", str(Path(__file__).resolve().parents[2] / "examples/rustdemo/src/lib.rs")
    native = (NativeFrame(0, "rustdemo::square", "src/lib.rs", crate, 32, user=True),
              NativeFrame(1, "pyo3::impl_::trampoline", "t.rs", "/cargo/pyo3/t.rs", 9),
              NativeFrame(2, "_PyEval_EvalFrameDefault", None, None, None, lib, runtime=True),
              NativeFrame(3, "rustdemo::call_python", "src/lib.rs", crate, 40, user=True),
              NativeFrame(4, "_PyEval_EvalFrameDefault", None, None, None, lib, runtime=True))
    python = (model.PythonFrame("/tmp/ipykernel_1/2.py", 1, "<lambda>", True, entered=True),
              model.PythonFrame("/tmp/ipykernel_1/2.py", 1, "<module>", True, entered=True))
    view = render_text.backtrace(merge(native, python))
    names = [line.split()[1] for line in view.splitlines()
             if "frames" not in line]
    assert names == ["rustdemo::square", "<lambda>", "rustdemo::call_python", "<module>"], view
    assert view.index("interpreter and runtime frames hidden") < view.index("<lambda>")
    # py-spy's frames do not say where they were entered: they go last, as before
    unknown = tuple(model.PythonFrame(f.file, f.line, f.function, True) for f in python)
    assert render_text.backtrace(merge(native, unknown)).index("call_python") < \
        render_text.backtrace(merge(native, unknown)).index("<lambda>")

