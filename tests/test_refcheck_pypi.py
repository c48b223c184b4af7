"""Zero false positives: clean calls into real PyO3 packages from PyPI come out OK every time."""
from __future__ import annotations

import blake3
import jiter
import nh3
import orjson
import pydantic_core
import pytest
import rpds
import rtoml
from pydantic_core import SchemaSerializer, SchemaValidator, core_schema

from pyo3_debug_magic import RefChecker

REPEATS = 3  # each call is checked this many times in every CI run

_map = rpds.HashTrieMap({"a": 1, "b": [1, 2]})
_list = rpds.List([1, 2, 3])
_set = rpds.HashTrieSet(["x", "y"])
_hasher = blake3.blake3(b"abc" * 100)
_payload = b"pyo3 " * 1000
_int_validator = SchemaValidator(core_schema.int_schema())
_model_schema = core_schema.typed_dict_schema({
    "name": core_schema.typed_dict_field(core_schema.str_schema()),
    "tags": core_schema.typed_dict_field(core_schema.list_schema(core_schema.int_schema())),
})
_dict_validator = SchemaValidator(_model_schema)
_serializer = SchemaSerializer(_model_schema)
_record = {"name": "ferris", "tags": [1, 2, 3000]}
_json_doc = b'{"a": [1, 2.5, "x", null, true], "nested": {"k": "v"}}'

CALLS = {
    "rpds.HashTrieMap.insert": (_map.insert, ("c", "value-c")),
    "rpds.HashTrieMap.get": (_map.get, ("b",)),
    "rpds.HashTrieMap.remove": (_map.remove, ("a",)),
    "rpds.List.push_front": (_list.push_front, (object(),)),
    "rpds.HashTrieSet.insert": (_set.insert, ("z",)),
    "jiter.from_json": (jiter.from_json, (_json_doc,)),
    "jiter.from_json(cache_mode=none)": (lambda doc: jiter.from_json(doc, cache_mode="none"), (_json_doc,)),
    "jiter.from_json(float)": (jiter.from_json, (b"[1.5, 2.25, 1e300]",)),
    "nh3.clean": (nh3.clean, ("<b>bold</b><script>alert(1)</script><a href='x'>l</a>",)),
    "nh3.clean_text": (nh3.clean_text, ("<b>&amp;</b>",)),
    "nh3.is_html": (nh3.is_html, ("<p>x</p>",)),
    "blake3.blake3": (blake3.blake3, (_payload,)),
    "blake3.hexdigest": (_hasher.hexdigest, ()),
    "blake3.digest(length)": (_hasher.digest, (64,)),
    "rtoml.loads": (rtoml.loads, ('title = "x"\n[table]\nkey = [1, 2, 3]\n',)),
    "rtoml.dumps": (rtoml.dumps, ({"a": 1, "b": {"c": [1, 2]}},)),
    "orjson.dumps": (orjson.dumps, ({"a": [1, 2, {"b": None}], "c": "text"},)),
    "orjson.loads": (orjson.loads, (_json_doc,)),
    "orjson.dumps(OPT_SORT_KEYS)": (lambda obj: orjson.dumps(obj, option=orjson.OPT_SORT_KEYS), ({"z": 1, "a": [2.5]},)),
    "pydantic_core.validate_python(int)": (_int_validator.validate_python, ("12345",)),
    "pydantic_core.validate_python(typed_dict)": (_dict_validator.validate_python, (_record,)),
    "pydantic_core.validate_json": (_dict_validator.validate_json, (b'{"name": "a", "tags": [1, 2]}',)),
    "pydantic_core.to_python": (_serializer.to_python, (_record,)),
    "pydantic_core.to_json": (pydantic_core.to_json, ({"a": [1, 2], "b": "x"},)),
    "pydantic_core.from_json": (pydantic_core.from_json, (_json_doc,)),
}


def test_enough_distinct_calls_across_packages():
    assert len(CALLS) >= 20
    assert len({name.split(".")[0] for name in CALLS}) >= 7


@pytest.mark.timeout(60)
@pytest.mark.parametrize("repeat", range(REPEATS))
@pytest.mark.parametrize("name", sorted(CALLS))
def test_clean_pypi_call_is_ok(name, repeat):
    func, args = CALLS[name]
    report = RefChecker().check(func, *args, label=name)
    assert report.measured_calls == 10 and report.exception is None
    assert report.ok, report.table
