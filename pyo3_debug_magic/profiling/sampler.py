"""The native sampler: stacks unwound by elfutils' libdw (through ctypes), for what py-spy
cannot sample: threads that never run Python (Rust ``std::thread`` workers, rayon pools) and,
as ``--engine elfutils``, every thread with its Python frames read at the same moment (py-spy's
unwinder stops at PyO3's trampoline, so a Rust -> Python -> Rust chain loses its outer Rust).

Runs as its own process (a process may not ptrace its own threads):
``python -m pyo3_debug_magic.profiling.sampler PID RATE OUT [--python] [--idle] [EXCLUDED_TID ...]``.
Each round the sampler stops each thread (PTRACE_SEIZE + PTRACE_INTERRUPT), libdw unwinds it,
and the sampler lets go (a fraction of a millisecond); with ``--python`` the thread's Python
frames are read while it is stopped (``stacks.pyframes``). Not libdw's own attach: it uses
PTRACE_ATTACH, whose SIGSTOP left every kernel thread group-stopped (state T, no tracer) when
the sampler was killed mid-round; a seized thread resumes by itself when its tracer dies.
SIGINT ends it; OUT then gets the stacks in py-spy's collapsed format (``sampled_stacks``).
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import NamedTuple

from pyo3_debug_magic.profiling.sampled_stacks import collapsed, mappings, threads_of

MAX_FRAMES = 256
READY_TIMEOUT = 15.0
DWARF_CB_OK, DWARF_CB_ABORT = 0, 1
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_EVENT_STOP = 17, 0x4206, 0x4207, 128
WAIT_ALL_THREADS = 0x40000000  # __WALL: wait for a thread of another process


class Seized:
    """Stops one thread with PTRACE_SEIZE + PTRACE_INTERRUPT and lets it go; a thread stopped
    this way runs on by itself if this process dies."""

    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.restype = ctypes.c_long
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

    def stop(self, tid: int) -> int | None:
        """Stop ``tid``; the signal to hand back when it is let go (0: none), or None if it
        could not be stopped (it ended, or another tracer holds it)."""
        if self.libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
            return None
        if self.libc.ptrace(PTRACE_INTERRUPT, tid, None, None) != 0:
            self.go(tid, 0)
            return None
        try:
            _, status = os.waitpid(tid, WAIT_ALL_THREADS)
        except ChildProcessError:
            return None
        if not os.WIFSTOPPED(status):
            return None  # it exited meanwhile
        # a signal that arrived first stopped it for delivery: it is passed on when let go
        return 0 if status >> 16 == PTRACE_EVENT_STOP else os.WSTOPSIG(status)

    def go(self, tid: int, signal_number: int) -> None:
        self.libc.ptrace(PTRACE_DETACH, tid, None, ctypes.c_void_p(signal_number or None))


class Libdw:
    """The few libdw calls an unwind needs."""

    FRAME_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

    class Callbacks(ctypes.Structure):
        _fields_ = [("find_elf", ctypes.c_void_p), ("find_debuginfo", ctypes.c_void_p),
                    ("section_address", ctypes.c_void_p), ("debuginfo_path", ctypes.c_void_p)]

    def __init__(self, pid: int):
        dw = self.dw = ctypes.CDLL("libdw.so.1")
        self.callbacks = self.Callbacks(ctypes.cast(dw.dwfl_linux_proc_find_elf, ctypes.c_void_p).value,
                                        ctypes.cast(dw.dwfl_standard_find_debuginfo, ctypes.c_void_p).value,
                                        None, None)
        dw.dwfl_begin.restype = ctypes.c_void_p
        dw.dwfl_begin.argtypes = [ctypes.c_void_p]
        dw.dwfl_linux_proc_report.argtypes = [ctypes.c_void_p, ctypes.c_int]
        dw.dwfl_report_end.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        dw.dwfl_linux_proc_attach.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_bool]
        dw.dwfl_getthread_frames.argtypes = [ctypes.c_void_p, ctypes.c_int, self.FRAME_CALLBACK, ctypes.c_void_p]
        dw.dwfl_frame_pc.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_bool)]
        dw.dwfl_frame_pc.restype = ctypes.c_bool
        dw.dwfl_errmsg.restype = ctypes.c_char_p
        dw.dwfl_errmsg.argtypes = [ctypes.c_int]
        dw.dwfl_end.argtypes = [ctypes.c_void_p]
        self.dwfl = dw.dwfl_begin(ctypes.byref(self.callbacks))
        if dw.dwfl_linux_proc_report(self.dwfl, pid) != 0:
            raise OSError(f"libdw could not read the modules of {pid}: {dw.dwfl_errmsg(-1).decode()}")
        dw.dwfl_report_end(self.dwfl, None, None)
        # True: the threads are stopped by the sampler itself (Seized), libdw only reads them
        if dw.dwfl_linux_proc_attach(self.dwfl, pid, True) != 0:
            raise OSError(f"libdw could not attach to {pid}: {dw.dwfl_errmsg(-1).decode()}")
        self._pcs: list[int] = []
        self._seized = Seized()
        self._callback = self.FRAME_CALLBACK(self._frame)
        self.while_stopped = None  # called once per unwind, while libdw holds the thread stopped

    def _frame(self, state, _arg) -> int:
        if not self._pcs and self.while_stopped is not None:
            self.while_stopped()
        pc, activation = ctypes.c_uint64(), ctypes.c_bool()
        if not self.dw.dwfl_frame_pc(state, ctypes.byref(pc), ctypes.byref(activation)):
            return DWARF_CB_ABORT
        # a return address points after the call: step back into the calling line
        self._pcs.append(pc.value if activation.value else pc.value - 1)
        return DWARF_CB_OK if len(self._pcs) < MAX_FRAMES else DWARF_CB_ABORT

    def stack(self, tid: int) -> tuple[int, ...]:
        """The thread's return addresses, innermost first (empty when it could not be stopped)."""
        self._pcs = []
        pending = self._seized.stop(tid)
        if pending is None:
            return ()
        try:
            self.dw.dwfl_getthread_frames(self.dwfl, tid, self._callback, None)
        finally:
            self._seized.go(tid, pending)
        return tuple(self._pcs)

    def close(self) -> None:
        self.dw.dwfl_end(self.dwfl)


class NativeThreadRecording:
    """This sampler as a child process of the profiled one, for the length of a cell."""

    def __init__(self, pid: int, rate: float, excluded: set[int], tracer_after: int | None = None,
                 python: bool = False, idle: bool = False):
        import tempfile

        self.pid, self.tracer_after = pid, tracer_after
        self.out = os.path.join(tempfile.mkdtemp(prefix="pyo3-debug-magic-threads-"), "threads.txt")
        from pyo3_debug_magic.tools import declare_tracer, isolated_module

        # isolated, from "/": it holds ptrace rights over the kernel, so it imports nothing
        # from the notebook's folder (a planted ctypes.py or pyo3_debug_magic/ there)
        self.process = subprocess.Popen(
            isolated_module("pyo3_debug_magic.profiling.sampler", str(pid), str(rate), self.out,
                            *(["--python"] if python else []), *(["--idle"] if idle else []),
                            *map(str, sorted(excluded))),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True, cwd="/")

        declare_tracer(pid, self.process.pid)
        # sampling starts once it says so (a SIGINT before its handler would end it unsaid);
        # bounded: a sampler that never says so is stopped, and says why
        import select

        said = select.select([self.process.stdout], [], [], READY_TIMEOUT)[0]
        self.ready = bool(said) and self.process.stdout.readline().strip() == "ready"
        if not said:
            self.process.kill()

    def stop(self, timeout: float = 120.0) -> "SamplerResult":
        """What was sampled (symbolizing takes a moment), or why nothing was."""
        import shutil

        from pyo3_debug_magic.tools import declare_tracer

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            _, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        declare_tracer(self.pid, self.tracer_after)
        try:
            with open(self.out) as result:
                first, _, text = result.read().partition("\n")
            words = first.split(maxsplit=6)
            result = SamplerResult(text, int(words[2]), int(words[4]), None, words[6] if len(words) > 6 else None)
        except (OSError, ValueError, IndexError):
            said = (stderr or "").strip().splitlines()[-1:] or [f"exit status {self.process.returncode}"]
            result = SamplerResult("", 0, 0, said[0])
        shutil.rmtree(os.path.dirname(self.out), ignore_errors=True)
        return result


class SamplerResult(NamedTuple):
    text: str                         # collapsed stacks
    missed: int                       # samples of threads it could not stop
    mismatched: int                   # samples whose Python and native frames did not line up
    problem: str | None               # why nothing was sampled
    python_problem: str | None = None  # why Python frames could not be read


def sample(pid: int, rate: float, excluded: set[int], out: str, python: bool = False, idle: bool = False) -> None:
    stopping = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    libdw = Libdw(pid)
    reader, problem = _frame_reader(pid) if python else (None, None)
    print("ready", flush=True)
    counts: Counter = Counter()
    names: dict[int, str] = {}
    missed = 0
    interval = 1.0 / rate
    next_round = time.monotonic()
    current: dict = {}
    if reader is not None:
        libdw.while_stopped = lambda: current.__setitem__(
            "python", reader.frames(current["tstate"]) if current.get("tstate") else ())
    try:
        while not stopping:
            states = reader.by_os_thread() if reader is not None else {}
            for tid, task in threads_of(pid).items():
                if tid in excluded or (task.state != "R" and not idle):
                    continue
                names[tid] = task.name
                current.clear()
                current["tstate"] = states.get(tid)
                pcs = libdw.stack(tid)
                if pcs:
                    counts[(tid, pcs, current.get("python", ()))] += 1
                else:
                    missed += 1  # py-spy held the thread, or it ended
            next_round += interval
            time.sleep(max(0.0, next_round - time.monotonic()))
        text, mismatched = collapsed(counts, names, pid)
    finally:
        libdw.close()
    with open(out + ".part", "w") as result:
        result.write(f"# missed {missed} mismatched {mismatched} problem {problem or ''}\n{text}")
    os.replace(out + ".part", out)


def _frame_reader(pid: int):
    """A reader of ``pid``'s Python frames (same Python build as this process), or why not."""
    from pyo3_debug_magic.stacks import pyframes

    try:
        layout = pyframes.discover()
        path, offset = pyframes.runtime_offset()
        start = next((s for s, _, file_offset, p in mappings(pid) if p == path and file_offset == 0), None)
        if start is None:
            raise pyframes.UnsupportedLayout(f"{pid} does not map {path}: another Python build")
        reader = pyframes.FrameReader(pid, layout, start + offset)
        if pid not in reader.by_os_thread():
            raise pyframes.UnsupportedLayout("its main thread was not found in its thread list")
        return reader, None
    except (pyframes.UnsupportedLayout, OSError) as error:
        return None, str(error)


if __name__ == "__main__":
    flags = {a for a in sys.argv[4:] if a.startswith("--")}
    try:
        sample(int(sys.argv[1]), float(sys.argv[2]), {int(t) for t in sys.argv[4:] if not t.startswith("--")},
               sys.argv[3], python="--python" in flags, idle="--idle" in flags)
    except OSError as error:
        print(f"{error}; install elfutils' libdw (`sudo apt-get install libdw1`)"
              if "libdw" in str(error) else str(error), file=sys.stderr)
        sys.exit(2)
