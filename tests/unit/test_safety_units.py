"""Pure rules of the safety work (which gdb may call, where, what text is refused) and the
memory repair that runs when gdb dies, against a real process."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from pyo3_debug_magic.agent import handoff
from pyo3_debug_magic.agent.memory import (INT3, executable_mappings, mapping_of,
                                           remove_breakpoint_instructions,
                                           remove_every_breakpoint_instruction)
from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.model import GdbFrame
from pyo3_debug_magic.tools import calls_unsafe_reason, gdb_major_version
from pyo3_debug_magic.userinput import check_expression, check_text, printable

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("line, major", [("GNU gdb (Debian 13.1-3) 13.1", 13), ("GNU gdb (GDB) 18.1", 18),
                                         ("GNU gdb (GDB) Fedora Linux 14.2-1.fc40", 14), ("nonsense", None)])
def test_gdb_versions(line, major):
    assert gdb_major_version(line) == major


def test_old_gdb_may_not_call_on_amx_cpus_only():
    reason = calls_unsafe_reason("GNU gdb (Debian 13.1-3) 13.1", has_amx=True)
    assert reason and "gdb-for-pwndbg" in reason and "only log" in reason
    assert calls_unsafe_reason("GNU gdb (Debian 13.1-3) 13.1", has_amx=False) is None
    assert calls_unsafe_reason("GNU gdb (GDB) 18.1", has_amx=True) is None


def test_calls_are_typed_for_pythons_without_debug_info():
    for expression in (handoff.CHECK_GIL, handoff.SAVE_THREAD, handoff.restore_thread(0x7F00)):
        assert "(*)" in expression  # a function-pointer cast: gdb needs no DWARF for the call
    assert handoff.restore_thread(0x7F00).endswith("((void *)0x7f00)")
    assert handoff.parse_tstate("140452916850424") == 140452916850424
    for bad in ("0", "-1", "void"):
        with pytest.raises(ValueError):
            handoff.parse_tstate(bad)


@pytest.mark.parametrize("frame, safe", [
    ({"fullname": "/home/me/crate/src/lib.rs", "line": 20}, True),       # a breakpoint in Rust
    ({"fullname": "/rustc/abc/library/core/src/iter.rs", "line": 3}, True),  # a step into std
    ({"fullname": "/usr/src/python/Objects/call.c", "line": 9}, False),  # inside the interpreter
    ({"fullname": None, "func": "__memcpy_avx512_unaligned_erms"}, False),
    ({"fullname": "/home/me/crate/src/lib.rs", "line": None}, False),
])
def test_safe_points(frame, safe):
    frame = GdbFrame(0, frame.get("func") or "f", fullname=frame["fullname"], line=frame.get("line"))
    assert handoff.is_safe_point(frame) is safe
    assert handoff.is_safe_point(None) is False  # gdb gave no frame at all


@pytest.mark.parametrize("text", ['$_shell("id")', "$_as_string($_shell(\"id\"))", "($_shell)(\"id\")",
                                  "value + $_strlen(\"x\")", "$_gdb_setting_str(\"x\")"])
def test_gdb_convenience_functions_are_refused(text):
    with pytest.raises(UsageProblem, match="not allowed"):
        check_expression(text)


@pytest.mark.parametrize("text", ["value > 1", "$pc", "self.items.len", "*value", "a[1] + b"])
def test_ordinary_expressions_pass(text):
    assert check_expression(text) == text


@pytest.mark.parametrize("text, what", [("a\nb", "control character"), ("a\0b", "control character"),
                                        ("\ud800", "lone surrogates"), ("x" * 10_001, "characters long")])
def test_text_that_is_not_plain_is_refused(text, what):
    with pytest.raises(UsageProblem, match=what):
        check_text(text, "the input")


def test_printable_never_keeps_a_lone_surrogate():
    assert printable("a\ud800b").encode("utf-8") == b"a\\ud800b"


def test_breakpoint_bytes_are_restored_in_a_real_process():
    """gdb's int3 written into a live process's code is replaced by the byte from the file."""
    target = subprocess.Popen([sys.executable, "-c", "import sys, time; print('ready', flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout.readline().strip() == "ready"
        # an address inside the executable's mapped code
        with open(f"/proc/{target.pid}/maps") as maps:
            row = next(line for line in maps if " r-xp " in line and line.rstrip().endswith(
                os.path.basename(os.path.realpath(sys.executable))) or " r-xp " in line and "libpython" in line)
        address = int(row.split("-")[0], 16) + 0x40
        path, offset = mapping_of(target.pid, address)
        with open(path, "rb") as backing:
            backing.seek(offset)
            original = backing.read(1)
        assert original != bytes([INT3])
        memory = os.open(f"/proc/{target.pid}/mem", os.O_RDWR)
        try:
            os.pwrite(memory, bytes([INT3]), address)
            assert remove_breakpoint_instructions(target.pid, {address, 0x10}) == 1
            assert os.pread(memory, 1, address) == original
            assert remove_breakpoint_instructions(target.pid, {address}) == 0  # nothing left to fix
        finally:
            os.close(memory)
    finally:
        target.kill()
        target.wait()


def test_a_state_directory_the_user_points_at_is_never_re_moded(tmp_path, monkeypatch):
    from pyo3_debug_magic import paths
    from pyo3_debug_magic.crash import report_files

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv("PYO3_DEBUG_MAGIC_STATE", str(shared))
    # refused (another user could plant a link named like our log there), and left as it is
    with pytest.raises(UsageProblem, match=r"can be written by other users \(mode 1777\).*chmod go-w"):
        paths.state_dir()
    assert shared.stat().st_mode & 0o7777 == 0o1777
    shared.chmod(0o755)
    assert paths.state_dir() == shared
    assert report_files.report_dir().stat().st_mode & 0o777 == 0o700  # ours, inside it
    link = tmp_path / "link"
    link.symlink_to(shared)
    monkeypatch.setenv("PYO3_DEBUG_MAGIC_STATE", str(link))
    with pytest.raises(UsageProblem, match="symbolic link"):
        paths.state_dir()


def test_outside_a_kernel_only_this_process_reports_are_listed(tmp_path):
    import json

    from pyo3_debug_magic.crash import report_files

    for pid, kernel_id in ((os.getpid(), None), (1, None), (os.getpid() + 1, "kernel-a")):
        (tmp_path / f"crash-{pid}-{kernel_id}.json").write_text(json.dumps(
            {"uid": os.getuid(), "pid": pid, "kernel_id": kernel_id, "time": 1, "summary": "x"}))
    assert [r.data["pid"] for r in report_files.reports(None, tmp_path)] == [os.getpid()]
    assert report_files.clear(None, tmp_path) == 1
    assert len(list(tmp_path.glob("crash-*.json"))) == 2  # the other processes' reports stay


def test_a_stopped_agent_or_gdb_is_noticed_and_explained():
    from pyo3_debug_magic.agent.stalls import StallWatch, describe_agent_stop

    assert "stopped for 40 s" in describe_agent_stop(40.2)
    watch = StallWatch()
    assert watch.agent_stopped() is None
    running, stopped = (lambda: False), (lambda: True)
    assert watch.gdb_state(running, 7, now=0.0) is None
    assert "kill -CONT 7" in watch.gdb_state(stopped, 7, now=1.0)
    assert watch.gdb_state(stopped, 7, now=20.0) is None            # said once
    assert "was stopped for 40 s" in watch.gdb_state(running, 7, now=41.0)
    assert watch.gdb_state(stopped, 7, now=50.0) is not None        # a second stop is new
    assert watch.gdb_state(running, 7, now=50.5) is None            # too short to mention on return
    looks = []
    assert watch.gdb_state(lambda: looks.append(1) or False, 7, now=50.6) is None
    assert looks == []                                              # at most one look a tick


def test_every_int3_a_debugger_left_is_found_and_a_rebuilt_library_is_never_written(tmp_path):
    """The full scan puts back int3s the agent never listed (gdb's own breakpoints), and skips
    code whose file was replaced since it was mapped (an extension rebuilt under the kernel)."""
    library = tmp_path / "libcopy.so"
    shutil.copy(os.path.realpath("/lib/x86_64-linux-gnu/libz.so.1"), library)  # zlib1g: always installed
    code = ("import ctypes, sys, time; ctypes.CDLL(sys.argv[1]); print('ready', flush=True); time.sleep(30)")
    target = subprocess.Popen([sys.executable, "-c", code, str(library)], stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout.readline().strip() == "ready"
        start, end, path, offset = next(m for m in executable_mappings(target.pid) if m[2] == str(library))
        with open(library, "rb") as backing:
            backing.seek(offset)
            text = backing.read(end - start)
        spots = [i for i in range(0x100, len(text), 0x400) if text[i] != INT3][:3]
        memory = os.open(f"/proc/{target.pid}/mem", os.O_RDWR)
        try:
            for spot in spots:
                os.pwrite(memory, bytes([INT3]), start + spot)
            assert remove_every_breakpoint_instruction(target.pid) == len(spots)
            assert all(os.pread(memory, 1, start + s) == text[s:s + 1] for s in spots)
            # the same library rebuilt: a new file (new inode) at the same path
            os.pwrite(memory, bytes([INT3]), start + spots[0])
            shutil.copy(library, tmp_path / "rebuilt.so")
            library.unlink()
            (tmp_path / "rebuilt.so").rename(library)
            assert remove_every_breakpoint_instruction(target.pid) == 0
            assert os.pread(memory, 1, start + spots[0]) == bytes([INT3])
        finally:
            os.close(memory)
    finally:
        target.kill()
        target.wait()
