"""A sampled profile of a cell: py-spy's stacks as collected, and the tables built from them."""
from __future__ import annotations

from dataclasses import dataclass, field

from typing import Literal

from pyo3_debug_magic.model.stacks import FrameKind

ProfileEngine = Literal["py-spy", "elfutils"]


@dataclass(frozen=True)
class ProfileFrame:
    """One frame of a sampled stack; ``line`` is the line the sample was on."""

    kind: FrameKind
    function: str              # Rust names demangled, hashes and .llvm.N suffixes removed
    file: str | None           # crate-relative for the user's own Rust (src/lib.rs)
    line: int | None
    is_cell: bool = False
    user: bool = False         # the user's own crate


@dataclass(frozen=True)
class SampledStack:
    """A distinct stack (outermost frame first) and how many samples landed on it."""

    thread: int | None         # the OS thread id
    frames: tuple[ProfileFrame, ...]
    count: int
    cut_short: bool = False    # py-spy stopped unwinding inside the extension (frames may be missing)


@dataclass(frozen=True)
class FunctionRow:
    """One row of the top table: a function's samples at the top of the stack and anywhere in it."""

    kind: FrameKind
    function: str
    file: str | None
    hottest_line: int | None   # the line with the most samples of its own
    self_samples: int
    total_samples: int
    user: bool = False
    is_cell: bool = False


@dataclass(frozen=True)
class ThreadUsage:
    """A thread that never ran Python (py-spy cannot see it; the native sampler can), and its
    CPU time while the profile ran."""

    os_thread_id: int
    name: str
    cpu_seconds: float


@dataclass(frozen=True)
class Profile:
    """What ``%%native_profile`` shows: the stacks, their tables and the sampler's counts."""

    stacks: tuple[SampledStack, ...]
    samples: int               # py-spy's count of samples it kept (one per thread and instant)
    errors: int                # samples py-spy could not take or merge (dropped by py-spy)
    rate: int                  # samples per second asked for
    seconds: float             # how long the cell ran under the sampler
    top: tuple[FunctionRow, ...] = ()
    python_only: tuple[SampledStack, ...] = ()   # the same run sampled without native frames
    python_only_samples: int = 0
    native_threads: tuple[ThreadUsage, ...] = ()
    thread_names: dict = field(default_factory=dict)  # OS thread id -> name
    by_thread: bool = False
    notes: tuple[str, ...] = ()
    output: str | None = None  # the file ``-o`` wrote
    engine: ProfileEngine = "py-spy"  # or the native sampler, every frame unwound
    unmatched: int = 0         # elfutils: samples whose Python and native frames did not line up

    @property
    def shown_samples(self) -> int:
        """The samples of the stacks shown (the kernel's idle machinery left out)."""
        return sum(s.count for s in self.stacks)

    @property
    def cut_short_samples(self) -> int:
        return sum(s.count for s in self.stacks if s.cut_short)

    @property
    def error_share(self) -> float:
        attempted = self.samples + self.errors
        return self.errors / attempted if attempted else 0.0

    @property
    def effective_rate(self) -> float:
        """Samples per second of the busiest thread (py-spy counts one sample per thread)."""
        per_thread: dict = {}
        for stack in self.stacks:
            per_thread[stack.thread] = per_thread.get(stack.thread, 0) + stack.count
        busiest = max(per_thread.values(), default=0)
        return busiest / self.seconds if self.seconds > 0 else 0.0
