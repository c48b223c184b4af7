from ._core import Counter, combine, double

__all__ = ["Counter", "combine", "double"]
