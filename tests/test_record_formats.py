"""Records written by the previous azeval (format 1, tests/data/records/format-1) still
load, report, compare and gate; a record from a newer azeval is refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError
from harness.report import render_html
from harness.report.junit import write_junit
from harness.report.markdown import render_markdown
from harness.results.baseline import load_reference
from harness.results.record import FORMAT, ErrorInfo
from harness.results.store import RESULTS_FILE, RUN_FILE, load_run
from harness.testing import Action, Deployment, ErrorReply, FakeAzure, Match, Rule
from tests.conftest import azeval

OLD = Path(__file__).parent / "data" / "records" / "format-1"
KEY = "sk-test-0123456789abcdef"
# The fake's answers the old run was made with (see the fixture's README).
RULES = [
    Rule(Match(last_user="(?i)refund", deployment="gpt35"), Action(content="Refunds take 5 days.")),
    Rule(Match(last_user="(?i)refund"), Action(content="About a week.")),
    Rule(Match(last_user="bomb"), Action(prompt_filters={"violence": "high"})),
    Rule(
        Match(last_user="broken"),
        Action(error=ErrorReply(status=400, code="invalid_request", message="bad things")),
    ),
    Rule(Match(last_user="hello"), Action(content="Hello!")),
]


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    """A copy of the format-1 run directory (reports write into it)."""
    target = tmp_path / "reports" / "runs" / "20261201-195822-13e5"
    shutil.copytree(OLD / "run", target)
    return target


def test_a_format_1_run_loads_into_typed_values(old_run: Path) -> None:
    """Every result loads; errors become ErrorInfo with their kind and HTTP facts; a cost
    that was never recorded reads as unknown, not 0."""
    assert "format" not in json.loads((old_run / RUN_FILE).read_text())
    run = load_run(old_run)
    assert len(run.results) == 20
    assert run.targets == ["gpt35", "gpt4o"]
    broken = next(r for r in run.results if r.case == "broken")
    assert broken.verdict == "error"
    assert isinstance(broken.error, ErrorInfo)
    assert (broken.error.kind, broken.error.status, broken.error.code) == (
        "bad_request",
        400,
        "invalid_request",
    )
    blocked = next(r for r in run.results if r.case == "blocked")
    assert blocked.verdict == "pass" and blocked.turns[0].error is not None
    assert blocked.turns[0].error.kind == "content_filter"
    assert all(r.cost_usd is None for r in run.results if r.turns)
    assert [r.verdict for r in run.results].count("pass") == 10


def test_a_format_1_run_reports_in_every_format(old_run: Path, tmp_path: Path) -> None:
    """HTML, Markdown and JUnit render from an old run; its unknown cost shows as unknown."""
    run = load_run(old_run)
    html = render_html(run)
    assert "20261201-195822-13e5" in html and "bad things" in html
    markdown = render_markdown(run, None)
    assert "| `gpt35` | `gpt-35-turbo` | 10 | 6 | 0 | 2 | 2 | 60% (31%–83%) | 220 | unknown |" in (
        markdown
    )
    assert "**error** `support/broken@gpt35` — `bad_request: bad things`" in markdown
    junit = write_junit(run, tmp_path / "junit.xml").read_text()
    assert 'tests="10" failures="1" errors="2" skipped="2"' in junit


def test_a_format_1_run_and_baseline_compare_with_a_new_run(
    old_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The same suite run again today, gated on the old baseline and diffed against the old
    run: no case changed, and the cost delta is unknown since the old run had no cost."""
    project = tmp_path / "project"
    shutil.copytree(OLD / "suites", project / "suites")
    shutil.copy(OLD / "azeval.toml", project / "azeval.toml")
    deployments = [
        Deployment("gpt35", model="gpt-35-turbo", system_fingerprint="fp_35"),
        Deployment("gpt4o", model="gpt-4o-2024-08-06", system_fingerprint="fp_4o"),
    ]
    with FakeAzure(deployments, rules=RULES, api_keys=(KEY,)) as fake:
        monkeypatch.chdir(project)
        monkeypatch.setenv("FAKE_AZURE_ENDPOINT", fake.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        code = azeval(
            "run",
            "suites",
            "-t",
            "gpt35",
            "-t",
            "gpt4o",
            "--repeat",
            "2",
            "--baseline",
            str(OLD / "baseline.json"),
            "--fail-on-regression",
        )
    out = capsys.readouterr().out
    assert code == 0, out  # known failures of the baseline do not block
    (new_run,) = (project / "reports" / "runs").iterdir()
    assert json.loads((new_run / RUN_FILE).read_text())["format"] == FORMAT
    assert azeval("diff", str(old_run), str(new_run)) == 0
    out = capsys.readouterr().out
    assert "5 unchanged-fail, 5 unchanged-pass" in out
    assert "Δ prompt tokens +0.0, Δ cost –," in out
    assert azeval("diff", str(OLD / "baseline.json"), str(new_run)) == 0
    assert load_reference(OLD / "baseline.json").targets == ["gpt35", "gpt4o"]


def test_a_record_from_a_newer_azeval_is_refused_by_name(old_run: Path) -> None:
    """run.json or a result line of a format newer than this azeval reads is exit 2 saying
    so, never a half-understood report."""
    meta = json.loads((old_run / RUN_FILE).read_text())
    (old_run / RUN_FILE).write_text(json.dumps({**meta, "format": FORMAT + 1}))
    with pytest.raises(ConfigError, match=r"run\.json: format: written in record format 3"):
        load_run(old_run)
    (old_run / RUN_FILE).write_text(json.dumps(meta))
    lines = (old_run / RESULTS_FILE).read_text().splitlines()
    lines[3] = json.dumps({**json.loads(lines[3]), "format": FORMAT + 1})
    (old_run / RESULTS_FILE).write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"results\.jsonl:4: .*newer azeval"):
        load_run(old_run)
