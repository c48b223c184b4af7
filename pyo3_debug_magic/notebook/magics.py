"""IPython magics: parse arguments, call the engines, display. No gdb or subprocess here."""
from __future__ import annotations

import os

from IPython.display import display

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from pyo3_debug_magic.refchecker import callparse
from pyo3_debug_magic.debugger import BreakpointRequest, get_debugger
from pyo3_debug_magic.notebook.output import show, show_bundle
from pyo3_debug_magic.render import html, text
from pyo3_debug_magic.notebook.magic_input import (REFCHECK_VALUE_OPTIONS, breakpoint_numbers, parse_args, split_expressions,
                                                   unquote, user_errors_as_usage, value_shown_as_output)
from pyo3_debug_magic.notebook.widgets import breakpoint_list, crash_view, threads_view


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
        parse_args(self.native_attach, line)
        status = get_debugger().attach()
        show(text.attach_status(status), html.attach_status(status))

    @magic_arguments()
    @argument("--stop", action="store_true", help="also end the helper process and its gdb (frees their memory)")
    @line_magic
    @user_errors_as_usage
    def native_detach(self, line: str = ""):
        """Detach gdb from this kernel (breakpoints deleted, paused threads resumed); the kernel
        keeps running with its variables, the helper process and gdb stay idle for a quick
        next attach. Example::

            %native_detach
            %native_detach --stop      # end the helper process too
        """
        options = parse_args(self.native_detach, line)
        how = get_debugger().detach(stop_helper=options.stop)
        print(text.detached(how))

    @magic_arguments()
    @argument("path", help="the core file")
    @argument("--exe", metavar="PYTHON", help="the Python executable that crashed (default: this one)")
    @line_magic
    @user_errors_as_usage
    def native_core(self, line: str = ""):
        """Post-mortem of a core file: signal, faulting Rust line, every thread's merged stack.

        Example::

            %native_core /tmp/core.12345
            %native_core core.12345 --exe /usr/bin/python3.11
        """
        from pyo3_debug_magic.stacks.backtrace import crash_report, open_core

        options = parse_args(self.native_core, line)
        record = open_core(unquote(options.path), unquote(options.exe), settings=get_debugger())
        report = crash_report(record)
        show(text.crash_report(report), html.crash_report(report))

    @magic_arguments()
    @argument("--after", type=float, metavar="SECONDS", help="report cells running longer than this")
    @argument("--off", action="store_true", help="stop watching")
    @line_magic
    @user_errors_as_usage
    def native_watch(self, line: str = ""):
        """Show where the main thread is when a cell runs longer than a bound.

        The stuck cell shows the merged Rust + Python stack and whether the thread holds
        the GIL; the thread keeps running. An Interrupt that the kernel does not honour
        within 2 s (``PYO3_DEBUG_MAGIC_HANG_AFTER``) is reported the same way whenever the
        native debugger is attached. Example::

            %native_watch --after 10
            %native_watch --off
        """
        options = parse_args(self.native_watch, line)
        if options.off:
            if get_debugger().attached:
                get_debugger().watch(None)
            print("native watch off")
            return
        if not options.after or not 0 < options.after < 1e9:
            raise UsageError("%native_watch needs --after SECONDS (a positive number) or --off")
        get_debugger().watch(options.after)
        print(f"native watch: cells running longer than {options.after:g} s will show where they are")

    @magic_arguments()
    @argument("--list", action="store_true", help="list every crash report of this kernel")
    @argument("--clear", action="store_true", help="delete this kernel's crash reports")
    @line_magic
    @user_errors_as_usage
    def native_crash(self, line: str = ""):
        """Show how the previous kernel crashed (signal, faulting Rust line, every thread's stack).

        Crash capture is armed while the native debugger is attached (``%native_attach`` or
        any ``%native_break``): a SIGSEGV, SIGABRT, SIGBUS, SIGILL or SIGFPE is recorded before
        the kernel dies, and after the restart this shows the report. Example::

            %native_crash
            %native_crash --list
        """
        from pyo3_debug_magic.crash import report_files
        from pyo3_debug_magic.stacks.backtrace import crash_report

        options = parse_args(self.native_crash, line)
        identity = report_files.kernel_identity()
        if options.clear:
            print(f"removed {report_files.clear(identity)} crash report(s) of this kernel")
            return
        if options.list:
            found = report_files.reports(identity)
            print("\n".join(f"{r.path.name}: {r.summary}" for r in found) or "no crash reports for this kernel")
            return
        report = report_files.previous_crash(identity)
        if report is None:
            lost = report_files.lost_reports()
            print(f"no crash report for this kernel: {lost[0] if lost else report_files.ARM_HINT}")
            return
        view = crash_report(report.record, str(report.path))
        show_bundle(crash_view(self.shell, view))

    @magic_arguments()
    @argument("--thread", type=int, metavar="N", help="only this thread (its number in `%%native_bt --all`)")
    @argument("--all", action="store_true",
              help="also the kernel's own threads (ZMQ, IOPub, heartbeat, history), hidden by default")
    @argument("--full", action="store_true", help="every frame: do not fold pyo3/std/libc frames")
    @argument("--engine", choices=("gdb", "py-spy"),
              help="py-spy (fast, default when gdb is not attached) or gdb (attached, or --locals)")
    @argument("--locals", action="store_true",
              help="also the locals of each thread's innermost frame in your crate, else its top frame (gdb)")
    @line_magic
    @user_errors_as_usage
    def native_bt(self, line: str = ""):
        """Mixed Rust + Python backtrace of the kernel's threads.

        Rust frames are demangled with ``file:line``, interpreter frames are folded into the
        Python frames they run, the GIL holder and idle threads are marked. Your crate's
        frames are always shown; runs of pyo3/std/libc frames are folded (``--full`` shows
        them), and the kernel's own threads are hidden (``--all`` shows them). py-spy is the
        default while gdb is not attached; gdb when it is (py-spy can drop middle Rust frames).
        Example::

            %native_bt
            %native_bt --engine gdb --locals
            %native_bt --all --full
        """
        import threading
        from pyo3_debug_magic.stacks import backtrace

        options = parse_args(self.native_bt, line)
        debugger = get_debugger()
        engine = options.engine or ("gdb" if debugger.attached or options.locals else "py-spy")
        if options.locals and engine != "gdb":
            raise UsageError("--locals needs the gdb engine")
        if engine == "gdb":
            debugger.ensure_attached()
        threads = [options.thread] if options.thread else None
        snapshot = backtrace.capture(engine, debugger, threads, with_locals=options.locals)
        if options.thread is not None and not snapshot.threads:
            raise UsageError(f"no thread {options.thread} in this kernel: `%native_bt --all` lists their numbers")
        view = backtrace.for_view(snapshot, show_all=options.all or options.thread is not None,
                                  caller_thread_id=threading.get_native_id(), main_thread_id=os.getpid())
        show_bundle(threads_view(self.shell, view.threads, "threads of this kernel", text.snapshot(view, full=options.full),
                                 html.snapshot(view, full=options.full), view.hidden))

    @magic_arguments()
    @argument("location", nargs="*",
              help="FILE:LINE (src/lib.rs:42) or a Rust function: rustdemo::compute, Counter::add, "
                   "<Meter as Scale>::scale, a generic (largest: every instance), a closure "
                   "(compute::{closure#0}); without it, list the breakpoints")
    @argument("--if", dest="condition", metavar="COND",
              help="pause only when this Rust/C expression is true, e.g. --if \"total > 10\"")
    @argument("--ignore", type=int, default=0, metavar="N", help="skip the first N hits")
    @argument("--temporary", action="store_true", help="delete the breakpoint after its first hit")
    @argument("--log", nargs="?", const="", default=None, metavar="EXPRS",
              help="never pause: record each hit and these comma-separated expressions; the "
                   "hits are shown at the end of the cell (put it after the location)")
    @argument("--bt", action="store_true", help="with --log: record the backtrace of each hit")
    @argument("--crate", metavar="NAME", help="the crate the file belongs to, when several match")
    @argument("--force", action="store_true",
              help="set it even if the source is newer than the loaded module, or in the interpreter's own functions")
    @argument("--source", metavar="DIR", help="your checkout of a crate whose module was built elsewhere "
                                               "(a wheel from CI): its recorded paths map to DIR, remembered")
    @line_magic
    @user_errors_as_usage
    def native_break(self, line: str = ""):
        """Pause inside Rust when a cell reaches a line (or function) of your crate.

        The paused cell shows the Rust source, the merged Rust + Python backtrace and the
        locals, then a ``(native)`` prompt in the cell's input box (``help`` lists its
        commands: n, s, finish, c, bt, up, down, list, locals, p EXPR, py EXPR, q).
        Pausing releases the GIL at that line (an implicit allow_threads) so the kernel
        stays responsive; ``--log`` breakpoints never pause and never touch the GIL.
        Without stdin (nbclient, papermill) a breakpoint only logs. Attaches gdb on first use.
        Example::

            %native_break src/lib.rs:42
            %native_break rustdemo::compute --if "values.len > 2"
            %native_break Counter::add                 # a #[pymethods] method
            %native_break <Meter as Scale>::scale      # a trait method (or Meter::scale)
            %native_break src/lib.rs:20 --log "total, index"
            %native_break                      # list breakpoints
        """
        options = parse_args(self.native_break, line)
        options.condition, options.log = unquote(options.condition), unquote(options.log)
        options.location = unquote(" ".join(options.location)) if options.location else None
        debugger = get_debugger()
        if options.location is None and options.log and ":" in options.log:
            options.location, options.log = options.log, ""  # `--log FILE:LINE` with no expressions
        if options.location is None:
            show_bundle(breakpoint_list(self.shell, debugger, debugger.breakpoints()))
            return
        if not 0 <= options.ignore < 2**31:
            raise UsageError("--ignore takes a count from 0 to 2147483647")
        if options.bt and options.log is None:
            raise UsageError("--bt goes with --log")
        created = debugger.set_breakpoint(BreakpointRequest(
            location=options.location, condition=options.condition, ignore=options.ignore,
            temporary=options.temporary, log=options.log is not None,
            expressions=split_expressions(options.log or ""), backtrace=options.bt,
            crate=options.crate, force=options.force, source_dir=unquote(options.source)))
        show(text.breakpoint_created(created), html.breakpoint_created(created))

    @magic_arguments()
    @argument("numbers", nargs="*", help="breakpoint numbers, or `all`")
    @line_magic
    @user_errors_as_usage
    def native_delete(self, line: str = ""):
        """Delete native breakpoints. Example::

            %native_delete 2
            %native_delete all
        """
        numbers = breakpoint_numbers(line, "native_delete")
        deleted = get_debugger().delete_breakpoints(numbers)
        print(f"deleted native breakpoints {', '.join(map(str, deleted)) or '(none)'}")

    def _set_enabled(self, line: str, magic: str, enabled: bool) -> None:
        numbers = breakpoint_numbers(line, magic) or []
        get_debugger().enable_breakpoints(numbers, enabled=enabled)
        print(f"{'enabled' if enabled else 'disabled'} native breakpoints {', '.join(map(str, numbers))}")

    @magic_arguments()
    @argument("numbers", nargs="+", help="breakpoint numbers")
    @line_magic
    @user_errors_as_usage
    def native_disable(self, line: str = ""):
        """Disable native breakpoints (they stay listed). Example::

            %native_disable 2
        """
        self._set_enabled(line, "native_disable", enabled=False)

    @magic_arguments()
    @argument("numbers", nargs="+", help="breakpoint numbers")
    @line_magic
    @user_errors_as_usage
    def native_enable(self, line: str = ""):
        """Enable native breakpoints again. Example::

            %native_enable 2
        """
        self._set_enabled(line, "native_enable", enabled=True)

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
        from pyo3_debug_magic.refchecker.engine import RefChecker

        option_text, expression = (line, "") if cell is not None else callparse.split_options(
            line, REFCHECK_VALUE_OPTIONS)
        options = parse_args(self.refcheck, option_text)
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
            report = checker.check_code(callparse.check_statements(cell), namespace)
        else:
            if not expression:
                raise UsageError("%refcheck needs a call, e.g. `%refcheck mymod.process(data)`")
            parsed = callparse.evaluate_call(expression, namespace)
            report = checker.check(parsed.func, *parsed.args, label=expression.strip(),
                                   arg_names=parsed.arg_names, kwarg_names=parsed.kwarg_names,
                                   **parsed.kwargs)
        if options.quiet:
            return report
        if cell is not None:
            display(report)
            return None  # a cell cannot be assigned; the report stays reachable as `_` with --quiet
        if not value_shown_as_output():
            display(report)  # `r = %refcheck ...`, or not the cell's last line: show it here
        return report
