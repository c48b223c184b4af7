"""Code that runs inside gdb's embedded Python (``source``d by the agent; stdlib + ``gdb`` only).

Log breakpoints live here: a ``gdb.Breakpoint`` whose ``stop()`` records the hit and returns
False, so the thread never stops visibly and a failing expression cannot leave it stopped
(gdb's own ``dprintf`` does both). Requests arrive base64-encoded JSON, so no user text is
ever parsed as a gdb command; results go out as one ``@@PDM`` line of JSON on gdb's stdout.
"""
import base64
import json

import gdb  # noqa: F401 - provided by gdb

MARK = "@@PDM "
_log_breakpoints = {}


def _emit(kind, payload):
    gdb.write(MARK + json.dumps({"kind": kind, **payload}) + "\n")


def _decode(encoded):
    return json.loads(base64.b64decode(encoded).decode())


def _frame_summary(frame):
    sal = frame.find_sal()
    return {"func": frame.name() or "??", "file": sal.symtab.filename if sal.symtab else None,
            "fullname": sal.symtab.fullname() if sal.symtab else None,
            "line": sal.line or None, "pc": hex(frame.pc())}


class LogBreakpoint(gdb.Breakpoint):
    """Records location, hit number, values and optionally the backtrace; never stops."""

    def __init__(self, spec):
        kwargs = {"internal": False, "temporary": bool(spec.get("temporary"))}
        if spec.get("function"):
            kwargs["function"] = spec["function"]
        else:
            kwargs["source"], kwargs["line"] = spec["source"], int(spec["line"])
        super().__init__(**kwargs)
        self.expressions = list(spec.get("expressions") or [])
        self.with_backtrace = bool(spec.get("backtrace"))
        self.hits = 0
        if spec.get("condition"):
            self.condition = spec["condition"]
        if spec.get("ignore"):
            self.ignore_count = int(spec["ignore"])

    def stop(self):
        self.hits += 1
        try:
            frame = gdb.selected_frame()
            hit = {"number": self.number, "hit": self.hits, "thread": gdb.selected_thread().num,
                   "where": _frame_summary(frame), "values": []}
            for expression in self.expressions:
                try:
                    hit["values"].append([expression, str(gdb.parse_and_eval(expression))])
                except Exception as error:  # noqa: BLE001 - reported per value
                    hit["values"].append([expression, f"<error: {error}>"])
            if self.with_backtrace:
                stack, current = [], frame
                while current is not None and len(stack) < 32:
                    stack.append(_frame_summary(current))
                    current = current.older()
                hit["backtrace"] = stack
            _emit("log-hit", hit)
        except Exception as error:  # noqa: BLE001 - never leave the thread stopped
            _emit("log-error", {"number": self.number, "error": str(error)})
        return False


def add_log_breakpoint(encoded):
    spec = _decode(encoded)
    try:
        breakpoint = LogBreakpoint(spec)
    except Exception as error:  # noqa: BLE001
        _emit("log-created", {"error": str(error)})
        return
    _log_breakpoints[breakpoint.number] = breakpoint
    try:
        locations = _locations(breakpoint)
    except Exception:  # noqa: BLE001 - the breakpoint exists; its details are optional
        locations = []
    _emit("log-created", {"number": breakpoint.number, "pending": breakpoint.pending,
                          "locations": locations})


def _locations(breakpoint):
    found = []
    for location in getattr(breakpoint, "locations", []) or []:
        source = getattr(location, "source", None) or (None, None)
        found.append({"address": hex(location.address) if location.address else None,
                      "fullname": getattr(location, "fullname", None) or source[0],
                      "line": source[1], "enabled": location.enabled,
                      "func": getattr(location, "function", None)})
    return found


def log_breakpoint_hits(encoded):
    numbers = _decode(encoded)
    _emit("log-counts", {"counts": {str(n): _log_breakpoints[n].hits
                                    for n in numbers if n in _log_breakpoints}})


def forget_log_breakpoint(number):
    _log_breakpoints.pop(int(number), None)


def symbol_spellings(encoded):
    """The symbol table's names (``<my_pkg::Meter as my_pkg::Scale>::scale::h...``) of
    functions that the debug info names by impl number (``my_pkg::{impl#0}::scale``)."""
    spelled = {}
    for name in _decode(encoded):
        try:
            symbol = gdb.lookup_static_symbol(name) or gdb.lookup_global_symbol(name)
            address = int(symbol.value().address)
            text = gdb.execute(f"info symbol {address:#x}", to_string=True)
            spelled[name] = text.strip().removeprefix('~"').split(" in section ")[0].strip()  # MI wraps it
        except Exception:  # noqa: BLE001 - no symbol: matched by its debug name only
            pass
    _emit("spellings", {"names": spelled})


def register_rust_pretty_printers(etc_dir):
    """Rust's printers are not auto-loaded for cdylib extension modules (rust-lang/rust#96365)."""
    import sys

    if etc_dir not in sys.path:
        sys.path.insert(0, etc_dir)
    try:
        import gdb_lookup

        gdb_lookup.register_printers(gdb)
        _emit("printers", {"loaded": True})
    except Exception as error:  # noqa: BLE001
        _emit("printers", {"loaded": False, "error": str(error)})


def register_pyo3_printers(path):
    """PyO3 handles as Python values (``pyo3_printers.py``), loaded as a module of its own."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pyo3_debug_magic_pyo3_printers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.register()


# ----- the GIL hand-off, remembered inside gdb --------------------------------------------
# The agent tells gdb which threads gave up their GIL (and their saved thread states). If the
# agent dies (SIGKILL, a crash), gdb reads EOF on its stdin and exits; this hook then gives each
# thread its GIL back before gdb detaches, so no thread runs on without the GIL it handed over.
_handed_off = {}  # gdb thread number -> saved PyThreadState address


def note_handoff(thread, tstate):
    _handed_off[int(thread)] = int(tstate)


def note_restored(thread):
    _handed_off.pop(int(thread), None)


def restore_expression(tstate):
    """Typed, so it works on a Python without libpython debug info."""
    return f"((void (*)(void *))PyEval_RestoreThread)((void *){int(tstate):#x})"


def _on_gdb_exiting(event):
    import os

    try:  # nobody reads our output any more: a write must not kill gdb with SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    except OSError:
        pass
    try:
        gdb.execute("delete", to_string=True)  # no int3 may outlive gdb
        gdb.execute("set language c", to_string=True)  # the calls are C (a Rust frame is selected)
    except gdb.error:
        pass
    for thread_number, tstate in list(_handed_off.items()):
        try:
            thread = next(t for t in gdb.selected_inferior().threads() if t.num == thread_number)
            thread.switch()
            gdb.parse_and_eval(restore_expression(tstate))
            _handed_off.pop(thread_number, None)
            # let it run, so the next thread's RestoreThread can take the GIL after it
            gdb.execute("continue &", to_string=True)
        except Exception:  # noqa: BLE001 - the next thread still deserves its GIL
            pass


gdb.events.gdb_exiting.connect(_on_gdb_exiting)
