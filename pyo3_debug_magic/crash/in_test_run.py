"""A crash report as a test run shows it: a pytest-style section naming the test, and a JUnit
file for a run whose process died before pytest could write its own."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

from pyo3_debug_magic import model
from pyo3_debug_magic.stacks.backtrace import crash_report
from pyo3_debug_magic.stacks.merging import through_test_file
from pyo3_debug_magic.render import text as render_text


def crash_text(record: model.CrashRecord, path: str | None, note: str = "", title: bool = True) -> str:
    """The report as a pytest-style section: the test (a title line, unless a failure report
    carries it: its first line is then the summary), what happened, the crashed thread down to
    the test function (pytest's own frames below it left out), threads running the user's
    Rust, the note."""
    view = crash_report(record, path)
    test_file = record.running.partition("::")[0]
    crashed, others = view.threads[:1], view.threads[1:]
    shown = tuple(t for t in others if any(e.user for e in t.entries))
    crashed = tuple(replace(t, entries=through_test_file(t.entries, test_file, lambda e: e.kind == "python"))
                    for t in crashed)
    left_out = len(others) - len(shown) + len(view.hidden)
    view = replace(view, threads=crashed + shown, hidden=())  # one note below names them all
    heading = f" native crash in {record.running} " if record.running else " native crash "
    lines = ["", heading.center(78, "_")] if title else []
    lines.append(render_text.crash_report(view))
    if left_out:
        lines.append(f"({left_out} other threads, pytest's and the debugger's own, are in the report file)")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def junit_xml(record: model.CrashRecord, text: str) -> bytes:
    """A JUnit file with the crashed test as a failure (pytest's naming: classname from the path)."""
    node = record.running or "native crash"
    path, _, rest = node.partition("::")
    parts = rest.split("::") if rest else [node]
    module = path[:-3] if path.endswith(".py") else path
    classname = ".".join([module.replace("/", ".")] + parts[:-1])
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name="pytest", errors="0", failures="1", skipped="0", tests="1")
    case = ET.SubElement(suite, "testcase", classname=classname, name=parts[-1])
    failure = ET.SubElement(case, "failure", message=record.summary or record.signal)
    failure.text = text
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
