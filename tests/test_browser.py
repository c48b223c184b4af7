"""JupyterLab in headless Chromium (Debian's), driven by Playwright, on notebooks in a folder
outside the crate: a pause read and answered in the cell's input box, the breakpoint panel
used (a disabled breakpoint no longer pauses), and a crash followed by the restart and the
crash view. Screenshots go to out/browser/ (the run's summary names the folder)."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from harness import ROOT, SCREENSHOTS, marker_line

pytestmark = [pytest.mark.kernel, pytest.mark.gdb, pytest.mark.timeout(300)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "out" / "browser"
LIVE_INPUT = ".jp-OutputArea-stdin-item:not(.jp-OutputArea-stdin-hiding) .jp-Stdin-input"
CELLS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab(tmp_path, demo_crate, gdb_path):
    """A JupyterLab server on localhost (a token, its own config and runtime folders) serving
    a folder outside the crate."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"chromium is missing ({CHROMIUM}): bash scripts/setup.sh installs it")
    work = tmp_path / "notebooks"
    work.mkdir()
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "PYO3_DEBUG_MAGIC_STATE": str(tmp_path / "state")}
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--ip", "127.0.0.1",
         f"--port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}", "--allow-root"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.3)
    try:
        yield url, token, work
    finally:
        server.terminate()  # it shuts its kernels down
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def write_notebook(path: Path, sources: list[str]) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(notebook, path)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            yield chromium
        finally:
            chromium.close()


def open_notebook(browser, lab, name: str):
    url, token, _ = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(f"{url}/lab/tree/{name}?token={token}")
    page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first.wait_for(timeout=90_000)
    return page


def run_cell(page, index: int):
    cell = page.locator(CELLS).nth(index)
    cell.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    return cell


def finished(cell, count: int) -> None:
    """The cell ran: its prompt shows its execution count."""
    cell.locator(".jp-InputArea-prompt", has_text=f"[{count}]").wait_for(timeout=90_000)


def answer(page, text: str) -> None:
    box = page.locator(LIVE_INPUT)
    box.wait_for(timeout=60_000)
    box.fill(text)
    box.press("Enter")


def shot(target, name: str) -> None:
    """A screenshot of the whole page, or of one element (a locator: the notebook scrolls
    inside the page, so a page's screenshot misses what is below its fold)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    target.screenshot(path=str(path), **({"full_page": True} if hasattr(target, "goto") else {}))
    SCREENSHOTS.append(str(path))


def test_pause_answered_in_the_cell_and_a_breakpoint_disabled_in_the_panel(lab, browser):
    loop, result = marker_line("compute-loop"), marker_line("compute-result")
    write_notebook(lab[2] / "pause.ipynb", [
        "%load_ext pyo3_debug_magic\nimport rustdemo",
        f"%native_break src/lib.rs:{loop} --temporary",
        "rustdemo.compute([1, 2, 3])",
        f"%native_break src/lib.rs:{result}",
        "%native_break",
        "rustdemo.compute([1, 2, 3])",
    ])
    page = open_notebook(browser, lab, "pause.ipynb")
    finished(run_cell(page, 0), 1)
    run_cell(page, 1).locator(".jp-OutputArea-output", has_text="native breakpoint 1 at").wait_for(timeout=60_000)
    paused = run_cell(page, 2)
    stop = paused.locator(".pyo3-native-stop").first
    stop.wait_for(timeout=60_000)
    page.locator(LIVE_INPUT).wait_for(timeout=60_000)
    shot(page, "1-paused")
    view = stop.inner_text()
    assert "native breakpoint 1 hit in thread 1:" in view and f"rustdemo::compute at src/lib.rs:{loop}" in view
    assert "rustdemo::compute" in view and "py " in view          # Rust and Python frames, merged
    assert "value" in view and "= &1" in view                      # a reference followed one level
    marked = stop.locator("span[style*='#ffffcc']").first          # the current line, highlighted
    assert "let term" in marked.inner_text()
    answer(page, "n")
    paused.locator(".pyo3-native-stop", has_text="stepped to").first.wait_for(timeout=60_000)
    answer(page, "c")
    paused.locator(".jp-OutputArea-executeResult", has_text="42").wait_for(timeout=60_000)
    shot(page, "2-answered")

    run_cell(page, 3).locator(".jp-OutputArea-output", has_text="native breakpoint 2").wait_for(timeout=60_000)
    panel = run_cell(page, 4).locator(".pyo3-native-breakpoint-panel")
    panel.wait_for(timeout=60_000)
    row = panel.locator(".pyo3-native-breakpoint-2")
    assert f"src/lib.rs:{result}" in row.inner_text()
    row.locator("input[type=checkbox]").uncheck()
    panel.get_by_text("breakpoint 2 disabled").wait_for(timeout=30_000)
    shot(page, "3-panel")
    again = run_cell(page, 5)
    again.locator(".jp-OutputArea-executeResult", has_text="42").wait_for(timeout=60_000)
    assert page.locator(LIVE_INPUT).count() == 0 and again.locator(".pyo3-native-stop").count() == 0
    page.close()


def test_crash_then_restart_shows_the_crash_view(lab, browser):
    write_notebook(lab[2] / "crash.ipynb", [
        "%load_ext pyo3_debug_magic\nimport rustdemo\n%native_attach",
        "rustdemo.segfault()",
        "%load_ext pyo3_debug_magic",
        "%native_crash",
    ])
    page = open_notebook(browser, lab, "crash.ipynb")
    run_cell(page, 0).locator(".jp-OutputArea-output", has_text="attached").first.wait_for(timeout=90_000)
    run_cell(page, 1)
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=60_000)  # "The kernel ... appears to have died. It will restart automatically."
    assert "died" in dialog.inner_text() or "Restart" in dialog.inner_text()
    shot(page, "4-kernel-died")
    dialog.locator("button", has_text="Ok").click()
    page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first.wait_for(timeout=90_000)
    loaded = run_cell(page, 2).locator(".jp-OutputArea-output", has_text="The previous kernel crashed")
    loaded.wait_for(timeout=60_000)
    assert f"SIGSEGV in rustdemo::segfault at src/lib.rs:{marker_line('segfault')}" in loaded.inner_text()
    crash = run_cell(page, 3).locator(".pyo3-native-thread-explorer")  # the crash explorer (a widget)
    crash.wait_for(timeout=60_000)
    shot(page, "5-crash-view")
    view = crash.inner_text()
    line = marker_line("segfault")
    assert f"SIGSEGV in rustdemo::segfault at src/lib.rs:{line}, called from cell line 1" in view, view
    assert "MARK: segfault" in view  # the source at the fault
    frames = [text.replace("\xa0", " ") for text in crash.locator(".widget-select select option").all_inner_texts()]
    assert any(re.search(rf"» #\d+ rustdemo::segfault  at src/lib.rs:{line}$", text) for text in frames), frames
    detail = crash.locator(".widget-html", has_text="locals of").inner_text().replace("\xa0", " ")
    assert "target = 0x0" in detail, detail  # the locals of the faulting frame
    page.close()


def test_a_callback_threads_backtrace_and_a_profile_read_in_jupyterlab(lab, browser):
    """A thread whose Rust calls back into Python, waiting there: its backtrace in the thread
    explorer lists the callback's Python frames above the Rust that called them and the
    thread's own Python below; then a profile's flamegraph and table (screenshots of both)."""
    write_notebook(lab[2] / "views.ipynb", [
        "%load_ext pyo3_debug_magic\nimport rustdemo, threading\nstarted, release = threading.Event(), threading.Event()\n"
        "def callback(value):\n    started.set()\n    release.wait(60)\n    return value\n"
        "worker = threading.Thread(target=lambda: rustdemo.call_python(callback, 1), name='callback-worker')\n"
        "worker.start()\nstarted.wait(10)",
        "%native_bt --engine gdb",
        "release.set()\nworker.join()",
        "%%native_profile\nfor _ in range(300):\n    rustdemo.call_python(lambda v: rustdemo.busy_work(300_000) + v, 4)",
    ])
    page = open_notebook(browser, lab, "views.ipynb")
    finished(run_cell(page, 0), 1)
    explorer = run_cell(page, 1).locator(".pyo3-native-thread-explorer")
    explorer.wait_for(timeout=90_000)
    threads = explorer.locator(".widget-dropdown select")
    titles = threads.locator("option").all_inner_texts()
    worker = next(i for i, title in enumerate(titles) if "callback-worker" in title)
    threads.select_option(index=worker)
    frames = explorer.locator(".widget-select select option")
    frames.filter(has_text="rustdemo::call_python").first.wait_for(timeout=30_000)
    shot(page, "6-callback-thread-backtrace")
    shown = [text.replace("\xa0", " ") for text in frames.all_inner_texts()]
    order = [next(i for i, text in enumerate(shown) if re.search(pattern, text)) for pattern in
             (r"py Event\.wait ", r"py callback ", r"#\d+ rustdemo::call_python ", r"py <lambda> ", r"py Thread\.run ")]
    assert order == sorted(order), shown  # innermost first: the callback above the Rust that called it
    finished(run_cell(page, 2), 3)
    profile = run_cell(page, 3).locator(".pyo3-profile")
    profile.wait_for(timeout=120_000)
    profile.locator(".fg .fg-frame").first.wait_for(timeout=30_000)
    profile.scroll_into_view_if_needed()
    shot(profile, "7-profile")
    table = profile.locator("table").inner_text()
    assert "rustdemo::busy_work" in table and "trampoline" not in table, table  # no plumbing rows
    bars = profile.locator(".fg .fg-frame").all_inner_texts()
    assert any(re.match(r"\d+ library frames", bar) for bar in bars), bars  # PyO3's plumbing folded
    page.close()

