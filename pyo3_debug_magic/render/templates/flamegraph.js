// The flamegraph of %%native_profile: render/flamegraph.py fills in its three placeholders in one pass.
(function () {
  var box = document.getElementById(ID), views = DATA, view = "native", zoom = null;
  var graph = box.querySelector(".fg"), search = box.querySelector("input[type=search]");
  var full = box.querySelector("input.generics"), info = box.querySelector(".fg-info");
  function fold(name) {
    if (full.checked) return name;
    var out = "", depth = 0;
    for (var i = 0; i < name.length; i++) {
      var c = name[i];
      if (c === "<" && i > 0 && /[\w>]/.test(name[i - 1]) && depth === 0) { depth = 1; out += "<…>"; continue; }
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
      div.title = node.name + (node.where ? "\n" + node.where : "") + (node.folded ? "\n  " + node.folded.join("\n  ") : "") +
        "\n" + node.value + " samples (" +
        (100 * node.value / views[view].value).toFixed(1) + "%)" + (lines.length ? "\n" + lines.join(", ") : "");
      div.textContent = label + (node.where && node.kind !== "thread" ? "  " + node.where : "");
      var searched = node.name + (node.folded ? "\n" + node.folded.join("\n") : "");
      if (term && searched.toLowerCase().indexOf(term) >= 0) { div.classList.add("fg-match"); hits += node.value; }
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
