"""Pure units: resolving a location to the user's crate, and spotting stale builds."""
from __future__ import annotations

import os
import time

import pytest

from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.breakpoints.builds import stale_build
from pyo3_debug_magic.breakpoints.lines import user_written_line
from pyo3_debug_magic.breakpoints.locations import SourceFile, crate_of, in_crate, parse_location, resolve

REGISTRY = "/root/.cargo/registry/src/index.crates.io-1/pyo3-0.23.5/src/lib.rs"
STD = "/rustc/59807616e1fa/library/std/src/lib.rs"


def sources(*user_files, objfile="/venv/site-packages/rustdemo/rustdemo.so"):
    rows = [SourceFile(objfile, REGISTRY), SourceFile(objfile, STD)]
    return rows + [SourceFile(objfile, path) for path in user_files]


@pytest.fixture
def crate_source(tmp_path):
    """A user crate's source file on disk (user sources exist here; a wheel's build paths do
    not), outside the working directory the tests resolve from (``tmp_path / "work"``)."""
    (tmp_path / "work").mkdir()

    def make(crate: str) -> str:
        path = tmp_path / "home" / crate / "src" / "lib.rs"
        path.parent.mkdir(parents=True)
        path.write_text("fn f() {}\n")
        return str(path)

    return make


def test_src_lib_rs_means_the_users_crate_not_pyo3_or_std(tmp_path, crate_source):
    mine = crate_source("rustdemo")
    resolved = resolve(parse_location("src/lib.rs:42"), sources(mine), cwd=tmp_path / "work")
    assert resolved.source == mine and not resolved.pending


def test_a_wheels_build_paths_are_not_user_sources(tmp_path, crate_source):
    mine = crate_source("rustdemo")
    rows = sources(mine) + [SourceFile("/venv/tornado/speedups.abi3.so", "/project/tornado/src/lib.rs")]
    assert resolve(parse_location("src/lib.rs:1"), rows, cwd=tmp_path / "work").source == mine


def test_two_user_crates_need_the_crate_option(tmp_path, crate_source):
    mine, other = crate_source("rustdemo"), crate_source("other")
    rows = sources(mine) + [SourceFile("/venv/other/other.so", other)]
    with pytest.raises(UsageProblem) as error:
        resolve(parse_location("src/lib.rs:3"), rows, cwd=tmp_path / "work")
    assert "--crate" in str(error.value) and other in str(error.value)
    picked = resolve(parse_location("src/lib.rs:3"), rows, crate="other", cwd=tmp_path / "work")
    assert picked.source == other


def test_an_unknown_crate_stays_pending_and_lists_the_loaded_ones(tmp_path, crate_source):
    resolved = resolve(parse_location("src/lib.rs:3"), sources(crate_source("rustdemo")), crate="nosuch",
                       cwd=tmp_path / "work")
    assert resolved.pending and "binds to crate nosuch" in resolved.note
    assert "(the loaded modules with your sources are: rustdemo)" in resolved.note


def test_not_loaded_yet_but_on_disk_is_pending(tmp_path):
    crate = tmp_path / "mycrate" / "src"
    crate.mkdir(parents=True)
    (crate / "lib.rs").write_text("fn main() {}\n")
    resolved = resolve(parse_location("src/lib.rs:1"), sources(), cwd=tmp_path)
    # as typed: gdb binds it to whichever crate is imported, never to the file in the folder
    assert resolved.pending and resolved.source == "src/lib.rs" and "pending" in resolved.note


def test_loaded_module_without_debug_info_says_how_to_build(tmp_path):
    crate = tmp_path / "mycrate"
    (crate / "src").mkdir(parents=True)
    (crate / "src" / "lib.rs").write_text("fn f() {}\n")
    (crate / "Cargo.toml").write_text('[package]\nname = "mycrate"\n')
    rows = [SourceFile("/venv/mycrate/mycrate.cpython-311-x86_64-linux-gnu.so", "", debug_info=False)]
    with pytest.raises(UsageProblem) as error:
        resolve(parse_location("src/lib.rs:1"), rows, cwd=tmp_path)
    assert "no debug info for src/lib.rs in mycrate" in str(error.value)
    assert "maturin develop" in str(error.value) and "debug = true" in str(error.value)
    assert "maturin build --profile dev" in str(error.value)
    assert "--include-debuginfo" in str(error.value)  # the maturin of the test extras has it


def test_a_file_nowhere_stays_pending_with_close_matches(tmp_path, crate_source):
    resolved = resolve(parse_location("src/lbi.rs:1"), sources(crate_source("rustdemo")), cwd=tmp_path / "work")
    assert resolved.pending and resolved.source == "src/lbi.rs"
    assert "did you mean src/lib.rs? loaded in rustdemo" in resolved.note


def test_functions_go_to_gdb_as_they_are(tmp_path):
    resolved = resolve(parse_location("rustdemo::compute"), [], cwd=tmp_path)
    assert resolved.function == "rustdemo::compute" and resolved.source is None


def test_stale_build_rebuilt_module_and_edited_source(tmp_path):
    module, source = tmp_path / "m.so", tmp_path / "lib.rs"
    module.write_bytes(b"\0")
    source.write_text("x")
    inode = os.stat(module).st_ino
    maps = f"7f00-7f01 r-xp 00000000 fd:01 {inode} {module}\n"
    os.utime(source, (time.time(), os.stat(module).st_mtime - 10))
    assert stale_build(str(source), str(module), maps) is None
    os.utime(source, (time.time(), os.stat(module).st_mtime + 60))
    assert "changed after m.so was built" in stale_build(str(source), str(module), maps)
    rebuilt = f"7f00-7f01 r-xp 00000000 fd:01 {inode + 1} {module}\n"
    assert "rebuilt after this kernel imported it" in stale_build(str(source), str(module), rebuilt)


def test_a_module_built_elsewhere_still_resolves_by_its_recorded_path(tmp_path):
    # built in a container: DWARF names /io/src/lib.rs, which does not exist here
    resolved = resolve(parse_location("src/lib.rs:7"), sources("/io/src/lib.rs"), cwd=tmp_path)
    assert resolved.source == "/io/src/lib.rs" and not resolved.pending


def test_crate_names_match_with_dashes_or_underscores(tmp_path):
    crate = tmp_path / "my-crate" / "src"
    crate.mkdir(parents=True)
    (crate / "lib.rs").write_text("fn f() {}\n")
    resolved = resolve(parse_location("src/lib.rs:1"), sources(), crate="my_crate", cwd=tmp_path)
    assert resolved.pending and resolved.source == "src/lib.rs" and "crate my_crate" in resolved.note
    assert in_crate(str(crate / "lib.rs"), "my_crate") and not in_crate(str(crate / "lib.rs"), "other")
    (crate.parent / "Cargo.toml").write_text('[package]\nname = "my-crate"\n[lib]\nname = "my_pkg_core"\n')
    assert crate_of(str(crate / "lib.rs")) == "my_pkg_core" and in_crate(str(crate / "lib.rs"), "my_pkg_core")


def test_an_absolute_path_too_long_for_the_system_stays_a_usage_matter(tmp_path):
    """Found by the fuzz suite: os.stat raised ENAMETOOLONG out of the resolver."""
    resolved = resolve(parse_location("/" + "a" * 5000 + "src/lib.rs:20"), sources(), cwd=tmp_path)
    assert resolved.pending and resolved.source.endswith("src/lib.rs")


TRAIT_METHOD = "<my_pkg::Meter as my_pkg::Scale>::scale"


@pytest.mark.parametrize("typed, name, spelled, matches", [
    ("my_pkg::double", "my_pkg::double", "", True),
    ("double", "my_pkg::double", "", True),                  # a tail of the path
    ("ouble", "my_pkg::double", "", False),                  # whole segments only
    ("Counter::add", "my_pkg::Counter::add", "", True),       # a #[pymethods] method
    ("Counter::add", "my_pkg::Counter::__pymethod_add__", "", False),
    ("largest", "my_pkg::largest<i64>", "", True),            # each instance of a generic
    ("my_pkg::largest<i64>", "my_pkg::largest<i64>", "", True),
    ("largest<f64>", "my_pkg::largest<i64>", "", True),       # generic arguments do not choose
    ("combine::{closure#0}", "my_pkg::combine::{closure#0}", "", True),
    ("combine::{closure#1}", "my_pkg::combine::{closure#0}", "", False),
    ("Meter::scale", "my_pkg::{impl#0}::scale", TRAIT_METHOD + "::h84ba6d1cf243f7d7", True),
    ("Scale::scale", "my_pkg::{impl#0}::scale", TRAIT_METHOD, True),
    ("<Meter as Scale>::scale", "my_pkg::{impl#0}::scale", TRAIT_METHOD, True),
    ("<my_pkg::Meter  as  Scale>::scale", "my_pkg::{impl#0}::scale", TRAIT_METHOD, True),
    ("<Gram as Scale>::scale", "my_pkg::{impl#0}::scale", TRAIT_METHOD, False),
    ("Meter::scale", "my_pkg::{impl#0}::scale", "", False),   # no symbol-table name: no trait match
])
def test_what_a_typed_function_name_matches(typed, name, spelled, matches):
    from pyo3_debug_magic.breakpoints.locations import function_matches

    assert function_matches(typed, name, spelled) is matches


@pytest.mark.parametrize("text", ["Counter::add", "<Meter as Scale>::scale", "combine::{closure#0}",
                                  "largest<Vec<i64>>", "double"])
def test_rust_function_spellings_are_locations(text):
    assert parse_location(text).function == text


@pytest.mark.parametrize("text", ["a; shell", "f$x", "f(x)", "x::{closure#0}\"", "`id`"])
def test_other_text_is_not_a_location(text):
    with pytest.raises(UsageProblem):
        parse_location(text)


def test_a_recorded_folder_maps_to_the_checkout_that_has_the_file(tmp_path):
    from pyo3_debug_magic.breakpoints.source_paths import mapping_for

    (tmp_path / "mycrate" / "src").mkdir(parents=True)
    (tmp_path / "mycrate" / "src" / "lib.rs").write_text("fn main() {}\n")
    checkout = str(tmp_path / "mycrate")
    assert mapping_for("/project/src/lib.rs", checkout) == ("/project", checkout)
    assert mapping_for("/build/ci/mycrate/src/lib.rs", checkout) == ("/build/ci/mycrate", checkout)
    assert mapping_for("/project/src/other.rs", checkout) is None
    assert mapping_for(f"{checkout}/src/lib.rs", checkout) is None  # already here


def test_gdb_regex_keeps_rust_punctuation_literal():
    from pyo3_debug_magic.gdb.symbols import gdb_regex

    assert gdb_regex("{closure#0}") == "[{]closure#0[}]"
    assert gdb_regex("a.b*") == "a[.]b[*]"


def test_a_line_before_a_function_body_moves_to_its_first_statement(tmp_path):
    source = tmp_path / "lib.rs"
    source.write_text("use pyo3::prelude::*;\n\n/// Doubles.\n/// More.\n#[pyfunction]\n#[pyo3(signature = (x))]\n"
                      "pub fn double(\n    x: i64,\n) -> i64 {\n    // a comment\n\n    let y = x * 2;\n    y\n}\n"
                      "fn empty() {\n}\n")
    moved = {line: user_written_line(str(source), line) for line in range(1, 17)}
    assert moved[3] == (12, "line 3 is a doc comment of `double`: the breakpoint is on line 12, its first statement")
    assert moved[5][0] == moved[6][0] == moved[7][0] == 12 and "an attribute of" in moved[5][1]
    assert "the signature of" in moved[7][1] and moved[2][1].startswith("line 2 is a blank line before")
    assert moved[1] == (12, "line 1 is before any code: the next function is `double`: the breakpoint is on "
                        "line 12, its first statement")  # a `use`: gdb's next code is the trampoline
    assert moved[12] is None and moved[13] is None   # code stays where it is
    assert moved[10] is None                       # a comment inside a body: gdb's next line with code
    assert moved[15] is None and user_written_line(str(tmp_path / "missing.rs"), 3) is None  # no body / no file


def test_stale_build_when_pip_moved_the_old_package_aside_or_deleted_it(tmp_path):
    """`maturin develop` under a running kernel: pip renames the old folder (`~odule/`) or
    deletes it, so the mapping's path is no longer the module's; its inode still tells."""
    (tmp_path / "module").mkdir()
    module, source = tmp_path / "module" / "m.so", tmp_path / "lib.rs"
    module.write_bytes(b"\0")
    source.write_text("x")
    os.utime(source, (time.time(), os.stat(module).st_mtime - 10))
    old_inode = os.stat(module).st_ino + 7
    aside = f"7f00-7f01 r-xp 00000000 fd:01 {old_inode} {tmp_path}/~odule/m.so\n"
    assert "rebuilt after this kernel imported it" in stale_build(str(source), str(module), aside)
    deleted = f"7f00-7f01 r-xp 00000000 fd:01 {old_inode} {tmp_path}/~odule/m.so (deleted)\n"
    assert "rebuilt after this kernel imported it" in stale_build(str(source), str(module), deleted)
    same = f"7f00-7f01 r-xp 00000000 fd:01 {os.stat(module).st_ino} {module}\n"
    assert stale_build(str(source), str(module), same) is None


def test_a_crate_typo_is_named_but_std_and_exact_names_are_not():
    from pyo3_debug_magic.breakpoints.preimport import misspelt_crate

    modules = ["/site/my_pkg/_core.cpython-311-x86_64-linux-gnu.so", "/site/rustdemo/rustdemo.cpython-311-x86_64-linux-gnu.so"]
    assert misspelt_crate("rustdmo", modules) == "rustdemo"
    assert misspelt_crate("_cor", modules) == "_core"
    assert misspelt_crate("core", modules) is None        # std's crate, not a typo of `_core`
    assert misspelt_crate("my_pkg", modules) is None      # the package's name is known
    assert misspelt_crate("tokio", modules) is None       # nothing close: may be a dependency
