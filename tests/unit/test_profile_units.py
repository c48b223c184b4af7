"""The profile engine's pure parts: py-spy's collapsed stacks, names, the top table, files."""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from pyo3_debug_magic.profiling import files
from pyo3_debug_magic.profiling import profiles
from pyo3_debug_magic.stacks.pyspy import demangle_all
from pyo3_debug_magic.render.flamegraph import profile_html
from pyo3_debug_magic.model.profile import ProfileFrame, SampledStack
from pyo3_debug_magic.render.profile_text import TREE_MAX_DEPTH, call_tree, fold_generics, profile_text, tree_lines

RAW = """\
thread (101): MainThread;<module> (/tmp/ipykernel_1/2.py:3);rustdemo::__pyfunction_busy_work::h5f77f52343c4b9fa (/nowhere/src/lib.rs:213);rustdemo::busy_work::h1ab787c47d3901e5 (/nowhere/src/lib.rs:217);core::intrinsics::rotate_left::he2994109858d5d0d (/rustc/abc/library/core/src/intrinsics/mod.rs:2029) 30
thread (101): MainThread;<module> (/tmp/ipykernel_1/2.py:3);rustdemo::_$LT$impl$u20$rustdemo..square..MakeDef$GT$::_PYO3_DEF::trampoline::hfc4acdca21cba13c (/nowhere/src/lib.rs:30);_RNvMs7_NtCsgEmfK2I1SDS_4core3numy12wrapping_mul (/rustc/abc/library/core/src/num/uint_macros.rs:2533) 10
thread (102): worker;run (/usr/lib/python3.11/threading.py:975);0x7f16340a8ce3 (/usr/lib/x86_64-linux-gnu/libc.so.6) 5
"""


def parsed():
    return profiles.parse_collapsed(RAW, demangle_all)


def test_collapsed_stacks_parse_with_threads_and_readable_names():
    stacks = {s.count: s for s in parsed()}
    busy = stacks[30]
    assert busy.thread == 101
    assert [f.function for f in busy.frames] == ["<module>", "rustdemo::__pyfunction_busy_work",
                                                  "rustdemo::busy_work", "core::intrinsics::rotate_left"]
    assert busy.frames[0].is_cell and busy.frames[0].kind == "python" and busy.frames[0].line == 3
    assert busy.frames[-1].file == "core/src/intrinsics/mod.rs"
    assert busy.cut_short                       # no PyO3 trampoline under the Rust run
    assert not stacks[10].cut_short             # this one reached the trampoline
    assert stacks[10].frames[-1].function == "<u64>::wrapping_mul"  # a v0 symbol, demangled
    assert stacks[5].frames[-1].function == "[libc.so.6]"


def test_self_time_of_rust_library_code_goes_to_its_caller():
    top = profiles.top_functions(parsed())
    first = top[0]
    assert (first.function, first.self_samples, first.total_samples) == ("rustdemo::busy_work", 30, 30)
    by_name = {row.function: row for row in top}
    assert "core::intrinsics::rotate_left" not in by_name  # no time of its own: in the tree, not the table
    assert by_name["<module>"].total_samples == 40


def test_notes_for_few_samples_errors_and_cut_stacks():
    profile = profiles.build(parsed(), samples=8, errors=30, rate=100, seconds=0.4, python_only_samples=38)
    notes = " ".join(profile.notes)
    assert "too few for a meaningful profile" in notes and "--rate 500" in notes
    assert "30 of 38 samples" in notes and "--show python" in notes
    assert "in 30 of 45 samples (67%) py-spy's unwinder stopped" in notes


def test_rust_names_lose_hashes_llvm_suffixes_and_legacy_escapes():
    from pyo3_debug_magic.stacks.merging import clean_rust_name

    assert clean_rust_name("rustdemo::mix_round::h6dd6770a60191cb1.llvm.12345") == "rustdemo::mix_round"
    assert clean_rust_name("core::num::_$LT$impl$u20$u64$GT$::unchecked_add::h6bdd695530cedba2") == \
        "core::num::<impl u64>::unchecked_add"
    assert clean_rust_name("map_fold::_$u7b$$u7b$closure$u7d$$u7d$::h0123456789abcdef") == "map_fold::{{closure}}"
    assert demangle_all(["_RNvMs7_NtCsgEmfK2I1SDS_4core3numy12wrapping_mul"]) == {
        "_RNvMs7_NtCsgEmfK2I1SDS_4core3numy12wrapping_mul": "<u64>::wrapping_mul"}


def test_generic_parameters_fold_and_qualified_paths_stay():
    assert fold_generics("alloc::vec::Vec<T,A>::push") == "alloc::vec::Vec<…>::push"
    assert fold_generics("<core::ops::range::Range<T> as Iterator>::next") == "<core::ops::range::Range<…> as Iterator>::next"
    assert fold_generics("a<b") == "a<b"


def test_renderings_and_files():
    profile = profiles.build(parsed(), samples=45, errors=0, rate=100, seconds=0.45, by_thread=True,
                             thread_names={101: "MainThread"})
    text = profile_text(profile)
    assert "MainThread (101)" in text and "rs rustdemo::busy_work" not in text  # /nowhere is not the user's
    html = profile_html(profile)
    assert html.count("<script>") == 1 and "rustdemo::busy_work" in html and "</script>" not in html.split("<script>")[1][:-15]
    speedscope = files.speedscope(profile)
    json.dumps(speedscope)
    assert {p["name"].split()[-1] for p in speedscope["profiles"]} == {"MainThread", "102"}
    assert files.svg(profile).startswith("<svg") and "rustdemo::busy_work" in files.svg(profile)


def test_a_run_of_library_frames_folds_past_small_side_branches_to_your_frame():
    python = ProfileFrame("python", "callback", "cell", 4, is_cell=True)
    library = [ProfileFrame("native", f"pyo3::lib{i}", "pyo3/src/x.rs", 10 + i) for i in range(8)]
    mine = ProfileFrame("native", "mycrate::square", "src/lib.rs", 30, user=True)
    drop = ProfileFrame("native", "pyo3::drop", "pyo3/src/gil.rs", 1)
    stacks = (SampledStack(1, (python, *library, mine), 90),
              SampledStack(1, (python, *library[:3], drop), 1),   # below the share shown
              SampledStack(1, (python, *library[:5]), 9))          # self time inside the run
    lines = tree_lines(call_tree(stacks), 100)
    assert lines == ["100.0% py callback  cell line 4",
                     "100.0%   c  pyo3::lib0  pyo3/src/x.rs:10",
                     "            … 6 library frames",
                     " 90.0%   c  pyo3::lib7  pyo3/src/x.rs:17",
                     " 90.0%     rs mycrate::square  src/lib.rs:30"]


def test_a_tree_deeper_than_shown_says_so():
    frames = tuple(ProfileFrame("python", f"f{i}", "cell", i, is_cell=True) for i in range(TREE_MAX_DEPTH + 3))
    lines = tree_lines(call_tree((SampledStack(1, frames, 10),)), 10)
    assert len(lines) == TREE_MAX_DEPTH + 1 and lines[-1].strip() == "… deeper frames not shown"


# ----- the native sampler's pure parts and the Python frame reader -----------------------------

def test_native_and_python_frames_merge_at_each_eval_frame():
    from pyo3_debug_magic.profiling.sampled_stacks import Symbol, merge

    lib, ext = "/x/libpython3.11.so.1.0", "/x/mymod.so"
    symbols = {0: ("/lib/libc.so.6", [Symbol("__libc_start_main_impl", "libc-start.c", 1)]),
               1: (ext, [Symbol("mymod::square", "/x/src/lib.rs", 30)]),
               2: (lib, [Symbol("_PyEval_EvalFrameDefault", "ceval.c", 1)]),
               3: (lib, [Symbol("_PyEval_EvalFrame", "x.h", 1), Symbol("_PyEval_Vector", "ceval.c", 2)]),
               4: (ext, [Symbol("pyo3::call", "any.rs", 9), Symbol("mymod::call_python", "/x/src/lib.rs", 40)]),
               5: (lib, [Symbol("_PyEval_EvalFrameDefault", "ceval.c", 1)])}
    python = (("callback", "cell.py", 4, True), ("helper", "cell.py", 2, False), ("<module>", "cell.py", 9, True))
    frames, lined_up = merge((1, 2, 3, 4, 5, 0), python, symbols)
    assert lined_up
    assert [f.split(" (")[0] for f in frames] == ["<module>", "helper", "mymod::call_python", "pyo3::call",
                                                   "callback", "mymod::square"]
    # an unwinder that stopped early: the Python frames left go outermost, and it is said
    frames, lined_up = merge((1, 2), python, symbols)
    assert not lined_up and [f.split(" (")[0] for f in frames] == ["<module>", "helper", "callback", "mymod::square"]


READER = """
import ctypes, json, os, sys, threading
from pyo3_debug_magic.stacks import pyframes
layout = pyframes.discover()
runtime = pyframes.own_runtime()
started, done = threading.Event(), threading.Event()
def waiting_here():
    started.set(); done.wait()
def entered_from_c(_):
    waiting_here()
worker = threading.Thread(target=lambda: list(map(entered_from_c, [0])), name="w"); worker.start(); started.wait()
reader = pyframes.FrameReader(os.getpid(), layout, runtime)
frames = reader.frames(reader.by_os_thread()[worker.native_id])
done.set(); worker.join()
print(json.dumps([list(f) for f in frames]))
"""


def interpreter(name: str) -> str:
    if name == "debian-no-dwarf":
        return "/usr/bin/python3"
    found = sorted(glob.glob(str(Path.home() / f".pyenv/versions/{name}.*/bin/python{name}")))
    if not found:
        pytest.fail(f"this test needs CPython {name}: `pyenv install {name}`")
    return found[-1]


@pytest.mark.parametrize("name", ["3.11", "3.12", "3.13", "debian-no-dwarf"])
def test_the_frame_reader_reads_a_threads_python_frames(name):
    python = interpreter(name)
    run = subprocess.run([python, "-c", READER], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert run.returncode == 0, run.stderr
    frames = json.loads(run.stdout)
    names = [f[0] for f in frames]
    assert names[names.index("waiting_here"):names.index("waiting_here") + 2] == ["waiting_here", "entered_from_c"]
    assert frames[names.index("waiting_here")][2] == 8   # the line of done.wait() in READER
    assert frames[names.index("entered_from_c")][3] is True   # called from C (by map)
    assert frames[names.index("waiting_here")][3] is False


def test_names_that_look_like_the_templates_placeholders_are_data():
    """Function and file names go into the page as JSON, never as code: a function named
    COLOURS (or DATA, ID) once broke the flamegraph's script."""
    raw = RAW.replace("rustdemo::busy_work::h1ab787c47d3901e5", "COLOURS::DATA::ID::h1ab787c47d3901e5")
    profile = profiles.build(profiles.parse_collapsed(raw, demangle_all), samples=45, errors=0, rate=100,
                             seconds=0.45, by_thread=True, thread_names={101: "MainThread"})
    script = profile_html(profile).split("<script>")[1].split("</script>")[0]
    views = json.loads(script.split("views = ", 1)[1].split(', view = "native"', 1)[0])
    assert "COLOURS::DATA::ID" in json.dumps(views)  # parsed whole: the name was not substituted
    assert "COLOURS.user" not in script and '"#dea584"' in script  # the template's own placeholder was


def test_the_page_is_built_from_its_template_files_with_every_placeholder_filled():
    """The script and styles are package data (render/templates/), read as they ship: each is
    in the page once, scoped to its element, with no placeholder left."""
    from pyo3_debug_magic.render.flamegraph import TEMPLATES

    profile = profiles.build(profiles.parse_collapsed(RAW, demangle_all), samples=45, errors=0, rate=100,
                             seconds=0.45, by_thread=True, thread_names={101: "MainThread"})
    page = profile_html(profile)
    element = re.search(r'<div id="(pdm-profile-[0-9a-f]{12})"', page).group(1)
    script = page.split("<script>")[1].split("</script>")[0]
    style = page.split("<style>")[1].split("</style>")[0]
    assert (TEMPLATES / "flamegraph.js").is_file() and (TEMPLATES / "flamegraph.css").is_file()
    assert page.count("<script>") == 1 and f'document.getElementById("{element}")' in script
    assert not re.search(r"\b(ID|DATA|COLOURS)\b", script.split("views = ", 1)[0] + script.split('view = "native"', 1)[1])
    assert f"#{element} .fg-frame" in style and "#ID" not in style


def test_notes_in_html_show_code_not_backticks():
    from pyo3_debug_magic.render import html as render_html

    profile = profiles.build(parsed(), samples=3, errors=0, rate=100, seconds=0.03, by_thread=False)
    notes = profile_html(profile).split("<ul>", 1)[1].split("</ul>", 1)[0]
    assert "<code>--rate 500</code>" in notes and "`" not in notes, notes
    assert render_html.after_cell(["run `%native_crash`"], ()).count("<code>%native_crash</code>") == 1


def test_the_flamegraph_folds_a_chain_of_library_frames_into_one_node():
    from pyo3_debug_magic.model import ProfileFrame, SampledStack
    from pyo3_debug_magic.render.profile_text import call_tree, fold_library_runs

    chain = [ProfileFrame("native", f"pyo3::step{i}", "pyo3-0.23/src/x.rs", 1) for i in range(4)]
    stacks = [SampledStack(None, (ProfileFrame("python", "<module>", "/tmp/ipykernel_1/2.py", 1, is_cell=True), *chain,
                                  ProfileFrame("native", "mycrate::work", "src/lib.rs", 9, user=True)), 5)]
    folded = fold_library_runs(call_tree(stacks))
    module = folded["children"][0]
    run = module["children"][0]
    assert (run["name"], run["value"]) == ("4 library frames", 5) and run["where"] == "pyo3::step0 … pyo3::step3"
    assert run["children"][0]["name"] == "mycrate::work"  # the user's frame right below the folded run


def test_pyo3_wrappers_count_as_the_users_only_where_they_may_hold_inlined_code():
    from pyo3_debug_magic.model import ProfileFrame

    wrapper = ProfileFrame("native", "mycrate::__pyfunction_work", "src/lib.rs", 3, user=True)
    work = ProfileFrame("native", "mycrate::work", "src/lib.rs", 9, user=True)
    cell = ProfileFrame("python", "<module>", "/tmp/ipykernel_1/2.py", 1, is_cell=True)
    assert [f.user for f in profiles.plumbing_marked((cell, wrapper, work))] == [False, False, True]
    assert [f.user for f in profiles.plumbing_marked((cell, wrapper))] == [False, True]  # work() inlined into it
