"""Run directories: damaged records are errors that name the file, torn tails are healed."""

from __future__ import annotations

import json
import re
import tracemalloc

import pytest

from harness.errors import ConfigError
from harness.results import store
from harness.results.record import CaseResult
from harness.results.store import (
    RESULTS_FILE,
    RUN_FILE,
    Journal,
    JournalResults,
    index_journal,
    load_run,
    read_results,
)
from harness.writable import json_text
from tests.factories import result, write_run


def test_missing_or_damaged_run_json_is_a_config_error(tmp_path):
    """No run.json, bad JSON or a non-object: exit 2 naming the file, never a traceback."""
    with pytest.raises(ConfigError, match="not a run directory"):
        load_run(tmp_path)
    (tmp_path / RUN_FILE).write_text("{oops")
    with pytest.raises(ConfigError, match=r"run\.json: cannot be read"):
        load_run(tmp_path)
    (tmp_path / RUN_FILE).write_text("[]")
    with pytest.raises(ConfigError, match="does not hold a run's metadata"):
        load_run(tmp_path)


@pytest.mark.parametrize(
    ("meta", "place"),
    [
        ({"suites": "s.yaml"}, "suites"),
        ({"suites": [{"path": "s.yaml"}]}, "suites[0]"),
        ({"targets": [{"name": 5}]}, "targets[0].name"),
        ({"options": {"repeat": "3"}}, "options.repeat"),
        ({"git_commit": 123}, "git_commit"),
    ],
)
def test_a_run_json_of_the_wrong_shape_is_named_at_its_place(tmp_path, meta, place):
    """A hand-edited run.json that resume, report or diff could not read is exit 2 at its key."""
    (tmp_path / RUN_FILE).write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=rf"run\.json: {re.escape(place)}: "):
        load_run(tmp_path)


def test_a_damaged_line_mid_journal_is_named(tmp_path):
    """A bad line before the end would lose a case silently: it is reported with its number."""
    good = json.dumps(result("c").to_json())
    (tmp_path / RESULTS_FILE).write_text(f"{good}\nnot json\n{good}\n")
    with pytest.raises(ConfigError, match=rf"{RESULTS_FILE}:2: not a result record"):
        list(read_results(tmp_path))


def test_the_journal_index_finds_each_keys_latest_line_without_building_results(
    tmp_path, monkeypatch
):
    """A resume's one pass: each key's latest line and verdict, in the order of last
    writes, a torn tail skipped, and no CaseResult built (100,000 of them took seconds)."""
    first, second, again = result("a"), result("b", "fail"), result("a", "error")
    lines = [json.dumps(r.to_json()) for r in (first, second, again)]
    (tmp_path / RESULTS_FILE).write_text("\n".join(lines) + "\n" + lines[0][:30])
    monkeypatch.setattr(CaseResult, "from_json", None)  # calling it would raise TypeError
    index = index_journal(tmp_path)
    assert index.lines == 3
    assert list(index.latest.items()) == [(second.key, (2, "fail")), (first.key, (3, "error"))]
    assert index.kept() == {second.key: 2, first.key: 3}
    assert index.kept(retry_errors=True) == {second.key: 2}
    index.keep_only(index.kept().values())
    assert (tmp_path / RESULTS_FILE).read_text().splitlines() == [lines[1], lines[2]]


def test_the_journal_index_holds_one_string_per_verdict(tmp_path):
    """Every key's verdict in a journal's index is one shared string per verdict, not one
    per line (100,000 lines held 100,000 copies of "pass")."""
    results = [result(f"c{n}", "pass" if n % 2 else "fail") for n in range(6)]
    (tmp_path / RESULTS_FILE).write_text("".join(json.dumps(r.to_json()) + "\n" for r in results))
    verdicts = [verdict for _, verdict in index_journal(tmp_path).latest.values()]
    assert verdicts == ["fail", "pass"] * 3
    assert len({id(v) for v in verdicts}) == 2


@pytest.mark.parametrize(
    "line",
    ["not json", "[1, 2]", '{"suite": "s", "case": "c", "target": "t", "verdict": "pass"}',
     '{"suite": "s", "case": "c", "target": "t", "repeat": 0, "verdict": "no", "turns": []}'],
)  # fmt: skip
def test_the_journal_index_names_a_damaged_line(tmp_path, line):
    """A line that is not a result record stops the resume at its number, before sending."""
    good = json.dumps(result("a").to_json())
    (tmp_path / RESULTS_FILE).write_text(f"{good}\n{line}\n{good}\n")
    with pytest.raises(ConfigError, match=rf"{RESULTS_FILE}:2: not a result record"):
        index_journal(tmp_path)


def test_a_torn_tail_is_skipped_and_cut_before_appending(tmp_path):
    """A killed run's half line is ignored when reading and removed before the next append."""
    good = json.dumps(result("c").to_json())
    (tmp_path / RESULTS_FILE).write_text(f"{good}\n{good[:40]}")
    assert len(list(read_results(tmp_path))) == 1
    journal = Journal(tmp_path)
    journal.append(result("c", "fail"))
    journal.close()
    verdicts = [r.verdict for r in read_results(tmp_path)]
    assert verdicts == ["pass", "fail"]


def test_a_torn_tail_is_cut_reading_only_the_end_of_a_large_journal(tmp_path):
    """Opening a 3 MB journal for appending cuts its torn last line (one longer than a read
    block, too) while holding no more than a block of it: the journal is not read whole."""
    line = json.dumps(result("c").to_json()) + "\n"
    body = line * (3_000_000 // len(line))
    for torn in ("", '{"suite": "geo", "case"', "x" * 200_000):
        (tmp_path / RESULTS_FILE).write_text(body + torn)
        tracemalloc.start()
        try:
            Journal(tmp_path).close()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (tmp_path / RESULTS_FILE).read_text() == body
        assert peak < 300_000
    (tmp_path / RESULTS_FILE).write_text("no line break at all")
    Journal(tmp_path).close()
    assert (tmp_path / RESULTS_FILE).read_text() == ""


def test_a_large_runs_results_are_read_from_its_journal_on_each_pass(tmp_path, monkeypatch):
    """Past HELD_RESULTS a loaded run holds no results: each pass reads the journal again,
    giving each key's latest line in the order of those lines, as the list of a small run
    does; it can be iterated again and has a length."""
    rows = [result("a"), result("b", "fail"), result("c"), result("a", "error"), result("d")]
    write_run(tmp_path / "small", rows)
    small = load_run(tmp_path / "small")
    assert isinstance(small.results, list)
    monkeypatch.setattr(store, "HELD_RESULTS", 3)
    large = load_run(tmp_path / "small")
    assert isinstance(large.results, JournalResults)
    assert len(large.results) == 4 and bool(large.results)
    assert list(large.results) == list(large.results) == small.results
    assert [r.key for r in small.results] == [rows[i].key for i in (1, 2, 3, 4)]
    assert [n for n, _ in large.results.numbered()] == [2, 3, 4, 5]
    assert rows[3] in large.results and rows[0] not in large.results
    assert large.summary == small.summary


def test_a_journal_backed_run_shares_the_strings_every_result_repeats(tmp_path, monkeypatch):
    """Suite, target and verdict of each result read back are one string each, not one per
    line: what a reader keeps per case stays small."""
    monkeypatch.setattr(store, "HELD_RESULTS", 0)
    write_run(tmp_path, [result("a"), result("b")])
    first, second = load_run(tmp_path).results
    assert first.suite is second.suite and first.target is second.target
    assert first.verdict is second.verdict


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), "lone \ud800 surrogate", 123456789012345678901234567890]
)
def test_a_journal_line_reads_back_as_json_wrote_it(tmp_path, monkeypatch, value):
    """What json writes into a result (NaN, infinity, a lone surrogate, an integer past 64
    bits) reads back the same, by the index and by a journal-backed run alike."""
    monkeypatch.setattr(store, "HELD_RESULTS", 0)
    odd = result("a", extra={"value": value})
    write_run(tmp_path, [odd])
    (back,) = load_run(tmp_path).results
    assert json_text(back.extra) == json_text(odd.extra)
    assert type(back.extra["value"]) is type(value)
