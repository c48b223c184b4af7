"""Fixtures: the demo crate (built once), an in-process IPython shell, real Jupyter kernels."""
from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from harness import LIB_RS, ROOT, SCREENSHOTS, KernelHarness, build_lock, descendants_of, kill_all

DEMO_CRATE = ROOT / "examples" / "rustdemo"
UNIT_TIER = Path(__file__).resolve().parent / "unit"  # pure tests: no gdb, no kernel, no set-up
# the fixtures that start a real gdb or kernel mark the tests that use them
KERNEL_FIXTURES = {"kernel", "loaded_kernel"}
GDB_FIXTURES = {"gdb_path", "demo_crate", "loaded_kernel", "release_demo"}
RELEASE_BUILD = DEMO_CRATE / "target" / "profile-release"
WORKER_STATE = pytest.StashKey[str]()  # a pytest-xdist worker's state directory


@dataclass(frozen=True)
class DemoCrate:
    extension: Path  # the built rustdemo .so
    source: Path     # src/lib.rs


@pytest.fixture(scope="session")
def demo_crate() -> DemoCrate:
    """The demo crate, built with debug info once per session (setup.sh skips it when current)."""
    with build_lock():  # two pytest-xdist workers: one builds, the other finds it current
        build = subprocess.run(["bash", "-c", 'bash "$0/setup.sh" && bash "$0/setup_tests.sh"', str(ROOT / "scripts")],
                               capture_output=True, text=True, timeout=1800)
    if build.returncode != 0:
        pytest.fail(f"building the demo crate failed:\n{build.stdout}\n{build.stderr}")
    import rustdemo  # noqa: PLC0415 - only after the build

    extension = next(Path(rustdemo.__file__).parent.glob("rustdemo*.so"))
    return DemoCrate(extension=extension, source=LIB_RS)


@pytest.fixture(scope="session")
def release_demo(demo_crate) -> Path:
    """The demo crate built with `--release` (debug info kept), unpacked where PYTHONPATH finds
    it: what a PyO3 author profiles (py-spy unwinds a dev build poorly, and it is not the code
    that ships)."""
    env = {**os.environ, "CARGO_TARGET_DIR": str(RELEASE_BUILD / "cargo")}
    with build_lock():
        build = subprocess.run([str(Path(sys.executable).parent / "maturin"), "build", "--release",
                                "-o", str(RELEASE_BUILD / "wheels"), "-i", sys.executable],
                               cwd=DEMO_CRATE, env=env, capture_output=True, text=True, timeout=900)
        assert build.returncode == 0, build.stderr[-3000:]
        wheel = max((RELEASE_BUILD / "wheels").glob("rustdemo-*.whl"), key=lambda p: p.stat().st_mtime)
        # one folder per build's content, never written over: another worker's kernel may have
        # the .so of an earlier extraction mapped (a file rewritten under it is a SIGBUS)
        with zipfile.ZipFile(wheel) as archive:
            names = sorted((info.filename, info.CRC) for info in archive.infolist())
            site = RELEASE_BUILD / f"site-{hashlib.sha256(repr(names).encode()).hexdigest()[:16]}"
            if not site.exists():
                partial = Path(tempfile.mkdtemp(dir=RELEASE_BUILD, prefix=".site-"))
                archive.extractall(partial)
                partial.rename(site)
        # `site`: the latest build, where the README's profile benchmark command looks
        link = RELEASE_BUILD / f".site-link-{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(site.name)
        if (RELEASE_BUILD / "site").is_dir() and not (RELEASE_BUILD / "site").is_symlink():
            shutil.rmtree(RELEASE_BUILD / "site")  # an unpacked folder an earlier suite left
        link.rename(RELEASE_BUILD / "site")
    return site


@pytest.fixture(scope="session")
def gdb_path() -> str:
    """gdb is required: a test that needs it fails (never skips) when it is missing."""
    from pyo3_debug_magic.errors import GdbNotFoundError
    from pyo3_debug_magic.tools import find_gdb

    try:
        return find_gdb()
    except GdbNotFoundError as error:
        pytest.fail(f"this test needs gdb: {error}")


@pytest.fixture
def shell():
    """An in-process IPython InteractiveShell with the extension unloaded after the test."""
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    yield ip
    if "pyo3_debug_magic" in ip.extension_manager.loaded:
        ip.run_line_magic("unload_ext", "pyo3_debug_magic")
    from pyo3_debug_magic.debugger import get_debugger

    get_debugger().close()


@pytest.fixture
def kernel(demo_crate):
    """A real ipykernel (jupyter_client, IPC transport) with the demo crate importable."""
    harness = KernelHarness()
    try:
        yield harness
    finally:
        harness.shutdown()


@pytest.fixture
def loaded_kernel(demo_crate):
    """A real kernel with the extension loaded and rustdemo imported; at the end nothing it
    started (agent, gdb) may outlive it."""
    harness = KernelHarness()
    try:
        loaded = harness.run("%load_ext pyo3_debug_magic\nimport rustdemo")
        assert loaded.status == "ok", loaded.text
        yield harness
    finally:
        assert harness.shutdown() == [], "the agent or gdb outlived the kernel"


def in_unit_tier(path) -> bool:
    return UNIT_TIER in Path(str(path)).parents


@pytest.fixture(autouse=True)
def no_stray_processes(request):
    """Whatever a test started (agents, gdb, py-spy) is gone after it, killed if need be."""
    if in_unit_tier(request.node.path):
        yield
        return
    before = set(descendants_of(os.getpid()))
    yield
    stray = [pid for pid in descendants_of(os.getpid()) if pid not in before]
    kill_all(stray)


def pytest_collection_modifyitems(config, items):
    """Every test that starts a real kernel or gdb through a fixture carries its marker, and a
    test in the unit tier may use neither; ``--phase`` keeps or leaves out the serial ones."""
    phase = config.getoption("--phase")
    if phase != "all":
        keep = [item for item in items if (item.get_closest_marker("serial") is not None) == (phase == "serial")]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if in_unit_tier(item.path):
            heavy = fixtures & (KERNEL_FIXTURES | GDB_FIXTURES | {"shell"})
            if heavy:
                raise pytest.UsageError(f"{item.nodeid} is in the unit tier but uses {sorted(heavy)}: move it up")
            item.add_marker(pytest.mark.unit)
            continue
        if fixtures & KERNEL_FIXTURES:
            item.add_marker(pytest.mark.kernel)
        if fixtures & GDB_FIXTURES:
            item.add_marker(pytest.mark.gdb)


def pytest_addoption(parser):
    parser.addoption("--phase", choices=("all", "parallel", "serial"), default="all",
                     help="parallel: leave out the tests marked serial (they measure time or change a "
                          "shared file); serial: only those. scripts/test.sh runs the first on two "
                          "workers (pytest-xdist), then the second alone.")


def pytest_configure(config):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and not os.environ.get("PYO3_DEBUG_MAGIC_STATE"):
        # each worker's kernels keep their crash reports, helper logs and remembered source
        # folders apart: one worker's crashed kernel is never another's "previous kernel"
        os.environ["PYO3_DEBUG_MAGIC_STATE"] = tempfile.mkdtemp(prefix=f"pyo3-debug-magic-state-{worker}-")
        config.stash[WORKER_STATE] = os.environ["PYO3_DEBUG_MAGIC_STATE"]
    # Kernels the tests crash on purpose run in the checkout: no core dumps from them (on a
    # machine with `ulimit -c unlimited` and core_pattern "core" each would leave one there).
    # %native_core's tests write their cores with gdb's generate-core-file, to tmp_path.
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))


def core_files() -> set[Path]:
    """Core dumps inside the checkout (outside its virtualenvs and build folders)."""
    skip = {".venv", ".venv-debian", ".venv-ipykernel6", "target", ".git"}
    found = set()
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in skip]
        found.update(Path(folder) / f for f in files if f == "core" or re.fullmatch(r"core\.\d+", f))
    return found


@pytest.fixture(autouse=True)
def no_core_files_left(request):
    """A test that crashes a process must not leave its core dump in the checkout (the unit
    tier crashes nothing: the walk of the checkout is left out there)."""
    if in_unit_tier(request.node.path):
        yield
        return
    before = core_files()
    yield
    left = core_files() - before
    for path in left:
        path.unlink()  # reported once, not again by every later test
    assert not left, f"this test left core dumps in the checkout: {sorted(map(str, left))}"


class ReliabilityFigures:
    """What the reliability tests did, printed at the end of the run (issue: never cost the kernel)."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self.faults: list[tuple[str, str]] = []
        self.cycle_rows: list[tuple[int, int, int]] = []
        self.fuzz: dict[str, int] = {}
        self.injection = [0, 0]

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def fault(self, what: str, outcome: str) -> None:
        self.faults.append((what, outcome))

    def cycles(self, n: int, leaked_descriptors: int, leaked_threads: int) -> None:
        self.cycle_rows.append((n, leaked_descriptors, leaked_threads))

    def fuzzed(self, magic: str, n: int) -> None:
        self.fuzz[magic] = self.fuzz.get(magic, 0) + n

    def injections(self, attempted: int, blocked: int) -> None:
        self.injection[0] += attempted
        self.injection[1] += blocked

    def lines(self) -> list[str]:
        out = []
        for n, fds, threads in self.cycle_rows:
            out.append(f"attach/detach cycles completed: {n}; descriptors leaked: {max(fds, 0)}; "
                       f"threads leaked: {max(threads, 0)}")
        for what, outcome in self.faults:
            out.append(f"fault injected: {what} -> {outcome}")
        if self.fuzz:
            out.append(f"fuzz cases run: {sum(self.fuzz.values())} "
                       f"({', '.join(f'%{m} {n}' for m, n in sorted(self.fuzz.items()))})")
        if self.injection[0]:
            out.append(f"injections attempted: {self.injection[0]}, blocked: {self.injection[1]}")
        out += [f"{what}: {n}" for what, n in self.counts.items()]
        return out


_FIGURES = ReliabilityFigures()
_WORKER_FIGURES: list[str] = []  # what each pytest-xdist worker's reliability tests did


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a worker: its figures go to the controller, which prints them
        workeroutput["reliability"] = _FIGURES.lines()
    state = session.config.stash.get(WORKER_STATE, None)
    if state is not None:  # the worker's own state directory, made in pytest_configure
        shutil.rmtree(state, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _WORKER_FIGURES.extend(getattr(node, "workeroutput", {}).get("reliability", []))


@pytest.fixture
def reliability() -> ReliabilityFigures:
    return _FIGURES


_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """Setup, call and teardown time of every test, summed by test file (printed at the end)."""
    path = report.nodeid.split("::")[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if _FILE_SECONDS:
        terminalreporter.section("seconds per test file")
        for path, seconds in sorted(_FILE_SECONDS.items(), key=lambda item: -item[1]):
            terminalreporter.write_line(f"{seconds:8.1f}  {path}")
    if SCREENSHOTS:
        terminalreporter.section("browser screenshots")
        for path in SCREENSHOTS:
            terminalreporter.write_line(path)
    lines = _FIGURES.lines() + _WORKER_FIGURES
    if lines:
        terminalreporter.section("reliability")
        for line in lines:
            terminalreporter.write_line(line)
