"""Breakpoint locations: parsing ``FILE:LINE`` and function names, resolving them against the loaded modules' debug info (before and after import), ``--source`` mappings."""
