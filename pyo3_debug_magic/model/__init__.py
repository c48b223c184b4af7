"""The shared model: frozen dataclasses for everything that crosses a module boundary.

The agent sends these (as JSON, see ``protocol``), the kernel side merges and decides with
them, and ``render/`` formats them. Nothing here talks to gdb, a process or IPython.

- ``stacks``: frames and threads, as captured and merged (``Snapshot``);
- ``state``: status, settings, breakpoints, log hits, a pause's ``Stop``;
- ``reports``: crash and hang reports;
- ``events``: one class per event the agent pushes;
- ``profile``: a sampled profile of a cell (``%%native_profile``).
"""
from pyo3_debug_magic.model.events import (EVENT_TYPES, AgentExited, AttachProgress, CrashSeen, Event,
                                           GdbDied, HangSeen, Interrupted, Notice, Paused)
from pyo3_debug_magic.model.profile import (FunctionRow, Profile, ProfileEngine, ProfileFrame, SampledStack,
                                            ThreadUsage)
from pyo3_debug_magic.model.reports import (CrashHandling, CrashRecord, CrashReport, HangReport, HelperSetup,
                                            signed_bytes)
from pyo3_debug_magic.model.stacks import (Engine, FrameKind, GdbFrame, MergedStack, NativeFrame, PythonFrame, PythonStacks,
                                           PythonThread, RawSnapshot, Snapshot, SourceLines, StackEntry, ThreadRow,
                                           ThreadStack, Variable)
from pyo3_debug_magic.model.state import (AgentSettings, AgentStatus, AttachStatus, BreakpointCreated, BreakpointKind,
                                          BreakpointInfo, BreakpointRequest, BreakpointLocation,
                                          FunctionMatch, HitPlace, LogHit,
                                          QuitResult, SourceRecord, Stop, ThreadInfo)

__all__ = [
    "SourceLines",
    "HelperSetup",
    "EVENT_TYPES",
    "BreakpointKind",
    "Engine",
    "FrameKind",
    "ProfileEngine",
    "BreakpointRequest",
    "AgentExited",
    "CrashSeen",
    "Event",
    "GdbDied",
    "HangSeen",
    "Interrupted",
    "Notice",
    "AttachProgress",
    "Paused",
    "CrashRecord",
    "CrashReport",
    "HangReport",
    "signed_bytes",
    "GdbFrame",
    "MergedStack",
    "NativeFrame",
    "PythonFrame",
    "PythonStacks",
    "PythonThread",
    "RawSnapshot",
    "Snapshot",
    "StackEntry",
    "ThreadRow",
    "ThreadStack",
    "Variable",
    "AgentSettings",
    "CrashHandling",
    "AgentStatus",
    "AttachStatus",
    "BreakpointCreated",
    "BreakpointInfo",
    "BreakpointLocation",
    "HitPlace",
    "LogHit",
    "QuitResult",
    "SourceRecord",
    "FunctionMatch",
    "Stop",
    "ThreadInfo",
    "FunctionRow",
    "Profile",
    "ProfileFrame",
    "SampledStack",
    "ThreadUsage",
]
