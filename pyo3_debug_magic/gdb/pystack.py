"""Read the Python stacks of a process from memory, inside gdb (no calls into the process).

Runs in gdb's embedded Python (``source``d by the agent; also used on core files). Works from
libpython's debug info: ``_PyRuntime`` -> interpreters -> thread states -> frames -> code
objects, and the code object's location table for line numbers. A crashed or hung process
must not run code, so nothing here evaluates an inferior call.

Layouts, by their known structure (each tested against a real interpreter):
- 3.10: ``tstate->frame`` is a ``PyFrameObject`` chain (``f_back``, ``f_lasti`` in code
  units), line numbers from the 3.10 (start delta, line delta) table;
- 3.11 and 3.12: ``tstate->cframe->current_frame``, ``_PyInterpreterFrame`` with ``f_code``
  and ``prev_instr``; 3.13: ``tstate->current_frame``, ``f_executable`` and ``instr_ptr``;
  line numbers from the 3.11+ location table;
- the GIL: ``_PyRuntime.ceval.gil`` up to 3.11, per interpreter (``interp->ceval.gil``) since.
Anything else raises ``UnsupportedLayout`` so the caller can say so and fall back to
``py-spy dump --nonblocking``.
"""
import json

try:
    import gdb  # noqa: F401 - provided by gdb
except ImportError:  # imported outside gdb for its pure line-table decoders
    gdb = None

MARK = "@@PDM "
MAX_FRAMES = 200


class UnsupportedLayout(Exception):
    pass


def _has_field(value, name):
    try:
        return any(field.name == name for field in value.type.target().fields())
    except (gdb.error, AttributeError, TypeError):
        return False


def _read(address, length):
    return bytes(gdb.selected_inferior().read_memory(int(address), int(length)))


def _unicode(obj):
    """A str object's text (compact unicode: ASCII, latin-1, UCS-2, UCS-4)."""
    if int(obj) == 0:
        return None
    ascii_object = obj.cast(gdb.lookup_type("PyASCIIObject").pointer()).dereference()
    length = int(ascii_object["length"])
    state = ascii_object["state"]
    kind, is_ascii = int(state["kind"]), int(state["ascii"])
    header = gdb.lookup_type("PyASCIIObject" if is_ascii else "PyCompactUnicodeObject").sizeof
    data = _read(int(obj) + header, min(length, 4096) * kind)
    return data.decode({1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind], errors="replace")


def _bytes(obj):
    bytes_object = obj.cast(gdb.lookup_type("PyBytesObject").pointer()).dereference()
    size = int(bytes_object["ob_base"]["ob_size"])
    return _read(int(obj) + _offset("PyBytesObject", "ob_sval"), min(size, 1 << 20))


def _offset(type_name, field):
    """Byte offset of a struct field, from the type (no expression parsing: the selected
    frame may be Rust, whose parser does not know C)."""
    for candidate in gdb.lookup_type(type_name).strip_typedefs().fields():
        if candidate.name == field:
            return candidate.bitpos // 8
    raise UnsupportedLayout(f"{type_name} has no field {field}")


def _runtime():
    symbol = gdb.lookup_global_symbol("_PyRuntime") or gdb.lookup_static_symbol("_PyRuntime")
    if symbol is None:
        raise UnsupportedLayout("libpython has no debug info (no _PyRuntime symbol)")
    return symbol.value()


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


def _frame_line(frame, code):
    """The line a 3.11+ frame is at: ``prev_instr`` (3.11, 3.12) is the instruction last
    started, ``instr_ptr`` (3.13) the one executing; both are the call a caller waits in."""
    first = int(code["co_firstlineno"])
    try:
        start = int(code.address) + _offset("PyCodeObject", "co_code_adaptive")
        pointer = frame["prev_instr"] if _has_field(frame, "prev_instr") else frame["instr_ptr"]
        offset = (int(pointer) - start) // 2
        return line_for_offset(_bytes(code["co_linetable"]), first, max(offset, 0))
    except (gdb.error, gdb.MemoryError, IndexError, KeyError):
        return first


def _code_of(frame):
    if _has_field(frame, "f_code"):
        return frame["f_code"].dereference()
    if _has_field(frame, "f_executable"):
        return frame["f_executable"].cast(gdb.lookup_type("PyCodeObject").pointer()).dereference()
    raise UnsupportedLayout("no f_code/f_executable in _PyInterpreterFrame")


def _frames(tstate):
    """Innermost first: 3.11+ interpreter frames, or 3.10 frame objects."""
    if _has_field(tstate, "current_frame"):                                    # 3.13
        return _interpreter_frames(tstate["current_frame"])
    if _has_field(tstate, "cframe") and _has_field(tstate["cframe"], "current_frame"):  # 3.11, 3.12
        return _interpreter_frames(tstate["cframe"]["current_frame"])
    if _has_field(tstate, "frame"):                                            # 3.10
        return _frame_objects(tstate["frame"])
    raise UnsupportedLayout("no current_frame, cframe->current_frame or frame in PyThreadState")


def _interpreter_frames(frame):
    frames = []
    while int(frame) != 0 and len(frames) < MAX_FRAMES:
        owner = int(frame["owner"]) if _has_field(frame, "owner") else 0
        if owner != 3:  # 3 = FRAME_OWNED_BY_CSTACK (3.12+ shim frames)
            code = _code_of(frame)
            frames.append({"file": _unicode(code["co_filename"]), "function": _unicode(code["co_qualname"]),
                           "line": _frame_line(frame, code)})
        frame = frame["previous"]
    return frames


def _frame_objects(frame):
    frames = []
    while int(frame) != 0 and len(frames) < MAX_FRAMES:
        code = frame["f_code"].dereference()
        first = int(code["co_firstlineno"])
        lasti = int(frame["f_lasti"])  # in code units; -1 before the first instruction
        line = first
        if lasti >= 0:
            try:
                line = line_for_offset_310(_bytes(code["co_linetable"]), first, lasti * 2) or first
            except (gdb.error, gdb.MemoryError, IndexError):
                pass
        frames.append({"file": _unicode(code["co_filename"]), "function": _unicode(code["co_name"]),
                       "line": line})
        frame = frame["f_back"]
    return frames


def _thread_states(interpreter):
    if _has_field(interpreter, "threads"):       # 3.11+
        return interpreter["threads"]["head"]
    if _has_field(interpreter, "tstate_head"):   # 3.10
        return interpreter["tstate_head"]
    raise UnsupportedLayout("no threads.head or tstate_head in PyInterpreterState")


def _plain(value):
    """An int from a field that is a _Py_atomic_* struct (up to 3.12) or a plain value (3.13)."""
    if value.type.strip_typedefs().code == gdb.TYPE_CODE_STRUCT:
        return int(value["_value"])
    return int(value)


def _gil_holder(runtime, interpreter):
    """The thread state holding the GIL, 0 if none, None if unknown."""
    try:
        ceval = interpreter["ceval"]
        per_interpreter = any(f.name == "gil" for f in ceval.type.strip_typedefs().fields())
        gil = ceval["gil"].dereference() if per_interpreter else runtime["ceval"]["gil"]
        if not _plain(gil["locked"]):
            return 0
        return _plain(gil["last_holder"])
    except gdb.error:
        return None


def python_stacks():
    """Every thread state of the main interpreter, with its frames (innermost first)."""
    runtime = _runtime()
    interpreter = runtime["interpreters"]["head"]
    holder = _gil_holder(runtime, interpreter)
    threads = []
    tstate = _thread_states(interpreter)
    while int(tstate) != 0:
        thread = {"thread_id": int(tstate["thread_id"]),
                  "native_thread_id": int(tstate["native_thread_id"]) if _has_field(tstate, "native_thread_id") else None,
                  "holds_gil": holder is not None and holder == int(tstate),
                  "frames": _frames(tstate)}
        threads.append(thread)
        tstate = tstate["next"]
    return {"threads": threads, "gil_known": holder is not None}


def emit_python_stacks(_=None):
    try:
        result = python_stacks()
    except (UnsupportedLayout, gdb.error, gdb.MemoryError) as error:
        result = {"error": str(error)}
    gdb.write(MARK + json.dumps({"kind": "python-stacks", **result}) + "\n")
