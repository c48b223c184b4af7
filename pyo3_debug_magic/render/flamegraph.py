"""A profile as self-contained HTML: an interactive flamegraph (click to zoom, search, generic
parameters folded or shown, the Python-only view of the same run), the top table and the notes.
No network and no kernel round-trip: the data and the script are in the page."""
from __future__ import annotations

import functools
import json
import re
import secrets
from html import escape
from importlib import resources

from pyo3_debug_magic.model import Profile
from pyo3_debug_magic.render.html import with_code
from pyo3_debug_magic.render.profile_text import call_tree, fold_library_runs, header, top_rows

COLOURS = {"python": "#4b8bbe", "user": "#dea584", "native": "#c9c9c9", "thread": "#9a9ae0", "root": "#e8e8e8"}


def colour(node: dict) -> str:
    """A call-tree node's colour: Python blue, the user's Rust orange, other native grey."""
    if node["kind"] == "native":
        return COLOURS["user"] if node["user"] else COLOURS["native"]
    return COLOURS.get(node["kind"], COLOURS["native"])

TEMPLATES = resources.files("pyo3_debug_magic.render") / "templates"


@functools.cache
def template(name: str) -> str:
    """A package data file of the page: its script or its styles."""
    return (TEMPLATES / name).read_text(encoding="utf-8")


def profile_html(profile: Profile) -> str:
    """The profile as one self-contained HTML fragment."""
    element_id = "pdm-profile-" + secrets.token_hex(6)
    views = {"native": fold_library_runs(call_tree(profile.stacks, profile.by_thread, profile.thread_names))}
    buttons = ""
    if profile.python_only:
        views["python"] = call_tree(profile.python_only, profile.by_thread, profile.thread_names)
        buttons = ("<button data-view=\"native\">Rust + Python</button> "
                   f"<button data-view=\"python\">Python only ({profile.python_only_samples} samples)</button> ")
    data = json.dumps(views).replace("</", "<\\/")
    # one pass over the template: a substituted value is never scanned again (a function named
    # COLOURS broke the script when each placeholder was replaced in turn)
    values = {"ID": json.dumps(element_id), "DATA": data, "COLOURS": json.dumps(COLOURS)}
    script = re.sub(r"\b(ID|DATA|COLOURS)\b", lambda found: values[found.group(1)], template("flamegraph.js"))
    notes = "".join(f"<li class=\"note\">{with_code(note)}</li>" for note in profile.notes)
    head = "<tr><th>self</th><th>total</th><th>function</th><th>where</th><th></th></tr>"
    rows = "".join(
        f"<tr><td>{escape(s)}</td><td>{escape(t)}</td><td title=\"{escape(row.function)}\"><code>{escape(name)}</code></td>"
        f"<td>{escape(place)}</td><td style=\"color:{_kind_colour(row)}\">{escape(kind)}</td></tr>"
        for (s, t, name, place, kind), row in zip(top_rows(profile), profile.top))
    threads = "".join(f"<li>{escape(t.name)} (tid {t.os_thread_id}): {t.cpu_seconds:.2f} s CPU</li>"
                      for t in profile.native_threads)
    threads = (f"<p>Threads without Python (sampled by elfutils' unwinder; CPU time while the cell ran):</p>"
               f"<ul>{threads}</ul>") if threads else ""
    written = f"<p>written: <code>{escape(profile.output)}</code></p>" if profile.output else ""
    return (f"<div id=\"{element_id}\" class=\"pyo3-profile\"><style>{template('flamegraph.css').replace('#ID', '#' + element_id)}</style>"
            f"<p><b>%%native_profile</b>: {escape(header(profile))}</p><ul>{notes}</ul>"
            f"<div>{buttons}<input type=\"search\" placeholder=\"search functions\"> "
            f"<label><input type=\"checkbox\" class=\"generics\"> generic parameters</label> "
            f"<span class=\"fg-info\"></span></div>"
            f"<div class=\"fg\"><p>(the flamegraph needs JavaScript: trust the notebook to see it)</p></div>"
            f"<p>Top functions (self: samples at the top of the stack; Rust's core/std helpers count in their caller; "
            f"PyO3/std frames with no time of their own are in the flamegraph only)</p>"
            f"<table>{head}{rows}</table>{threads}{written}<script>{script}</script></div>")


def _kind_colour(row) -> str:
    if row.kind == "python":
        return COLOURS["python"]
    return "#b7410e" if row.user else "#555"
