"""Process-wide counters refcheck reads and the state it settles before measuring: glibc's
native heap (``mallinfo2``, RSS elsewhere), its tcache, CPython's freelists, live objects by
type, threads started (they move the native heap). Standard library only."""
from __future__ import annotations

import ctypes
import gc
import sys
import threading
from collections import Counter
from typing import Any, Callable


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _load_libc_functions() -> dict[str, Any]:
    """glibc's mallinfo2, malloc and free, bound once (what is missing is left out)."""
    found: dict[str, Any] = {}
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return found
    for name, restype, argtypes in (("mallinfo2", _MallInfo2, []),
                                    ("malloc", ctypes.c_void_p, [ctypes.c_size_t]),
                                    ("free", None, [ctypes.c_void_p])):
        try:
            function = getattr(libc, name)
        except AttributeError:
            continue
        function.restype, function.argtypes = restype, argtypes
        found[name] = function
    return found


_LIBC = _load_libc_functions()


def _native_heap_reader() -> tuple[str, Callable[[], int]] | None:
    """('malloc in-use bytes', reader) from glibc's mallinfo2, else RSS from /proc."""
    mallinfo2 = _LIBC.get("mallinfo2")
    if mallinfo2 is not None:
        def in_use() -> int:
            info = mallinfo2()
            return info.uordblks + info.hblkhd

        return "native heap (malloc in use)", in_use
    try:
        import resource

        page = resource.getpagesize()
        with open("/proc/self/statm") as statm:
            statm.read()

        def rss() -> int:
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * page

        return "resident memory (RSS)", rss
    except OSError:
        return None


class _TcacheDrain:
    """Empties glibc's per-thread cache of freed chunks for the duration of a loop.

    mallinfo2 counts chunks parked in the tcache (up to 7 per size class, up to ~1 KiB) as in
    use, so a leaking malloc served from there would not move the counter. Holding 7 chunks
    of every tcache size while measuring makes every malloc of those sizes visible.
    """

    SIZES = range(8, 1033, 16)
    PER_SIZE = 7

    def __init__(self):
        self._malloc, self._free = _LIBC.get("malloc"), _LIBC.get("free")
        self._held: list[int] = []

    def __enter__(self) -> "_TcacheDrain":
        if self._malloc is not None and self._free is not None:
            self._held = [self._malloc(size) for size in self.SIZES for _ in range(self.PER_SIZE)]
        return self

    def __exit__(self, *exc) -> None:
        for pointer in self._held:
            if pointer:
                self._free(pointer)
        self._held = []


def _saturate_freelists() -> None:
    """Fill CPython's object freelists (lists, dicts, floats, small tuples).

    Objects made through ``type(...)`` calls bypass the freelists but are put back into them
    when freed, so while a freelist has room every such object looks like one more allocated
    block. Once the freelists are full, freed objects are really freed.
    """
    keep = [[None] for _ in range(200)]
    keep += [{None: None} for _ in range(200)]
    keep += [float(i) + 0.5 for i in range(200)]
    for size in range(1, 21):
        keep += [tuple([None] * size) for _ in range(2100)]
    del keep


def _type_counts() -> Counter:
    return Counter(type(obj).__qualname__ for obj in gc.get_objects())


class _ThreadStarts:
    """Counts the threads started through ``threading`` while entered, with ``threading``'s
    public trace hook: the hook runs once in each new thread, then hands over to whatever
    hook was there before (coverage.py's, a debugger's), so nothing else is disturbed."""

    def __init__(self):
        self.count = 0
        self._previous = None

    def _hook(self, frame, event, arg):
        self.count += 1
        sys.settrace(self._previous)
        return self._previous(frame, event, arg) if self._previous else None

    def __enter__(self) -> "_ThreadStarts":
        self._previous = threading.gettrace()
        threading.settrace(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        threading.settrace(self._previous)
