"""Breakpoints as a PyO3 author sets them in their own projects: before the import, from a
notebook folder outside the crate, or from a folder that holds some other crate."""
from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from harness import CRATE, ROOT, KernelHarness, build_lock, marker_line

pytestmark = [pytest.mark.kernel, pytest.mark.gdb, pytest.mark.timeout(180)]


def shown(result) -> list[str]:
    return [d.get("text/plain", "") for d in result.displays]


def highlighted_source_line(page: str) -> tuple[int, str]:
    """The line the HTML source excerpt marks: (its number, its text)."""
    from html import unescape

    marked = re.search(r'<span style="background-color: #ffffcc">(.*?)\n', page, re.S).group(1)
    number, text = re.fullmatch(r"\s*(\d+)(.*)", unescape(re.sub(r"<[^>]+>", "", marked)), re.S).groups()
    return int(number), text


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
    assert re.search(r"items  = &\[1, 2, 3\] \(list, refcount \d+\)", stop), stop
    printed = [v for v in shown(result) if v.startswith(("text = ", "number = "))]
    assert re.match(r"text = &'apple' \(str, refcount \d+\)", printed[0]), printed
    assert "0x" in printed[1] and "apple" not in printed[1], printed  # p/r: the raw pointer
    assert re.match(r"number = &1180591620717411303429 \(int", printed[2]), printed


def test_everyday_rust_values_print_as_a_rust_author_reads_them(loaded_kernel):
    """Option, Result, PyResult, a slice iterator (what is left of it, nothing read past its
    end), HashMap, Rc, Arc and Box<dyn Trait> (the value behind it), in the locals and with `p`."""
    kernel = loaded_kernel
    kernel.run(f"%native_break src/lib.rs:{marker_line('rust-values')}", timeout=60)
    names = ["maybe", "nothing", "parsed", "failed", "checked", "rest", "scores", "shared", "threaded", "shown"]
    result = kernel.run("rustdemo.rust_values([7, 8, 9])", answers=[f"p {n}" for n in names] + ["c"], timeout=90)
    assert result.results == ["6"], result.text
    printed = dict(v.split(" = ", 1) for v in shown(result) if v.split(" = ", 1)[0] in names)
    assert printed == {"maybe": "Some(7)", "nothing": "None", "parsed": "Ok(42)", "failed": 'Err("bad digit")',
                       "checked": "Ok(3)", "rest": "slice::Iter(2 left) = {8, 9}",
                       "scores": 'HashMap(size=1) = {["ada"] = 36}', "shared": "Rc(strong=1, weak=0) = Vec(size=2) = {1, 2}",
                       "threaded": 'Arc(strong=1, weak=0) = "shared text"', "shown": "Box<dyn Display> = 5 (i64)"}, printed
    stop = next(v for v in shown(result) if "native breakpoint" in v)
    assert re.search(r"^maybe\s+= Some\(7\)$", stop, re.M) and re.search(r"^items\s+= &\[7, 8, 9\] \(list, refcount \d+\)$", stop, re.M), stop
    assert "core::option" not in stop and "end_or_len" not in stop, stop


MIXED_PROJECT = ROOT / "tests" / "crates" / "mixed_project"


def build_wheel(project: Path, out: Path, *options: str, env: dict | None = None,
                python: str = sys.executable) -> Path:
    """``project`` built by maturin as a real wheel and unpacked into ``out/site``, a folder the
    kernel imports from (nothing installed into the venv). pyo3 is compiled once for all the
    test crates (one target folder)."""
    with build_lock():
        build = subprocess.run([str(ROOT / ".venv" / "bin" / "maturin"), "build", *options,
                                "-i", python, "--out", str(out / "wheel")], cwd=project,
                               env={**os.environ, "CARGO_TARGET_DIR": str(CRATE / "target"), **(env or {})},
                               capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = max((out / "wheel").glob("*.whl"), key=lambda w: w.stat().st_mtime)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(out / "site")
    return out / "site"


def build_mixed_project(out, *options: str, env: dict | None = None):
    """maturin's mixed layout: crate my_pkg (package my-pkg), extension my_pkg._core."""
    return build_wheel(MIXED_PROJECT, out, *options, env=env)


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


@pytest.mark.parametrize("typed, call, marker, value, result", [
    ("Counter::add", "my_pkg.Counter().add(7)", "counter-add", ("amount", "7"), "7"),      # #[pymethods]
    ("my_pkg::Counter::add", "my_pkg.Counter().add(3)", "counter-add", ("amount", "3"), "3"),
    ("Meter::scale", "my_pkg.combine([4, 9])", "trait-scale", ("by", "2"), "19"),          # trait impl
    ("<Meter as Scale>::scale", "my_pkg.combine([5])", "trait-scale", ("by", "1"), "6"),
    ("<my_pkg::Meter as Scale>::scale", "my_pkg.combine([1, 2, 3])", "trait-scale", ("by", "3"), "10"),
    ("largest", "my_pkg.combine([8, 2])", "generic-largest", ("items", "{8, 2}"), "17"),  # generic
    ("my_pkg::combine::{closure#0}", "my_pkg.combine([6])", "closure-add-one", ("x", "6"), "7"),
])
def test_function_breakpoints_on_methods_trait_impls_generics_and_closures(
        mixed_project, gdb_path, tmp_path, typed, call, marker, value, result):
    line = marker_line(marker, MIXED_PROJECT / "src" / "lib.rs")
    kernel = KernelHarness(env={"PYTHONPATH": str(mixed_project)}, cwd=tmp_path)
    try:
        kernel.run("%load_ext pyo3_debug_magic\nimport my_pkg")
        created = kernel.run(f"%native_break {typed}", timeout=60)
        assert created.status == "ok" and f"src/lib.rs:{line}" in created.output, created.text
        paused = kernel.run(call, answers=[f"p {value[0]}", "c"], timeout=90)
        assert paused.results == [result] and len(paused.prompts) == 2, paused.text  # p, c: one pause
        stop = next(v for v in shown(paused) if "native breakpoint" in v)
        assert f"src/lib.rs:{line}" in stop, stop
        printed = next(v for v in shown(paused) if v.startswith(f"{value[0]} = "))
        assert value[1] in printed, printed
    finally:
        assert kernel.shutdown() == []


def test_a_function_name_that_matches_several_functions_is_refused_with_each_listed(mixed_project, gdb_path, tmp_path):
    kernel = KernelHarness(env={"PYTHONPATH": str(mixed_project)}, cwd=tmp_path)
    try:
        kernel.run("%load_ext pyo3_debug_magic\nimport my_pkg")
        several = kernel.run("%native_break Scale::scale")  # implemented by Meter and by Gram
        assert "Scale::scale names several functions: <my_pkg::Gram as my_pkg::Scale>::scale, " \
               "<my_pkg::Meter as my_pkg::Scale>::scale" in several.stderr, several.text
        assert "write more of the path" in several.stderr, several.text
        listing = kernel.run("%native_break")  # nothing was set
        assert "Scale" not in listing.output, listing.text
    finally:
        assert kernel.shutdown() == []


@pytest.fixture(scope="module")
def moved_wheel(demo_crate, tmp_path_factory):
    """The mixed project built in a folder that is then removed (a wheel from CI or a
    container): the paths in its debug info exist nowhere on this machine."""
    out = tmp_path_factory.mktemp("moved-wheel")
    build_dir = out / "ci-checkout" / "mixed_project"
    shutil.copytree(MIXED_PROJECT, build_dir, ignore=shutil.ignore_patterns("target"))
    # a library and version of its own: cargo compiles it anew, in this folder, and its output
    # does not replace the mixed project's in the target folder they share
    toml = build_dir / "Cargo.toml"
    toml.write_text(toml.read_text().replace('version = "0.1.0"', f'version = "0.1.{time.time_ns() // 1000 % 10**9}"', 1)
                    .replace('name = "my_pkg"', 'name = "my_pkg_ci"'))
    site = build_wheel(build_dir, out, "--profile", "dev")
    shutil.rmtree(out / "ci-checkout")
    return site


def test_a_wheel_built_elsewhere_finds_its_sources_with_source_dir_and_remembers_it(
        moved_wheel, gdb_path, tmp_path):
    line = marker_line("double", MIXED_PROJECT / "src" / "lib.rs")
    source_line = (MIXED_PROJECT / "src" / "lib.rs").read_text().splitlines()[line - 1].strip()
    env = {"PYTHONPATH": str(moved_wheel), "PYO3_DEBUG_MAGIC_STATE": str(tmp_path / "state")}
    (tmp_path / "state").mkdir(mode=0o700)
    kernel = KernelHarness(env=env, cwd=tmp_path)
    try:  # without --source: told why the breakpoint cannot bind, and what to add
        kernel.run("%load_ext pyo3_debug_magic")
        # rustdemo (the venv) has a src/lib.rs too; the moved crate is named by its folder
        created = kernel.run(f"%native_break src/lib.rs:{line} --crate mixed_project", timeout=60)
        assert created.status == "ok" and "pending" in created.output, created.text
        unmapped = kernel.run("import my_pkg\nmy_pkg.double(2)", answers=["c"], timeout=90)
        assert unmapped.results == ["4"], unmapped.text
        assert "ci-checkout/mixed_project/src/lib.rs was compiled in a folder this machine does not have" \
            in unmapped.output and "--source DIR" in unmapped.output, unmapped.text
        # with --source, the pause shows the source from the user's checkout
        kernel.run("%native_delete all")
        created = kernel.run(f"%native_break src/lib.rs:{line} --source {MIXED_PROJECT}", timeout=60)
        assert created.status == "ok", created.text
        paused = kernel.run("my_pkg.double(21)", answers=["p value", "c"], timeout=90)
        assert paused.results == ["42"] and "value = 21" in shown(paused), paused.text
        assert f"are read from {MIXED_PROJECT}" in paused.output or f"are read from {MIXED_PROJECT}" \
            in created.output, created.text + paused.text
        stop = next(v for v in shown(paused) if "native breakpoint" in v)
        assert source_line in stop, stop
    finally:
        assert kernel.shutdown() == []
    later = KernelHarness(env=env, cwd=tmp_path)  # a later kernel: the mapping was remembered
    try:
        later.run("%load_ext pyo3_debug_magic")
        created = later.run(f"%native_break src/lib.rs:{line} --crate mixed_project", timeout=60)
        assert created.status == "ok" and "pending" in created.output, created.text
        paused = later.run("import my_pkg\nmy_pkg.double(5)", answers=["c"], timeout=90)
        assert paused.results == ["10"] and len(paused.prompts) == 1, paused.text
        stop = next(v for v in shown(paused) if "native breakpoint" in v)
        assert source_line in stop, stop
        listing = later.run("%native_break").output
        assert f"-> {MIXED_PROJECT}/src/lib.rs:{line}" in listing, listing
    finally:
        assert later.shutdown() == []


WORKSPACE = ROOT / "tests" / "crates" / "workspace"


@pytest.fixture(scope="module")
def workspace(demo_crate, tmp_path_factory):
    """A cargo workspace with two extension crates (alpha, beta) that both have src/lib.rs."""
    out = tmp_path_factory.mktemp("workspace")
    build_wheel(WORKSPACE / "alpha", out, "--profile", "dev")
    return build_wheel(WORKSPACE / "beta", out, "--profile", "dev")


LAYOUTS = {  # name: (site fixture, file with the marker, --crate, import, call, p EXPR, its value, result)
    "mixed": ("mixed_project", MIXED_PROJECT / "src" / "lib.rs", " --crate my_pkg", "import my_pkg",
              "my_pkg.double(21)", "value", "21", "42"),
    "dashed-package": ("mixed_project", MIXED_PROJECT / "src" / "lib.rs", " --crate my-pkg", "import my_pkg",
                       "my_pkg.double(4)", "value", "4", "8"),
    "workspace": ("workspace", WORKSPACE / "beta" / "src" / "lib.rs", " --crate beta", "import alpha, beta",
                  "alpha.shift(1) + beta.shift(250)", "value", "250", "251"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_layout_pauses_at_a_breakpoint_set_before_import(request, layout, gdb_path, notebook_folder):
    """From a folder outside the crate and from one holding another crate: the breakpoint is
    set before the import, pauses at the right line, and answers p, n and c."""
    fixture, source, crate, imports, call, name, value, result = LAYOUTS[layout]
    site = request.getfixturevalue(fixture)
    marker = "double" if fixture == "mixed_project" else "shift"
    line = marker_line(marker, source)
    kernel = KernelHarness(env={"PYTHONPATH": str(site)}, cwd=notebook_folder)
    try:
        kernel.run("%load_ext pyo3_debug_magic")
        created = kernel.run(f"%native_break src/lib.rs:{line}{crate}", timeout=60)
        assert created.status == "ok" and "pending" in created.output, created.text
        paused = kernel.run(f"{imports}\n{call}", answers=[f"p {name}", "n", "c"], timeout=90)
        assert paused.results == [result] and len(paused.prompts) == 3, paused.text  # one pause
        assert f"{name} = {value}" in shown(paused), shown(paused)
        stop = next(v for v in shown(paused) if "native breakpoint" in v)
        assert f"src/lib.rs:{line}" in stop and source.read_text().splitlines()[line - 1].strip() in stop, stop
        # the notebook's view marks that line too (the mixed crate's excerpt starts on a blank line)
        page = next(d["text/html"] for d in paused.displays if "native breakpoint" in d.get("text/html", ""))
        assert highlighted_source_line(page) == (line, source.read_text().splitlines()[line - 1]), page
        stepped = re.search(r"stepped to \S+ at \S*src/lib.rs:(\d+)", paused.output)
        assert stepped and int(stepped.group(1)) > line, paused.text  # `n` went on in the function
        listing = kernel.run("%native_break").output
        assert f"-> {source}:{line}" in listing and "othercrate" not in listing, listing
    finally:
        assert kernel.shutdown() == []


def test_two_loaded_workspace_crates_with_the_same_file_need_crate(workspace, gdb_path, tmp_path):
    line = marker_line("shift", WORKSPACE / "alpha" / "src" / "lib.rs")
    kernel = KernelHarness(env={"PYTHONPATH": str(workspace)}, cwd=tmp_path)
    try:
        kernel.run("%load_ext pyo3_debug_magic\nimport alpha, beta")
        both = kernel.run(f"%native_break src/lib.rs:{line}")
        assert "matches several loaded crates" in both.stderr and "workspace/alpha/src/lib.rs" in both.stderr \
            and "workspace/beta/src/lib.rs" in both.stderr and "--crate" in both.stderr, both.text
        picked = kernel.run(f"%native_break src/lib.rs:{line} --crate alpha", timeout=60)
        assert picked.status == "ok" and f"workspace/alpha/src/lib.rs:{line}" in picked.output, picked.text
        paused = kernel.run("beta.shift(1), alpha.shift(2)", answers=["p value", "c"], timeout=90)
        assert paused.results == ["(-99, 102)"] and "value = 2" in shown(paused), paused.text
    finally:
        assert kernel.shutdown() == []


def test_an_attach_over_a_second_shows_what_it_is_doing_in_the_cell(demo_crate, gdb_path, tmp_path):
    """A slow gdb start (a wrapper that waits 1.5 s, as a cold disk would) makes the attach
    take over a second: the cell shows one line, updated in place, then how long it took."""
    slow_gdb = tmp_path / "slow-gdb"
    slow_gdb.write_text(f"#!/bin/sh\nsleep 1.5\nexec {gdb_path} \"$@\"\n")
    slow_gdb.chmod(0o755)
    # the default threshold (1 s), whatever the run's environment forces
    kernel = KernelHarness(env={"PYO3_DEBUG_MAGIC_GDB": str(slow_gdb), "PYO3_DEBUG_MAGIC_ATTACH_PROGRESS_AFTER": "1"},
                           cwd=tmp_path)
    try:
        attached = kernel.run("%load_ext pyo3_debug_magic\n%native_attach", timeout=60)
        assert attached.status == "ok" and "attached to kernel pid" in attached.output, attached.text
        first = next(d["text/plain"] for d in attached.displays if "attaching" in d.get("text/plain", ""))
        assert re.fullmatch(r"native debugger: attaching, starting gdb \(1\.\d s\)", first), first
        lines = [u["text/plain"] for u in attached.updates]
        assert lines and re.fullmatch(r"native debugger: gdb attached in \d+\.\d s", lines[-1]), lines
        kernel.run("%native_detach")
        quick = kernel.run("%native_attach", timeout=60)  # the helper and its gdb were kept: no wait
        assert quick.status == "ok" and "attaching" not in quick.output, quick.text
    finally:
        assert kernel.shutdown() == []


def test_a_location_is_checked_in_the_debug_info_of_modules_not_imported_yet(workspace, gdb_path, tmp_path):
    """alpha and beta (and rustdemo, in the venv) can be imported and carry debug info: before any
    import, a file in several crates needs --crate, and a line past the code is refused."""
    line = marker_line("shift", WORKSPACE / "beta" / "src" / "lib.rs")
    length = len((WORKSPACE / "beta" / "src" / "lib.rs").read_text().splitlines())
    kernel = KernelHarness(env={"PYTHONPATH": str(workspace)}, cwd=tmp_path)
    try:
        kernel.run("%load_ext pyo3_debug_magic")
        several = kernel.run(f"%native_break src/lib.rs:{line}", timeout=60)
        assert "src/lib.rs is in several crates Python can import" in several.stderr, several.text
        assert "alpha (" in several.stderr and "beta (" in several.stderr and "--crate" in several.stderr
        past = kernel.run(f"%native_break src/lib.rs:{length + 50} --crate beta", timeout=60)
        assert f"no code at or after src/lib.rs:{length + 50} in beta" in past.stderr, past.text
        assert f"code up to line {length - 1}" in past.stderr or f"code up to line {length}" in past.stderr, past.text
        typo = kernel.run(f"%native_break src/lib.rs:{line} --crate bta", timeout=60)  # not a pending forever
        assert typo.status == "error" and "--crate bta: no" in typo.stderr, typo.text
        assert "did you mean `--crate beta`?" in typo.stderr, typo.text
        assert kernel.run("%native_break").output.strip() == "no native breakpoints"  # nothing left behind
        created = kernel.run(f"%native_break src/lib.rs:{line} --crate beta", timeout=60)
        assert created.status == "ok" and "checked in its debug info before the import" in created.output, \
            created.text
        paused = kernel.run("import beta\nbeta.shift(300)", answers=["c"], timeout=90)
        assert paused.results == ["200"] and len(paused.prompts) == 1, paused.text
    finally:
        assert kernel.shutdown() == []


@pytest.fixture(scope="module")
def lib_named_core(demo_crate, tmp_path_factory):
    """maturin's layout with `[lib] name = "_core"` (pydantic-core's shape): package my-pkg,
    module my_pkg._core, and Rust paths `_core::double`."""
    out = tmp_path_factory.mktemp("lib-named-core")
    build_dir = out / "my_pkg_core"
    shutil.copytree(MIXED_PROJECT, build_dir, ignore=shutil.ignore_patterns("target"))
    toml = build_dir / "Cargo.toml"
    # a version of its own: cargo compiles it in this folder (the shared target folder would
    # otherwise hand back an earlier run's build, with that run's deleted folder in its debug info)
    toml.write_text(toml.read_text().replace('version = "0.1.0"', f'version = "0.2.{time.time_ns() // 1000 % 10**9}"', 1)
                    .replace('name = "my_pkg"', 'name = "_core"'))
    return build_wheel(build_dir, out, "--profile", "dev")


def test_a_function_named_by_its_package_binds_in_the_crate_rust_knows(lib_named_core, gdb_path, tmp_path):
    """`my_pkg::double` before `import my_pkg`, where Rust calls the crate `_core`: bound to
    `_core::double` at once (said), and it pauses; not a pending breakpoint that never binds."""
    kernel = KernelHarness(env={"PYTHONPATH": str(lib_named_core)}, cwd=tmp_path)
    try:
        kernel.run("%load_ext pyo3_debug_magic")
        created = kernel.run("%native_break my_pkg::double", timeout=60)
        assert created.status == "ok" and "my_pkg::double is _core::double to Rust" in created.output, created.text
        paused = kernel.run("import my_pkg\nmy_pkg.double(5)", answers=["p value", "c"], timeout=90)
        assert paused.results == ["10"] and "value = 5" in shown(paused) and len(paused.prompts) == 2, paused.text
        stop = next(v for v in shown(paused) if "native breakpoint" in v)
        assert "_core::double at src/lib.rs" in stop.splitlines()[0], stop
    finally:
        assert kernel.shutdown() == []


PYENV = Path("/root/.pyenv/versions")


@pytest.mark.timeout(900)  # compiles pyo3 for that Python on a fresh clone
@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_pyo3_values_print_as_python_values_on_newer_pythons(demo_crate, gdb_path, tmp_path, version):
    """CPython 3.12 changed the int and refcount layouts the printers read: rustdemo built for
    that Python, paused in Basket.describe in a process running it, its locals read from memory."""
    python = next(iter(sorted(PYENV.glob(f"{version}.*/bin/python{version}"))), None) \
        or Path(shutil.which(f"python{version}") or f"/nonexistent/python{version}")
    assert python.is_file(), f"no Python {version} on this machine (the test image has pyenv's)"
    site = build_wheel(CRATE, tmp_path, "--profile", "dev", python=str(python),  # a target folder per
                       env={"CARGO_TARGET_DIR": str(CRATE / "target" / f"python{version}")})  # Python: no rebuilds
    target = subprocess.Popen([str(python), "-c", "import sys, rustdemo\nprint('ready', flush=True)\n"
                               "for l in sys.stdin:\n    print(rustdemo.Basket('fruit').describe('apple', 2**70 + 5, "
                               "[1, 2, 3]), flush=True)"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(site)})
    from pyo3_debug_magic import model
    from pyo3_debug_magic.debugger import BreakpointRequest, NativeDebugger

    events: queue.Queue = queue.Queue()
    debugger = NativeDebugger(target.pid)
    debugger.add_listener(events.put)
    try:
        assert target.stdout.readline().strip() == "ready"
        debugger.set_breakpoint(BreakpointRequest(f"src/lib.rs:{marker_line('basket-describe')}"))
        target.stdin.write("go\n")
        target.stdin.flush()
        paused = events.get(timeout=60)
        assert isinstance(paused, model.Paused), paused
        values = {v.name: v.value for v in paused.locals}
        assert values["self"] == '&rustdemo::Basket {label: "fruit", count: 0}', values
        assert re.fullmatch(r"&'apple' \(str, (refcount \d+|immortal)\)", values["text"]), values  # 3.12 interns it for good
        assert re.fullmatch(r"&1180591620717411303429 \(int, refcount \d+\)", values["number"]), values
        assert re.fullmatch(r"&\[1, 2, 3\] \(list, refcount \d+\)", values["items"]), values
        debugger.resume(paused.thread, "continue")
        assert target.stdout.readline().strip() == "fruit #0: apple 1180591620717411303429 3"
    finally:
        debugger.close()
        target.kill()
        target.wait()


def test_a_trait_method_set_before_import_stays_pending_and_says_to_import_first(mixed_project, gdb_path, tmp_path):
    """Before the import only gdb's full path binds later; other forms say what to do."""
    kernel = KernelHarness(env={"PYTHONPATH": str(mixed_project)}, cwd=tmp_path)
    try:
        kernel.run("%load_ext pyo3_debug_magic")
        trait = kernel.run("%native_break <Meter as Scale>::scale", timeout=60)
        assert trait.status == "ok" and "-> pending" in trait.output, trait.text
        assert "for a trait method, a generic or a closure, import the module first" in trait.output, trait.text
        closure = kernel.run("%native_break combine::{closure#0}", timeout=60)
        assert closure.status == "ok" and "-> pending" in closure.output, closure.text
        full = kernel.run("%native_break my_pkg::Counter::add", timeout=60)  # gdb's full path binds on import
        paused = kernel.run("import my_pkg\nmy_pkg.Counter().add(4)", answers=["p amount", "c"], timeout=90)
        assert full.status == "ok" and paused.results == ["4"] and "amount = 4" in shown(paused), paused.text
    finally:
        assert kernel.shutdown() == []


def test_a_pending_name_the_import_did_not_bind_is_named_with_close_matches(mixed_project, gdb_path, tmp_path):
    """A typo, or the module's name where Rust knows the crate by another, is said in the
    cell that imports the module, not left pending in silence."""
    kernel = KernelHarness(env={"PYTHONPATH": str(mixed_project)}, cwd=tmp_path)
    try:
        kernel.run("%load_ext pyo3_debug_magic")
        for location in ("my_pkg::dobule", "_core::combine"):
            created = kernel.run(f"%native_break {location}", timeout=60)
            assert created.status == "ok" and "-> pending" in created.output, created.text
        imported = kernel.run("import my_pkg\nmy_pkg.double(2)", timeout=60)
        assert imported.results == ["4"], imported.text
        assert re.search(r"breakpoint 1 \(my_pkg::dobule\) is still pending: _core\.\S+\.so was just loaded "
                         r"\(.*\) and has no function by that name; close matches: my_pkg::double;", imported.text)
        assert "breakpoint 2 (_core::combine) is still pending" in imported.text
        assert "close matches: my_pkg::combine;" in imported.text, imported.text
        assert "still pending" not in kernel.run("import my_pkg\nmy_pkg.double(3)").text  # said once
    finally:
        assert kernel.shutdown() == []
