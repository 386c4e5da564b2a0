"""Baselines: bless a run into stable JSON, read it back as a run, reject malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import ConfigError, InputError
from harness.results.baseline import (
    MAX_REPLY_CHARS,
    bless,
    dumps,
    load_baseline,
    load_reference,
    write_baseline,
)
from harness.results.compare import REGRESSION, UNCHANGED_PASS, compare
from tests.factories import result, run_of


def test_bless_is_deterministic_and_sorted() -> None:
    """The same run blessed twice gives the same bytes, with cases sorted by key."""
    run = run_of([result("b"), result("a")])
    text = dumps(bless(run))
    assert text == dumps(bless(run_of([result("a"), result("b")])))
    assert text.endswith("}\n")
    cases = list(json.loads(text)["targets"]["gpt35"]["cases"])
    assert cases == ["geo/a", "geo/b"]


def test_bless_keeps_run_id_and_commit_but_no_timestamps_or_endpoint() -> None:
    """Only the run id and commit identify the source; start times and endpoints stay out."""
    text = dumps(bless(run_of([result("a")])))
    assert "20250101-000000-abcd" in text and "abc123" in text
    assert "2025-01-01T00:00:00Z" not in text
    assert "secret.example" not in text


def test_bless_records_repeats_as_verdicts_and_pass_count() -> None:
    """Each repeat's verdict is kept, with the number that passed."""
    doc = bless(run_of([result("a", "pass"), result("a", "fail", repeat=1)]))
    entry = doc["targets"]["gpt35"]["cases"]["geo/a"]
    assert entry["verdicts"] == ["pass", "fail"]
    assert entry["passed"] == 1


def test_bless_truncates_long_replies() -> None:
    """A reply past the bound is cut and marked truncated."""
    doc = bless(run_of([result("a", reply="x" * (MAX_REPLY_CHARS + 10))]))
    entry = doc["targets"]["gpt35"]["cases"]["geo/a"]
    assert len(entry["reply"]) == MAX_REPLY_CHARS
    assert entry["reply_truncated"] is True


def test_bless_writes_reported_model_once_per_target() -> None:
    """A model all cases share is stated on the target, not repeated on each case."""
    doc = bless(run_of([result("a"), result("b", model="gpt-4o")]))
    target = doc["targets"]["gpt35"]
    assert target["reported_models"] == ["gpt-35-turbo", "gpt-4o"]
    assert target["system_fingerprints"] == ["fp_1"]
    assert "system_fingerprint" not in target["cases"]["geo/a"]
    assert target["cases"]["geo/b"]["model"] == "gpt-4o"


def test_round_trip_compares_unchanged(tmp_path: Path) -> None:
    """A loaded baseline compares with its own run as unchanged, with zero deltas."""
    results = [result("a"), result("a", repeat=1, latency=200.0), result("b", reply="Lyon")]
    run = run_of(results)
    path = write_baseline(run, tmp_path / "baselines" / "baseline.json")
    loaded = load_baseline(path)
    comparison = compare(loaded.results, run.results)
    assert [d.status for d in comparison.cases] == [UNCHANGED_PASS, UNCHANGED_PASS]
    assert all(not d.reply_changed for d in comparison.cases)
    assert all(d.latency_delta_ms == 0 for d in comparison.cases)
    assert all(d.completion_tokens_delta == 0 for d in comparison.cases)
    assert all(d.cost_delta_usd == 0 for d in comparison.cases)
    assert loaded.targets == ["gpt35"]
    assert {r.model for r in loaded.results} == {"gpt-35-turbo"}
    assert {r.system_fingerprint for r in loaded.results} == {"fp_1"}


def test_loaded_baseline_shows_a_regression(tmp_path: Path) -> None:
    """A case that passed in the baseline and fails now compares as a regression."""
    path = write_baseline(run_of([result("a")]), tmp_path / "b.json")
    comparison = compare(load_baseline(path).results, [result("a", "fail", reply="Lyon")])
    (diff,) = comparison.cases
    assert diff.status == REGRESSION
    assert diff.reply_diff() == [("-", "Paris"), ("+", "Lyon")]


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    """A baseline that does not exist is a user error with exit code 2, naming the file."""
    with pytest.raises(InputError) as info:
        load_baseline(tmp_path / "nope.json")
    assert info.value.exit_code == 2
    assert "nope.json" in str(info.value)


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    """A file that is not JSON is reported with the file and line."""
    path = tmp_path / "b.json"
    path.write_text('{\n  "azeval_baseline": 1,\n  oops\n}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"b\.json:3: not valid JSON"):
        load_baseline(path)


def test_malformed_entry_names_the_place(tmp_path: Path) -> None:
    """A wrong value inside the file is reported with its place in the document."""
    doc = bless(run_of([result("a")]))
    doc["targets"]["gpt35"]["cases"]["geo/a"]["verdicts"] = ["maybe"]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_baseline(path)
    assert "targets.gpt35.cases.geo/a.verdicts[0]" in str(info.value)


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    """A baseline from a newer format says which version this azeval reads."""
    path = tmp_path / "b.json"
    path.write_text('{"azeval_baseline": 9, "targets": {}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="unsupported baseline format 9"):
        load_baseline(path)


def test_load_reference_reads_a_run_directory(tmp_path: Path) -> None:
    """A run directory is accepted wherever a baseline file is."""
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "r1", "targets": []}))
    (tmp_path / "results.jsonl").write_text(json.dumps(result("a").to_json()) + "\n")
    run = load_reference(tmp_path)
    assert run.id == "r1"
    assert [r.case for r in run.results] == ["a"]


def test_load_reference_refuses_a_plain_folder(tmp_path: Path) -> None:
    """A folder that is not a run directory is an input error."""
    with pytest.raises(InputError, match="not a run directory"):
        load_reference(tmp_path)
