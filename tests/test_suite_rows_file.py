"""A loaded JSONL for_each lets go of the file's bytes and reads each row from the file."""

from __future__ import annotations

import json

import pytest

from harness.errors import SuiteError
from harness.suite import load_suite
from harness.suite.data import JsonlRows

SUITE = """
suite: s
defaults:
  params: {max_tokens: 20}
cases:
  - id: "row-{{ row.id }}"
    for_each: {row: data/q.jsonl}
    prompt: "Q: {{ row.q }}"
    expect: {icontains: "{{ row.id }}"}
"""
ROWS = [{"id": n, "q": f"question {n}"} for n in range(1, 51)]


@pytest.fixture
def suite_path(write):
    write("data/q.jsonl", "".join(json.dumps(row) + "\n" for row in ROWS))
    return write("s.yaml", SUITE)


def _rows(suite) -> JsonlRows:
    rows = suite.cases._parts[0]._rows  # the for_each's rows, as the loader made them
    assert isinstance(rows, JsonlRows)
    return rows


def test_a_loaded_for_each_reads_its_rows_from_the_file_not_held_bytes(suite_path):
    """After the load's pass over every row, the rows hold no copy of the file: each case
    read later is built from its row read back from the file, equal to the one at load."""
    suite = load_suite(suite_path)
    assert _rows(suite)._data is None
    assert [case.id for case in suite.cases] == [f"row-{n}" for n in range(1, 51)]
    assert suite.cases[-1].turns[0].messages[-1].content == "Q: question 50"


def test_a_data_file_replaced_after_the_load_is_read_as_loaded(suite_path):
    """An editor saving the data file (a new file put in its place) changes nothing for a
    suite already loaded: its rows are still those it loaded."""
    suite = load_suite(suite_path)
    data = suite_path.parent / "data" / "q.jsonl"
    replaced = data.with_name("q.new")
    replaced.write_text(json.dumps({"id": 99, "q": "other"}) + "\n")
    replaced.replace(data)
    assert suite.cases[4].id == "row-5" and len(suite.cases) == 50


def test_a_row_changed_in_place_after_the_load_is_an_error_naming_it(suite_path):
    """A row rewritten in the same file after the load (same length or not) is a suite
    error naming the data file and the row when its case is read, never another row."""
    suite = load_suite(suite_path)
    data = suite_path.parent / "data" / "q.jsonl"
    text = data.read_text().replace('"question 7"', '"question X"')
    with data.open("r+") as handle:  # the same file, written over
        handle.write(text)
    assert suite.cases[5].id == "row-6"
    with pytest.raises(SuiteError, match=r"data/q\.jsonl: row 7 changed since the suite"):
        suite.cases[6]
    with data.open("r+") as handle:
        handle.truncate(100)
    with pytest.raises(SuiteError, match=r"row 50 changed since the suite was loaded"):
        suite.cases[49]
