"""Fixtures: the demo crate (built once), an in-process IPython shell, real Jupyter kernels."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from harness import CRATE, LIB_RS, ROOT, KernelHarness, descendants_of, kill_all


@dataclass(frozen=True)
class DemoCrate:
    extension: Path  # the built rustdemo .so
    source: Path     # src/lib.rs


@pytest.fixture(scope="session")
def demo_crate() -> DemoCrate:
    """The demo crate, built with debug info once per session (setup.sh skips it when current)."""
    build = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], capture_output=True,
                           text=True, timeout=900)
    if build.returncode != 0:
        pytest.fail(f"building the demo crate failed:\n{build.stdout}\n{build.stderr}")
    import rustdemo  # noqa: PLC0415 - only after the build

    extension = next(Path(rustdemo.__file__).parent.glob("rustdemo*.so"))
    return DemoCrate(extension=extension, source=LIB_RS)


@pytest.fixture(scope="session")
def gdb_path() -> str:
    """gdb is required: a test that needs it fails (never skips) when it is missing."""
    from pyo3_debug_magic.errors import GdbNotFoundError
    from pyo3_debug_magic.tools import find_gdb

    try:
        return find_gdb()
    except GdbNotFoundError as error:
        pytest.fail(f"this test needs gdb: {error}")


@pytest.fixture
def shell():
    """An in-process IPython InteractiveShell with the extension unloaded after the test."""
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    yield ip
    if "pyo3_debug_magic" in ip.extension_manager.loaded:
        ip.run_line_magic("unload_ext", "pyo3_debug_magic")
    from pyo3_debug_magic.debugger import get_debugger

    get_debugger().close()


@pytest.fixture
def kernel(demo_crate):
    """A real ipykernel (jupyter_client, IPC transport) with the demo crate importable."""
    harness = KernelHarness()
    try:
        yield harness
    finally:
        harness.shutdown()


@pytest.fixture
def loaded_kernel(demo_crate):
    """A real kernel with the extension loaded and rustdemo imported; at the end nothing it
    started (agent, gdb) may outlive it."""
    harness = KernelHarness()
    try:
        loaded = harness.run("%load_ext pyo3_debug_magic\nimport rustdemo")
        assert loaded.status == "ok", loaded.text
        yield harness
    finally:
        assert harness.shutdown() == [], "the agent or gdb outlived the kernel"


@pytest.fixture(autouse=True)
def no_stray_processes():
    """Whatever a test started (agents, gdb, py-spy) is gone after it, killed if need be."""
    before = set(descendants_of(os.getpid()))
    yield
    stray = [pid for pid in descendants_of(os.getpid()) if pid not in before]
    kill_all(stray)
