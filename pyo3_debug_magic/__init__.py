"""pyo3_debug_magic: native (Rust/C) debugging of PyO3 extensions inside Jupyter and IPython.

``%load_ext pyo3_debug_magic`` registers the magics. Nothing starts until a magic needs it.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["RefChecker", "RefcheckReport", "refcheck", "load_ipython_extension",
           "unload_ipython_extension"]


def __getattr__(name: str):
    """The refcheck engine (standard library only, importable without IPython), imported on
    first use: the agent and pytest's plugin import this package without needing it."""
    if name in ("RefChecker", "RefcheckReport", "refcheck"):
        from pyo3_debug_magic.refchecker import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    from traitlets import TraitError

    from pyo3_debug_magic.notebook import kernel_hooks
    from pyo3_debug_magic.notebook.magics import NativeDebugMagics
    from pyo3_debug_magic.notebook.profile_magics import NativeProfileMagics

    from pyo3_debug_magic.debugger import get_debugger

    from pyo3_debug_magic.notebook.magic_help import tidy

    tidy(NativeDebugMagics, NativeProfileMagics)
    ipython.register_magics(NativeDebugMagics, NativeProfileMagics)
    debugger = get_debugger()
    try:
        debugger.update_config(ipython.config)  # c.NativeDebugger.* from ipython_config.py
    except TraitError as error:
        print(f"pyo3_debug_magic: a NativeDebugger setting in the IPython config was ignored: {error}")
    if debugger not in ipython.configurables:
        ipython.configurables.append(debugger)  # %config NativeDebugger.hang_after = 5
    kernel_hooks.install(ipython)
    from pyo3_debug_magic.refchecker.report import RefcheckReport
    from pyo3_debug_magic.notebook.widgets import refcheck_bundle

    ipython.display_formatter.mimebundle_formatter.for_type(RefcheckReport, refcheck_bundle)
    from pyo3_debug_magic.crash import report_files
    from pyo3_debug_magic.notebook.output import show_attach_progress

    debugger.attach_progress = show_attach_progress

    from pyo3_debug_magic.errors import DebugMagicError

    try:
        notice = report_files.announce_once(report_files.kernel_identity())
    except DebugMagicError as error:  # the state directory: said, and the magics still load
        notice = f"pyo3_debug_magic: no crash reports this session: {error}"
    if notice:
        print(notice)


def unload_ipython_extension(ipython) -> None:
    """Detach gdb, stop the helper, and unregister our magics."""
    from pyo3_debug_magic.notebook import kernel_hooks
    from pyo3_debug_magic.debugger import get_debugger
    from pyo3_debug_magic.notebook.magics import NativeDebugMagics
    from pyo3_debug_magic.notebook.profile_magics import NativeProfileMagics

    kernel_hooks.uninstall(ipython)
    from pyo3_debug_magic.refchecker.report import RefcheckReport

    ipython.display_formatter.mimebundle_formatter.pop(RefcheckReport, None)
    debugger = get_debugger()
    debugger.close()
    if debugger in ipython.configurables:
        ipython.configurables.remove(debugger)
    registered = ipython.magics_manager.magics
    for magics in (NativeDebugMagics, NativeProfileMagics):
        for kind, names in magics.magics.items():
            for name in names:
                registered[kind].pop(name, None)
