"""The layout the README's table promises: small modules, one concern each, data flowing one way."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pyo3_debug_magic"
MAX_LINES = 420  # "about 400"
MI_COMMANDS = ("-exec-", "-break-", "-stack-", "-data-", "-thread-", "-target-", "-file-", "-symbol-")


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against the package."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1])
                found.add(".".join(base + ([node.module] if node.module else [])))
                if not node.module:
                    found.update(".".join(base + [alias.name]) for alias in node.names)
            else:
                found.add(node.module)
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_about_400_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it by concern"


@pytest.mark.parametrize("path", sorted((PACKAGE / "render").glob("*.py")), ids=lambda p: p.name)
def test_renderers_import_only_the_model(path):
    allowed_ours = {"pyo3_debug_magic.model", "pyo3_debug_magic.render"}
    for name in imports_of(path):
        top = name.split(".")[0]
        if top == "pyo3_debug_magic":
            assert name in allowed_ours or name.startswith("pyo3_debug_magic.render."), \
                f"render/{path.name} imports {name}: renderers format model objects only"
        else:
            assert top in sys.stdlib_module_names or top in ("pygments", "__future__"), \
                f"render/{path.name} imports {name}"


def test_the_agent_server_only_dispatches():
    source = (PACKAGE / "agent" / "server.py").read_text()
    assert not [c for c in MI_COMMANDS if c in source], "server.py sends MI commands: move them to their module"


@pytest.mark.parametrize("name", ["magics.py", "console.py", "kernel_hooks.py", "backtrace.py", "debugger.py"])
def test_kernel_side_never_drives_gdb_or_subprocesses(name):
    imported = imports_of(PACKAGE / name)
    assert not {i for i in imported if i.startswith("pyo3_debug_magic.agent")}, f"{name} imports the agent"
    assert "subprocess" not in imported and "pygdbmi" not in imported
