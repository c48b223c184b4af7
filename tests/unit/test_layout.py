"""The layout the README's table promises: small modules, one concern each, data flowing one way."""
from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pyo3_debug_magic"
MAX_LINES = 400
MI_COMMANDS = ("-exec-", "-break-", "-stack-", "-data-", "-thread-", "-target-", "-file-", "-symbol-")


# the helper process runs these; the kernel side must never import them
HELPER = "pyo3_debug_magic.agent"
# the kernel side's front ends and API: the helper must never import them (not even through
# a module it imports)
KERNEL_ONLY = ("pyo3_debug_magic.debugger", "pyo3_debug_magic.session", "pyo3_debug_magic.config",
               "pyo3_debug_magic.notebook", "pyo3_debug_magic.pytest_plugin")
THIRD_PARTY_FRONT_ENDS = ("IPython", "ipykernel", "ipywidgets", "traitlets", "pytest")


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def graph() -> dict[str, set[str]]:
    """Each module of ours to the modules of ours it imports, anywhere in its body (an import
    inside a function is still an edge)."""
    ours = {module_name(p): p for p in modules()}
    edges = {}
    for name, path in ours.items():
        found = set()
        for imported in imports_of(path):
            while imported and imported not in ours:
                imported = imported.rpartition(".")[0]  # `from pkg.mod import name` -> pkg.mod
            if imported and imported != name:
                found.add(imported)
        edges[name] = found
    return edges


def reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against the package."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            # `from pkg import module` imports the module; `from pkg import name`, pkg itself
            submodules = {f"{module}.{alias.name}" for alias in node.names if _is_module(f"{module}.{alias.name}")}
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(module)
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_about_400_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it by concern"


@pytest.mark.parametrize("path", sorted((PACKAGE / "render").glob("*.py")), ids=lambda p: p.name)
def test_renderers_import_only_the_model(path):
    for name in imports_of(path):
        top = name.split(".")[0]
        if top == "pyo3_debug_magic":
            assert name.startswith(("pyo3_debug_magic.model", "pyo3_debug_magic.render")), \
                f"render/{path.name} imports {name}: renderers format model objects only"
        else:
            assert top in sys.stdlib_module_names or top in ("pygments", "__future__"), \
                f"render/{path.name} imports {name}"


def test_the_agent_server_only_dispatches():
    source = (PACKAGE / "agent" / "server.py").read_text()
    assert not [c for c in MI_COMMANDS if c in source], "server.py sends MI commands: move them to their module"


def test_no_import_circle():
    """No module reaches itself through what it imports (imports inside functions included)."""
    edges = graph()
    circles = sorted(name for name in edges if name in reachable(name, edges))
    assert not circles, f"modules in an import circle: {circles}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_kernel_side_never_imports_the_helper(path):
    name = module_name(path)
    if name.startswith(HELPER):
        return
    helper = sorted(i for i in imports_of(path) if i == HELPER or i.startswith(HELPER + "."))
    assert not helper, f"{name} imports the helper's {helper}: move what both need below both"


@pytest.mark.parametrize("path", sorted((PACKAGE / "agent").glob("*.py")), ids=lambda p: p.name)
def test_the_helper_never_imports_the_kernel_side(path):
    """Not directly, nor through anything it imports: the helper runs without IPython, and a
    kernel-side change cannot reach into it."""
    name = module_name(path)
    edges = graph()
    kernel = sorted(m for m in reachable(name, edges) | {name} if m.startswith(KERNEL_ONLY))
    assert not kernel, f"{name} reaches the kernel side: {kernel}"
    paths = {module_name(p): p for p in modules()}
    for module in reachable(name, edges) | {name}:
        third = {i.split(".")[0] for i in imports_of(paths[module])} & set(THIRD_PARTY_FRONT_ENDS)
        assert not third, f"{name} reaches {module}, which imports {sorted(third)}"


@pytest.mark.parametrize("folder", ["gdb", "breakpoints", "stacks", "crash", "profiling", "refchecker", "prompt",
                                    "model", "render"])
def test_shared_folders_sit_below_both_sides(folder):
    """What the helper and the kernel side share imports neither of them."""
    edges = graph()
    for name in (m for m in edges if m.startswith(f"pyo3_debug_magic.{folder}")):
        above = sorted(i for i in edges[name] if i.startswith(KERNEL_ONLY) or i.startswith(HELPER))
        assert not above, f"{name} imports {above}"


@pytest.mark.parametrize("name", ["notebook/magics.py", "notebook/console.py", "notebook/kernel_hooks.py",
                                  "stacks/backtrace.py", "debugger.py", "prompt/commands.py"])
def test_kernel_side_never_drives_gdb_or_subprocesses(name):
    imported = imports_of(PACKAGE / name)
    assert not {i for i in imported if i.startswith("pyo3_debug_magic.agent")}, f"{name} imports the agent"
    assert "subprocess" not in imported and "pygdbmi" not in imported


@pytest.mark.parametrize("path", sorted((PACKAGE / "render").glob("*.py")), ids=lambda p: p.name)
def test_renderers_read_no_files_but_their_own_templates(path):
    """A renderer is a pure function of the model: source lines travel on it (``SourceLines``);
    only the flamegraph reads its package's template files."""
    source = path.read_text().replace("(TEMPLATES / name).read_text(", "") if path.name == "flamegraph.py" \
        else path.read_text()
    reads = [word for word in ("open(", "read_text(", "read_bytes(", "linecache", "os.") if word in source]
    assert not reads, f"render/{path.name} reads files ({reads}): put what it shows on the model"


def test_no_module_hides_a_public_name_of_the_package():
    """``from pyo3_debug_magic import refcheck`` is the function: a subpackage of that name
    would be imported in its place."""
    import pyo3_debug_magic

    hidden = [name for name in pyo3_debug_magic.__all__ if _is_module(f"pyo3_debug_magic.{name}")]
    assert not hidden, f"modules named like the package's public names: {hidden}"
    assert callable(getattr(pyo3_debug_magic, "refcheck"))
