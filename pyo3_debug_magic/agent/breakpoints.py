"""Breakpoints in gdb: insert, list, delete, enable, keep them on the user's crates, and the
log of hits (log breakpoints, unattended and refused pauses) the kernel shows after a cell."""
from __future__ import annotations

from dataclasses import dataclass, replace

from pyo3_debug_magic import model
from pyo3_debug_magic.breakpoints import source_paths
from pyo3_debug_magic.breakpoints.generated import generated_only_problem, is_generated
from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.procfs import memory_map, working_directory
from pyo3_debug_magic.breakpoints.locations import built_elsewhere, crate_of, crate_relative, in_crate, is_user_source
from pyo3_debug_magic.breakpoints.resolver import Resolver
from pyo3_debug_magic.protocol import BreakInsert, SetBreakpoint, from_wire
from pyo3_debug_magic.agent.context import AgentContext
from pyo3_debug_magic.agent.debug_info import LoadedDebugInfo
from pyo3_debug_magic.gdb.mi import GdbCommandError, mi_quote

LOG_KEPT = 10_000


@dataclass(frozen=True)
class BreakpointSpec:
    """What the helper keeps of one breakpoint: what the user asked for, and what it has seen
    of the breakpoint since (replaced, never changed in place)."""

    kind: model.BreakpointKind
    location: str
    condition: str | None = None
    user_only: bool = False                 # keep it on the user's crates (and ``crate``)
    crate: str | None = None
    source: str | None = None               # the file the kernel chose
    source_dir: str | None = None           # ``--source DIR``
    pending: bool = False
    held: bool | None = None                # bound only outside the user's crate (None: never was)
    seen: tuple[str, ...] | None = None     # its locations' addresses at the last change
    announced: bool = False                 # "breakpoint N resolved" was said
    told_elsewhere: bool = False            # "compiled in a folder this machine does not have" was said
    wrappers_skipped: bool = False          # its locations in PyO3's generated code are off
    generated_only: bool = False            # bound only in PyO3's generated code: disabled, hits run on
    unattended_hits: int = 0

    @classmethod
    def asked(cls, request: BreakInsert, pending: bool) -> "BreakpointSpec":
        return cls(request.kind, request.location, request.condition, request.user_only, request.crate,
                   request.source, request.source_dir, pending)


class Breakpoints:
    def __init__(self, context: AgentContext):
        self.context = context
        self.specs: dict[int, BreakpointSpec] = {}
        self.addresses: set[int] = set()      # where gdb has put int3 instructions
        self.log: list[dict] = []
        self.debug_info = LoadedDebugInfo(context)

    # ----- the log of hits ------------------------------------------------------------
    def record_hit(self, hit: dict) -> None:
        spec = self.specs.get(int(hit.get("number") or 0))
        hit["location"] = spec.location if spec else ""
        self.log.append(hit)
        if len(self.log) > LOG_KEPT:
            del self.log[:LOG_KEPT // 2]

    def record_unattended(self, number: int | None, thread: int, where: dict, because: str = "no stdin") -> None:
        """A pausing breakpoint hit in a cell that cannot answer a prompt: logged instead."""
        spec = self.specs.get(number or 0)
        count = 1
        if spec is not None:
            spec = self.specs[number] = replace(spec, unattended_hits=spec.unattended_hits + 1)
            count = spec.unattended_hits
        self.record_hit({"number": number, "hit": count, "thread": thread,
                         "unattended": True, "where": where, "not_paused_because": because})

    def take_log(self) -> tuple[model.LogHit, ...]:
        hits, self.log = self.log, []
        return tuple(from_wire(model.LogHit, hit) for hit in hits)

    # ----- gdb's int3 addresses (for the day gdb dies with them inserted) ------------------
    def refresh_addresses(self) -> None:
        body = self._table()
        addresses = set()
        for bkpt in body:
            for row in bkpt.get("locations") or [bkpt]:
                try:
                    addresses.add(int(row.get("addr", ""), 16))
                except ValueError:
                    pass  # <PENDING>, <MULTIPLE>
        self.addresses = addresses

    def _table(self) -> list[dict]:
        return self.context.gdb.command("-break-list").payload.get("BreakpointTable", {}).get("body", [])

    def on_changed(self, bkpt: dict) -> None:
        """A breakpoint was modified (a pending one resolved): disable locations outside the
        user's crates (and outside ``--crate``), and say where a pending one bound."""
        number = int(str(bkpt.get("number", "0")).split(".")[0] or 0)
        spec = self.specs.get(number)
        if spec is not None and spec.seen == _addresses(bkpt):
            return  # a hit (gdb counts it with this event) or an enable: no location came or went
        self.refresh_addresses()
        if not spec or not spec.user_only:
            return
        gdb, kept = self.context.gdb, []
        # gdb numbers locations by address, and a later library may have renumbered them since
        # this event was sent: act on the breakpoint as it is now
        bkpt = self.current(number)
        if bkpt is None:
            return
        if self._map_sources_built_elsewhere(number, bkpt, spec):
            bkpt = self.current(number) or bkpt
        spec = self.specs.get(number, spec)
        held = spec.held
        several = bool(bkpt.get("locations"))
        rows = bkpt.get("locations") or ([bkpt] if bkpt.get("addr") not in (None, "<PENDING>", "<MULTIPLE>") else [])
        for location in rows:
            fullname = location.get("fullname")
            if self._ours(spec, fullname):
                kept.append(location)
            elif location.get("enabled") == "y" and several:
                gdb.command(f"-break-disable {location['number']}")
            elif location.get("enabled") == "y":
                # its only location is not the user's (another crate, pyo3's src/lib.rs): held,
                # its hits run on unseen (see `foreign`). It stays enabled (gdb disables the
                # breakpoint with its only location), so that the location a module of the
                # right crate brings is inserted by gdb while that module loads: no race with a
                # call made right after the import. Once there are two, the foreign one is disabled.
                held = True
        if kept and held:
            held = False
        user_code = [loc for loc in kept if not is_generated(loc.get("func"))]
        if user_code and len(user_code) < len(kept):
            # a signature line: PyO3's wrapper converts the arguments on it too; stop in the function
            for location in kept:
                if is_generated(location.get("func")) and location.get("enabled") == "y":
                    gdb.command(f"-break-disable {location['number']}")
            kept, spec = user_code, replace(spec, wrappers_skipped=True)
        spec = replace(spec, held=held, seen=_addresses(bkpt))
        announce = (spec.pending or spec.held is False) and kept and not spec.announced
        if announce:
            # bound only in PyO3's generated code: disabled below, its hits run on (`foreign`)
            spec = replace(spec, announced=True, pending=False, generated_only=not user_code)
        if number in self.specs:  # (deleted meanwhile: not brought back)
            self.specs[number] = spec
        if announce:
            where = ", ".join(dict.fromkeys(f"{crate_of(loc['fullname']) or '?'} {crate_relative(loc['fullname'])}:"
                                            f"{loc.get('line')}" for loc in kept))  # one per line, not per location
            if not user_code:  # it would pause in PyO3's internals (while the module initialises, too)
                gdb.command(f"-break-disable {int(number)}")
                where += " ({}: disabled; {})".format(*generated_only_problem(spec.location, [loc.get("func") for loc in kept]))
            self.context.notify(f"breakpoint {number} resolved: {where}")

    def current(self, number: int) -> dict | None:
        try:
            body = self.context.gdb.command(f"-break-info {int(number)}").payload.get("BreakpointTable", {})
        except GdbCommandError:  # deleted meanwhile
            return None
        return next(iter(body.get("body") or []), None)

    def _map_sources_built_elsewhere(self, number: int, bkpt: dict, spec: BreakpointSpec) -> bool:
        """Locations in a crate compiled in a folder this machine does not have: with
        ``--source DIR``, map that folder to DIR (gdb's substitute-path, remembered for later
        kernels); without, say once how to. Whether a mapping was added."""
        rows = bkpt.get("locations") or [bkpt]
        elsewhere = [r.get("fullname") for r in rows if built_elsewhere(r.get("fullname"))]
        if not elsewhere:
            return False
        mapping = source_paths.mapping_for(elsewhere[0], spec.source_dir) if spec.source_dir else None
        if mapping is None:  # (a file the kernel resolved to pauses: its view says the source is missing)
            if not spec.told_elsewhere and elsewhere[0] != spec.source:
                self.specs[number] = replace(spec, told_elsewhere=True)
                self.context.notify(
                    f"breakpoint {number}: {elsewhere[0]} was compiled in a folder this machine does not "
                    f"have{' (not under ' + spec.source_dir + ')' if spec.source_dir else ''}: "
                    f"`%native_break {spec.location} --source DIR`, DIR your checkout of the crate")
            return False
        self.context.gdb.console(source_paths.gdb_command(*mapping))
        source_paths.remember(*mapping)
        self.debug_info.forget()
        self.context.notify(f"sources of {mapping[0]} are read from {mapping[1]} (remembered for later kernels)")
        return True

    def awaiting_modules(self) -> bool:
        """A breakpoint that a module a cell imports may resolve (pending, or held outside the user's crate)."""
        return any(spec.pending or spec.held for spec in self.specs.values())

    def foreign(self, number: int | None, fullname: str | None, function: str | None = None) -> bool:
        """A hit of breakpoint ``number`` in ``fullname`` is not for the user: a location outside
        their crates (or ``--crate``), or in PyO3's wrapper of their function, that is not
        disabled yet (its module loaded an instant ago, or it is the breakpoint's only
        location). Such hits run on unseen."""
        spec = self.specs.get(number or 0)
        return bool(spec and spec.user_only) and (not self._ours(spec, fullname) or (
            spec.wrappers_skipped or spec.generated_only) and is_generated(function))

    @staticmethod
    def _ours(spec: BreakpointSpec, fullname: str | None) -> bool:
        return ((is_user_source(fullname) or fullname == spec.source)  # the kernel chose that file
                and (not spec.crate or in_crate(fullname, spec.crate)))

    # ----- requests ---------------------------------------------------------------------
    def set(self, request: SetBreakpoint) -> model.BreakpointCreated:
        """``%native_break``: resolve the location in the target's terms, insert, check."""
        pid = self.context.target_pid  # a relative path and a rebuilt module are the kernel's, not ours
        resolver = Resolver(self.debug_info, working_directory(pid), memory_map(pid))
        placement = resolver.place(request.location, request.crate, request.force)
        if placement.resolved.pending and placement.parsed.line and not request.insert_pending:
            return model.BreakpointCreated(0, True, pending_note=placement.resolved.note)  # the kernel checks first
        created = self.insert(BreakInsert(
            kind=request.kind, source=placement.resolved.source, line=placement.line,
            function=placement.resolved.function, condition=request.condition, ignore=request.ignore,
            temporary=request.temporary, expressions=request.expressions, backtrace=request.backtrace,
            user_only=True, crate=request.crate, location=request.location, source_dir=request.source_dir))
        try:
            pending_note = resolver.after_insert(placement, created, request.crate)
        except UsageProblem:
            self.delete([created.number])
            raise
        if created.locations and all(is_generated(loc.func) for loc in created.locations):
            self.delete([created.number])
            raise UsageProblem(*generated_only_problem(request.location, [loc.func for loc in created.locations]))
        lines = sorted({loc.line for loc in created.locations if loc.line})
        asked = placement.parsed.line
        line_note = (f"line {asked} has no code; the breakpoint is on line {lines[0]}"
                     if asked and lines and placement.line not in lines else "")
        return replace(created, pending_note=pending_note, moved_note=placement.moved_note, line_note=line_note)

    def insert(self, request: BreakInsert) -> model.BreakpointCreated:
        gdb = self.context.gdb
        if request.kind == "log":
            gdb.call_python("add_log_breakpoint", {
                "source": request.source, "line": request.line, "function": request.function,
                "condition": request.condition, "ignore": request.ignore, "temporary": request.temporary,
                "expressions": list(request.expressions), "backtrace": request.backtrace})
            created = gdb.mi.take_message("log-created") or {"error": "gdb did not answer"}
            if created.get("error"):
                raise UsageProblem(f"cannot set a log breakpoint at {request.location}: {created['error']}",
                                   "check the location (file:line or crate::function)")
            number = int(created["number"])
            self.specs[number] = BreakpointSpec.asked(request, pending=bool(created.get("pending")))
            self.refresh_addresses()
            return model.BreakpointCreated(number, bool(created.get("pending")), tuple(
                from_wire(model.BreakpointLocation, loc) for loc in created.get("locations", [])))
        command = ["-break-insert", "-f"]
        if request.temporary:
            command.append("-t")
        if request.condition:
            command += ["-c", mi_quote(request.condition)]
        if request.ignore:
            command += ["-i", str(int(request.ignore))]
        if request.function:
            command += ["--function", mi_quote(request.function)]
        else:
            command += ["--source", mi_quote(request.source or ""), "--line", str(int(request.line or 0))]
        bkpt = gdb.command(" ".join(command)).payload.get("bkpt", {})
        number = int(bkpt.get("number", 0))
        self.specs[number] = BreakpointSpec.asked(request, pending=bkpt.get("addr") == "<PENDING>")
        self.on_changed(bkpt)
        if self.specs[number].held:  # bound only outside the user's crate: pending for the user
            return model.BreakpointCreated(number, True, ())
        return model.BreakpointCreated(number, bkpt.get("addr") == "<PENDING>",
                                       tuple(loc for loc in locations_of(bkpt) if loc.enabled))

    def rows(self) -> tuple[model.BreakpointInfo, ...]:
        body = self._table()
        logs = [n for n, spec in self.specs.items() if spec.kind == "log"]
        counts = {}
        if logs:
            self.context.gdb.call_python("log_breakpoint_hits", logs)
            counts = (self.context.gdb.mi.take_message("log-counts") or {}).get("counts", {})
        rows = []
        for bkpt in body:
            number = int(bkpt.get("number", 0))
            spec = self.specs.get(number)
            if spec is None:
                continue
            rows.append(model.BreakpointInfo(
                number, spec.kind, spec.location, bkpt.get("enabled") == "y" or bool(spec.held),
                int(counts.get(str(number), int(bkpt.get("times", 0) or 0))), spec.condition,
                bkpt.get("addr") == "<PENDING>" or bool(spec.held),
                tuple(loc for loc in locations_of(bkpt)
                      if loc.enabled and (not spec.user_only or self._ours(spec, loc.fullname)))))
        return tuple(rows)

    def known(self, numbers) -> list[int]:
        unknown = [n for n in numbers if n not in self.specs]
        if unknown:
            raise UsageProblem(f"no breakpoint number {unknown[0]}",
                               "`%native_break` with no argument lists them")
        return list(numbers)

    def delete(self, numbers=None) -> tuple[int, ...]:
        """Delete the given breakpoints; None deletes every breakpoint gdb has, known or not."""
        gdb = self.context.gdb
        if numbers is None:
            numbers = sorted(self.specs)
            gdb.command("-break-delete")
        elif self.known(numbers):
            gdb.command("-break-delete " + " ".join(str(int(n)) for n in numbers))
        for number in numbers:
            removed = self.specs.pop(number, None)
            if removed is not None and removed.kind == "log":
                gdb.console(f"python forget_log_breakpoint({int(number)})")
        self.refresh_addresses()
        return tuple(numbers)

    def enable(self, numbers, enabled: bool) -> tuple[int, ...]:
        numbers = self.known(numbers)
        verb = "-break-enable" if enabled else "-break-disable"
        self.context.gdb.command(f"{verb} " + " ".join(str(int(n)) for n in numbers))
        return tuple(numbers)

    def set_condition(self, number: int, condition: str | None) -> dict:
        """Change (or, empty, remove) a breakpoint's condition; gdb checks the expression."""
        self.known([number])
        command = f"-break-condition {int(number)}" + (f" {mi_quote(condition)}" if condition else "")
        self.context.gdb.command(command)
        self.specs[number] = replace(self.specs[number], condition=condition or None)
        return {"number": number, "condition": condition or None}

    def disable_pausing(self) -> list[int]:
        """Turn off every enabled pausing breakpoint; the numbers turned off."""
        return self.disable_all(only_kind="pause")

    def disable_all(self, only_kind: str | None = None) -> list[int]:
        """Turn off every enabled breakpoint (of ``only_kind``), pausing or logging (a call made
        on the user's behalf must not stop at one: gdb would abandon the call inside it); the
        numbers turned off."""
        enabled = [int(b["number"]) for b in self._table() if b.get("enabled") == "y"
                   and (only_kind is None or getattr(self.specs.get(int(b["number"])), "kind", None) == only_kind)]
        if enabled:
            self.context.gdb.command("-break-disable " + " ".join(map(str, enabled)))
        return enabled

    def enable_again(self, numbers: list[int]) -> None:
        session = self.context.session
        if numbers and session is not None and session.alive:
            try:
                session.command("-break-enable " + " ".join(map(str, numbers)))
            except Exception:  # noqa: BLE001 - deleted meanwhile (q)
                pass

    def forget(self) -> None:
        self.specs.clear()
        self.addresses.clear()


def _addresses(bkpt: dict) -> tuple[str, ...]:
    return tuple(sorted(str(row.get("addr")) for row in bkpt.get("locations") or [bkpt]))


def locations_of(bkpt: dict) -> tuple[model.BreakpointLocation, ...]:
    """Its locations; a disabled breakpoint's own location stays active (it is still there)."""
    several = bool(bkpt.get("locations"))
    rows = bkpt.get("locations") or ([bkpt] if bkpt.get("addr") not in (None, "<PENDING>") else [])
    return tuple(model.BreakpointLocation(r.get("addr"), r.get("fullname"), int(r.get("line") or 0) or None,
                                          r.get("func"), r.get("enabled", "y") == "y" or not several) for r in rows)

