"""Reading a reply body's JSON: what any writer can keep, nested no deeper than MAX_DEPTH."""

from __future__ import annotations

import pytest

from harness.targets.response import MAX_DEPTH, Malformed, load_json


def nested(depth: int) -> str:
    return "[" * (depth - 1) + "{}" + "]" * (depth - 1)


def test_a_body_nested_to_the_limit_is_read_and_one_level_more_is_refused():
    """MAX_DEPTH levels of containers read; MAX_DEPTH + 1 is Malformed, however few
    brackets the rest of the body has."""
    assert load_json(nested(MAX_DEPTH))
    with pytest.raises(Malformed, match="nested deeper"):
        load_json(nested(MAX_DEPTH + 1))
    with pytest.raises(Malformed, match="nested deeper"):
        load_json('{"a": 1, "deep": ' + nested(MAX_DEPTH + 1) + "}")


def test_brackets_inside_strings_are_not_nesting():
    """A reply whose text is full of brackets is not deep for it: it reads."""
    body = '{"choices": [{"message": {"content": "' + "[{" * 500 + '"}}]}'
    assert load_json(body)["choices"][0]["message"]["content"] == "[{" * 500
