"""Entry point: ``python -I -m pyo3_debug_magic.agent --fd FD --target PID --gdb GDB``
(the kernel starts it through ``session.agent_command``)."""
from __future__ import annotations

import argparse
import socket

from pyo3_debug_magic.agent.server import Agent, StderrTee


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pyo3_debug_magic.agent")
    parser.add_argument("--fd", type=int, required=True, help="inherited socketpair end")
    parser.add_argument("--target", type=int, required=True, help="pid of the kernel to debug")
    parser.add_argument("--gdb", required=True, help="path of the gdb binary")
    parser.add_argument("--stderr-in", type=int, help="read end of the kernel's redirected stderr")
    parser.add_argument("--stderr-out", type=int, help="where that stderr goes on to")
    parser.add_argument("--terminal-in", type=int, help="a test run's terminal, read by a crash's prompt")
    parser.add_argument("--terminal-out", type=int, help="a test run's terminal, where crash reports go")
    options = parser.parse_args()
    sock = socket.socket(fileno=options.fd)
    tee = None
    if options.stderr_in is not None and options.stderr_out is not None:
        tee = StderrTee(options.stderr_in, options.stderr_out)
    Agent(sock, target_pid=options.target, gdb_path=options.gdb, stderr_tee=tee,
          terminal=(options.terminal_in, options.terminal_out)).serve()


if __name__ == "__main__":
    main()
