"""The state directory (helper logs, crash reports) when it cannot be trusted or written
(issue: never cost the kernel, round two, items 6 and 11), in real kernels: the extension
still loads, every magic says what is wrong and the fix, and nothing follows a planted link."""
from __future__ import annotations

import os

import pytest

from harness import KernelHarness

pytestmark = [pytest.mark.kernel, pytest.mark.gdb, pytest.mark.reliability, pytest.mark.timeout(180)]


def kernel_with_state(path) -> KernelHarness:
    return KernelHarness(env={"PYO3_DEBUG_MAGIC_STATE": str(path)})


def test_a_state_directory_others_can_write_is_refused_with_the_fix(demo_crate, tmp_path, reliability):
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o777)
    kernel = kernel_with_state(state)
    try:
        loaded = kernel.run("%load_ext pyo3_debug_magic")
        assert loaded.status == "ok" and "can be written by other users (mode 777)" in loaded.stdout, loaded.text
        attached = kernel.run("%native_attach", timeout=60)
        assert attached.stderr.startswith(f"UsageError: {state} can be written by other users (mode 777)"), attached.text
        assert f"chmod go-w {state}" in attached.stderr and "Traceback" not in attached.text
        assert kernel.run("1 + 1").results == ["2"]
        reliability.fault("state directory mode 0777", "refused, with the chmod")
    finally:
        assert kernel.shutdown() == []


def test_a_planted_link_named_like_the_helpers_log_is_not_followed(demo_crate, tmp_path, reliability):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    os.chmod(victim, 0o644)
    kernel = kernel_with_state(state)
    try:
        assert kernel.run("%load_ext pyo3_debug_magic").status == "ok"
        (state / f"agent-{kernel.pid}.log").symlink_to(victim)
        attached = kernel.run("%native_attach", timeout=60)
        assert "(it is a symbolic link)" in attached.stderr and "remove it" in attached.stderr, attached.text
        assert victim.read_text() == "keep me\n" and (victim.stat().st_mode & 0o777) == 0o644
        reliability.fault("planted symlink as the helper's log", "not followed")
    finally:
        assert kernel.shutdown() == []


def test_a_state_directory_that_cannot_be_created_leaves_the_extension_working(demo_crate, tmp_path, reliability):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    kernel = kernel_with_state(blocked / "state")  # under a file: mkdir fails, as on a read-only disk
    try:
        loaded = kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo")
        assert loaded.status == "ok" and "no crash reports this session" in loaded.stdout, loaded.text
        assert "cannot be used: Not a directory" in loaded.stdout
        attached = kernel.run("%native_attach", timeout=60)
        assert attached.stderr.startswith("UsageError: the state directory") and "PYO3_DEBUG_MAGIC_STATE" in attached.stderr, \
            attached.text
        assert kernel.run("rustdemo.compute([1, 2, 3])").results == ["42"]
        reliability.fault("state directory that cannot be created", "extension loads; attach says why")
    finally:
        assert kernel.shutdown() == []
