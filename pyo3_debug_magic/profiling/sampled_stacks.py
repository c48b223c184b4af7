"""The native sampler's stacks made readable: return addresses named by ``addr2line`` (inlined
frames included), merged with the Python frames read at the same moment, written in py-spy's
collapsed format so one parser reads both samplers."""
from __future__ import annotations

import os
import subprocess
from collections import Counter
from typing import NamedTuple

from pyo3_debug_magic.gdb.pystack import EVAL_FUNCTIONS, eval_frame_runs

THREAD_START = "std::sys::backtrace::__rust_begin_short_backtrace"
# libc's start of a process or thread: the outermost frames of every stack, never of interest
LIBC_START = {"_start", "__libc_start_main", "__libc_start_main_impl", "__libc_start_call_main", "clone", "clone3",
              "__clone", "__clone3", "start_thread"}


class Symbol(NamedTuple):
    function: str
    file: str
    line: int


class TaskStat(NamedTuple):
    name: str
    state: str                  # R running, S sleeping, ...
    cpu_seconds: float          # user + system time so far


def threads_of(pid: int) -> dict[int, TaskStat]:
    """Each thread of ``pid`` by OS thread id, from ``/proc/PID/task/TID/stat``."""
    ticks, found = os.sysconf("SC_CLK_TCK"), {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue  # the thread ended
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(task)] = TaskStat(stat[stat.index("(") + 1:stat.rindex(")")], fields[0],
                                    (int(fields[11]) + int(fields[12])) / ticks)
    return found


def mappings(pid: int) -> list[tuple[int, int, int, str]]:
    """(start, end, file offset, path) of the file-backed mappings and the vdso."""
    maps = []
    with open(f"/proc/{pid}/maps") as lines:
        for line in lines:
            parts = line.split()
            if len(parts) >= 6 and (parts[5].startswith("/") or parts[5] == "[vdso]"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                maps.append((start, end, int(parts[2], 16), parts[5]))
    return maps


def symbolize(pcs: set[int], maps) -> dict[int, tuple[str, list[Symbol]]]:
    """Each address: (its file, its frames innermost inlined first)."""
    by_module: dict[str, dict[int, int]] = {}
    for pc in pcs:
        for start, end, offset, path in maps:
            if start <= pc < end:
                by_module.setdefault(path, {})[pc] = pc - start + offset
                break
    found: dict[int, tuple[str, list[Symbol]]] = {}
    for path, offsets in by_module.items():
        ordered = list(offsets.items())
        if not path.startswith("/"):  # the vdso: no file to read symbols from
            found.update({pc: (path, [Symbol("[vdso]", path, 0)]) for pc, _ in ordered})
            continue
        bias = _segment_bias(path)
        try:
            out = subprocess.run(["addr2line", "-a", "-f", "-i", "-C", "-e", path,
                                  *[hex(o + bias) for _, o in ordered]],
                                 capture_output=True, text=True, timeout=120).stdout.splitlines()
        except (OSError, subprocess.TimeoutExpired):
            out = []
        blocks, current = [], None
        for line in out:
            if line.startswith("0x") and all(c in "0123456789abcdefx" for c in line):
                current = []
                blocks.append(current)
            elif current is not None:
                current.append(line)
        for (pc, _), block in zip(ordered, blocks):
            frames = []
            for function, where in zip(block[::2], block[1::2]):
                file, _, line = where.split(" (discriminator")[0].rpartition(":")
                frames.append(Symbol(function if function != "??" else f"[{os.path.basename(path)}]",
                                     file if file and file != "??" else path, int(line) if line.isdigit() else 0))
            found[pc] = (path, frames or [Symbol(f"[{os.path.basename(path)}]", path, 0)])
    return found


def _segment_bias(path: str) -> int:
    """addr2line wants addresses as the ELF file lays them out: a file offset in the executable
    segment becomes its virtual address (p_vaddr - p_offset added)."""
    try:
        from elftools.elf.elffile import ELFFile

        with open(path, "rb") as stream:
            for segment in ELFFile(stream).iter_segments():
                if segment["p_type"] == "PT_LOAD" and segment["p_flags"] & 1:  # executable
                    return segment["p_vaddr"] - segment["p_offset"]
    except Exception:  # noqa: BLE001 - not an ELF we can read: plain offsets
        pass
    return 0


def is_interpreter(path: str) -> bool:
    name = os.path.basename(path)
    return name.startswith("libpython") or name.startswith("python")


def merge(pcs: tuple[int, ...], python: tuple, symbols: dict) -> tuple[list[str], bool]:
    """One sample's frames, outermost first, as collapsed-format text, and whether native and
    Python frames lined up. Each interpreter eval frame (walking out from the innermost) takes
    the Python frames up to the one entered from C; other interpreter frames are left out."""
    found = [symbols.get(pc, ("?", [Symbol(hex(pc), "?", 0)])) for pc in pcs]  # innermost first
    evals = [is_interpreter(path) and any(f.function in EVAL_FUNCTIONS for f in frames) for path, frames in found]
    runs = eval_frame_runs(evals, [entered for *_, entered in python])
    # an eval frame without Python frames, or Python frames left over (the unwinder stopped early)
    lined_up = all(run < len(found) for run in runs) and all(p in runs for p, is_eval in enumerate(evals) if is_eval)
    merged = []
    for position, (path, frames) in enumerate([*found, ("", [])]):
        merged.extend(f"{name} ({filename}:{line})" for (name, filename, line, _), run in zip(python, runs)
                      if run == position)
        if not is_interpreter(path):
            merged.extend(f"{f.function} ({f.file}:{f.line})" for f in frames)
    merged.reverse()
    while merged and merged[0].split(" (")[0] in LIBC_START:
        merged.pop(0)
    start = max((i for i, f in enumerate(merged) if f.startswith(THREAD_START)), default=-1)
    return merged[start + 1:] or merged, lined_up


def collapsed(counts: Counter, names: dict[int, str], pid: int) -> tuple[str, int]:
    """The samples as collapsed text, and how many did not line up."""
    symbols = symbolize({pc for _, pcs, _ in counts for pc in pcs}, mappings(pid))
    lines, mismatched = [], 0
    for (tid, pcs, python), count in counts.items():
        frames, lined_up = merge(pcs, python, symbols)
        mismatched += 0 if lined_up else count
        lines.append(f"thread ({tid}): {names.get(tid, '?')};{';'.join(frames)} {count}")
    return "\n".join(lines) + "\n", mismatched
