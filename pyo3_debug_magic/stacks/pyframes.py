"""The layout of this interpreter's stacks, found in itself, and the one stack reader
(``gdb.pystack``) over another process's ``/proc/PID/mem``.

The struct offsets are not hard-coded: ``discover()`` finds them in the running interpreter
itself, from objects it knows (a frame's code object, its caller's frame, a thread's native
id), and checks each one. The native sampler runs the profiled kernel's own Python executable,
so the layout it finds is the kernel's; the kernel hands its own to gdb when libpython has no
debug info. Python 3.11 to 3.13; anything else raises ``UnsupportedLayout``.
"""
from __future__ import annotations

import ctypes
import functools
import json
import os
import sys
import threading
from dataclasses import asdict

from pyo3_debug_magic.gdb.pystack import SHIM_OWNER, Layout, StackReader, UnsupportedLayout

FRAME_OBJECT_FRAME = 24       # PyFrameObject: ob_refcnt, ob_type, f_back, f_frame (3.11 to 3.13)
GIL_SEARCH = 1 << 20          # bytes of _PyRuntime (3.11) or the interpreter (3.12+) searched for the GIL

__all__ = ["Layout", "UnsupportedLayout", "discover", "handed_layout", "own_thread_frames", "runtime_offset",
           "FrameReader"]


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


@functools.cache
def discover() -> Layout:
    """The offsets of this interpreter, found in itself and checked (once per process)."""
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
    runtime = own_runtime()
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
        frames="interpreter", frame_code=found["code"], frame_previous=found["previous"], frame_instr=found["instr"],
        entry=mode, entry_offset=offset, tstate_frame=found["tstate_frame"], tstate_frame_inner=found["inner"],
        tstate_next=tstate_next,
        tstate_thread_id=_required(_find(memory, tstate, threading.get_ident(), 1024), "the thread id"),
        tstate_native_id=_required(_find(memory, tstate, threading.get_native_id(), 1024), "the native thread id"),
        interp_threads_head=threads_head,
        runtime_interp_head=_required(_find(memory, runtime, interp, 4096), "the runtime's interpreter list"),
        code_start=type(code).__basicsize__,
        code_qualname=_required(_find(memory, id(code), id(code.co_qualname), 256), "co_qualname"),
        code_filename=_required(_find(memory, id(code), id(code.co_filename), 256), "co_filename"),
        code_firstlineno=_required(_find(memory, id(numbered), 54321, 256, step=4, size=4), "co_firstlineno"),
        code_linetable=_required(_find(memory, id(code), id(code.co_linetable), 256), "co_linetable"),
        unicode_data=sys.getsizeof("") - 1, unicode_compact_data=_required(_compact_text(memory), "a compact string's text"),
        bytes_size=16, bytes_data=sys.getsizeof(b"") - 1, **_gil(memory, runtime, interp, tstate))


def _compact_text(memory: Memory) -> int | None:
    """Where a compact non-ASCII (latin-1) string keeps its text."""
    text = "".join(map(chr, range(0xe0, 0xf0)))
    try:
        found = memory.read(id(text), 256).find(text.encode("latin-1"))
    except OSError:
        return None
    return found if found > 0 else None


def _gil(memory: Memory, runtime: int, interp: int, tstate: int) -> dict:
    """Where the GIL's state (struct _gil_runtime_state: interval, last_holder, locked) is:
    found by its first two fields (the switch interval, this thread as the last holder), then
    checked read while this thread holds the GIL (locked) and, on 3.12+, through the
    interpreter's pointer to it. {} when not found: the holder is then unknown."""
    interval = round(sys.getswitchinterval() * 1e6)
    signature = interval.to_bytes(8, "little") + tstate.to_bytes(8, "little")
    base = runtime if sys.version_info[:2] == (3, 11) else interp
    try:
        block = os.pread(memory.fd, GIL_SEARCH, base)
    except OSError:
        return {}
    at = block.find(signature)
    while at >= 0:
        # ctypes.string_at keeps the GIL (os.pread lets it go, and `locked` with it)
        if at % 8 == 0 and int.from_bytes(ctypes.string_at(base + at + 16, 4), "little") == 1:
            if base == runtime:
                return {"gil_mode": "runtime", "gil_offset": at}
            pointer = _find(memory, interp, interp + at, min(at, GIL_SEARCH))
            if pointer is not None:
                return {"gil_mode": "pointer", "gil_offset": pointer}
        at = block.find(signature, at + 1)
    return {}


def own_runtime() -> int:
    """The address of this interpreter's ``_PyRuntime``, where the stack reader starts."""
    return ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))


def own_thread_frames(ident: int) -> tuple[tuple[str, str, int, bool], ...] | None:
    """The Python frames of this process's thread ``ident`` (``threading.get_ident()``) as the
    stack reader sees them, with where each was entered from C; None when the layout is not
    found here. The thread must hold still (paused, its GIL handed over)."""
    try:
        layout = discover()
        reader = FrameReader(os.getpid(), layout, own_runtime())
    except (UnsupportedLayout, OSError, ValueError):
        return None
    try:
        tstate = next((t for t, thread_id, _ in reader.thread_states() if thread_id == ident), None)
        return reader.frames(tstate) if tstate else None
    except OSError:
        return None
    finally:
        reader.close()


def handed_layout() -> str:
    """This interpreter's layout and ``_PyRuntime`` address as JSON, for gdb's reader in a
    helper attached to this process ("" when the layout was not found)."""
    try:
        layout = discover()
    except (UnsupportedLayout, OSError):
        return ""
    return json.dumps({"layout": asdict(layout), "runtime": own_runtime()})


def runtime_offset() -> tuple[str, int]:
    """(the file holding ``_PyRuntime``, its offset from that file's first mapping)."""
    runtime = own_runtime()
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


class FrameReader(StackReader):
    """The one stack reader (``gdb.pystack.StackReader``) over ``/proc/PID/mem`` of a process
    of the same Python build."""

    def __init__(self, pid: int, layout: Layout, runtime: int):
        self.memory = Memory(pid)
        super().__init__(self.memory.read, layout, runtime)

    def by_os_thread(self) -> dict[int, int]:
        """OS thread id -> thread state address; empty while the list cannot be read."""
        try:
            return {native: tstate for tstate, _, native in self.thread_states()}
        except OSError:
            return {}

    def close(self) -> None:
        self.memory.close()
