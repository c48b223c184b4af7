"""The widgets, driven through ipywidgets' own state in a real kernel (no browser): the
breakpoint panel disables, conditions and deletes breakpoints in gdb, and falls back to its
HTML and text forms. (tests/test_browser.py uses it once in JupyterLab.)"""
from __future__ import annotations

import re

import pytest
from harness import marker_line

pytestmark = [pytest.mark.kernel, pytest.mark.gdb, pytest.mark.timeout(150)]

WIDGET = "application/vnd.jupyter.widget-view+json"


def test_breakpoint_panel_drives_gdb_through_its_widgets(loaded_kernel, gdb_path):
    kernel = loaded_kernel
    line = marker_line("square")
    assert kernel.run(f"%native_break src/lib.rs:{line}", timeout=60).status == "ok"
    listed = kernel.run("%native_break")
    bundle = listed.displays[-1]
    assert WIDGET in bundle, bundle.keys()  # the panel itself, for a front end with widgets
    assert f"src/lib.rs:{line}" in bundle["text/html"] and "<table" in bundle["text/html"]  # no widget manager
    assert bundle["text/plain"].startswith("Num  Type")                                    # terminals, logs

    setup = kernel.run("from pyo3_debug_magic.notebook.widgets import BreakpointPanel\n"
                       "from pyo3_debug_magic.debugger import get_debugger\n"
                       "panel = BreakpointPanel(get_debugger())\n"
                       "print(sorted(panel.rows), panel.rows[1]['enabled'].value)")
    assert setup.stdout.strip() == "[1] True", setup.text

    off = kernel.run("panel.rows[1]['enabled'].value = False\nprint(panel.status.value)")
    assert "breakpoint 1 disabled" in off.stdout, off.text
    quiet = kernel.run("rustdemo.square(4)", answers=[], timeout=60)
    assert quiet.results == ["16"] and quiet.prompts == [], quiet.text  # no pause

    kernel.run("panel.rows[1]['enabled'].value = True")
    conditioned = kernel.run("panel.rows[1]['condition'].value = 'value > 10'\nprint(panel.status.value)")
    assert "only when value &gt; 10" in conditioned.stdout, conditioned.text
    assert "if value > 10" in kernel.run("%native_break").displays[-1]["text/plain"]
    below = kernel.run("rustdemo.square(4)", answers=[], timeout=60)
    assert below.results == ["16"] and below.prompts == [], below.text
    above = kernel.run("rustdemo.square(11)", answers=["c"], timeout=60)
    assert len(above.prompts) == 1 and above.results == ["121"], above.text

    refused = kernel.run("panel.rows[1]['condition'].value = 'value >'\nprint(panel.status.value)")
    assert "color:#b00" in refused.stdout, refused.text  # gdb's error, shown in the panel

    deleted = kernel.run("panel.rows[1]['delete'].click()\nprint(sorted(panel.rows), panel.status.value)")
    assert deleted.stdout.startswith("[] ") and "breakpoint 1 deleted" in deleted.stdout, deleted.text
    assert "no native breakpoints" in kernel.run("%native_break").displays[-1]["text/plain"]


def test_thread_explorer_shows_a_threads_frames_and_locals(loaded_kernel, gdb_path):
    kernel = loaded_kernel
    assert kernel.run("%native_attach", timeout=60).status == "ok"
    listed = kernel.run("import threading\n"
                        "worker = threading.Thread(target=rustdemo.worker_without_gil, args=(20,), name='rust-worker',"
                        " daemon=True)\nworker.start()\nimport time; time.sleep(0.5)\n%native_bt --locals", timeout=60)
    bundle = listed.displays[-1]
    assert WIDGET in bundle and "rustdemo::busy_until" in bundle["text/plain"], bundle.keys()
    explored = kernel.run(
        "import os\nfrom pyo3_debug_magic.stacks import backtrace\nfrom pyo3_debug_magic.debugger import get_debugger\n"
        "from pyo3_debug_magic.notebook.widgets import ThreadExplorer\n"
        "view = backtrace.for_view(backtrace.capture('gdb', get_debugger(), with_locals=True), False,\n"
        "                          threading.get_native_id(), os.getpid())\n"
        "explorer = ThreadExplorer(view.threads, 'threads', view.hidden)\n"
        "worker_index = next(i for i, t in enumerate(explorer.threads) if t.name == 'rust-worker')\n"
        "explorer.thread_list.value = worker_index\n"
        "print(explorer.frame_list.options[explorer.frame_list.value][0])\n"
        "print(explorer.detail.value)", timeout=60)
    assert re.match(r"» #\d+ rustdemo::busy_until", explored.stdout), explored.text  # the crate's frame, picked
    assert "locals of" in explored.stdout and "deadline" in explored.stdout, explored.text


def test_refcheck_report_is_an_explorer_with_its_html_and_text(loaded_kernel):
    kernel = loaded_kernel
    shown = kernel.run("data = [object()]\nr = %refcheck --quiet rustdemo.leak_reference(data)\ndisplay(r)", timeout=60)
    assert shown.displays, shown.text
    bundle = shown.displays[-1]
    assert WIDGET in bundle, bundle.keys()
    assert bundle["text/plain"].startswith("refcheck rustdemo.leak_reference(data)") and "<table" in bundle["text/html"]
    picked = kernel.run("from pyo3_debug_magic.notebook.widgets import RefcheckExplorer\nx = RefcheckExplorer(r)\n"
                        "print(x.row_list.options[x.row_list.value][0])")
    assert picked.stdout.startswith("LEAK") and "data: +1 references/call" in picked.stdout, picked.text
    native = kernel.run("r2 = %refcheck --quiet rustdemo.leak_native(4096)\nx = RefcheckExplorer(r2)\n"
                        "print(x.row_list.options[x.row_list.value][0]); print(x.detail.value.count('<div title='))",
                        timeout=60)
    lines = native.stdout.splitlines()
    assert lines[0].startswith("LEAK") and "native heap" in lines[0] and lines[1] == "10", native.text  # a bar a call
