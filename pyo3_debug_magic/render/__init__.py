"""Pure renderers: dataclasses in, text or HTML out. They never call gdb."""
