"""run.json read into a typed RunMeta: every recorded format loads, nothing is lost on the
way back to JSON, and readers get typed values instead of dictionaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.results.runmeta import RunMeta, TargetEntry
from harness.results.store import RUN_FILE, load_run, read_meta, write_meta

RECORDS = Path(__file__).parent / "data" / "records"


def test_a_format_2_run_json_reads_typed_and_writes_back_unchanged() -> None:
    """Every key of a format-2 run.json comes back from to_json as written, and its parts
    read as typed values (targets with their price, options, stored summary, books)."""
    data = json.loads((RECORDS / "format-2" / "run" / RUN_FILE).read_text())
    meta = RunMeta.from_json(data)
    written = meta.to_json()
    # The stored summary comes back with every figure it had (a newer summary adds more).
    assert {k: v for k, v in written.items() if k != "summary"} == {
        k: v for k, v in data.items() if k != "summary"
    }
    for name, stored in data["summary"]["targets"].items():
        assert written["summary"]["targets"][name].items() >= stored.items()
    assert {k: v for k, v in written["summary"].items() if k != "targets"} == {
        k: v for k, v in data["summary"].items() if k != "targets"
    }
    assert (meta.format, meta.status, meta.run_id) == (2, "complete", "20261201-233637-9aa8")
    assert meta.target_names == ["gpt35", "gpt4o"]
    gpt35 = meta.target("gpt35")
    assert isinstance(gpt35, TargetEntry)
    assert (gpt35.model, gpt35.model_version, gpt35.deployment) == ("gpt-35-turbo", "0125", "gpt35")
    assert gpt35.price is not None and gpt35.price["input_per_1k"] > 0
    assert (meta.options.repeat, meta.options.concurrency, meta.options.cache_mode) == (2, 4, "off")
    assert meta.suites[0].id == "support" and meta.suites[0].cases == 5
    assert meta.summary is not None and meta.summary.targets["gpt35"].cases == 10
    assert meta.scheduling["gpt35"].requests > 0


def test_a_format_1_run_json_reads_with_what_it_lacks_unknown() -> None:
    """A format-1 run.json (no format key, no prices, no cache options) loads as format 1;
    what it never recorded reads as unknown, and a round trip through JSON keeps it."""
    data = json.loads((RECORDS / "format-1" / "run" / RUN_FILE).read_text())
    meta = RunMeta.from_json(data)
    assert meta.format == 1
    assert all(t.price is None for t in meta.targets)
    assert meta.options.cache_mode == "off" and meta.options.repeat == 2
    assert meta.summary is not None and meta.summary.targets["gpt35"].cost_usd is None
    assert RunMeta.from_json(meta.to_json()) == meta
    assert {k: v for k, v in meta.to_json().items() if k != "format"}.keys() >= data.keys()


def test_keys_this_azeval_does_not_model_are_kept(tmp_path: Path) -> None:
    """A key another tool (or a newer azeval of the same format) added to run.json, and one
    inside a target entry, survive being read and written back."""
    data = json.loads((RECORDS / "format-2" / "run" / RUN_FILE).read_text())
    data["provenance"] = {"ci": "github", "job": 4}
    data["targets"][0]["pool"] = ["east", "west"]
    meta = RunMeta.from_json(data)
    assert meta.extra == {"provenance": {"ci": "github", "job": 4}}
    assert meta.targets[0].extra == {"pool": ["east", "west"]}
    write_meta(tmp_path, meta.to_json())
    again = read_meta(tmp_path)
    assert again["provenance"] == {"ci": "github", "job": 4}
    assert again["targets"][0]["pool"] == ["east", "west"]


@pytest.mark.parametrize("record", ["format-1", "format-2"])
def test_a_stored_run_carries_a_runmeta(record: str) -> None:
    """load_run gives the run's meta as a RunMeta, whichever format wrote it."""
    run = load_run(RECORDS / record / "run")
    assert isinstance(run.meta, RunMeta)
    assert run.targets == ["gpt35", "gpt4o"]
    assert run.summary.targets["gpt4o"].cases == 10
