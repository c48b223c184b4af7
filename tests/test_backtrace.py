"""%native_bt in a real kernel: both engines, a GIL-released Rust worker and the cell's line."""
from __future__ import annotations

import re

import pytest

from harness import KernelHarness, marker_line, snapshot_of_process
from pyo3_debug_magic.stacks.merging import clean_rust_name

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]

WORKER = ("import threading, time\n"
          "worker = threading.Thread(target=rustdemo.worker_without_gil, args=(20,), name='rust-worker', daemon=True)\n"
          "worker.start(); time.sleep(0.5)")


@pytest.fixture
def worker_kernel(loaded_kernel):
    assert loaded_kernel.run(WORKER).status == "ok"
    return loaded_kernel


def thread_block(text: str, name: str) -> str:
    return next(block for block in text.split("\n\n") if f'"{name}"' in block.splitlines()[0])


def test_gdb_engine_shows_the_workers_rust_frames_and_the_cells_line(worker_kernel, gdb_path):
    result = worker_kernel.run("%native_bt --engine gdb", timeout=60)
    assert result.status == "ok", result.text
    worker = thread_block(result.output, "rust-worker")
    line = marker_line("worker-loop")
    assert re.search(rf"rustdemo::busy_until\s+at src/lib.rs:{line - 1}|rustdemo::busy_until\s+at src/lib.rs:{line}",
                     worker), worker
    assert "rustdemo::worker_without_gil" in worker          # the middle Rust frame py-spy may drop
    assert "py Thread.run" in worker
    assert re.search(r"\.\.\. \d+ library frames", worker)  # pyo3's trampoline, folded
    # the cell's own thread comes first, cut at the cell's line: the snapshot's frames are not shown
    main = result.output.split("\n\n")[0].splitlines()
    assert re.match(r'Thread 1 "MainThread" \(LWP \d+\): running this cell$', main[0]), main
    assert len(main) == 2 and re.search(r"py <module>\s+at \S*ipykernel_\d+/\d+\.py:1\s+<- cell", main[1]), main
    assert "NativeDebugger" not in result.output
    # the kernel's own threads are hidden, and named in the note
    assert '"Heartbeat"' not in result.output and re.search(r"threads of the kernel's own machinery hidden: .*Heartbeat",
                                                          result.output)
    everything = worker_kernel.run("%native_bt --engine gdb --all --full", timeout=60).output
    assert '"Heartbeat"' in everything and "hidden" not in everything
    assert "pyo3::impl_::trampoline" in thread_block(everything, "rust-worker")
    # the kernel goes on: the worker still runs, cells still work
    assert worker_kernel.run("rustdemo.compute([1, 2, 3])").results == ["42"]


def test_views_read_the_same_when_every_attach_shows_its_progress_line(demo_crate, gdb_path):
    """A slow machine makes attach take over a second, so its progress line comes first: the
    magics' views must read the same. The setting forces that line on every attach."""
    kernel = KernelHarness(env={"PYO3_DEBUG_MAGIC_ATTACH_PROGRESS_AFTER": "0"})
    try:
        assert kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo\n" + WORKER).status == "ok"
        result = kernel.run("%native_bt --engine gdb", timeout=60)
        assert result.status == "ok", result.text
        assert result.progress and result.progress[0].startswith("native debugger: attaching"), result.progress
        assert re.fullmatch(r"native debugger: gdb attached in \d+\.\d s", result.progress[-1]), result.progress
        # the view itself: the cell's thread first, the worker's Rust frames, no progress text inside
        assert re.match(r'Thread 1 "MainThread" \(LWP \d+\): running this cell$', result.output.splitlines()[0])
        assert "rustdemo::busy_until" in thread_block(result.output, "rust-worker")
        assert "attaching" not in result.output
        kernel.run("%native_detach")
        comment = marker_line("over-release") - 1
        moved = kernel.run(f"%native_break src/lib.rs:{comment}", timeout=60)  # attaches again
        assert moved.progress and f"line {comment} has no code" in moved.output, moved.text
        assert f"src/lib.rs:" in moved.output.splitlines()[0] and "attaching" not in moved.output, moved.output
        assert kernel.run("rustdemo.compute([1, 2, 3])").results == ["42"]
    finally:
        assert kernel.shutdown() == []


CALLBACK_THREAD = ("import threading\nready, done = threading.Event(), threading.Event()\n"
                   "def callback(value):\n    ready.set()\n    done.wait(60)\n    return value\n"
                   "waiter = threading.Thread(target=lambda: rustdemo.call_python(callback, 3), name='callback-thread',"
                   " daemon=True)\nwaiter.start(); ready.wait(10)")


def test_a_threads_callback_from_rust_is_shown_above_the_rust_that_called_it(loaded_kernel, gdb_path):
    """A thread's target calls Rust, which calls a Python callback that waits: the callback and
    what it called sit above the Rust frame, the target and threading's own frames below it."""
    assert loaded_kernel.run(CALLBACK_THREAD).results == ["True"]
    try:
        shown = loaded_kernel.run("%native_bt --engine gdb", timeout=60)
        assert shown.status == "ok", shown.text
        block = thread_block(shown.output, "callback-thread")
        order = [re.search(pattern, block, re.M) for pattern in (
            r"^\s*py Event\.wait\s", r"^\s*py callback\s", r"rustdemo::call_python\s+at src/lib.rs:",
            r"^\s*py <lambda>\s", r"^\s*py Thread\.run\s", r"^\s*py Thread\._bootstrap\s")]
        assert all(order), block
        assert [m.start() for m in order] == sorted(m.start() for m in order), block
    finally:
        loaded_kernel.run("done.set(); waiter.join(10)")


def test_py_spy_engine_demangles_and_marks_threads(worker_kernel):
    result = worker_kernel.run("%native_bt --engine py-spy", timeout=60)
    assert result.status == "ok", result.text
    worker = thread_block(result.output, "rust-worker")
    assert "Thread.run" in worker and "running" in worker.splitlines()[0]
    assert "$LT$" not in result.output and not re.search(r"::h[0-9a-f]{16}", result.output)
    assert re.search(r"py <module>\s+at \S*ipykernel_\d+/\d+\.py:1\s+<- cell", result.output), result.output
    main = result.output.split("\n\n")[0].splitlines()
    assert main[0].endswith("running this cell") and len(main) == 2, main  # IPython's frames cut too
    assert "kernel's own machinery hidden" in result.output and '"IOPub"' not in result.output


def test_an_unknown_thread_is_an_error(worker_kernel):
    for engine in ("gdb", "py-spy"):
        result = worker_kernel.run(f"%native_bt --engine {engine} --thread 99999", timeout=60)
        assert result.stderr.startswith("UsageError: no thread 99999 in this kernel"), result.text


def test_locals_need_gdb_and_show_the_users_own_frame(worker_kernel, gdb_path):
    refused = worker_kernel.run("%native_bt --engine py-spy --locals")
    assert "--locals needs the gdb engine" in refused.stderr
    shown = worker_kernel.run("%native_bt --locals", timeout=60)
    worker = thread_block(shown.output, "rust-worker")
    # the innermost frame of the user's crate, not whichever std frame the thread was in
    assert re.search(r"locals of #\d+ rustdemo::busy_until:\n(    .*\n)*    rounds = \d+", worker), shown.text


@pytest.mark.parametrize("raw, clean", [
    ("rustdemo::busy_until::h0b16e26c23c9f375", "rustdemo::busy_until"),
    ("rustdemo[3c1c0]::compute", "rustdemo::compute"),
    ("_$LT$std..time..Instant$u20$as$u20$core..cmp..PartialOrd$GT$::partial_cmp",
     "<std::time::Instant as core::cmp::PartialOrd>::partial_cmp"),
])
def test_rust_names_are_cleaned(raw, clean):
    assert clean_rust_name(raw) == clean


def test_without_libpython_debug_info_python_frames_come_from_py_spy(demo_crate, gdb_path, tmp_path, monkeypatch):
    """Debian's /usr/bin/python3.11 without python3.11-dbg's DWARF (gdb pointed at an empty
    debug directory): the gdb engine falls back to py-spy."""
    from pathlib import Path

    import rustdemo

    from harness import NO_DEBUG_INFO_DIR

    NO_DEBUG_INFO_DIR.mkdir(exist_ok=True)
    monkeypatch.setenv("PYO3_DEBUG_MAGIC_DEBUG_FILE_DIRECTORY", str(NO_DEBUG_INFO_DIR))

    system_python = Path("/usr/bin/python3.11")
    if not system_python.exists():
        pytest.fail("this test needs Debian's python3.11 (apt-get install python3.11)")
    (tmp_path / "rustdemo").symlink_to(Path(rustdemo.__file__).parent)
    script = ("import threading, time, rustdemo\n"
              "def waiting_in_python():\n    time.sleep(60)\n"
              "threading.Thread(target=rustdemo.worker_without_gil, args=(60,), daemon=True).start()\n"
              "print('ready', flush=True)\nwaiting_in_python()\n")
    snapshot = snapshot_of_process([str(system_python), "-c", script],
                                   env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    entries = [e for t in snapshot.threads for e in t.entries]
    assert any(e.kind == "python" and e.function == "waiting_in_python" for e in entries)
    assert any(e.kind == "native" and e.function == "rustdemo::busy_until" for e in entries)
    assert snapshot.python_source == "py-spy", \
        "gdb read the Python frames itself: the target had libpython debug info after all"
