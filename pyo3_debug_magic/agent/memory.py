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


def mapping_of(pid: int, address: int) -> tuple[str, int] | None:
    """(file, offset in it) of ``address`` in ``pid``'s memory, None if not file-backed."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/"):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if start <= address < end:
            return fields[5].strip(), int(fields[2], 16) + address - start
    return None


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
