"""IPython magics: parse arguments, call the engines, display. No gdb or subprocess here."""
from __future__ import annotations

import functools

from IPython.display import display

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from . import callparse
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


REFCHECK_VALUE_OPTIONS = {"-n", "--number", "--warmup"}


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

    @magic_arguments()
    @argument("-n", "--number", type=int, default=10,
              help="measured calls (at least 3; default 10)")
    @argument("--warmup", type=int, default=3, help="calls before measuring (default 3)")
    @argument("--no-native-heap", action="store_true",
              help="do not measure the C heap (glibc mallinfo2; RSS elsewhere)")
    @argument("--tracemalloc", action="store_true",
              help="also measure Python allocations in bytes with tracemalloc (slower)")
    @argument("--allow-raise", action="store_true",
              help="keep measuring when the call raises (leaks on the error path)")
    @argument("--quiet", action="store_true", help="show nothing; only return the report")
    @line_cell_magic
    @user_errors_as_usage
    def refcheck(self, line: str = "", cell: str | None = None):
        """Do refcounts, Python allocations or the native heap leak across the boundary?

        The call is repeated: warm-up calls first, then measured calls. The argument
        expressions are evaluated once, so the same objects cross every time. A counter is
        a leak only if it grows on every measured call. Returns the report
        (``r.ok``, ``r.leaks``, ``r.table``, ``r.verdict``).

        Example::

            %refcheck rustdemo.leak_reference(data)
            r = %refcheck -n 20 mymod.process(data, key=k)

            %%refcheck -n 50
            out = rustdemo.compute(values)
        """
        from .leaks import RefChecker

        option_text, expression = (line, "") if cell is not None else callparse.split_options(
            line, REFCHECK_VALUE_OPTIONS)
        options = parse_argstring(self.refcheck, option_text)
        try:
            checker = RefChecker(number=options.number, warmup=options.warmup,
                                 native_heap=not options.no_native_heap,
                                 use_tracemalloc=options.tracemalloc,
                                 allow_raise=options.allow_raise)
        except ValueError as error:
            raise UsageError(str(error)) from None
        namespace = self.shell.user_ns
        if cell is not None:
            if not cell.strip():
                raise UsageError("%%refcheck needs statements in the cell to repeat")
            report = checker.check_code(cell, namespace)
        else:
            if not expression:
                raise UsageError("%refcheck needs a call, e.g. `%refcheck mymod.process(data)`")
            parsed = callparse.evaluate_call(expression, namespace)
            report = checker.check(parsed.func, *parsed.args, label=expression.strip(),
                                   arg_names=parsed.arg_names, kwarg_names=parsed.kwarg_names,
                                   **parsed.kwargs)
        if options.quiet:
            return report
        display(report)
        if cell is not None:
            return None  # a cell cannot be assigned; the report stays reachable as `_` with --quiet
        report._shown_in_cell = self.shell.execution_count
        return report
