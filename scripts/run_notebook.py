"""Execute a notebook in a real Jupyter kernel and print each cell with what it showed.

Usage: python scripts/run_notebook.py NOTEBOOK [--output EXECUTED.ipynb] [--timeout S]
Exits non-zero if a cell raised.
"""
from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from jupyter_core.paths import jupyter_runtime_dir
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


class IpcKernelManager(KernelManager):
    """The kernel's channels are files in Jupyter's private runtime dir, not TCP ports.

    The path is absolute: an IPC "ip" is a file prefix, and the kernel may run in another cwd.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("transport", "ipc")
        runtime = Path(jupyter_runtime_dir())
        runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        kwargs.setdefault("ip", str(runtime / f"kernel-ipc-{uuid.uuid4().hex}"))
        super().__init__(**kwargs)


def output_text(output) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return output.get("text", "")
    if kind in ("execute_result", "display_data"):
        return output.get("data", {}).get("text/plain", "") + "\n"
    if kind == "error":
        return f"{output.get('ename')}: {output.get('evalue')}\n"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--timeout", type=int, default=300, help="per-cell timeout in seconds")
    options = parser.parse_args()

    notebook = nbformat.read(options.notebook, as_version=4)
    client = NotebookClient(notebook, kernel_manager_class=IpcKernelManager, timeout=options.timeout,
                            resources={"metadata": {"path": str(options.notebook.parent)}})
    failed = None
    try:
        client.execute()
    except CellExecutionError as error:
        failed = error
    finally:
        if options.output:
            options.output.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, options.output)

    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        print(f"In [{index}]: " + cell.source.replace("\n", "\n        "))
        shown = "".join(output_text(output) for output in cell.get("outputs", []))
        if shown.strip():
            print("    " + shown.rstrip("\n").replace("\n", "\n    "))
        print()
    if options.output:
        print(f"executed notebook written to {options.output}")
    if failed is not None:
        print(f"a cell failed:\n{failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
