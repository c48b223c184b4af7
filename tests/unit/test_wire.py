"""The protocol's codec: the model's tags are Literals, and a tag the model does not name is
refused at the boundary rather than carried on as a free string."""
from __future__ import annotations

import typing

import pytest

from pyo3_debug_magic import model
from pyo3_debug_magic import protocol as p


def test_every_request_and_model_type_resolves_its_annotations():
    for kind in [*p.REQUEST_TYPES.values(), model.StackEntry, model.Snapshot, model.BreakpointInfo, model.ProfileFrame, model.FunctionRow, model.Profile]:
        assert typing.get_type_hints(kind), kind


@pytest.mark.parametrize("how", ["continue", "next", "step", "finish"])
def test_a_named_tag_round_trips(how):
    request = p.Resume(thread=3, how=how)
    assert p.from_wire(p.Resume, p.to_wire(request)) == request


@pytest.mark.parametrize("kind, field, value", [(p.Resume, "how", "jump"), (p.SetBreakpoint, "kind", "watch"),
                                                (model.StackEntry, "kind", "cell")])
def test_a_tag_the_model_does_not_name_is_refused(kind, field, value):
    wire = {"thread": 1, "function": "f", "file": None, "line": None, field: value}
    with pytest.raises(ValueError, match=repr(value)):
        p.from_wire(kind, wire)
