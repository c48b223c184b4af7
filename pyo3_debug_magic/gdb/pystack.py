"""The one reader of Python stacks from a process's memory: no call into the process.

Stdlib only, so it runs in two places: inside gdb's embedded Python (``source``d by the agent;
``pystack_gdb.py`` drives it through gdb's memory reads, also on core files) and in the native
sampler (reading ``/proc/PID/mem``). What it walks is a ``Layout`` of byte offsets:
``_PyRuntime`` -> interpreters -> thread states -> frames -> code objects, with each code
object's location table for line numbers. Inside gdb the layout comes from libpython's debug
info; without it (Debian's python3), it is the one the kernel found in itself
(``stacks.pyframes.discover``).

Frame shapes (each tested against a real interpreter):
- 3.10: ``tstate->frame``, a ``PyFrameObject`` chain (``f_back``, ``f_lasti`` in code units),
  line numbers from the 3.10 (start delta, line delta) table;
- 3.11 and 3.12: ``tstate->cframe->current_frame``; 3.13: ``tstate->current_frame``; frames are
  ``_PyInterpreterFrame`` (code, previous, the instruction pointer), line numbers from the 3.11+
  location table; 3.11 marks a frame entered from C with a flag, 3.12+ puts a C-stack shim
  frame before it;
- the GIL: ``_PyRuntime.ceval.gil`` up to 3.11, per interpreter (``interp->ceval.gil``) since.
Anything else raises ``UnsupportedLayout`` so the caller can say so and fall back to
``py-spy dump --nonblocking``.
"""
from dataclasses import dataclass
from typing import Optional

MARK = "@@PDM "
MAX_FRAMES = 200
SHIM_OWNER = 3                # FRAME_OWNED_BY_CSTACK: 3.12+'s entry frame on the C stack
# the interpreter's eval loop: one native frame per run of Python frames entered from C
EVAL_FUNCTIONS = {"_PyEval_EvalFrameDefault", "PyEval_EvalFrameDefault"}  # not _PyEval_EvalFrame: its caller
UNICODE_LENGTH, UNICODE_STATE = 16, 32  # PyASCIIObject: refcnt, type, length, hash, state (3.10 to 3.13)


class UnsupportedLayout(Exception):
    pass


def eval_frame_runs(eval_frames, entered):
    """For each Python frame (innermost first), the position among the native frames (innermost
    first, ``eval_frames`` telling which are the interpreter's eval loop) of the eval frame that
    runs it: walking out, each eval frame runs the Python frames up to the one entered from C.
    Frames that no unwound eval frame runs get ``len(eval_frames)``."""
    runs, index = [], 0
    for position, is_eval in enumerate(eval_frames):
        while is_eval and index < len(entered):
            runs.append(position)
            index += 1
            if entered[index - 1]:
                break
    return runs + [len(eval_frames)] * (len(entered) - index)


@dataclass(frozen=True)
class Layout:
    """Where one Python build keeps what the reader follows (byte offsets, 64-bit)."""

    frames: str                 # "interpreter" (3.11+) or "object" (3.10's PyFrameObject chain)
    frame_code: int
    frame_previous: int
    frame_instr: int            # 3.11+: pointer into the code's bytecode; 3.10: f_lasti (code units)
    entry: str                  # "flag": a byte set in an entry frame (3.11); "shim": a C-stack frame before it; "none"
    entry_offset: int
    tstate_frame: int           # where tstate leads to the current frame
    tstate_frame_inner: Optional[int]  # 3.11/3.12: tstate->cframe->current_frame at this offset
    tstate_next: int
    tstate_thread_id: int
    tstate_native_id: Optional[int]    # 3.11+
    interp_threads_head: int
    runtime_interp_head: int
    code_start: int             # where the bytecode starts in a code object (3.11+)
    code_qualname: int          # co_qualname (3.11+), co_name on 3.10
    code_filename: int
    code_firstlineno: int
    code_linetable: int
    unicode_data: int           # a compact ASCII string's text
    unicode_compact_data: int   # a compact non-ASCII string's text
    bytes_size: int = 16
    bytes_data: int = 32
    gil_mode: str = ""          # "runtime": the GIL's state at _PyRuntime + gil_offset (3.10, 3.11);
    gil_offset: int = 0         # "pointer": a pointer to it at interp + gil_offset (3.12+); "": unknown
    gil_last_holder: int = 8    # in struct _gil_runtime_state
    gil_locked: int = 16


class StackReader:
    """Thread states and their Python frames (innermost first), through ``read(address, length)``
    which raises OSError for memory that cannot be read."""

    def __init__(self, read, layout: Layout, runtime: int):
        self.read, self.layout, self.runtime = read, layout, runtime
        self.codes = {}

    def word(self, address: int) -> int:
        if address <= 0:
            raise OSError("null pointer")
        return int.from_bytes(self.read(address, 8), "little")

    def thread_states(self):
        """[(thread state address, threading.get_ident(), OS thread id or None)], newest first."""
        layout, found = self.layout, []
        interp = self.word(self.runtime + layout.runtime_interp_head)
        tstate = self.word(interp + layout.interp_threads_head)
        while tstate and len(found) < 4096:
            native = self.word(tstate + layout.tstate_native_id) if layout.tstate_native_id is not None else None
            found.append((tstate, self.word(tstate + layout.tstate_thread_id), native))
            tstate = self.word(tstate + layout.tstate_next)
        return found

    def gil_holder(self):
        """The thread state holding the GIL, 0 if none, None if the layout does not say."""
        layout = self.layout
        if not layout.gil_mode:
            return None
        try:
            if layout.gil_mode == "runtime":
                gil = self.runtime + layout.gil_offset
            else:
                gil = self.word(self.word(self.runtime + layout.runtime_interp_head) + layout.gil_offset)
            if not int.from_bytes(self.read(gil + layout.gil_locked, 4), "little"):
                return 0
            return self.word(gil + layout.gil_last_holder)
        except OSError:
            return None

    def frames(self, tstate: int):
        """((qualified name, file, line, entered from C), ...), innermost first; what cannot be
        read ends the walk (a frame changing under a running thread)."""
        layout = self.layout
        try:
            frame = self.word(tstate + layout.tstate_frame)
            if layout.tstate_frame_inner is not None and frame:
                frame = self.word(frame + layout.tstate_frame_inner)
        except OSError:
            return ()
        result = []
        while frame and len(result) < MAX_FRAMES:
            try:
                block = self.read(frame, max(layout.frame_instr, layout.frame_code, layout.frame_previous,
                                             layout.entry_offset) + 8)
            except OSError:
                break
            word = lambda offset: int.from_bytes(block[offset:offset + 8], "little")  # noqa: E731
            code, previous = word(layout.frame_code), word(layout.frame_previous)
            if layout.entry == "shim" and block[layout.entry_offset] == SHIM_OWNER:
                if result:
                    result[-1] = result[-1][:3] + (True,)  # the frame before a shim was entered from C
                frame = previous
                continue
            # 3.10 runs each frame object in an eval call of its own
            entered = layout.frames == "object" or (layout.entry == "flag" and bool(block[layout.entry_offset]))
            if layout.frames == "object":
                lasti = int.from_bytes(block[layout.frame_instr:layout.frame_instr + 4], "little", signed=True)
                name, filename, line = self._code(code, lasti * 2 if lasti >= 0 else None)
            else:
                name, filename, line = self._code(code, max((word(layout.frame_instr) - (code + layout.code_start)) // 2, 0))
            result.append((name, filename, line, entered))
            frame = previous
        return tuple(result)

    def _code(self, code: int, offset):
        """(name, file, line) of a code object at bytecode ``offset`` (3.11+: code units; 3.10:
        bytes, None before the first instruction)."""
        layout = self.layout
        try:
            header = self.read(code, max(layout.code_qualname, layout.code_filename, layout.code_linetable,
                                         layout.code_firstlineno) + 8)
            pointers = (header[layout.code_qualname:layout.code_qualname + 8],
                        header[layout.code_filename:layout.code_filename + 8])
            cached = self.codes.get(code)
            if cached is None or cached[0] != pointers:
                first = int.from_bytes(header[layout.code_firstlineno:layout.code_firstlineno + 4], "little", signed=True)
                table = int.from_bytes(header[layout.code_linetable:layout.code_linetable + 8], "little")
                size = self.word(table + layout.bytes_size)
                cached = (pointers, self.text(int.from_bytes(pointers[0], "little")),
                          self.text(int.from_bytes(pointers[1], "little")), first,
                          self.read(table + layout.bytes_data, min(size, 1 << 20)) if size else b"")
                self.codes[code] = cached
            _, name, filename, first, table = cached
            if offset is None:
                return name, filename, first
            decode = line_for_offset_310 if layout.frames == "object" else line_for_offset
            return name, filename, decode(table, first, offset) or first
        except (OSError, IndexError):
            return "?", "?", 0

    def text(self, address: int) -> str:
        """A str object's text (compact unicode: ASCII, latin-1, UCS-2, UCS-4)."""
        state = self.read(address + UNICODE_STATE, 1)[0]
        kind, is_ascii, compact = (state >> 2) & 7, (state >> 6) & 1, (state >> 5) & 1
        if not compact or kind not in (1, 2, 4):
            return "?"  # a legacy string: its text is elsewhere
        length = self.word(address + UNICODE_LENGTH)
        data = self.read(address + (self.layout.unicode_data if is_ascii else self.layout.unicode_compact_data),
                         min(length, 4096) * kind)
        return data.decode({1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind], errors="replace")


def _varint(data, index):
    value, shift = 0, 0
    while True:
        byte = data[index]
        index += 1
        value |= (byte & 63) << shift
        shift += 6
        if not byte & 64:
            return value, index


def _svarint(data, index):
    value, index = _varint(data, index)
    return (-(value >> 1) if value & 1 else value >> 1), index


def line_for_offset(linetable, first_line, offset):
    """Line of code unit ``offset`` from a 3.11+ location table (Objects/locations.md)."""
    line, index, position = first_line, 0, 0
    while index < len(linetable):
        head = linetable[index]
        index += 1
        code, length = (head >> 3) & 15, (head & 7) + 1
        delta = 0
        if code == 15:          # no location
            delta = None
        elif code == 14:        # long form
            delta, index = _svarint(linetable, index)
            _, index = _varint(linetable, index)
            _, index = _varint(linetable, index)
            _, index = _varint(linetable, index)
        elif code == 13:        # no column
            delta, index = _svarint(linetable, index)
        elif code >= 10:        # one-line form
            delta = code - 10
            index += 2
        else:                   # short form
            index += 1
        if delta is not None:
            line += delta
        if position <= offset < position + length:
            return line if delta is not None else None
        position += length
    return None


def line_for_offset_310(linetable, first_line, offset):
    """Line of byte ``offset`` from a 3.10 line table: (start delta, signed line delta) pairs,
    a line delta of -128 meaning "no line" (Objects/lnotab_notes.txt of 3.10)."""
    line, start = first_line, 0
    for index in range(0, len(linetable) - 1, 2):
        end = start + linetable[index]
        line_delta = linetable[index + 1] - 256 if linetable[index + 1] > 127 else linetable[index + 1]
        current = None
        if line_delta != -128:
            line += line_delta
            current = line
        if start <= offset < end:
            return current
        start = end
    return None
