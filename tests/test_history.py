"""Run history: `azeval runs` lists and prunes stored runs; the report draws their trend."""

from __future__ import annotations

import re
from pathlib import Path

from harness.report import render_html
from harness.results.history import prune, stored_runs
from harness.results.record import CaseResult, CheckResult, TurnResult
from harness.results.store import Journal, load_run, write_meta
from harness.results.summary import summarize
from tests.conftest import azeval


def result(case: str, target: str, verdict: str, cost: float) -> CaseResult:
    turn = TurnResult(
        request={"messages": [{"role": "user", "content": case}]},
        response=None,
        reply="ok",
        finish_reason="stop",
        usage={"prompt_tokens": 5, "completion_tokens": 2},
        latency_ms=10.0,
        checks=(CheckResult("contains", verdict, f"said {verdict}"),),
        cost_usd=cost,
    )
    return CaseResult("qa", case, target, 0, verdict, (turn,))


def stored(root: Path, run_id: str, started: str, passes: int, suite: str = "qa") -> Path:
    """A run of 4 cases on gpt35 and gpt4o, ``passes`` of them passing on each."""
    path = root / "reports" / "runs" / run_id
    results = [
        result(f"c{i}", t, "pass" if i < passes else "fail", 0.001)
        for t in ("gpt35", "gpt4o")
        for i in range(4)
    ]
    journal = Journal(path)
    for r in results:
        journal.append(r)
    journal.close()
    targets = [{"name": "gpt35"}, {"name": "gpt4o"}]
    write_meta(
        path,
        {
            "run_id": run_id,
            "started_at": started,
            "status": "complete",
            "git_commit": "0123456789abcdef",
            "suites": [{"id": suite, "path": f"suites/{suite}.yaml"}],
            "targets": targets,
            "summary": summarize(results, ["gpt35", "gpt4o"]).to_json(),
        },
    )
    return path


def test_runs_lists_every_stored_run(tmp_path, monkeypatch, capsys) -> None:
    """One line per run, oldest first: id, when, suites, targets, pass rate, cost, status
    and commit; a folder that is not a run is passed over."""
    monkeypatch.chdir(tmp_path)
    stored(tmp_path, "run-b", "2026-01-02T10:00:00Z", 2)
    stored(tmp_path, "run-a", "2026-01-01T10:00:00Z", 4)
    (tmp_path / "reports" / "runs" / "junk").mkdir()
    assert azeval("runs") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "run",
        "started",
        "suites",
        "targets",
        "pass",
        "rate",
        "cost",
        "status",
        "commit",
    ]
    assert re.match(
        r"run-a\s+2026-01-01 10:00:00\s+qa\s+gpt35, gpt4o\s+100\.0%\s+\$0\.0080\s+"
        r"complete\s+0123456789ab",
        lines[1],
    )
    assert lines[2].startswith("run-b") and "50.0%" in lines[2]
    assert len(lines) == 3


def test_runs_prune_keeps_the_most_recent(tmp_path, monkeypatch, capsys) -> None:
    """--prune --keep N removes the oldest run folders and keeps the N newest."""
    monkeypatch.chdir(tmp_path)
    for day in range(1, 6):
        stored(tmp_path, f"run-{day}", f"2026-01-0{day}T10:00:00Z", 4)
    assert azeval("runs", "--prune", "--keep", "2") == 0
    out = capsys.readouterr().out
    assert "3 run(s) removed, 2 kept" in out
    assert [e.run_id for e in stored_runs(tmp_path / "reports")] == ["run-4", "run-5"]
    assert prune(tmp_path / "reports", 5) == []


def test_no_runs_says_so(tmp_path, monkeypatch, capsys) -> None:
    """With no run folder, runs says where it looked, exit 0."""
    monkeypatch.chdir(tmp_path)
    assert azeval("runs") == 0
    assert "no runs under reports/runs" in capsys.readouterr().out


def trend_block(html: str) -> str:
    match = re.search(r'<div class="trend">(.*?)</div>', html, re.S)
    assert match, "no trend block"
    return match.group(1)


def test_the_report_shows_the_trend_of_the_same_suites(tmp_path) -> None:
    """The report draws pass rate and cost per target over the earlier runs of the same
    suites under reports/runs/ (another suite's runs and later runs are left out)."""
    stored(tmp_path, "run-1", "2026-01-01T10:00:00Z", 1)
    stored(tmp_path, "run-2", "2026-01-02T10:00:00Z", 2)
    stored(tmp_path, "other", "2026-01-02T12:00:00Z", 0, suite="else")
    latest = stored(tmp_path, "run-3", "2026-01-03T10:00:00Z", 4)
    stored(tmp_path, "run-4", "2026-01-04T10:00:00Z", 0)
    block = trend_block(render_html(load_run(latest)))
    assert "Trend over the last 3 runs of these suites" in block
    assert block.count("<polyline") == 2  # one line per target
    assert block.count("<circle") == 6
    assert "run-1: 25% passed, $0.0040" in block
    assert "run-3: 100% passed, $0.0040" in block
    assert "other:" not in block and "run-4" not in block
    assert "25.0% → <strong>100.0%</strong>" in block


def test_a_first_run_has_no_trend(tmp_path) -> None:
    """With no earlier run of its suites, the report has no trend block."""
    first = stored(tmp_path, "run-1", "2026-01-01T10:00:00Z", 1)
    assert '<div class="trend">' not in render_html(load_run(first))
