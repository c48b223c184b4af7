"""IPython magics: parse arguments, call the engines, display. No gdb or subprocess here."""
from __future__ import annotations

import functools

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .debugger import get_debugger
from .errors import DebugMagicError
from .render import text


def user_errors_as_usage(method):
    """Our errors become IPython's one-line UsageError; anything else keeps its traceback."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except DebugMagicError as error:
            raise UsageError(str(error)) from None

    return wrapper


@magics_class
class NativeDebugMagics(Magics):
    """Native (gdb) debugging of PyO3 extension modules inside the running kernel."""

    @magic_arguments()
    @line_magic
    @user_errors_as_usage
    def native_attach(self, line: str = ""):
        """Attach gdb to this kernel in non-stop mode; the kernel keeps running.

        Breakpoints attach by themselves; run this to arm crash capture early.
        Example::

            %native_attach
        """
        parse_argstring(self.native_attach, line)
        print(text.attach_status(get_debugger().attach()))

    @magic_arguments()
    @line_magic
    @user_errors_as_usage
    def native_detach(self, line: str = ""):
        """Detach gdb from this kernel and stop the helper process.

        The kernel keeps running with all its variables. Example::

            %native_detach
        """
        parse_argstring(self.native_detach, line)
        how = get_debugger().detach()
        print(text.detached(how))
