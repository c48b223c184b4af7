"""A profile as self-contained HTML: an interactive flamegraph (click to zoom, search, generic
parameters folded or shown, the Python-only view of the same run), the top table and the notes.
No network and no kernel round-trip: the data and the script are in the page."""
from __future__ import annotations

import json
import re
import secrets
from html import escape

from pyo3_debug_magic.model import Profile
from pyo3_debug_magic.render.profile_text import call_tree, header, top_rows

COLOURS = {"python": "#4b8bbe", "user": "#dea584", "native": "#c9c9c9", "thread": "#9a9ae0", "root": "#e8e8e8"}


def colour(node: dict) -> str:
    """A call-tree node's colour: Python blue, the user's Rust orange, other native grey."""
    if node["kind"] == "native":
        return COLOURS["user"] if node["user"] else COLOURS["native"]
    return COLOURS.get(node["kind"], COLOURS["native"])

_SCRIPT = """
(function () {
  var box = document.getElementById(ID), views = DATA, view = "native", zoom = null;
  var graph = box.querySelector(".fg"), search = box.querySelector("input[type=search]");
  var full = box.querySelector("input.generics"), info = box.querySelector(".fg-info");
  function fold(name) {
    if (full.checked) return name;
    var out = "", depth = 0;
    for (var i = 0; i < name.length; i++) {
      var c = name[i];
      if (c === "<" && i > 0 && /[\\w>]/.test(name[i - 1]) && depth === 0) { depth = 1; out += "<…>"; continue; }
      if (depth > 0) { if (c === "<") depth++; else if (c === ">") depth--; continue; }
      out += c;
    }
    return out;
  }
  function colour(n) { return n.kind === "native" && n.user ? COLOURS.user : (COLOURS[n.kind] || COLOURS.native); }
  function draw() {
    var root = zoom || views[view], total = root.value, rows = [], term = search.value.toLowerCase(), hits = 0;
    graph.innerHTML = "";
    function place(node, depth, start) {
      var width = node.value / total;
      if (width < 0.002) return;
      var div = document.createElement("div"), label = node.kind === "root" ? "all samples" : fold(node.name);
      div.className = "fg-frame";
      div.style.cssText = "left:" + (start * 100) + "%;width:" + (width * 100) + "%;top:" + (depth * 20) +
        "px;background:" + colour(node);
      var lines = Object.keys(node.lines || {}).map(function (l) { return "line " + l + ": " + node.lines[l]; });
      div.title = node.name + (node.where ? "\\n" + node.where : "") + "\\n" + node.value + " samples (" +
        (100 * node.value / views[view].value).toFixed(1) + "%)" + (lines.length ? "\\n" + lines.join(", ") : "");
      div.textContent = label + (node.where && node.kind !== "thread" ? "  " + node.where : "");
      if (term && node.name.toLowerCase().indexOf(term) >= 0) { div.classList.add("fg-match"); hits += node.value; }
      div.onclick = function () { zoom = (zoom === node ? null : node); draw(); };
      graph.appendChild(div);
      rows.push(depth);
      var at = start;
      (node.children || []).forEach(function (child) { place(child, depth + 1, at); at += child.value / total; });
    }
    place(root, 0, 0);
    graph.style.height = ((Math.max.apply(null, rows.concat([0])) + 1) * 20) + "px";
    info.textContent = (zoom ? "zoomed on " + fold(zoom.name) + " (click it again to zoom out). " : "") +
      (term ? "matching '" + search.value + "': " + (100 * Math.min(hits, total) / total).toFixed(1) + "% of shown samples" : "");
  }
  search.oninput = draw; full.onchange = draw;
  box.querySelectorAll("button[data-view]").forEach(function (b) {
    b.onclick = function () { view = b.getAttribute("data-view"); zoom = null; draw(); };
  });
  draw();
})();
"""

_STYLE = """
#ID .fg{position:relative;font:11px monospace;margin:4px 0;overflow:hidden}
#ID .fg-frame{position:absolute;height:19px;line-height:19px;overflow:hidden;white-space:nowrap;
  text-overflow:ellipsis;box-sizing:border-box;border:1px solid #fff;padding:0 3px;cursor:pointer;color:#000}
#ID .fg-frame.fg-match{background:#e040fb !important}
#ID table{border-collapse:collapse;font-size:12px} #ID td,#ID th{padding:1px 8px;text-align:left}
#ID .note{color:#9a6700} #ID .fg-info{color:#555;font-size:12px}
"""


def profile_html(profile: Profile) -> str:
    """The profile as one self-contained HTML fragment."""
    element_id = "pdm-profile-" + secrets.token_hex(6)
    views = {"native": call_tree(profile.stacks, profile.by_thread, profile.thread_names)}
    buttons = ""
    if profile.python_only:
        views["python"] = call_tree(profile.python_only, profile.by_thread, profile.thread_names)
        buttons = ("<button data-view=\"native\">Rust + Python</button> "
                   f"<button data-view=\"python\">Python only ({profile.python_only_samples} samples)</button> ")
    data = json.dumps(views).replace("</", "<\\/")
    # one pass over the template: a substituted value is never scanned again (a function named
    # COLOURS broke the script when each placeholder was replaced in turn)
    values = {"ID": json.dumps(element_id), "DATA": data, "COLOURS": json.dumps(COLOURS)}
    script = re.sub(r"\b(ID|DATA|COLOURS)\b", lambda found: values[found.group(1)], _SCRIPT)
    notes = "".join(f"<li class=\"note\">{escape(note)}</li>" for note in profile.notes)
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
    return (f"<div id=\"{element_id}\" class=\"pyo3-profile\"><style>{_STYLE.replace('#ID', '#' + element_id)}</style>"
            f"<p><b>%%native_profile</b>: {escape(header(profile))}</p><ul>{notes}</ul>"
            f"<div>{buttons}<input type=\"search\" placeholder=\"search functions\"> "
            f"<label><input type=\"checkbox\" class=\"generics\"> generic parameters</label> "
            f"<span class=\"fg-info\"></span></div>"
            f"<div class=\"fg\"><p>(the flamegraph needs JavaScript: trust the notebook to see it)</p></div>"
            f"<p>Top functions (self: samples at the top of the stack; Rust's core/std helpers count in their caller)</p>"
            f"<table>{head}{rows}</table>{threads}{written}<script>{script}</script></div>")


def _kind_colour(row) -> str:
    if row.kind == "python":
        return COLOURS["python"]
    return "#b7410e" if row.user else "#555"
