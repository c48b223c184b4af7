"""A profile written to a file: speedscope's JSON (https://www.speedscope.app) or an SVG
flamegraph (static: one rectangle per frame, its name, place and samples in the tooltip)."""
from __future__ import annotations

import json
from html import escape

from pyo3_debug_magic.model import Profile
from pyo3_debug_magic.render.flamegraph import colour
from pyo3_debug_magic.render.profile_text import call_tree, fold_generics

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"
SVG_WIDTH, SVG_ROW = 1200, 17


def speedscope(profile: Profile, name: str = "%%native_profile") -> dict:
    """One sampled profile per thread, frames named as the tables name them."""
    frames, index = [], {}
    by_thread: dict = {}
    for stack in profile.stacks:
        ids = []
        for frame in stack.frames:
            key = (frame.kind, frame.function, frame.file, frame.line)
            if key not in index:
                index[key] = len(frames)
                frames.append({"name": frame.function, "file": frame.file or "", "line": frame.line or 0})
            ids.append(index[key])
        samples, weights = by_thread.setdefault(stack.thread, ([], []))
        samples.append(ids)
        weights.append(stack.count)
    profiles = [{"type": "sampled", "name": f"{name} thread {profile.thread_names.get(thread) or thread}",
                 "unit": "none", "startValue": 0, "endValue": sum(weights), "samples": samples, "weights": weights}
                for thread, (samples, weights) in by_thread.items()]
    return {"$schema": SPEEDSCOPE_SCHEMA, "shared": {"frames": frames}, "profiles": profiles,
            "name": name, "exporter": "pyo3_debug_magic"}


def svg(profile: Profile) -> str:
    tree = call_tree(profile.stacks, profile.by_thread, profile.thread_names)
    total, boxes, depth_seen = max(tree["value"], 1), [], [0]

    def place(node: dict, depth: int, start: float) -> None:
        width = node["value"] / total * SVG_WIDTH
        if width < 0.5:
            return
        depth_seen[0] = max(depth_seen[0], depth)
        label = "all samples" if node["kind"] == "root" else fold_generics(node["name"])
        boxes.append((depth, start, width, colour(node), label, node))
        at = start
        for child in node["children"]:
            place(child, depth + 1, at)
            at += child["value"] / total * SVG_WIDTH

    place(tree, 0, 0.0)
    height = (depth_seen[0] + 1) * SVG_ROW
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_WIDTH}" height="{height}" '
             f'font-family="monospace" font-size="11">']
    for depth, start, width, fill, label, node in boxes:
        y = depth * SVG_ROW
        title = f"{node['name']} {node['where']} ({node['value']} samples, {node['value'] / total:.1%})"
        shown = label[: max(int(width / 7) - 1, 0)]
        parts.append(f'<g><title>{escape(title)}</title><rect x="{start:.1f}" y="{y}" width="{width:.1f}" '
                     f'height="{SVG_ROW - 1}" fill="{fill}"/><text x="{start + 2:.1f}" y="{y + 12}">'
                     f'{escape(shown)}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts)


def write(profile: Profile, path: str, fmt: str) -> None:
    with open(path, "w") as out:
        if fmt == "svg":
            out.write(svg(profile))
        else:
            json.dump(speedscope(profile), out)
