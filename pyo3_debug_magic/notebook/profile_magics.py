"""``%%native_profile``: parse arguments, run the cell under the profiler, show the profile
below the cell's own output. No gdb or subprocess here."""
from __future__ import annotations

import os

import ast

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from pyo3_debug_magic.debugger import get_debugger
from pyo3_debug_magic.notebook.magic_input import parse_args, user_errors_as_usage
from pyo3_debug_magic.notebook.output import show
from pyo3_debug_magic.render import flamegraph, profile_text


@magics_class
class NativeProfileMagics(Magics):
    """Sample a cell, Rust and Python frames together."""

    last_profile = None

    @magic_arguments()
    @argument("--rate", type=int, default=100, metavar="HZ", help="samples per second (default 100)")
    @argument("--gil", action="store_true", help="only samples of threads holding the GIL")
    @argument("--idle", action="store_true", help="also samples of threads that wait (sleep, lock, I/O)")
    @argument("--threads", action="store_true",
              help="one tree per thread, and the CPU time of threads that never run Python (Rust workers)")
    @argument("--top", type=int, default=20, metavar="N", help="rows of the top table (default 20)")
    @argument("--engine", choices=("auto", "elfutils", "py-spy"), default="auto",
              help="elfutils: our native sampler (elfutils' unwinder, the Python frames read at the same "
                   "moment: every Rust frame, also of a Rust -> Python -> Rust chain; Python 3.11-3.13); "
                   "py-spy: py-spy record --native (stops unwinding at PyO3's trampoline); "
                   "auto (default): elfutils where it can, else py-spy")
    @argument("-o", "--output", metavar="FILE", help="also write the profile to FILE")
    @argument("--format", choices=("speedscope", "svg"), default="speedscope",
              help="the format of -o: speedscope JSON (default, https://www.speedscope.app) or an SVG flamegraph")
    @argument("--show", choices=("native", "python"),
              help="show the last profile again; `python`: its Python-only view (samples py-spy could not merge)")
    @argument("code", nargs="*", help="(line form) the statement to profile, e.g. `mymod.heavy(data)`")
    @line_cell_magic
    @user_errors_as_usage
    def native_profile(self, line: str = "", cell: str | None = None):
        """Profile a cell (``%%native_profile``) or one statement (``%native_profile EXPR``):
        this kernel is sampled, Rust and Python frames together, while the code runs; then a
        flamegraph (click to zoom, search), the top functions by self time, and notes on what
        could not be sampled appear below the cell's output, which stays unchanged.
        gdb, when attached, steps aside while the samplers run and attaches again afterwards
        (breakpoints kept); with a thread paused at a breakpoint the cell runs unprofiled.
        The default engine samples with elfutils' unwinder and reads the Python frames at the
        same moment: every Rust frame, also of a Rust -> Python -> Rust chain, where py-spy
        stops at PyO3's trampoline. ``--engine py-spy`` uses ``py-spy record --native`` (with
        ``--gil``, and where the native sampler cannot run: Python 3.10, no libdw).

        Example::

            %%native_profile --threads -o heavy.speedscope.json
            mymod.heavy(data)
        """
        options = parse_args(self.native_profile, line)
        if options.show:
            if self.last_profile is None:
                raise UsageError("no profile yet: run `%%native_profile` on a cell first")
            if options.show == "python" and self.last_profile.engine != "py-spy":
                raise UsageError("the last profile's engine (elfutils) lost no samples to merging, so there is "
                                 "no Python-only view; `--engine py-spy` records one alongside")
            self._show(self.last_profile, options.show)
            return None
        source = cell if cell is not None else " ".join(options.code)
        if not source.strip():
            raise UsageError("%native_profile needs code: `%native_profile mymod.heavy(data)`, "
                             "or `%%native_profile` at the top of a cell")
        if not 1 <= options.rate <= 10_000:
            raise UsageError("--rate must be between 1 and 10000 samples per second")
        if options.gil and options.engine == "elfutils":
            raise UsageError("--gil needs the py-spy engine (it reads which thread holds the GIL): "
                             "`--engine py-spy --gil`")
        if options.output:
            folder = os.path.dirname(os.path.abspath(os.path.expanduser(options.output)))
            if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
                # checked before the cell runs: a cell's work is not lost to a typo in a path
                raise UsageError(f"-o {options.output}: the folder {folder} does not exist or cannot be written; "
                                 "create it or give another path")
        code = self._compile(source)
        from pyo3_debug_magic.profiling.profiles import MIN_MEANINGFUL_SAMPLES
        from pyo3_debug_magic.profiling.run import ProfileOptions, run_profiled

        run = run_profiled(code, ProfileOptions(options.rate, options.gil, options.idle, options.threads,
                                                max(options.top, 1), options.engine), get_debugger())
        if run.problem is not None:
            show(f"%native_profile: {run.problem}")
        if run.profile is not None:
            profile = run.profile
            if options.output:
                from dataclasses import replace

                from pyo3_debug_magic.profiling.files import write

                write(profile, options.output, options.format)
                profile = replace(profile, output=options.output)
            type(self).last_profile = profile
            if run.error is None or profile.samples >= MIN_MEANINGFUL_SAMPLES:
                # a cell that raised at once: its few samples say nothing, the traceback does
                self._show_after_cell(profile)
        if run.error is not None:
            raise run.error
        return run.result

    def _compile(self, source: str):
        """The code as IPython would run it (magics and ``!`` lines transformed), named as a
        cell so its frames read ``cell line N``; the last expression's value is returned."""
        shell = self.shell
        transformed = shell.transform_cell(source)
        try:
            tree = ast.parse(transformed)
        except SyntaxError as error:
            raise UsageError(f"%native_profile: the code does not parse: {error.msg} (line {error.lineno})") from None
        filename = shell.compile.cache(transformed, shell.execution_count, raw_code=source)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        body = compile(tree, filename, "exec")
        value = compile(ast.Expression(last.value), filename, "eval") if last is not None else None
        namespace = shell.user_ns

        def run():
            exec(body, namespace)
            return eval(value, namespace) if value is not None else None

        return run

    def _show_after_cell(self, profile) -> None:
        """Below the cell's own output and ``Out[n]``: shown when the cell has finished."""
        events = self.shell.events

        def once(result=None):
            events.unregister("post_run_cell", once)
            self._show(profile, "native")

        events.register("post_run_cell", once)

    @staticmethod
    def _show(profile, view: str) -> None:
        plain = profile_text.profile_text(profile, view)
        show(plain, flamegraph.profile_html(profile) if view == "native" else None)
