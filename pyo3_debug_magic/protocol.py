"""The kernel <-> agent wire format: one JSON object per line over a socketpair.

Requests ``{"id", "op", "args"}``; responses ``{"id", "ok", "result" | "error"}``;
events ``{"event", ...}`` pushed by the agent at any time.
"""
from __future__ import annotations

import json
import socket
from typing import Iterator


def encode(message: dict) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode()


class LineReader:
    """Splits a socket's byte stream into decoded JSON messages."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._buffer = b""
        self.closed = False

    def read_available(self) -> Iterator[dict]:
        """Read once from the socket and yield every complete message; sets ``closed`` at EOF."""
        try:
            chunk = self._sock.recv(65536)
        except (ConnectionResetError, OSError):
            chunk = b""
        if not chunk:
            self.closed = True
            return
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
