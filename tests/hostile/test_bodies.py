"""Hostile answers: every one ends as a recorded error (or a verdict) on its own case, and
the run around it completes, caches, reports (HTML, JUnit, Markdown), re-reports and
blesses."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import azeval
from tests.hostile.bodies import CORPUS, Hostile
from tests.hostile.server import HostileServer, config_text

# The second check fails on every usable hostile answer, so its failure message (which
# quotes the reply) goes through every writer and the progress line too.
EXPECT = "{contains: ok, not_contains: ok}"


def suite_text(corpus: tuple[Hostile, ...]) -> str:
    lines = ["suite: hostile", "defaults:", "  params: {max_tokens: 5}", "cases:"]
    for entry in corpus:
        lines += [
            f"  - id: {entry.name}",
            f"    prompt: {entry.marker}",
            f"    expect: {EXPECT}",
        ]
    lines += ["  - id: sane", "    prompt: a sane question", "    expect: {contains: ok}"]
    return "\n".join(lines) + "\n"


class Outcome:
    """One run of the whole corpus, and what it wrote."""

    def __init__(self, root: Path, code: int, server: HostileServer) -> None:
        self.root = root
        self.code = code
        self.server = server
        runs = sorted((root / "reports" / "runs").iterdir())
        assert len(runs) == 1, runs
        self.run_dir = runs[0]
        lines = (self.run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()
        self.results = {r["case"]: r for r in map(json.loads, lines)}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hostile")
    scripts = {entry.marker: entry.answer for entry in CORPUS}
    with HostileServer(scripts) as server, pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        # The cache on: every usable answer is stored too, and stored answers are scrubbed
        # and written as every other writer writes.
        config = config_text(server.url).replace("[settings]\n", "[settings]\ncache = true\n")
        (root / "azeval.toml").write_text(config)
        (root / "suites").mkdir()
        (root / "suites" / "hostile.yaml").write_text(suite_text(CORPUS))
        code = azeval(
            "run", "suites", "-j", "8", "--junit", "junit.xml", "--markdown", "summary.md"
        )
        yield Outcome(root, code, server)


def test_the_run_completes_and_writes_every_output(outcome: Outcome):
    """The run finishes (exit 1: cases errored), run.json says complete, and the HTML
    report, JUnit XML and Markdown summary are written and readable."""
    assert outcome.code == 1
    meta = json.loads((outcome.run_dir / "run.json").read_text(encoding="utf-8"))
    assert meta["status"] == "complete"
    assert sorted(outcome.results) == sorted([e.name for e in CORPUS] + ["sane"])
    assert outcome.results["sane"]["verdict"] == "pass"
    html = (outcome.run_dir / "report.html").read_text(encoding="utf-8")
    assert "choice-null" in html
    assert "<script>alert(1)</script>" not in html
    cases = ET.parse(outcome.root / "junit.xml").getroot().iter("testcase")
    assert len(list(cases)) == len(CORPUS) + 1
    assert "choice-null" in (outcome.root / "summary.md").read_text(encoding="utf-8")


def test_the_run_reports_again_and_blesses(outcome: Outcome):
    """azeval report renders the stored run again and azeval bless writes a baseline."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(outcome.root)
        assert azeval("report", str(outcome.run_dir)) == 0
        assert azeval("bless", str(outcome.run_dir), "-o", "baseline.json") == 0
    baseline = json.loads((outcome.root / "baseline.json").read_text(encoding="utf-8"))
    assert len(baseline["targets"]["evil"]["cases"]) == len(CORPUS) + 1


@pytest.mark.parametrize("entry", CORPUS, ids=lambda e: e.name)
def test_each_hostile_answer_is_recorded_on_its_case(outcome: Outcome, entry: Hostile):
    """The case ends with the entry's error kind and an excerpt of what arrived, after the
    retries an invalid answer gets; a usable answer gets a verdict and no error."""
    result = outcome.results[entry.name]
    if entry.kind is None:
        assert result["error"] is None, result["error"]
        assert result["verdict"] == "fail"  # not_contains: ok, whatever else it said
        return
    assert result["verdict"] == "error"
    assert result["error"]["kind"] == entry.kind, result["error"]
    assert result["error"]["message"]
    if entry.kind == "invalid_response":
        assert result["attempts"] == 2, "an invalid answer is retried as today"
        body = result["error"]["body"]
        assert body is None or len(body) < 2100, "what arrived is kept, truncated"
