"""What a shared object's DWARF says, read with pyelftools (no gdb, no process): whether it has
debug info, which lines of a source file have code, and whether its symbols name a crate."""
from __future__ import annotations

import os
import time

from elftools.common.exceptions import DWARFError, ELFError
from elftools.elf.elffile import ELFFile

from pyo3_debug_magic.breakpoints.locations import outside_libraries



class OutOfTime(Exception):
    """Reading took longer than the caller allowed."""


def has_debug_info(path: str) -> bool:
    """The file has DWARF (section headers only are read); True when that cannot be told."""
    try:
        with open(path, "rb") as stream:
            elf = ELFFile(stream)
            return any(elf.get_section_by_name(name) is not None for name in (".debug_info", ".debug_line"))
    except (OSError, ELFError, ValueError):
        return True


def lines_with_code(path: str, source: str, deadline: float | None = None) -> dict[str, set[int]]:
    """{full source path: its lines with code} for the files of ``path``'s line tables whose path
    ends with ``source`` (``src/lib.rs``) and that are not std's, pyo3's or a dependency's.
    Raises OutOfTime past ``deadline`` (time.monotonic())."""
    found: dict[str, set[int]] = {}
    suffix = os.sep + os.path.normpath(source).lstrip(os.sep)
    try:
        with open(path, "rb") as stream:
            elf = ELFFile(stream)
            if not elf.has_dwarf_info() or elf.get_section_by_name(".debug_line") is None:
                return found
            dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
            for unit in dwarf.iter_CUs():
                if deadline is not None and time.monotonic() > deadline:
                    raise OutOfTime(path)
                program = dwarf.line_program_for_CU(unit)
                if program is None:
                    continue
                wanted = _files_in(program, _comp_dir(unit), suffix)
                if not wanted:
                    continue
                for entry in program.get_entries():
                    state = entry.state
                    if state is not None and state.file in wanted:
                        found.setdefault(wanted[state.file], set()).add(state.line)
    except (OSError, ELFError, DWARFError, ValueError, KeyError, IndexError):
        return found
    return found


def _comp_dir(unit) -> str:
    attribute = unit.get_top_DIE().attributes.get("DW_AT_comp_dir")
    value = attribute.value if attribute else b""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _files_in(program, comp_dir: str, suffix: str) -> dict[int, str]:
    """{file index in the line program: full path} for the wanted files of one unit."""
    header = program.header
    version = header["version"]
    directories = [d.decode(errors="replace") if isinstance(d, bytes) else str(d)
                   for d in header["include_directory"]]
    wanted = {}
    for position, entry in enumerate(header["file_entry"]):
        name = entry.name.decode(errors="replace") if isinstance(entry.name, bytes) else str(entry.name)
        index = entry.dir_index
        if version >= 5:  # 0-based, directory 0 is the unit's own
            folder = directories[index] if index < len(directories) else ""
        else:  # 1-based, 0 is the compilation directory
            folder = directories[index - 1] if 0 < index <= len(directories) else ""
        full = os.path.normpath(os.path.join(comp_dir, folder, name))
        if full.endswith(suffix) and outside_libraries(full):
            wanted[position if version >= 5 else position + 1] = full
    return wanted


def defined_crates(path: str, crates) -> set[str]:
    """Which of ``crates`` have a function among the symbols of ``path`` (by the mangled name:
    legacy ``_ZN5_core...``, or v0 ``_R...5_core``), in one pass over the symbol tables."""
    wanted = {crate: (f"_ZN{len(crate)}{crate}", f"{len(crate)}{crate}") for crate in crates}
    found: set[str] = set()
    try:
        with open(path, "rb") as stream:
            elf = ELFFile(stream)
            for section in (elf.get_section_by_name(".symtab"), elf.get_section_by_name(".dynsym")):
                for symbol in (section.iter_symbols() if section is not None else ()):
                    name = symbol.name
                    found |= {crate for crate, (legacy, v0) in wanted.items()
                              if name.startswith(legacy) or name.startswith("_R") and v0 in name[:64]}
                    if len(found) == len(wanted):
                        return found
    except (OSError, ELFError, ValueError):
        pass
    return found

