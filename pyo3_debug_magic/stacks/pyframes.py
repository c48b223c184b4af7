"""Python frames of another process, read from its memory (``/proc/PID/mem``) while one of
its threads is stopped, for the native sampler.

The struct offsets are not hard-coded: ``discover()`` finds them in the running interpreter
itself, from objects it knows (a frame's code object, its caller's frame, a thread's native
id), and checks each one. The sampler runs the profiled kernel's own Python executable, so
the layout it finds is the kernel's. Python 3.11 to 3.13; anything else raises
``UnsupportedLayout``.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading
from dataclasses import dataclass

from pyo3_debug_magic.gdb.pystack import line_for_offset

FRAME_OBJECT_FRAME = 24       # PyFrameObject: ob_refcnt, ob_type, f_back, f_frame (3.11 to 3.13)
SHIM_OWNER = 3                # FRAME_OWNED_BY_CSTACK: 3.12+'s entry frame on the C stack
MAX_FRAMES = 128


class UnsupportedLayout(Exception):
    pass


@dataclass(frozen=True)
class Layout:
    frame_code: int
    frame_previous: int
    frame_instr: int
    entry: str                  # "flag": a byte set in an entry frame (3.11); "shim": a C-stack frame before it
    entry_offset: int
    tstate_frame: int           # where tstate leads to the current frame
    tstate_frame_inner: int | None  # 3.11/3.12: tstate->cframe->current_frame at this offset; 3.13: None
    tstate_next: int
    tstate_native_id: int
    interp_threads_head: int
    runtime_interp_head: int
    code_start: int
    code_qualname: int
    code_filename: int
    code_firstlineno: int
    code_linetable: int
    unicode_data: int
    bytes_size: int
    bytes_data: int


class Memory:
    """Reads of a process's memory; errors (an unmapped address) raise OSError, never crash."""

    def __init__(self, pid: int):
        self.fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)

    def read(self, address: int, length: int) -> bytes:
        if address <= 0:
            raise OSError("null pointer")
        data = os.pread(self.fd, length, address)
        if len(data) != length:
            raise OSError("short read")
        return data

    def word(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "little")

    def close(self) -> None:
        os.close(self.fd)


def _find(memory: Memory, base: int, value: int, limit: int, step: int = 8, size: int = 8) -> int | None:
    try:
        block = memory.read(base, limit)
    except OSError:
        return None
    for offset in range(0, limit - size + 1, step):
        if int.from_bytes(block[offset:offset + size], "little") == value:
            return offset
    return None


def _required(value, what: str):
    if value is None:
        raise UnsupportedLayout(f"Python {sys.version_info[0]}.{sys.version_info[1]}: {what} not found")
    return value


def discover() -> Layout:
    """The offsets of this interpreter, found in itself and checked."""
    if not (3, 11) <= sys.version_info[:2] <= (3, 13):
        raise UnsupportedLayout(f"Python {sys.version_info[0]}.{sys.version_info[1]} (3.11 to 3.13 are read)")
    memory = Memory(os.getpid())
    try:
        return _discover(memory)
    finally:
        memory.close()


def _discover(memory: Memory) -> Layout:
    found: dict = {}
    pythonapi = ctypes.pythonapi
    pythonapi.PyThreadState_Get.restype = ctypes.c_void_p

    def frame_of(frame) -> int:
        return memory.word(id(frame) + FRAME_OBJECT_FRAME)

    def inner():  # a frame called from Python
        frame = sys._getframe()
        here, caller = frame_of(frame), frame_of(frame.f_back)
        found["code"] = _required(_find(memory, here, id(frame.f_code), 96), "the frame's code")
        found["previous"] = _required(_find(memory, here, caller, 96), "the frame's caller")
        start = id(frame.f_code) + type(frame.f_code).__basicsize__
        block = memory.read(here, 96)
        found["instr"] = _required(next((o for o in range(0, 96, 8) if start <= int.from_bytes(
            block[o:o + 8], "little") < start + len(frame.f_code.co_code)), None), "the instruction pointer")
        found["plain"] = block
        tstate = pythonapi.PyThreadState_Get()
        found["tstate"] = tstate
        # read with builtins only: a Python-level call here would make its own frame the current one
        block = os.pread(memory.fd, 512, tstate)
        words = [int.from_bytes(block[o:o + 8], "little") for o in range(0, 512, 8)]
        if here in words:
            found["tstate_frame"], found["inner"] = words.index(here) * 8, None
        for index, pointer in enumerate(words):
            if "tstate_frame" in found:
                break
            if pointer < 4096:
                continue
            try:
                target = os.pread(memory.fd, 16, pointer)
            except OSError:
                continue
            for inner_offset in (0, 8):
                if len(target) == 16 and int.from_bytes(target[inner_offset:inner_offset + 8], "little") == here:
                    found["tstate_frame"], found["inner"] = index * 8, inner_offset
        _required(found.get("tstate_frame"), "the thread's current frame")

    def entry(_):  # a frame called from C (map)
        frame = sys._getframe()
        here = frame_of(frame)
        found["entry"] = memory.read(here, 96)
        found["shim"] = memory.read(memory.word(here + found["previous"]), 96)
        return 0

    inner()
    list(map(entry, [0]))
    plain, entry_block, shim = found["plain"], found["entry"], found["shim"]
    flags = range(found["instr"] + 8, found["instr"] + 16)
    if sys.version_info[:2] == (3, 11):
        mode, offset = "flag", next((b for b in flags if entry_block[b] == 1 and plain[b] == 0), None)
    else:
        mode, offset = "shim", next((b for b in flags if shim[b] == SHIM_OWNER and entry_block[b] == 0), None)
    _required(offset, "the entry-frame mark")

    tstate = found["tstate"]
    for name in ("PyInterpreterState_Head", "PyInterpreterState_ThreadHead", "PyThreadState_Next"):
        getattr(pythonapi, name).restype = ctypes.c_void_p
        getattr(pythonapi, name).argtypes = [ctypes.c_void_p] if name != "PyInterpreterState_Head" else []
    interp = pythonapi.PyInterpreterState_Head()
    runtime = ctypes.addressof(ctypes.c_char.in_dll(pythonapi, "_PyRuntime"))
    holder = threading.Event()
    helper = threading.Thread(target=holder.wait, daemon=True)
    helper.start()  # a second thread state, so the list has a next pointer to find
    try:
        head = pythonapi.PyInterpreterState_ThreadHead(interp)
        following = pythonapi.PyThreadState_Next(head)
        tstate_next = _required(_find(memory, head, following, 512), "the thread list's next pointer")
        threads_head = _required(_find(memory, interp, head, 65536), "the interpreter's thread list")
    finally:
        holder.set()
        helper.join()
    code = inner.__code__  # co_qualname "_discover.<locals>.inner" differs from co_name "inner"
    numbered = compile("\n" * 54320 + "def probe(): pass", "<probe>", "exec").co_consts[0]
    return Layout(
        frame_code=found["code"], frame_previous=found["previous"], frame_instr=found["instr"],
        entry=mode, entry_offset=offset, tstate_frame=found["tstate_frame"], tstate_frame_inner=found["inner"],
        tstate_next=tstate_next,
        tstate_native_id=_required(_find(memory, tstate, threading.get_native_id(), 1024), "the native thread id"),
        interp_threads_head=threads_head,
        runtime_interp_head=_required(_find(memory, runtime, interp, 4096), "the runtime's interpreter list"),
        code_start=type(code).__basicsize__,
        code_qualname=_required(_find(memory, id(code), id(code.co_qualname), 256), "co_qualname"),
        code_filename=_required(_find(memory, id(code), id(code.co_filename), 256), "co_filename"),
        code_firstlineno=_required(_find(memory, id(numbered), 54321, 256, step=4, size=4), "co_firstlineno"),
        code_linetable=_required(_find(memory, id(code), id(code.co_linetable), 256), "co_linetable"),
        unicode_data=sys.getsizeof("") - 1, bytes_size=16, bytes_data=sys.getsizeof(b"") - 1)


def runtime_offset() -> tuple[str, int]:
    """(the file holding ``_PyRuntime``, its offset from that file's first mapping)."""
    runtime = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
    first: dict[str, int] = {}
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) < 6:
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            first.setdefault(parts[5], start)
            if start <= runtime < end:
                return parts[5], runtime - first[parts[5]]
    raise UnsupportedLayout("_PyRuntime is in no mapped file")


class FrameReader:
    """Each thread's Python frames in a process of the same Python build, innermost first:
    (qualified name, file, line, entered from C)."""

    def __init__(self, pid: int, layout: Layout, runtime: int):
        self.memory, self.layout, self.runtime = Memory(pid), layout, runtime
        self.codes: dict[int, tuple] = {}

    def thread_states(self) -> dict[int, int]:
        """OS thread id -> thread state address."""
        layout, memory, found = self.layout, self.memory, {}
        try:
            interp = memory.word(self.runtime + layout.runtime_interp_head)
            tstate = memory.word(interp + layout.interp_threads_head)
            while tstate and len(found) < 4096:
                found[memory.word(tstate + layout.tstate_native_id)] = tstate
                tstate = memory.word(tstate + layout.tstate_next)
        except OSError:
            pass
        return found

    def frames(self, tstate: int) -> tuple[tuple[str, str, int, bool], ...]:
        layout, memory = self.layout, self.memory
        try:
            frame = memory.word(tstate + layout.tstate_frame)
            if layout.tstate_frame_inner is not None:
                frame = memory.word(frame + layout.tstate_frame_inner) if frame else 0
        except OSError:
            return ()
        result, entered = [], False
        while frame and len(result) < MAX_FRAMES:
            try:
                block = memory.read(frame, layout.frame_instr + 16)
            except OSError:
                break
            word = lambda offset: int.from_bytes(block[offset:offset + 8], "little")  # noqa: E731
            code, previous, instr = word(layout.frame_code), word(layout.frame_previous), word(layout.frame_instr)
            if layout.entry == "shim" and block[layout.entry_offset] == SHIM_OWNER:
                if result:
                    result[-1] = result[-1][:3] + (True,)  # the frame before a shim was entered from C
                frame = previous
                continue
            entered = layout.entry == "flag" and bool(block[layout.entry_offset])
            name, filename, line = self._code(code, instr)
            result.append((name, filename, line, entered))
            frame = previous
        return tuple(result)

    def _code(self, code: int, instr: int) -> tuple[str, str, int]:
        layout, memory = self.layout, self.memory
        try:
            header = memory.read(code, layout.code_start)
            pointers = (header[layout.code_qualname:layout.code_qualname + 8],
                        header[layout.code_filename:layout.code_filename + 8])
            cached = self.codes.get(code)
            if cached is None or cached[0] != pointers:
                first = int.from_bytes(header[layout.code_firstlineno:layout.code_firstlineno + 4], "little", signed=True)
                table = int.from_bytes(header[layout.code_linetable:layout.code_linetable + 8], "little")
                size = memory.word(table + layout.bytes_size)
                cached = (pointers, self._text(int.from_bytes(pointers[0], "little")),
                          self._text(int.from_bytes(pointers[1], "little")), first,
                          memory.read(table + layout.bytes_data, min(size, 1 << 16)) if size else b"")
                self.codes[code] = cached
            _, name, filename, first, table = cached
            offset = max((instr - (code + layout.code_start)) // 2, 0)
            return name, filename, line_for_offset(table, first, offset) or first
        except (OSError, IndexError):
            return "?", "?", 0

    def _text(self, address: int) -> str:
        length = self.memory.word(address + 16)
        data = self.memory.read(address + self.layout.unicode_data, min(length, 4096))
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:  # not a compact ASCII string: its data is elsewhere
            return "?"

    def close(self) -> None:
        self.memory.close()
