"""A profile as text (terminal IPython, logs) and the pieces its HTML form shares: folded
names, where a frame is, the call tree."""
from __future__ import annotations

from pyo3_debug_magic.model import Profile, ProfileFrame, SampledStack

TREE_MIN_SHARE = 0.02
TREE_MAX_DEPTH = 14


def fold_generics(name: str) -> str:
    """``Vec<T,A>::push`` -> ``Vec<…>::push``: generic arguments folded, a qualified path's
    ``<X as Trait>`` kept."""
    out, index = [], 0
    while index < len(name):
        char = name[index]
        if char == "<" and index and (name[index - 1].isalnum() or name[index - 1] in "_>"):
            depth, end = 0, index
            while end < len(name):
                depth += {"<": 1, ">": -1}.get(name[end], 0)
                if depth == 0:
                    break
                end += 1
            if depth:
                return "".join(out) + name[index:]  # unbalanced: leave the rest as it is
            out.append("<…>")
            index = end + 1
            continue
        out.append(char)
        index += 1
    return "".join(out)


def where(file: str | None, line: int | None, is_cell: bool = False) -> str:
    if is_cell:
        return f"cell line {line}" if line else "cell"
    if file and line:
        return f"{file}:{line}"
    return file or "?"


def kind_label(kind: str, user: bool) -> str:
    return "Python" if kind == "python" else ("Rust, yours" if user else "native")


def header(profile: Profile) -> str:
    return (f"{profile.shown_samples} samples shown of {profile.samples} in {profile.seconds:.2f} s ({profile.rate}/s asked, "
            f"{profile.effective_rate:.0f}/s taken of the busiest thread), "
            + (f"{profile.errors} py-spy errors ({profile.error_share:.0%})" if profile.engine == "py-spy" else
               f"{profile.errors} missed, {profile.unmatched} not lined up")
            + f", engine {profile.engine}")


def top_rows(profile: Profile) -> list[tuple[str, str, str, str, str]]:
    """(self %, total %, function, where, kind) for the top table."""
    total = max(profile.shown_samples, 1)
    return [(f"{row.self_samples / total:6.1%}", f"{row.total_samples / total:6.1%}", fold_generics(row.function),
             where(row.file, row.hottest_line, row.is_cell), kind_label(row.kind, row.user)) for row in profile.top]


def call_tree(stacks: tuple[SampledStack, ...], by_thread: bool = False, names: dict | None = None) -> dict:
    """The stacks merged into a tree: {"name", "where", "kind", "user", "value", "children"},
    one node per function and place, children by samples."""
    root = {"name": "all", "where": "", "kind": "root", "user": False, "value": 0, "children": {}}
    for stack in stacks:
        root["value"] += stack.count
        node = root
        frames = list(stack.frames)
        if by_thread:
            label = (names or {}).get(stack.thread) or "thread"
            frames.insert(0, ProfileFrame("thread", f"{label} ({stack.thread})", None, None))
        for frame in frames:
            key = (frame.kind, frame.function, frame.file)
            child = node["children"].get(key)
            if child is None:
                child = node["children"][key] = {
                    "name": frame.function, "where": where(frame.file, None, frame.is_cell) if frame.kind != "thread" else "",
                    "kind": frame.kind, "user": frame.user, "value": 0, "children": {}, "lines": {}}
            child["value"] += stack.count
            if frame.line:
                child["lines"][frame.line] = child["lines"].get(frame.line, 0) + stack.count
            node = child
    return _ordered(root)


def _ordered(node: dict) -> dict:
    children = sorted(node["children"].values(), key=lambda c: -c["value"])
    return {**node, "children": [_ordered(child) for child in children]}


def fold_library_runs(node: dict) -> dict:
    """The call tree with each chain of three or more library frames that only call each other
    (PyO3's trampoline, std's catch_unwind...) as one node, ``N library frames``, named by the
    chain's first and last frame (each one in ``folded``: the page's tooltip and search have
    them): the flamegraph's plumbing folded, as the stack views fold it."""
    children = []
    for child in node["children"]:
        run = [child]
        while _library(run[-1]) and len(run[-1]["children"]) == 1 and _library(run[-1]["children"][0]):
            run.append(run[-1]["children"][0])
        if len(run) >= 3:
            child = {**run[0], "name": f"{len(run)} library frames",
                     "where": f"{fold_generics(run[0]['name'])} … {fold_generics(run[-1]['name'])}",
                     "lines": {}, "children": run[-1]["children"], "folded": [f["name"] for f in run]}
        children.append(fold_library_runs(child))
    return {**node, "children": children}


def _library(node: dict) -> bool:
    return node["kind"] == "native" and not node["user"]


def tree_lines(node: dict, total: int, depth: int = 0) -> list[str]:
    """The tree as indented lines; a run of library frames (PyO3's trampoline, std's
    catch_unwind...) where each leads on to one shown library frame shows its first and last
    frame only, so your own frames below it are not pushed past the depth shown."""
    shown = [child for child in node["children"] if _shown(child, total)]
    if shown and depth >= TREE_MAX_DEPTH:
        return [f"{'':7}{'  ' * depth}… deeper frames not shown"]
    lines = []
    for child in shown:
        lines.append(_tree_line(child, total, depth))
        run = 0
        while _library(child) and len(leads := [c for c in child["children"] if _shown(c, total)]) == 1 \
                and _library(leads[0]) and leads[0]["children"]:
            child, run = leads[0], run + 1
        if run > 1:
            lines.append(f"{'':7}{'  ' * depth}   … {run - 1} library frame{'s' if run > 2 else ''}")
        if run:
            lines.append(_tree_line(child, total, depth))
        lines.extend(tree_lines(child, total, depth + 1))
    return lines


def _shown(node: dict, total: int) -> bool:
    return node["value"] / max(total, 1) >= TREE_MIN_SHARE


def _tree_line(node: dict, total: int, depth: int) -> str:
    line = max(node["lines"], key=node["lines"].get) if node.get("lines") else None
    place = node["where"] if node["kind"] == "thread" else (
        f"cell line {line}" if node["where"] == "cell" else where(node["where"], line))
    tag = {"python": "py", "native": "rs" if node["user"] else "c ", "thread": ""}[node["kind"]]
    return f"{node['value'] / total:6.1%} {'  ' * depth}{tag} {fold_generics(node['name'])}  {place}"


def profile_text(profile: Profile, view: str = "native") -> str:
    """The whole profile as text: counts, notes, the top table and the call tree."""
    stacks = profile.python_only if view == "python" else profile.stacks
    total = profile.python_only_samples if view == "python" else profile.samples
    title = "Python-only view (sampled alongside, without native frames)" if view == "python" else "profile"
    out = [f"{title}: {header(profile) if view != 'python' else f'{total} samples'}"]
    out += [f"note: {note}" for note in profile.notes] if view != "python" else []
    if view != "python" and profile.top:
        out.append("top functions (self: at the top of the stack; Rust's core/std helpers count in their caller; "
                   "PyO3/std frames with no time of their own are only in the tree below)")
        out.append(f"{'self':>7} {'total':>7}  function  where")
        out += [f"{s} {t}  {name}  {place}  [{kind}]" for s, t, name, place, kind in top_rows(profile)]
    tree = call_tree(stacks, profile.by_thread, profile.thread_names)
    lines = tree_lines(tree, max(tree["value"], 1))
    if lines:
        out.append("call tree (share of samples; rs = your Rust, c = other native, py = Python)")
        out += lines
    if profile.native_threads:
        out.append("threads without Python (sampled by elfutils' unwinder; CPU time while the cell ran):")
        out += [f"  {t.name} (tid {t.os_thread_id}): {t.cpu_seconds:.2f} s CPU" for t in profile.native_threads]
    if profile.output:
        out.append(f"written: {profile.output}")
    return "\n".join(out)

