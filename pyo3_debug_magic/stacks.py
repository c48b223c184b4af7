"""Frame model: native frames from gdb and Python frames of the same thread, merged."""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from types import FrameType

CPYTHON_SOURCE_DIRS = {"Python", "Objects", "Modules", "Include", "Parser", "Programs", "."}
RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
PYTHON_RUNTIME = re.compile(r"^(_?Py|_PyEval|cfunction_|method_vectorcall|vectorcall|slot_tp|call_function)")


@dataclass(frozen=True)
class NativeFrame:
    level: int
    function: str
    file: str | None
    fullname: str | None
    line: int | None
    library: str | None = None

    @property
    def where(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.library or "??"

    @property
    def in_python_runtime(self) -> bool:
        """A frame of the interpreter itself (libpython, by library, name or CPython source path)."""
        if self.library and "libpython" in self.library:
            return True
        if self.file and self.file.split("/")[0] in CPYTHON_SOURCE_DIRS:
            return True
        return bool(PYTHON_RUNTIME.match(self.function))


@dataclass(frozen=True)
class PythonFrame:
    file: str
    line: int
    function: str
    is_cell: bool = False


@dataclass(frozen=True)
class MergedStack:
    """Native frames down to the interpreter, then the Python frames that called in."""

    native: list[NativeFrame]
    python: list[PythonFrame] = field(default_factory=list)
    hidden_runtime_frames: int = 0


def demangle(name: str) -> str:
    """gdb demangles Rust names already; drop the legacy hash suffix it leaves."""
    return RUST_HASH.sub("", name or "??")


def native_frames(raw: list[dict]) -> list[NativeFrame]:
    return [NativeFrame(level=f.get("level", i), function=demangle(f.get("func") or "??"),
                        file=f.get("file"), fullname=f.get("fullname"), line=f.get("line"),
                        library=f.get("from")) for i, f in enumerate(raw)]


CELL_FILE = re.compile(r"(^<ipython-input-\d+-|/ipykernel_\d+/\d+\.py$)")


def is_cell_file(filename: str) -> bool:
    """IPython names cells <ipython-input-N-...>; ipykernel 6+ writes them to /tmp/ipykernel_PID/."""
    return bool(CELL_FILE.search(filename))


def python_frames(frame: FrameType | None, limit: int = 50) -> list[PythonFrame]:
    """Innermost first; frames of IPython's and ipykernel's own machinery are left out."""
    frames = []
    while frame is not None and len(frames) < limit:
        filename = frame.f_code.co_filename
        frames.append(PythonFrame(filename, frame.f_lineno, frame.f_code.co_name, is_cell_file(filename)))
        frame = frame.f_back
    cells = [i for i, f in enumerate(frames) if f.is_cell]
    return frames[:cells[-1] + 1] if cells else frames


def thread_python_frames(ident: int | None) -> list[PythonFrame]:
    """The Python frames of another thread (it must not be running Python right now)."""
    if ident is None:
        return []
    return python_frames(sys._current_frames().get(ident))


def merge(native: list[NativeFrame], python: list[PythonFrame]) -> MergedStack:
    """Native frames up to the first interpreter frame; past it, only the user's own Rust
    frames (an outer Rust call on a Rust -> Python -> Rust stack); then the Python frames."""
    from .locations import is_user_source

    kept, in_runtime = [], False
    for frame in native:
        in_runtime = in_runtime or frame.in_python_runtime
        if not in_runtime or (not frame.in_python_runtime and is_user_source(frame.fullname)):
            kept.append(frame)
    return MergedStack(kept, python, hidden_runtime_frames=len(native) - len(kept))
