"""Every CPython version the tool knows (3.10 to 3.13): Python stacks read from memory on
each frame layout, and the refcheck engine on each object model (3.12+ immortal objects).

The interpreters are pyenv's builds on these machines (they carry libpython's debug info);
a missing one fails the test with the command that installs it.
"""
from __future__ import annotations

import glob
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from harness import ROOT, snapshot_of_process
from pyo3_debug_magic.gdb.pystack import line_for_offset, line_for_offset_310

VERSIONS = ["3.10", "3.11", "3.12", "3.13"]


def interpreter(version: str) -> str:
    found = sorted(glob.glob(str(Path.home() / f".pyenv/versions/{version}.*/bin/python{version}")))
    if not found:
        pytest.fail(f"this test needs CPython {version} with libpython debug info: `pyenv install {version}`")
    return found[-1]


# every code object of threading.py and of a few tricky shapes: (table, first line, co_lines())
DUMP_LINE_TABLES = textwrap.dedent('''
    import json, sys, threading, types
    source = """
    def loops(n):
        total = 0
        for i in range(n):
            while i:
                i -= 1
        return total
    def far_apart():
        x = 1
    """ + "\\n" * 300 + """
        return x
    """
    def codes(code):
        yield code
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                yield from codes(const)
    found = [c for root in (compile(open(threading.__file__).read(), threading.__file__, "exec"),
                            compile(source, "tricky", "exec")) for c in codes(root)]
    json.dump([[c.co_linetable.hex(), c.co_firstlineno, list(c.co_lines())] for c in found], sys.stdout)
''')


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", VERSIONS)
def test_line_tables_decode_as_the_interpreter_does(version):
    dumped = subprocess.run([interpreter(version), "-c", DUMP_LINE_TABLES], capture_output=True,
                            text=True, timeout=30, check=True).stdout
    decode = line_for_offset_310 if version == "3.10" else (lambda table, first, offset:
                                                            line_for_offset(table, first, offset // 2))
    checked = 0
    for table_hex, first, ranges in json.loads(dumped):
        table = bytes.fromhex(table_hex)
        for start, end, line in ranges:
            for offset in range(start, end, 2):
                assert decode(table, first, offset) == line, (version, first, offset)
                checked += 1
    assert checked > 2000


TARGET = textwrap.dedent('''
    import threading, time
    class Waiter:
        def outer(self):
            return self.inner()
        def inner(self):
            ready.set()
            time.sleep(120)   # MARK: inner
    ready = threading.Event()
    def spin():
        while True:
            sum(range(10))    # MARK: spin
    threading.Thread(target=spin, daemon=True).start()
    threading.Thread(target=Waiter().outer, daemon=True).start()
    ready.wait()
    print("ready", flush=True)
    time.sleep(120)           # MARK: main
''')


def target_line(marker: str) -> int:
    return next(n for n, text in enumerate(TARGET.splitlines(), 1) if f"MARK: {marker}" in text)


@pytest.mark.gdb
@pytest.mark.timeout(120)
@pytest.mark.parametrize("version", VERSIONS)
def test_stacks_from_memory_on_each_layout(version, gdb_path):
    threads = snapshot_of_process([interpreter(version), "-c", TARGET]).threads
    stacks = {t.label: [(e.function, e.line) for e in t.entries if e.kind == "python"] for t in threads}
    by_function = {frames[0][0]: (label, frames) for label, frames in stacks.items() if frames}
    qualified = version != "3.10"  # co_qualname exists from 3.11
    inner, outer = ("Waiter.inner", "Waiter.outer") if qualified else ("inner", "outer")
    assert by_function["<module>"][1] == [("<module>", target_line("main"))], stacks
    waiter = by_function[inner][1]
    assert waiter[:2] == [(inner, target_line("inner")), (outer, target_line("inner") - 3)], stacks
    assert waiter[2][0] == ("Thread.run" if qualified else "run")
    spinner_label, spinner = by_function["spin"]
    assert spinner[0][1] in (target_line("spin") - 1, target_line("spin")), spinner  # the loop's lines
    # the GIL: only the spinning thread can hold it (the others sleep with it released)
    holders = [t.label for t in threads if t.holds_gil]
    assert holders in ([spinner_label], []), holders
    assert any(t.holds_gil is not None for t in threads), "GIL state unknown on this layout"


DISCOVERED = textwrap.dedent('''
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from dataclasses import asdict
    from pyo3_debug_magic.stacks import pyframes
    print(json.dumps(asdict(pyframes.discover())), flush=True)
    time.sleep(60)
''')


@pytest.mark.gdb
@pytest.mark.timeout(120)
@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13"])
def test_the_layout_found_at_runtime_is_the_one_debug_info_describes(version, gdb_path):
    """The one stack reader walks either layout: the one the kernel finds in itself (the sampler,
    and gdb when libpython has no debug info) must be libpython's own, field by field."""
    target = subprocess.Popen([interpreter(version), "-c", DISCOVERED, str(ROOT)], stdout=subprocess.PIPE, text=True)
    try:
        discovered = json.loads(target.stdout.readline())
        shown = subprocess.run([gdb_path, "-nx", "-batch", "-p", str(target.pid), "-ex",
                                f"source {ROOT / 'pyo3_debug_magic/gdb/pystack.py'}", "-ex",
                                f"source {ROOT / 'pyo3_debug_magic/gdb/pystack_gdb.py'}", "-ex",
                                "python print('LAYOUT', json.dumps(asdict(layout_from_debug_info())))"],
                               capture_output=True, text=True, timeout=90)
    finally:
        target.kill()
        target.wait()
    line = next((text for text in shown.stdout.splitlines() if text.startswith("LAYOUT ")), None)
    assert line, shown.stdout + shown.stderr
    assert json.loads(line[len("LAYOUT "):]) == discovered
    assert discovered["gil_mode"] == ("runtime" if version == "3.11" else "pointer")


# the engine is pure Python: run it inside each interpreter on ctypes-made reference bugs
REFCHECK_BUGS = textwrap.dedent('''
    import ctypes, json, sys
    sys.path.insert(0, sys.argv[1])
    from pyo3_debug_magic import RefChecker, refcheck
    incref, decref = ctypes.pythonapi.Py_IncRef, ctypes.pythonapi.Py_DecRef
    incref.argtypes = decref.argtypes = [ctypes.py_object]
    def leaks(obj, flag):
        incref(obj)
    def over_releases(obj):
        decref(obj)
    def leaks_none(obj):
        incref(None)    # immortal on 3.12+: nothing to see, and nothing may be claimed
    def clean(obj, flag):
        return len(obj)
    data, victim = [object(), 1, None, "x"], {"still": "here"}
    verdicts = lambda report: {row.name: row.verdict.value for row in [*report.objects, report.result] if row}
    print(json.dumps({
        "leaks": verdicts(refcheck(leaks, data, None)),
        "clean": verdicts(refcheck(clean, data, 5)),
        "none": verdicts(refcheck(leaks_none, data)),
        "over": verdicts(RefChecker(number=100).check(over_releases, victim)),
        "intact": victim == {"still": "here"},
    }))
''')


@pytest.mark.timeout(120)
@pytest.mark.parametrize("version", VERSIONS)
def test_refcheck_engine_on_each_object_model(version):
    run = subprocess.run([interpreter(version), "-c", REFCHECK_BUGS, str(ROOT)], capture_output=True,
                         text=True, timeout=100)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["leaks"]["arg0"].startswith("LEAK") and found["leaks"]["arg1"] == "NOT MEASURABLE", found
    assert all(not verdict.startswith(("LEAK", "OVER")) for verdict in found["clean"].values()), found
    assert all(not verdict.startswith(("LEAK", "OVER")) for verdict in found["none"].values()), found
    assert found["over"]["arg0"] == "OVER-RELEASE" and found["intact"], found
