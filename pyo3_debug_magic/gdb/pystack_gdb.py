"""Inside gdb: the stack layout libpython's debug info describes, and the command that reads
every thread's Python stack with it (``emit_python_stacks``). ``source``d by the agent after
``pystack.py``, whose reader it drives; without debug info it uses the layout the kernel
handed over (``set_handed_layout``). Nothing here calls into the process."""
import base64
import json
from dataclasses import asdict  # noqa: F401 - for gdb commands (a layout as JSON)

import gdb  # noqa: F401 - provided by gdb

try:  # outside gdb (a test, a linter) the reader is imported; inside, pystack.py was sourced first
    from pyo3_debug_magic.gdb.pystack import MARK, Layout, StackReader, UnsupportedLayout
except ImportError:
    pass

_handed_layout = None   # (Layout, runtime address) from the kernel, for a libpython without debug info
_read_layout = None     # (runtime address, Layout) last read from debug info


def _fields(type_name):
    try:
        return {f.name: f for f in gdb.lookup_type(type_name).strip_typedefs().fields()}
    except gdb.error as error:
        raise UnsupportedLayout(f"libpython has no debug info ({error})")


def _offset(type_name, *names):
    """Byte offset of the first of ``names`` that ``type_name`` has, None if it has none."""
    fields = _fields(type_name)
    return next((fields[n].bitpos // 8 for n in names if n in fields), None)


def _required(value, what):
    if value is None:
        raise UnsupportedLayout(f"no {what} in libpython's debug info")
    return value


def layout_from_debug_info():
    """The layout libpython's DWARF describes (3.10 to 3.13)."""
    tstate = _fields("PyThreadState")
    interpreter_frames = "frame" not in tstate
    if "current_frame" in tstate:                                               # 3.13
        tstate_frame, inner = tstate["current_frame"].bitpos // 8, None
    elif "frame" in tstate:                                                     # 3.10 (it has a cframe too)
        tstate_frame, inner = tstate["frame"].bitpos // 8, None
    elif "cframe" in tstate:                                                    # 3.11, 3.12
        tstate_frame = tstate["cframe"].bitpos // 8
        inner = _required(_offset("_PyCFrame", "current_frame"), "_PyCFrame.current_frame")
    else:
        raise UnsupportedLayout("no current_frame, cframe->current_frame or frame in PyThreadState")
    frame_type = "_PyInterpreterFrame" if interpreter_frames else "PyFrameObject"
    frame = _fields(frame_type)
    if "is_entry" in frame:                        # 3.11
        entry, entry_offset = "flag", frame["is_entry"].bitpos // 8
    elif "owner" in frame:                         # 3.12+: a shim frame owned by the C stack
        entry, entry_offset = "shim", frame["owner"].bitpos // 8
    else:                                          # 3.10
        entry, entry_offset = "none", 0
    code = "PyCodeObject"
    return Layout(
        frames="interpreter" if interpreter_frames else "object",
        frame_code=_required(_offset(frame_type, "f_code", "f_executable"), "frame code field"),
        frame_previous=_required(_offset(frame_type, "previous", "f_back"), "frame caller field"),
        frame_instr=_required(_offset(frame_type, "prev_instr", "instr_ptr", "f_lasti"), "frame instruction field"),
        entry=entry, entry_offset=entry_offset, tstate_frame=tstate_frame, tstate_frame_inner=inner,
        tstate_next=tstate["next"].bitpos // 8, tstate_thread_id=tstate["thread_id"].bitpos // 8,
        tstate_native_id=tstate["native_thread_id"].bitpos // 8 if "native_thread_id" in tstate else None,
        interp_threads_head=_interp_threads_head(),
        runtime_interp_head=_required(_member_offset("_PyRuntimeState", "interpreters", "head"), "interpreters.head"),
        code_start=_offset(code, "co_code_adaptive") or 0,
        code_qualname=_required(_offset(code, "co_qualname", "co_name"), "co_qualname"),
        code_filename=_offset(code, "co_filename"), code_firstlineno=_offset(code, "co_firstlineno"),
        code_linetable=_required(_offset(code, "co_linetable"), "co_linetable"),
        unicode_data=gdb.lookup_type("PyASCIIObject").sizeof,
        unicode_compact_data=gdb.lookup_type("PyCompactUnicodeObject").sizeof,
        bytes_data=_offset("PyBytesObject", "ob_sval"), **_gil_from_debug_info())


def _member_offset(type_name, outer, inner):
    """Offset of ``outer.inner`` in ``type_name`` (``outer`` a nested struct), None if absent."""
    fields = _fields(type_name)
    if outer not in fields:
        return None
    nested = {f.name: f for f in fields[outer].type.strip_typedefs().fields()}
    return fields[outer].bitpos // 8 + nested[inner].bitpos // 8 if inner in nested else None


def _gil_from_debug_info():
    """Where the GIL's state is: ``_PyRuntime.ceval.gil`` up to 3.11, ``interp->ceval.gil``
    (a pointer) since."""
    try:
        ceval = _fields("PyInterpreterState")["ceval"].type.strip_typedefs()
        per_interpreter = {f.name: f for f in ceval.fields()}.get("gil")
        if per_interpreter is not None:
            mode, offset = "pointer", _member_offset("PyInterpreterState", "ceval", "gil")
            state = per_interpreter.type.strip_typedefs().target().strip_typedefs()
        else:
            mode, offset = "runtime", _member_offset("_PyRuntimeState", "ceval", "gil")
            state = {f.name: f for f in _fields("_PyRuntimeState")["ceval"].type.strip_typedefs().fields()}[
                "gil"].type.strip_typedefs()
        fields = {f.name: f.bitpos // 8 for f in state.fields()}
        return {"gil_mode": mode, "gil_offset": offset, "gil_last_holder": fields["last_holder"],
                "gil_locked": fields["locked"]}
    except (gdb.error, KeyError, TypeError, UnsupportedLayout):
        return {}


def _interp_threads_head():
    threads = _member_offset("PyInterpreterState", "threads", "head")              # 3.11+
    if threads is not None:
        return threads
    return _required(_offset("PyInterpreterState", "tstate_head"), "the interpreter's thread list")  # 3.10


def _runtime_symbol():
    symbol = gdb.lookup_global_symbol("_PyRuntime") or gdb.lookup_static_symbol("_PyRuntime")
    return symbol.value() if symbol is not None else None


def _gdb_read(address, length):
    if address <= 0:
        raise OSError("null pointer")
    try:
        return bytes(gdb.selected_inferior().read_memory(int(address), int(length)))
    except gdb.MemoryError as error:
        raise OSError(str(error))


def set_handed_layout(encoded):
    """The kernel's own layout and ``_PyRuntime`` address (base64 JSON of ``handed_layout()``'s
    text), used when libpython has no debug info."""
    global _handed_layout
    handed = json.loads(json.loads(base64.b64decode(encoded).decode()))
    _handed_layout = (Layout(**handed["layout"]), int(handed["runtime"]))


def python_stacks():
    """Every thread state of the main interpreter, with its frames (innermost first)."""
    global _read_layout
    runtime = _runtime_symbol()
    if runtime is not None:
        address = int(runtime.address)
        if _read_layout is None or _read_layout[0] != address:
            _read_layout = (address, layout_from_debug_info())
        layout = _read_layout[1]
    elif _handed_layout is not None:
        layout, address = _handed_layout
    else:
        raise UnsupportedLayout("libpython has no debug info (no _PyRuntime symbol)")
    reader = StackReader(_gdb_read, layout, address)
    holder = reader.gil_holder()
    threads = []
    for tstate, thread_id, native_id in reader.thread_states():
        threads.append({"thread_id": thread_id, "native_thread_id": native_id,
                        "holds_gil": holder is not None and holder == tstate,
                        "frames": [{"function": name, "file": filename, "line": line, "entered": entered}
                                   for name, filename, line, entered in reader.frames(tstate)]})
    return {"threads": threads, "gil_known": holder is not None}


def emit_python_stacks(_=None):
    try:
        result = python_stacks()
    except (UnsupportedLayout, OSError, gdb.error, gdb.MemoryError) as error:
        result = {"error": str(error)}
    gdb.write(MARK + json.dumps({"kind": "python-stacks", **result}) + "\n")
