"""Nothing the tool starts or imports comes from the notebook's folder (issue: never cost the
kernel, round two, item 10): a planted `ctypes.py`, `json.py`, `signal.py`, `subprocess.py`,
`typing.py`, `pygdbmi.py` and `pyo3_debug_magic/` package in the kernel's working directory
are never imported, neither by the elfutils sampler (which holds ptrace rights over the
kernel) nor by `%native_core` inside the kernel."""
from __future__ import annotations

import pytest

from harness import KernelHarness

pytestmark = [pytest.mark.kernel, pytest.mark.gdb, pytest.mark.reliability, pytest.mark.timeout(180)]

PLANTED = ["ctypes", "json", "signal", "subprocess", "typing", "pygdbmi", "runpy", "pyo3_debug_magic/__init__"]


def test_planted_modules_in_the_notebook_folder_are_never_imported(demo_crate, gdb_path, tmp_path, reliability):
    notebook = tmp_path / "notebook"
    notebook.mkdir()
    markers = tmp_path / "imported"
    markers.mkdir()
    kernel = KernelHarness(cwd=notebook)
    try:
        assert kernel.run("%load_ext pyo3_debug_magic\nimport rustdemo").status == "ok"
        for name in PLANTED:  # planted once the kernel runs, as a notebook folder gains files
            path = notebook / f"{name}.py"
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"open({str(markers / name.replace('/', '.'))!r}, 'w').close()\n"
                            "raise ImportError('planted')\n")
        profiled = kernel.run("%%native_profile --engine elfutils\nrustdemo.busy_work(3_000_000)", timeout=120)
        assert profiled.status == "ok" and "engine elfutils" in profiled.text, profiled.text
        core = kernel.run("%native_core /nonexistent/core.1", timeout=60)
        assert core.status == "error" and "Traceback" not in core.text, core.text
        assert sorted(p.name for p in markers.iterdir()) == []
        assert kernel.run("1 + 1").results == ["2"]
        reliability.fault("planted modules in the notebook folder (sampler, %native_core)", "none imported")
    finally:
        assert kernel.shutdown() == []
