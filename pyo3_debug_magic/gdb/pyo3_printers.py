"""gdb pretty-printers for PyO3 values, run inside gdb's Python (``source``d by the agent).

``Py<T>``, ``Bound<T>``, ``Borrowed<T>``, ``PyRef``/``PyRefMut`` and ``*mut ffi::PyObject``
print as the Python value they hold: its type, refcount and, for str, bytes, int, float, bool
and None, the value itself; list and tuple their first items as ``repr`` shows them, dict its
length. Everything is read from memory
(no call into the paused or crashed process) with CPython's object layouts on 64-bit Linux,
which need no libpython debug info. A Rust reference (``&T``, ``&mut T``) to a struct or a
number is followed one level, so ``&self`` of a ``#[pyclass]`` shows its fields and ``&i64``
its value. A slice iterator shows the items it has left, a ``Box<dyn Trait>`` the value of the
type behind it (named by its vtable's symbol). ``print/r`` (the console's ``p/r``) shows the
raw form.
"""
import re
import struct

import gdb  # provided by gdb

MAX_TEXT = 200
MAX_ITEMS = 8  # of a list, a tuple or a slice iterator
IMMORTAL_FROM = 999_999_999
MAX_FOLLOWED = 3  # references followed within one value
_following = 0
_version = None  # (major, minor) of the target's CPython


def _read(address, length):
    return bytes(gdb.selected_inferior().read_memory(int(address), int(length)))


def _u64(address):
    return struct.unpack("<Q", _read(address, 8))[0]


def _i64(address):
    return struct.unpack("<q", _read(address, 8))[0]


def _python_version():
    """The target's CPython version: ``Py_Version`` (3.11+) read by its address; older: 3.10."""
    global _version
    if _version is None:
        _version = (3, 10)
        try:
            text = gdb.execute("info address Py_Version", to_string=True)
            match = re.search(r"\bis at (0x[0-9a-f]+)", text)
            if match:
                hexversion = struct.unpack("<I", _read(int(match.group(1), 16), 4))[0]
                _version = (hexversion >> 24, (hexversion >> 16) & 0xFF)
        except (gdb.error, gdb.MemoryError):
            pass
    return _version


def _c_string(address, limit=100):
    data = _read(address, limit)
    return data.split(b"\0", 1)[0].decode(errors="replace")


def _str_value(address):
    length = _i64(address + 16)
    state = struct.unpack("<I", _read(address + 32, 4))[0]
    kind, compact, ascii_ = (state >> 2) & 7, (state >> 5) & 1, (state >> 6) & 1
    if not compact or kind not in (1, 2, 4):
        return None
    old = _python_version() < (3, 12)
    header = (48 if old else 40) if ascii_ else (72 if old else 56)
    data = _read(address + header, min(length, MAX_TEXT) * kind)
    text = data.decode({1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind], errors="replace")
    return repr(text) + ("..." if length > MAX_TEXT else "")


def _int_value(address):
    if _python_version() < (3, 12):
        size = _i64(address + 16)
        count, sign = abs(size), (-1 if size < 0 else 1)
    else:
        tag = _u64(address + 16)
        count, sign = tag >> 3, 1 - (tag & 3)
    if count > 40:
        return f"<int of {count * 30} bits>"
    digits = struct.unpack(f"<{count}I", _read(address + 24, 4 * count)) if count else ()
    return str(sign * sum(digit << (30 * index) for index, digit in enumerate(digits)))


def describe(address):
    """``'hello' (str, refcount 2)``, ``[7, 8, 9] (list, refcount 1)``: a PyObject read from memory."""
    address = int(address)
    if address == 0:
        return "NULL"
    try:
        refcount = _i64(address) & 0xFFFFFFFF if _python_version() >= (3, 12) else _i64(address)
        type_name = _type_name(address)
        shown = _value(address, type_name, nested=False)
        length = _i64(address + 16) if type_name in ("list", "tuple") else 0
        kind = f"{type_name} of {length}" if length > MAX_ITEMS else type_name
        # small ints, None, True... start at 999999999 (3.11) or stay at 2**32 - 1 (3.12+)
        counted = "immortal" if refcount >= IMMORTAL_FROM else f"refcount {refcount}"
        return f"{shown} ({kind}, {counted})"
    except (gdb.MemoryError, gdb.error, struct.error, UnicodeDecodeError):
        return f"<PyObject at {address:#x}: unreadable>"


def _type_name(address):
    return _c_string(_u64(_u64(address + 8) + 24))


def _value(address, type_name, nested):
    """The object as ``repr`` begins to show it; a container inside a container is ``[…]``."""
    if type_name == "str":
        value = _str_value(address)
    elif type_name in ("int", "bool"):
        value = _int_value(address)
        value = {"0": "False", "1": "True"}.get(value, value) if type_name == "bool" else value
    elif type_name == "float":
        value = repr(struct.unpack("<d", _read(address + 16, 8))[0])
    elif type_name == "NoneType":
        value = "None"
    elif type_name == "bytes":
        size = _i64(address + 16)
        value = repr(_read(address + 32, min(size, MAX_TEXT))) + ("..." if size > MAX_TEXT else "")
    elif type_name in ("list", "tuple"):
        value = "[…]" if type_name == "list" else "(…)"
        if not nested:
            value = _items(address, type_name)
    elif type_name == "dict":
        value = f"len {_i64(address + 16)}"  # ma_used
    else:
        value = None
    return value if value is not None else f"<{type_name} object at {address:#x}>"


def _items(address, type_name):
    """A list's or a tuple's first items (its ``ob_item``: a pointer in a list, inline in a tuple)."""
    length = _i64(address + 16)
    first = _u64(address + 24) if type_name == "list" else address + 24
    shown = []
    for index in range(min(length, MAX_ITEMS)):
        item = _u64(first + 8 * index)
        shown.append(_value(item, _type_name(item), nested=True) if item else "NULL")
    if length > MAX_ITEMS:
        shown.append("…")
    if type_name == "tuple":
        return "(" + ", ".join(shown) + ("," if length == 1 else "") + ")"
    return "[" + ", ".join(shown) + "]"


def _object_pointer(value, depth=0):
    """The ``PyObject*`` inside a PyO3 handle (the first such pointer among its fields)."""
    kind = value.type.strip_typedefs()
    if kind.code == gdb.TYPE_CODE_PTR:
        target = kind.target().strip_typedefs()
        return value if (target.name or "").endswith("PyObject") else None
    if kind.code != gdb.TYPE_CODE_STRUCT or depth > 6:
        return None
    for field in kind.fields():
        if field.is_base_class or field.name is None:
            continue
        found = _object_pointer(value[field.name], depth + 1)
        if found is not None:
            return found
    return None


class PyObjectPrinter:
    def __init__(self, value):
        self.value = value

    def to_string(self):
        pointer = _object_pointer(self.value)
        return describe(pointer) if pointer is not None else "<no PyObject inside>"


class ReferencePrinter:
    """A reference followed one level (``&1``, ``&Basket {...}``); gdb's DWARF reader types
    Rust references as pointers, so a pointer to a struct or a number is followed too (an
    unreadable one shows its address and why)."""

    def __init__(self, value):
        self.value = value

    def to_string(self):
        global _following
        address = int(self.value)
        if address == 0:
            return "0x0"
        if _following >= MAX_FOLLOWED:
            # a value that refers to itself (PyO3 0.29's generated code has such locals) would
            # recurse without end, and gdb retried every field: a pause froze printing them
            return f"{address:#x}"
        _following += 1
        try:
            return "&" + self.value.dereference().format_string()
        except (gdb.MemoryError, gdb.error, RecursionError) as error:
            return f"{address:#x} <{type(error).__name__ if isinstance(error, RecursionError) else error}>"
        finally:
            _following -= 1


class SliceIterPrinter:
    """``core::slice::Iter<T>`` as the items it has left: ``slice::Iter(2 left) = {8, 9}``."""

    def __init__(self, value):
        start = value["ptr"]["pointer"]
        end = value["end_or_len"] if "end_or_len" in [f.name for f in value.type.fields()] else value["end"]
        size = start.type.target().sizeof
        self.start = start
        # end_or_len is the end pointer, or (a zero-sized T) the count itself
        self.count = max(0, (int(end) - int(start)) // size) if size else int(end)

    def to_string(self):
        return f"slice::Iter({self.count} left)"

    def children(self):
        for index in range(min(self.count, MAX_ITEMS)):
            yield f"[{index}]", (self.start + index).dereference()

    @staticmethod
    def display_hint():
        return "array"


class DynBoxPrinter:
    """``Box<dyn Trait>`` as the value behind it: ``Box<dyn Display> = 5 (i64)``. gdb's Rust
    support finds the concrete type from the vtable's debug info when it dereferences the box."""

    def __init__(self, value):
        self.value = value

    def to_string(self):
        trait = re.search(r"<dyn ([\w:]+)", self.value.type.name or "")
        title = f"Box<dyn {trait.group(1).rsplit('::', 1)[-1] if trait else '?'}>"
        try:
            gdb.set_convenience_variable("_pyo3_dyn_box", self.value)
            inner = gdb.parse_and_eval("*$_pyo3_dyn_box")
            kind = str(inner.dynamic_type)
            if kind.startswith("dyn "):  # no debug info for the concrete type's vtable
                return f"{title} at {int(self.value['pointer']):#x}"
            return f"{title} = {inner.format_string()} ({kind})"
        except (gdb.error, gdb.MemoryError, RuntimeError):
            return f"{title} at {int(self.value['pointer']):#x}"


SLICE_ITER = re.compile(r"^core::slice::iter::(Iter|IterMut)<")
DYN_BOX = re.compile(r"^alloc::boxed::Box<dyn ")
PYO3_HANDLE = re.compile(r"^pyo3::(instance::(Py|Bound|Borrowed)|pycell::(PyRef|PyRefMut))<")
FOLLOWED = (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_INT, gdb.TYPE_CODE_FLT, gdb.TYPE_CODE_BOOL,
            gdb.TYPE_CODE_CHAR, gdb.TYPE_CODE_UNION)


def lookup(value):
    kind = value.type.strip_typedefs()
    name = kind.name or str(kind)
    if PYO3_HANDLE.match(name):
        return PyObjectPrinter(value)
    if SLICE_ITER.match(name):
        return SliceIterPrinter(value)
    if DYN_BOX.match(name):
        return DynBoxPrinter(value)
    if kind.code == gdb.TYPE_CODE_PTR:
        target = kind.target().strip_typedefs()
        target_name = target.name or ""
        if target_name in ("PyObject", "_object") or target_name.endswith("::PyObject"):
            return PyObjectPrinter(value)
        if target.code in FOLLOWED and not (target.code == gdb.TYPE_CODE_INT and target.sizeof == 1) \
                and "dyn " not in target_name:
            return ReferencePrinter(value)
    return None


def register():
    """First in line: PyO3 handles must not be taken apart by the generic Rust printers."""
    gdb.pretty_printers.insert(0, lookup)
