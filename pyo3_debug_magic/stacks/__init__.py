"""Stacks of threads: the one capture pipeline (gdb live, gdb core, py-spy), merging native and Python frames, and reading another process's Python frames from memory."""
