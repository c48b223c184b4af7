"""Breakpoints as a PyO3 author sets them in their own projects: before the import, from a
notebook folder outside the crate, or from a folder that holds some other crate."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile

import pytest

from harness import CRATE, ROOT, KernelHarness, marker_line

pytestmark = [pytest.mark.kernel, pytest.mark.gdb, pytest.mark.timeout(180)]


def shown(result) -> list[str]:
    return [d.get("text/plain", "") for d in result.displays]


@pytest.fixture(params=["outside-any-crate", "beside-another-crate"])
def notebook_folder(request, tmp_path):
    """The kernel's working directory: an analysis folder, or one holding a different crate
    whose src/lib.rs has the line too (a monorepo, a checkout with examples)."""
    if request.param == "beside-another-crate":
        other = tmp_path / "othercrate"
        (other / "src").mkdir(parents=True)
        (other / "Cargo.toml").write_text('[package]\nname = "othercrate"\nversion = "0.1.0"\n')
        (other / "src" / "lib.rs").write_text("".join(f"// line {n}\n" for n in range(1, 400)))
    return tmp_path


def test_a_breakpoint_before_import_binds_to_the_crate_that_is_imported(demo_crate, gdb_path, notebook_folder):
    line = marker_line("square")
    kernel = KernelHarness(cwd=notebook_folder)
    try:
        kernel.run("%load_ext pyo3_debug_magic")
        created = kernel.run(f"%native_break src/lib.rs:{line}", timeout=60)
        assert created.status == "ok" and "pending" in created.output, created.text
        assert "othercrate" not in created.output, created.text  # never bound to the crate in the folder
        result = kernel.run("import rustdemo\nrustdemo.square(9)", answers=["p value", "n", "c"], timeout=90)
        assert result.results == ["81"], result.text
        assert "value = 9" in shown(result), shown(result)
        resolved = [v for v in shown(result) if "resolved" in v]
        assert resolved and re.search(rf"breakpoint 1 resolved: rustdemo .*src/lib.rs:{line}\b", resolved[0]), \
            shown(result)
        assert result.output.index("resolved") < result.output.index("native breakpoint 1 hit")  # said on import
        listing = kernel.run("%native_break").output
        assert re.search(rf"^1\s+pause\s+y\s+1\s+src/lib.rs:{line} -> \S*examples/rustdemo/src/lib.rs:{line}",
                         listing, re.M), listing
    finally:
        assert kernel.shutdown() == []


def test_pyo3_values_show_as_python_values(loaded_kernel):
    """Paused in a #[pymethods] method: Bound<PyAny> arguments holding a str, an int and a list,
    and &self of a #[pyclass], read from memory; `p` uses the same printers, `p/r` is raw."""
    kernel = loaded_kernel
    kernel.run(f"%native_break src/lib.rs:{marker_line('basket-describe')}", timeout=60)
    result = kernel.run("rustdemo.Basket('fruit').describe('apple', 2**70 + 5, [1, 2, 3])",
                        answers=["p text", "p/r text", "p number", "c"], timeout=90)
    assert result.results == ["'fruit #0: apple 1180591620717411303429 3'"], result.text
    stop = next(v for v in shown(result) if "native breakpoint" in v)
    assert 'self   = &rustdemo::Basket {label: "fruit", count: 0}' in stop, stop
    assert re.search(r"text   = &'apple' \(str, refcount \d+\)", stop), stop
    assert re.search(r"number = &1180591620717411303429 \(int, refcount \d+\)", stop), stop
    assert re.search(r"items  = &len 3 \(list, refcount \d+\)", stop), stop
    printed = [v for v in shown(result) if v.startswith(("text = ", "number = "))]
    assert re.match(r"text = &'apple' \(str, refcount \d+\)", printed[0]), printed
    assert "0x" in printed[1] and "apple" not in printed[1], printed  # p/r: the raw pointer
    assert re.match(r"number = &1180591620717411303429 \(int", printed[2]), printed


MIXED_PROJECT = ROOT / "tests" / "crates" / "mixed_project"


def build_mixed_project(out, *options: str, env: dict | None = None):
    """maturin's mixed layout built as a real wheel: crate my_pkg, extension my_pkg._core,
    unpacked into a folder the kernel imports from (nothing installed into the venv)."""
    build = subprocess.run([str(ROOT / ".venv" / "bin" / "maturin"), "build", *options,
                            "-i", sys.executable, "--out", str(out / "wheel")], cwd=MIXED_PROJECT,
                           env={**os.environ, "CARGO_TARGET_DIR": str(CRATE / "target"), **(env or {})},
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next((out / "wheel").glob("my_pkg-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(out / "site")
    return out / "site"


@pytest.fixture(scope="module")
def mixed_project(demo_crate, tmp_path_factory):
    return build_mixed_project(tmp_path_factory.mktemp("mixed-project"), "--profile", "dev")


@pytest.mark.timeout(900)  # compiles pyo3 with the release profile on a fresh clone
def test_a_release_build_with_line_tables_only_pauses_and_says_why_locals_are_missing(
        demo_crate, gdb_path, tmp_path):
    """What many projects ship: `[profile.release] debug = "line-tables-only"`."""
    site = build_mixed_project(tmp_path, "--release", env={"CARGO_PROFILE_RELEASE_DEBUG": "line-tables-only"})
    line = marker_line("double", MIXED_PROJECT / "src" / "lib.rs")
    kernel = KernelHarness(env={"PYTHONPATH": str(site)}, cwd=tmp_path)
    try:
        kernel.run("%load_ext pyo3_debug_magic\nimport my_pkg")
        created = kernel.run(f"%native_break src/lib.rs:{line}", timeout=60)
        assert created.status == "ok" and f"src/lib.rs:{line}" in created.output, created.text
        result = kernel.run("my_pkg.double(21)", answers=["c"], timeout=90)
        assert result.results == ["42"] and len(result.prompts) == 1, result.text
        stop = next(v for v in shown(result) if "native breakpoint" in v)
        assert "src/lib.rs:" in stop and 'debug = "line-tables-only"' in stop \
            and "maturin develop" in stop, stop
    finally:
        assert kernel.shutdown() == []


def test_function_breakpoints_where_module_and_crate_names_differ(mixed_project, gdb_path, tmp_path):
    line = marker_line("double", MIXED_PROJECT / "src" / "lib.rs")
    kernel = KernelHarness(env={"PYTHONPATH": str(mixed_project)}, cwd=tmp_path)
    try:
        kernel.run("%load_ext pyo3_debug_magic")
        before = kernel.run("%native_break my_pkg::double", timeout=60)
        assert before.status == "ok" and "-> pending" in before.output, before.text
        result = kernel.run("import my_pkg\nmy_pkg.double(21)", answers=["p value", "c"], timeout=90)
        assert result.results == ["42"], result.text
        assert "value = 21" in shown(result), shown(result)
        assert any(f"src/lib.rs:{line}" in v or "my_pkg::double" in v for v in shown(result))
        # loaded now: a misspelt function is an error with close matches, not a pending breakpoint
        typo = kernel.run("%native_break my_pkg::doubel")
        assert "no function my_pkg::doubel" in typo.stderr and "close matches: my_pkg::double" in typo.stderr, \
            typo.text
        # two loaded crates with a src/lib.rs: the error names both; --crate picks one
        kernel.run("%native_delete all\nimport rustdemo")
        both = kernel.run(f"%native_break src/lib.rs:{line}")
        assert "matches several loaded crates" in both.stderr and "_core" in both.stderr \
            and "rustdemo" in both.stderr, both.text
        picked = kernel.run(f"%native_break src/lib.rs:{line} --crate my_pkg", timeout=60)
        assert picked.status == "ok" and "mixed_project/src/lib.rs" in picked.output, picked.text
        again = kernel.run("my_pkg.double(5)", answers=["c"], timeout=90)
        assert again.results == ["10"] and len(again.prompts) == 1, again.text
        kernel.run("%native_delete all")
        # the module's name used for the crate's: the crates that have the function are named
        by_module = kernel.run("%native_break _core::double")
        assert "no function _core::double" in by_module.stderr and "my_pkg::double" in by_module.stderr, \
            by_module.text
    finally:
        assert kernel.shutdown() == []
