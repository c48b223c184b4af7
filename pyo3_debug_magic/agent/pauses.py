"""The one owner of pauses and of the GIL hand-off: pausing a thread (SaveThread), giving its
GIL back (RestoreThread) before it runs on, ending pauses one at a time, the Interrupt.

Every way a paused thread runs again (a step, continue, ``q``, the Interrupt, a hang shown,
detaching) goes through ``give_back_and_continue`` or ``resume``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from pyo3_debug_magic import model
from pyo3_debug_magic.errors import UsageProblem
from pyo3_debug_magic.userinput import CALL
from pyo3_debug_magic.procfs import ignores_signal
from pyo3_debug_magic.agent import handoff
from pyo3_debug_magic.agent.breakpoints import Breakpoints
from pyo3_debug_magic.agent.context import AgentContext
from pyo3_debug_magic.gdb.session import thread_identity
from pyo3_debug_magic.gdb.mi import GdbCommandError, GdbTimeoutError

INTERRUPT_GRACE = 0.3  # s for the thread that took a SIGINT to run its C handler
RETURNED_SHOWN = 200   # characters of a value a step out of the user's function returned
MAX_STEPS_OUT = 8      # `finish`es a step that ended in C code may take to get back to Rust
RESUME_COMMANDS = {"next": "-exec-next", "step": "-exec-step", "finish": "-exec-finish",
                   "continue": "-exec-continue"}


@dataclass
class Pause:
    """A kernel thread stopped for the user: its saved thread state if we took its GIL."""

    thread: int
    tstate: int | None
    breakpoint: int | None
    where: tuple | None = None  # (function, file, line) at the stop
    serial: int = 0             # names this pause to the kernel: an ended pause is never prompted
    row: model.ThreadRow | None = None  # its stack, for a report if the kernel dies meanwhile


class Pauses:
    def __init__(self, context: AgentContext, breakpoints: Breakpoints):
        self.context = context
        self.breakpoints = breakpoints
        self.active: dict[int, Pause] = {}
        self.serial = 0
        self.stepping_from: dict[int, tuple] = {}  # thread -> (where, retried, command) of a step
        self.steps_out: dict[int, int] = {}        # thread -> `finish`es made to leave C or library code
        self.stepping_out_of: dict[int, tuple] = {}  # thread -> where a step, next or finish began
        self.skipping = False                      # gdb's skip of library functions is on (a `s` runs)
        self.needs_handoff: set[int] = set()       # paused threads that hold the GIL again
        self.stalled: dict[int, tuple] = {}        # hits whose hand-off gdb has not answered yet
        self.late_tstates: dict[int, int] = {}     # SaveThread results that came after our wait
        self.refusals_shown: set[str] = set()
        self.calls_unsafe: str | None = None       # why gdb may not call into the kernel
        self.pausing_allowed = True                # the running cell can answer a prompt
        self.no_pause_reason = ""                  # why not, in the hit log's words

    # ----- pausing ----------------------------------------------------------------------
    def pause(self, thread: int, reason: str, number: int | None, where: tuple | None,
              returned: str | None = None) -> None:
        gdb = self.context.gdb
        frames = gdb.frames(thread)  # everything that could go wrong in gdb, before the hand-off
        top = frames[0] if frames else None
        if not handoff.is_safe_point(top):
            # stopped in C code (the interpreter, libc): never call into it. A step that ended
            # there finishes out to the Rust code that called it.
            steps_out = self.steps_out.get(thread, 0)
            if reason in ("end-stepping-range", "function-finished") and steps_out < MAX_STEPS_OUT:
                self.steps_out[thread] = steps_out + 1
                gdb.command(f"-exec-finish --thread {thread}")
                return
            self.steps_out.pop(thread, None)
            self.refuse(thread, number, top, "it stopped outside Rust code, where calling into the "
                                             "process is not safe")
            return
        left = self.stepping_out_of.pop(thread, None)
        if reason in handoff.STEP_REASONS and self.steps_out.get(thread, 0) < MAX_STEPS_OUT:
            way, level = handoff.way_back_to_users_code(frames)
            if way == "finish":  # a step into std, pyo3 or a dependency: back out to the user's line
                self.steps_out[thread] = self.steps_out.get(thread, 0) + 1
                self.stepping_out_of[thread] = left
                gdb.command(f"-exec-finish --thread {thread} --frame {int(level)}")
                return
            if way == "leave":
                self.steps_out.pop(thread, None)
                self.leave_to_python(thread, left, returned)
                return
        if self.steps_out.pop(thread, None):
            returned = None  # the value of the code a step was finished out of: not the user's
        if self.calls_unsafe:
            self.refuse(thread, number, top, self.calls_unsafe)
            return
        variables = gdb.locals(thread, 0, frames)
        ident, lwp = gdb.thread_identity(thread)
        try:
            tstate = self.hand_off(thread)
        except GdbTimeoutError:
            # gdb is stopped or stuck: queue nothing more for this thread (a queued continue
            # could run after a late SaveThread); retry once gdb answers again
            self.stalled[thread] = (reason, number, where)
            raise
        except (GdbCommandError, ValueError) as error:
            self.refuse(thread, number, top, f"the GIL hand-off failed ({error})")
            return
        self.serial += 1
        row = model.ThreadRow(thread, "", ident, lwp, True, frames)
        self.active[thread] = Pause(thread, tstate, number, where, self.serial, row)
        self.context.send_event(model.Paused(
            thread=thread, reason=reason, breakpoint=number, handed_off=tstate is not None,
            pause_id=self.serial, frames=frames, locals=variables, ident=ident, lwp=lwp, returned=returned))

    def adopt(self, held: Pause, reason: str) -> None:
        """A thread stopped and handed off for another reason (a hang being shown) becomes a
        pause the user answers, like a breakpoint's."""
        gdb = self.context.gdb
        frames = gdb.frames(held.thread)
        variables = gdb.locals(held.thread, 0, frames)
        ident, lwp = gdb.thread_identity(held.thread)
        top = frames[0] if frames else None
        where = (top.func, top.fullname, top.line) if top else None  # as a stop record's `where`
        self.serial += 1
        row = model.ThreadRow(held.thread, "", ident, lwp, True, frames)
        self.active[held.thread] = Pause(held.thread, held.tstate, None, where, self.serial, row)
        self.context.send_event(model.Paused(
            thread=held.thread, reason=reason, breakpoint=None, handed_off=held.tstate is not None,
            pause_id=self.serial, frames=frames, locals=variables, ident=ident, lwp=lwp))

    def hand_off(self, thread: int) -> int | None:
        """If ``thread`` (stopped at a safe point) holds the GIL, release it (an implicit
        allow_threads at this line) so the kernel's Python threads run while it waits; the saved
        thread state, or None. gdb remembers it too, for its exit path."""
        gdb = self.context.gdb
        if thread in self.late_tstates:  # an earlier SaveThread that gdb answered late
            tstate = self.late_tstates.pop(thread)
            gdb.console(f"python note_handoff({int(thread)}, {tstate})")
            return tstate
        if gdb.evaluate_c(thread, handoff.CHECK_GIL) != "1":
            return None

        def saved_late(record: dict) -> None:
            if record.get("message") == "done":
                self.late_tstates[thread] = handoff.parse_tstate((record.get("payload") or {}).get("value", "0"))

        expected = handoff.parse_tstate(gdb.evaluate_c(thread, handoff.THIS_THREAD_STATE))
        try:
            tstate = handoff.parse_tstate(gdb.evaluate_c(thread, handoff.SAVE_THREAD, on_late=saved_late))
        except GdbCommandError as error:
            if "stopped while in a function called from GDB" not in str(error) or not expected:
                raise
            # SaveThread let a thread waiting for the GIL run, and it reached a breakpoint
            # before gdb saw SaveThread return; gdb abandoned the call. SaveThread still ends:
            # gdb stops the thread silently where the call began; its result is the state read first.
            self.finish_suspended_call(thread)
            tstate = expected
        gdb.console(f"python note_handoff({int(thread)}, {tstate})")
        return tstate

    def retry_handoffs(self) -> None:
        """gdb answers again after a stall: hand the GIL over where a late answer left a thread
        holding it, and finish pauses whose hand-off was cut short."""
        for thread in list(self.needs_handoff):
            self.needs_handoff.discard(thread)
            pause = self.active.get(thread)
            if pause is not None and pause.tstate is None:
                try:
                    pause.tstate = self.hand_off(thread)
                except (GdbCommandError, GdbTimeoutError, ValueError) as error:
                    self.context.notify(f"thread {thread} could not hand its GIL over again ({error}); "
                                        "the kernel waits for it")
        for thread, (reason, number, where) in list(self.stalled.items()):
            del self.stalled[thread]
            try:
                self.pause(thread, reason, number, where)
            except (GdbCommandError, GdbTimeoutError) as error:
                self.context.notify(f"pausing thread {thread} failed: {error}")

    def leave_to_python(self, thread: int, left: tuple | None, returned: str | None) -> None:
        """A step out of the user's Rust function into PyO3's wrapper: the rest is PyO3 and
        Python, which native stepping does not show; the thread runs on, and the user is told."""
        self.context.gdb.continue_thread(thread)
        function = left[0] if left and left[0] else "the Rust function"
        if returned and len(returned) > RETURNED_SHOWN:
            returned = returned[:RETURNED_SHOWN] + "…"
        value = f" (returned {returned})" if returned not in (None, "") else ""
        self.context.notify(f"thread {thread} left {function}{value} for PyO3's wrapper, which hands the "
                            "result to Python: native stepping ends there; it runs on to the next breakpoint")

    def refuse(self, thread: int, number: int | None, top: model.GdbFrame | None, why: str) -> None:
        """A pause that cannot be made safely: the thread runs on as it was, and the user is told."""
        self.context.gdb.continue_thread(thread)
        file, line, func = (top.file, top.line, top.func) if top else (None, None, None)
        where = f"{file or func or '?'}:{line or '?'}"
        self.breakpoints.record_hit({"number": number, "hit": 0, "thread": thread, "error": f"not paused: {why}",
                                     "where": {"func": func, "file": file,
                                               "fullname": top.fullname if top else None, "line": line}})
        if why not in self.refusals_shown:  # once per cell, not once per hit
            self.refusals_shown.add(why)
            self.context.notify(f"thread {thread} was not paused at {where}: {why}; it runs on "
                                "(later hits in this cell are logged)")

    # ----- giving the GIL back ------------------------------------------------------------
    def give_back_gil(self, pause: Pause) -> None:
        """RestoreThread in the paused thread. It waits while a running thread holds the GIL
        (bounded by gdb's call timeout); if gdb answers only after our wait (gdb was stopped),
        the late answer still records that the thread has its GIL again."""
        if pause.tstate is None:
            return
        gdb = self.context.gdb
        blocker = self.stopped_gil_holder(pause.thread)
        if blocker is not None:  # RestoreThread would wait for a GIL that cannot come free
            raise UsageProblem(f"thread {pause.thread} cannot take its GIL back: thread {blocker} holds "
                               "it and is stopped", f"let thread {blocker} run on first")

        def restored_late(record: dict) -> None:
            if record.get("message") == "done":
                # the thread holds its GIL again but is still stopped: the kernel is frozen
                # until it hands the GIL over again (the main loop does, at once)
                pause.tstate = None
                self.needs_handoff.add(pause.thread)

        try:
            gdb.evaluate_c(pause.thread, handoff.restore_thread(pause.tstate), on_late=restored_late)
        except GdbCommandError as error:
            if "Invalid thread id" in str(error):
                pass  # the thread is gone (the process is exiting): nothing to give back
            elif "stopped while in a function called from GDB" in str(error):
                # another thread stopped during the call: RestoreThread still ends, and gdb
                # stops this thread silently where the call began
                self.finish_suspended_call(pause.thread)
            else:
                raise
        pause.tstate = None
        gdb.python_quiet(f"note_restored({int(pause.thread)})")

    def give_back_and_continue(self, pause: Pause) -> None:
        self.give_back_gil(pause)
        self.context.gdb.continue_thread(pause.thread)

    def finish_suspended_call(self, thread: int) -> None:
        """A call gdb abandoned (another thread stopped meanwhile) still runs to its end; gdb
        then stops the thread silently where the call began, its registers restored (a
        ``*stopped`` record without payload). Wait for that; never continue the thread, which
        would run on from its breakpoint with the GIL given away."""
        gdb = self.context.gdb
        deadline = time.monotonic() + gdb.bound(None, "the end of an abandoned call")
        wanted = str(thread)
        while time.monotonic() < deadline:
            gdb.mi.read(0.02)
            if gdb.thread_state(thread) == "stopped":
                for record in list(gdb.mi.events):  # its stop is ours, not a new one
                    payload = record.get("payload") or {}
                    if record.get("message") == "stopped" and payload.get("thread-id") == wanted:
                        gdb.mi.events.remove(record)
                return
        raise GdbTimeoutError(f"thread {thread} did not return from the call gdb abandoned")

    def stopped_gil_holder(self, thread: int) -> int | None:
        """The gdb number of another thread that holds the GIL while stopped, read from memory
        (None when the GIL is free, held by a running thread, or libpython has no debug info)."""
        gdb = self.context.gdb
        python = gdb.python_stacks()
        holder = next((t for t in python.threads if t.holds_gil), None)
        if not python.gil_known or holder is None or not holder.native_thread_id:
            return None
        for row in gdb.threads():
            _, lwp = thread_identity(row.get("target-id", ""))
            if lwp == holder.native_thread_id:
                number = int(row["id"])
                return number if number != thread and row.get("state") == "stopped" else None
        return None

    # ----- ending pauses -----------------------------------------------------------------
    def paused(self, thread: int) -> Pause:
        pause = self.active.get(int(thread))
        if pause is None:
            raise UsageProblem(f"thread {thread} is not paused", "it was resumed or has exited")
        return pause

    def locals(self, thread: int, frame: int) -> tuple[model.Variable, ...]:
        self.paused(thread)
        return self.context.gdb.locals(int(thread), int(frame))

    def evaluate(self, thread: int, frame: int, expression: str, raw: bool = False) -> str:
        """The user's expression in the paused frame. One that calls a function runs with every
        breakpoint off: a call that stopped at one (the function itself has one) was abandoned
        by gdb halfway and the thread was lost to the pause, then the kernel."""
        self.paused(thread)
        if not CALL.search(expression):
            return self.context.gdb.evaluate(thread, frame, expression, raw)
        disabled = self.breakpoints.disable_all()
        try:
            return self.context.gdb.evaluate(thread, frame, expression, raw)
        finally:
            self.breakpoints.enable_again(disabled)

    def resume(self, thread: int, how: str, frame: int = 0) -> None:
        """next / step / finish / continue: give the GIL back first, then let the thread go."""
        if how not in RESUME_COMMANDS:
            raise UsageProblem(f"unknown resume mode {how!r}", "use next, step, finish or continue")
        pause = self.paused(thread)
        try:
            self.give_back_gil(pause)
        except GdbCommandError as error:
            raise UsageProblem(f"thread {pause.thread} could not take its GIL back ({error})",
                               "it stays paused; try again in a moment") from None
        del self.active[pause.thread]
        if how != "continue" and pause.where:
            self.stepping_out_of[pause.thread] = pause.where
        if how in ("next", "step") and pause.where:
            self.stepping_from[pause.thread] = (pause.where, False, RESUME_COMMANDS[how])
        frame_option = f" --frame {int(frame)}" if how == "finish" else ""
        if how == "step":
            self.skip_libraries(True)
        self.context.gdb.command(f"{RESUME_COMMANDS[how]} --thread {pause.thread}{frame_option}")

    def skip_libraries(self, on: bool) -> None:
        """gdb's skip of std's and PyO3's functions, on only while a `s` runs."""
        if on != self.skipping:
            self.context.gdb.console("skip enable" if on else "skip disable")
            self.skipping = on

    def end_all(self) -> tuple[list[int], list[str]]:
        """Give every paused thread its GIL back and let it run, one thread at a time (each
        RestoreThread waits for the GIL the previous thread took); (ended pause ids, problems)."""
        if not self.active:
            return [], []
        # No thread may stop at a breakpoint while another's RestoreThread runs: gdb would
        # abandon that call halfway. Pausing breakpoints are off until every pause has ended.
        disabled = self.breakpoints.disable_pausing()
        resumed, problems = [], []
        try:
            for pause in list(self.active.values()):
                try:
                    self.give_back_and_continue(pause)
                except (GdbCommandError, GdbTimeoutError, UsageProblem) as error:
                    problems.append(f"thread {pause.thread} keeps waiting for its GIL ({error})")
                    continue
                self.active.pop(pause.thread, None)
                resumed.append(pause.serial)
        finally:
            self.breakpoints.enable_again(disabled)
        return resumed, problems

    def on_interrupt(self, thread: int) -> None:
        """The kernel's Interrupt button, seen as the SIGINT ``thread`` took: deliver it first,
        so its C handler (in that thread) flags the interrupt before a paused main thread runs
        on (the short grace lets that thread be scheduled on a busy machine); then end every
        pause cleanly: Python raises KeyboardInterrupt."""
        gdb = self.context.gdb
        gdb.continue_thread(thread)
        if not self.active:
            return
        self.pausing_allowed = False  # the rest of this cell only logs; the next cell resets it
        self.no_pause_reason = "the Interrupt ended this cell's pauses"
        time.sleep(INTERRUPT_GRACE)
        main = next((t for t in self.active if gdb.thread_identity(t)[1] == self.context.target_pid), None)
        if main is not None:
            # Python raises KeyboardInterrupt in the main thread once some thread's C handler
            # has flagged the signal; the thread that took it may run only after the resumed
            # main thread has finished the cell (seen in full-suite runs). Flag it from the
            # paused main thread too: signal-safe, no GIL needed, merged with the real one.
            try:
                gdb.evaluate_c(main, handoff.SET_INTERRUPT)
            except (GdbCommandError, GdbTimeoutError):
                pass  # the real signal still arrives
        ended, problems = self.end_all()
        if main is not None and ignores_signal(self.context.target_pid):
            problems.append("this process ignores SIGINT (it was started with SIGINT ignored, e.g. in "
                            "the background), so no KeyboardInterrupt is raised: the cell runs to its end")
        self.context.send_event(model.Interrupted(ended=tuple(ended), problems=tuple(problems),
                                                  resumed_at=time.time()))

    def forget(self) -> list[int]:
        """gdb is gone: every pause has ended with it; their ids."""
        ended = [pause.serial for pause in self.active.values()]
        self.active.clear()
        self.skipping = False  # a new gdb starts with its skip disabled
        return ended

