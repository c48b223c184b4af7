"""Writing the kernel's memory without gdb: the last resort when gdb died with breakpoints in.

gdb marks a breakpoint by writing an int3 (0xCC) over the instruction's first byte. If gdb is
killed, the kernel dies of SIGTRAP at the next hit. The original byte is still in the mapped
file (the extension's ``.so``), so it is read from there and written back through
``/proc/PID/mem`` (allowed to the process that may trace the kernel: the agent).
"""
from __future__ import annotations

import os
from pathlib import Path

INT3 = 0xCC


def file_mappings(pid: int):
    """(start, end, permissions, file, file offset) of each mapping of ``pid`` backed by a file
    that is still the one mapped (see ``_same_file``)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/"):
            continue
        path = fields[5].strip()
        if _same_file(path, int(fields[4])):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            yield start, end, fields[1], path, int(fields[2], 16)


def mapping_of(pid: int, address: int) -> tuple[str, int] | None:
    """(file, offset in it) of ``address`` in ``pid``'s memory, None if not file-backed."""
    for start, end, _, path, offset in file_mappings(pid):
        if start <= address < end:
            return path, offset + address - start
    return None


def _same_file(path: str, inode: int) -> bool:
    """Is ``path`` still the file that was mapped? A rebuilt extension (``maturin develop``
    under a running kernel) is a new file: its bytes must never be written into the old code."""
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def remove_breakpoint_instructions(pid: int, addresses) -> int:
    """Put back the original byte at each address that holds an int3; how many were fixed."""
    fixed = 0
    try:
        memory = os.open(f"/proc/{pid}/mem", os.O_RDWR)
    except OSError:
        return 0
    try:
        for address in sorted(addresses):
            where = mapping_of(pid, address)
            if where is None:
                continue
            try:
                with open(where[0], "rb") as backing:
                    backing.seek(where[1])
                    original = backing.read(1)
                current = os.pread(memory, 1, address)
            except OSError:
                continue
            if current == bytes([INT3]) and original and original != current:
                try:
                    os.pwrite(memory, original, address)
                    fixed += 1
                except OSError:
                    pass
    finally:
        os.close(memory)
    return fixed


def executable_mappings(pid: int) -> list[tuple[int, int, str, int]]:
    """(start, end, file, file offset) of every file-backed executable mapping of ``pid``."""
    return [(start, end, path, offset) for start, end, perms, path, offset in file_mappings(pid) if "x" in perms]


def remove_every_breakpoint_instruction(pid: int, chunk: int = 1 << 20) -> int:
    """Compare all executable code of ``pid`` with the files it was mapped from and put back
    every byte that gdb replaced with an int3: its internal breakpoints too (the shared-library
    event in ld.so, step-resume and longjmp breakpoints), which the agent never listed. Code
    pages are not relocated, so any int3 that the file does not hold is a debugger's."""
    fixed = 0
    try:
        memory = os.open(f"/proc/{pid}/mem", os.O_RDWR)
    except OSError:
        return 0
    try:
        for start, end, path, offset in executable_mappings(pid):
            try:
                backing = open(path, "rb")
            except OSError:
                continue
            with backing:
                for at in range(start, end, chunk):
                    size = min(chunk, end - at)
                    try:
                        live = os.pread(memory, size, at)
                        backing.seek(offset + at - start)
                        original = backing.read(size)
                    except OSError:
                        break
                    if live == original[:len(live)]:
                        continue
                    for index in _int3_differences(live, original):
                        try:
                            os.pwrite(memory, original[index:index + 1], at + index)
                            fixed += 1
                        except OSError:
                            pass
    finally:
        os.close(memory)
    return fixed


def _int3_differences(live: bytes, original: bytes):
    position = live.find(INT3)
    while position != -1:
        if position < len(original) and original[position] != INT3:
            yield position
        position = live.find(INT3, position + 1)
