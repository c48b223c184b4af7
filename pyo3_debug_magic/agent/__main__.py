"""Entry point: ``python -m pyo3_debug_magic.agent --fd FD --target PID``."""
from __future__ import annotations

import argparse
import socket

from .server import Agent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pyo3_debug_magic.agent")
    parser.add_argument("--fd", type=int, required=True, help="inherited socketpair end")
    parser.add_argument("--target", type=int, required=True, help="pid of the kernel to debug")
    parser.add_argument("--gdb", required=True, help="path of the gdb binary")
    options = parser.parse_args()
    sock = socket.socket(fileno=options.fd)
    Agent(sock, target_pid=options.target, gdb_path=options.gdb).serve()


if __name__ == "__main__":
    main()
