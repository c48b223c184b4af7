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


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of its own: a disk that fills up (mounted as root, as the suite runs)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()

    def of_size(kib: int):
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k,mode=0700", "tmpfs", str(mount)], check=True)
        return mount

    yield of_size
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory) -> None:
    with open(directory / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


def test_a_full_disk_at_the_attach_says_crash_capture_is_not_armed(demo_crate, small_disk, reliability):
    state = small_disk(4096)
    fill(state)
    kernel = kernel_with_state(state)
    try:
        assert kernel.run("%load_ext pyo3_debug_magic").status == "ok"
        attached = kernel.run("%native_attach", timeout=60)
        assert "native debugger attached" in attached.output, attached.text
        assert "crash capture is not armed: no room for a report in" in attached.output, attached.text
        reliability.fault("disk full at the attach", "said: crash capture not armed")
    finally:
        assert kernel.shutdown() == []


def test_a_disk_filled_after_the_attach_still_gets_the_whole_crash_report(demo_crate, small_disk, reliability):
    state = small_disk(8192)
    kernel = kernel_with_state(state)
    try:
        assert kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo").status == "ok"
        attached = kernel.run("%native_attach", timeout=60)
        assert "not armed" not in attached.output, attached.text
        fill(state)  # the room held since the attach is all that is left
        assert kernel.run("rustdemo.segfault()", timeout=30).status == "died"
        (state / "filler").unlink()
        kernel.manager.restart_kernel(now=True)
        kernel.client.wait_for_ready(timeout=60)
        loaded = kernel.run("%load_ext pyo3_debug_magic")
        assert "The previous kernel crashed: SIGSEGV in rustdemo::segfault" in loaded.output, loaded.text
        reports = list((state / "crashes").glob("crash-*.json"))
        assert len(reports) == 1 and not list((state / "crashes").glob("*.part")), reports
        reliability.fault("disk filled after the attach, then a segfault", "whole report written")
    finally:
        assert kernel.shutdown() == []


def test_a_module_rebuilt_under_the_kernel_is_detected_when_pip_moved_the_old_one_aside(demo_crate, gdb_path,
                                                                                         tmp_path, reliability):
    """Item 7: `maturin develop` under a running kernel (pip moves the old folder to `~ustdemo`
    and installs the new build): a line of the new source was accepted and never hit."""
    import shutil

    from harness import marker_line

    site = tmp_path / "site"
    shutil.copytree(demo_crate.extension.parent, site / "rustdemo")
    kernel = KernelHarness(env={"PYTHONPATH": str(site)})
    try:
        loaded = kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo\nrustdemo.__file__")
        assert str(site) in loaded.results[0], loaded.text
        (site / "rustdemo").rename(site / "~ustdemo")          # what pip does before installing
        shutil.copytree(site / "~ustdemo", site / "rustdemo")  # the new build: new files, new inodes
        refused = kernel.run(f"%native_break src/lib.rs:{marker_line('compute-loop')}", timeout=60)
        assert "was rebuilt after this kernel imported it; the kernel still runs the old build" in refused.stderr, \
            refused.text
        assert "restart the kernel" in refused.stderr
        # attaching again: gdb would read the new file for the old code, and says so
        kernel.run("%native_detach --stop", timeout=60)
        attached = kernel.run("%native_attach", timeout=60).output
        assert ("was rebuilt after this kernel imported it: gdb reads the new file while the kernel runs the "
                "old code") in attached, attached
        reliability.fault("module rebuilt under the kernel (old folder moved aside)", "refused, restart said")
    finally:
        assert kernel.shutdown() == []


def test_a_report_that_could_not_be_written_is_never_explained_as_capture_not_armed(demo_crate, small_disk,
                                                                                     reliability):
    """Item 6: with the room held since the attach taken by something else, the report is lost;
    `%native_crash` says so (from the helper's log), not that crash capture was off."""
    state = small_disk(8192)
    kernel = kernel_with_state(state)
    try:
        assert kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo").status == "ok"
        assert "attached" in kernel.run("%native_attach", timeout=60).output
        for held in (state / "crashes").glob(".reserve-*"):
            held.unlink()
        fill(state)
        assert kernel.run("rustdemo.segfault()", timeout=30).status == "died"
        (state / "filler").unlink()
        kernel.manager.restart_kernel(now=True)
        kernel.client.wait_for_ready(timeout=60)
        kernel.run("%load_ext pyo3_debug_magic")
        said = kernel.run("%native_crash").output
        # named from the helper's log when the full disk let the log take the line, else the
        # hint says a report may have been lost, never only that capture was off
        named = "was caught, but its report could not be written (" in said and "No space left" in said
        assert named or "If it was attached, the report could not be written" in said, said
        reliability.fault("crash report lost to a full disk", "said so, never 'not armed'")
    finally:
        assert kernel.shutdown() == []
