"""Execute a notebook in a real Jupyter kernel and print each cell with what it showed.

Usage: python scripts/run_notebook.py NOTEBOOK [--output EXECUTED.ipynb] [--timeout S]
Exits non-zero if a cell raised. A cell whose metadata has ``pyo3_answers`` (a list of lines)
may ask for input (a native pause's ``(native)`` prompt): each prompt is answered with the
next line, as a user typing in the cell's input box would; the others run without stdin.
"""
from __future__ import annotations

import argparse
import queue
import sys
import threading
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


class AnsweringClient(NotebookClient):
    """nbclient, with the prompts of cells that carry ``pyo3_answers`` answered. The kernel
    client's channels block, so the answers come from a thread of their own, which alone uses
    the stdin channel (nbclient never does)."""

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        answers = list(cell.get("metadata", {}).get("pyo3_answers", []))
        if not answers or self.kc is None:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        self.kc.allow_stdin = True
        done = threading.Event()
        answering = threading.Thread(target=self._answer, args=(answers, done), daemon=True)
        answering.start()
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            done.set()
            answering.join(5)
            self.kc.allow_stdin = False

    def _answer(self, answers: list[str], done: threading.Event) -> None:
        while not done.is_set():
            try:
                self.kc.stdin_channel.get_msg(timeout=0.1)
            except queue.Empty:
                continue
            self.kc.input(answers.pop(0) if answers else "c")  # never leave a pause waiting


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
    client = AnsweringClient(notebook, kernel_manager_class=IpcKernelManager, timeout=options.timeout,
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
