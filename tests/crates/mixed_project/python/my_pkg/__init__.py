from ._core import double

__all__ = ["double"]
