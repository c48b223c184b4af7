"""Samples the stacks of the threads py-spy cannot see (threads that never run Python: Rust
``std::thread`` workers, rayon pools), with elfutils' unwinder (libdw, through ctypes).

Runs as its own process (a process may not ptrace its own threads):
``python -m pyo3_debug_magic.native_sampler PID RATE OUT [EXCLUDED_TID ...]``. Each round it
lists the process's threads, and for each one not excluded libdw attaches, unwinds and lets go
(a fraction of a millisecond); SIGINT ends it. OUT gets the stacks in py-spy's collapsed
format (``thread (TID): NAME;outermost (file:line);...;innermost (file:line) COUNT``),
symbolized by ``addr2line`` at the end, inlined frames included.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import Counter

MAX_FRAMES = 256
DWARF_CB_OK, DWARF_CB_ABORT = 0, 1


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
        if dw.dwfl_linux_proc_attach(self.dwfl, pid, False) != 0:
            raise OSError(f"libdw could not attach to {pid}: {dw.dwfl_errmsg(-1).decode()}")
        self._pcs: list[int] = []
        self._callback = self.FRAME_CALLBACK(self._frame)

    def _frame(self, state, _arg) -> int:
        pc, activation = ctypes.c_uint64(), ctypes.c_bool()
        if not self.dw.dwfl_frame_pc(state, ctypes.byref(pc), ctypes.byref(activation)):
            return DWARF_CB_ABORT
        # a return address points after the call: step back into the calling line
        self._pcs.append(pc.value if activation.value else pc.value - 1)
        return DWARF_CB_OK if len(self._pcs) < MAX_FRAMES else DWARF_CB_ABORT

    def stack(self, tid: int) -> tuple[int, ...]:
        """The thread's return addresses, innermost first (empty when it could not be stopped)."""
        self._pcs = []
        self.dw.dwfl_getthread_frames(self.dwfl, tid, self._callback, None)
        return tuple(self._pcs)

    def close(self) -> None:
        self.dw.dwfl_end(self.dwfl)


def threads_of(pid: int) -> dict[int, str]:
    found = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as comm:
                found[int(task)] = comm.read().strip()
        except OSError:
            pass
    return found


def mappings(pid: int) -> list[tuple[int, int, int, str]]:
    """(start, end, file offset, path) of the file-backed mappings."""
    maps = []
    with open(f"/proc/{pid}/maps") as lines:
        for line in lines:
            parts = line.split()
            if len(parts) >= 6 and (parts[5].startswith("/") or parts[5] == "[vdso]"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                maps.append((start, end, int(parts[2], 16), parts[5]))
    return maps


def symbolize(pcs: set[int], maps) -> dict[int, list[str]]:
    """Each address as frames ``name (file:line)``, innermost inlined frame first."""
    by_module: dict[str, dict[int, int]] = {}
    for pc in pcs:
        for start, end, offset, path in maps:
            if start <= pc < end:
                by_module.setdefault(path, {})[pc] = pc - start + offset
                break
    names: dict[int, list[str]] = {}
    for path, offsets in by_module.items():
        ordered = list(offsets.items())
        if not path.startswith("/"):  # the vdso: no file to read symbols from
            names.update({pc: [f"[vdso] ({path})"] for pc, _ in ordered})
            continue
        try:
            out = subprocess.run(["addr2line", "-a", "-f", "-i", "-C", "-e", path,
                                  *[hex(_relative(path, o)) for _, o in ordered]],
                                 capture_output=True, text=True, timeout=60).stdout.splitlines()
        except (OSError, subprocess.TimeoutExpired):
            out = []
        blocks, current = [], None
        for line in out:
            if line.startswith("0x") and all(c in "0123456789abcdefx" for c in line):
                current = []
                blocks.append(current)
            elif current is not None:
                current.append(line)
        for (pc, _), block in zip(ordered, blocks):
            frames = []
            for function, where in zip(block[::2], block[1::2]):
                where = where.split(" (discriminator")[0]
                file, _, line = where.rpartition(":")
                if function == "??":
                    function = hex(pc)
                frames.append(f"{function} ({file if file and file != '??' else path}:{line if line.isdigit() else 0})")
            names[pc] = frames or [f"{hex(pc)} ({path})"]
    return names


_load_bias: dict[str, int] = {}


def _relative(path: str, file_offset: int) -> int:
    """addr2line wants addresses as the ELF file lays them out: a file offset in an executable
    segment becomes its virtual address (p_vaddr - p_offset added)."""
    if path not in _load_bias:
        _load_bias[path] = _segment_bias(path)
    return file_offset + _load_bias[path]


def _segment_bias(path: str) -> int:
    try:
        from elftools.elf.elffile import ELFFile

        with open(path, "rb") as stream:
            for segment in ELFFile(stream).iter_segments():
                if segment["p_type"] == "PT_LOAD" and segment["p_flags"] & 1:  # executable
                    return segment["p_vaddr"] - segment["p_offset"]
    except Exception:  # noqa: BLE001 - not an ELF we can read: plain offsets
        pass
    return 0


def collapsed(counts: Counter, names: dict[int, str], pid: int) -> str:
    maps = mappings(pid)
    symbols = symbolize({pc for _, pcs in counts for pc in pcs}, maps)
    lines = []
    for (tid, pcs), count in counts.items():
        frames = []
        for pc in reversed(pcs):  # outermost first
            frames.extend(reversed(symbols.get(pc, [f"{hex(pc)} (?)"])))
        # a Rust thread's start-up (clone, pthread, std's spawn closures) down to the closure it runs
        start = max((i for i, f in enumerate(frames) if f.startswith("std::sys::backtrace::__rust_begin_short_backtrace")),
                    default=-1)
        frames = frames[start + 1:] or frames
        lines.append(f"thread ({tid}): {names.get(tid, '?')};{';'.join(frames)} {count}")
    return "\n".join(lines) + "\n"


class NativeThreadRecording:
    """This sampler as a child process of the profiled one, for the length of a cell."""

    def __init__(self, pid: int, rate: float, excluded: set[int], tracer_after: int | None = None):
        import tempfile

        self.pid, self.tracer_after = pid, tracer_after
        self.out = os.path.join(tempfile.mkdtemp(prefix="pyo3-debug-magic-threads-"), "threads.txt")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyo3_debug_magic.native_sampler", str(pid), str(rate), self.out,
             *map(str, sorted(excluded))], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True)
        from .tools import allow_tracer, read_ptrace_scope

        if read_ptrace_scope() == 1 and pid == os.getpid():
            allow_tracer(self.process.pid)
        # sampling starts once it says so (a SIGINT before its handler would end it unsaid)
        self.ready = self.process.stdout.readline().strip() == "ready"

    def stop(self, timeout: float = 60.0) -> tuple[str, int, str | None]:
        """(collapsed stacks, threads it could not stop, why it failed or None)."""
        import shutil

        from .tools import allow_tracer, read_ptrace_scope

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            _, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        if read_ptrace_scope() == 1 and self.pid == os.getpid():
            allow_tracer(self.tracer_after or 0)
        try:
            with open(self.out) as result:
                first, _, text = result.read().partition("\n")
            missed = int(first.split()[-1])
            problem = None
        except (OSError, ValueError, IndexError):
            text, missed = "", 0
            problem = (stderr or "").strip().splitlines()[-1:] or [f"exit status {self.process.returncode}"]
            problem = problem[0]
        shutil.rmtree(os.path.dirname(self.out), ignore_errors=True)
        return text, missed, problem


def sample(pid: int, rate: float, excluded: set[int], out: str) -> None:
    stopping = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    libdw = Libdw(pid)
    print("ready", flush=True)
    counts: Counter = Counter()
    names: dict[int, str] = {}
    missed = 0
    interval = 1.0 / rate
    next_round = time.monotonic()
    try:
        while not stopping:
            for tid, name in threads_of(pid).items():
                if tid in excluded:
                    continue
                names[tid] = name
                pcs = libdw.stack(tid)
                if pcs:
                    counts[(tid, pcs)] += 1
                else:
                    missed += 1  # py-spy held the thread, or it ended
            next_round += interval
            time.sleep(max(0.0, next_round - time.monotonic()))
        text = collapsed(counts, names, pid)
    finally:
        libdw.close()
    with open(out + ".part", "w") as result:
        result.write(f"# missed {missed}\n{text}")
    os.replace(out + ".part", out)


if __name__ == "__main__":
    try:
        sample(int(sys.argv[1]), float(sys.argv[2]), {int(t) for t in sys.argv[4:]}, sys.argv[3])
    except OSError as error:
        print(f"{error}; install elfutils' libdw (`sudo apt-get install libdw1`)"
              if "libdw" in str(error) else str(error), file=sys.stderr)
        sys.exit(2)
