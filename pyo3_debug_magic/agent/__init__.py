"""The helper process that owns gdb; run as ``python -m pyo3_debug_magic.agent``.

It lives outside the kernel because a thread stopped in Rust usually holds the GIL,
and then no Python code in the kernel can run (see docs/design.md).
"""
