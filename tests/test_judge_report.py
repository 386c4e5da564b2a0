"""The report shows each model-graded check's judgement under it, and the judges' account."""

from __future__ import annotations

import asyncio
import html as markup
import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.checks import Reply
from harness.checks.judged import outcome_of
from harness.judge.arguments import rubric_arg
from harness.judge.judging import JudgeModel, JudgeOptions, judge
from harness.models import load_catalogue
from harness.report import write_report
from harness.report.html import render_html
from harness.results.record import CaseResult, CheckResult, TurnResult
from harness.results.store import Journal, load_run, write_meta
from tests.conftest import SCRIPT_PAYLOAD, run_chromium

REASONING = f"The reply names Paris. {SCRIPT_PAYLOAD}"


def judged_check(answers: list[str], samples: int = 1) -> CheckResult:
    """A rubric check's result as the runner records it, judged by a scripted judge."""
    spec, _ = load_catalogue().lookup("gpt-4o", "2024-08-06")
    model = JudgeModel("gpt4o-judge", "gpt-4o", "2024-08-06", spec, "json_schema")
    arg = rubric_arg("Names Paris.", Path(), None)
    replies = iter(answers)

    async def ask(messages: Any, **params: Any) -> Reply:
        usage = {"prompt_tokens": 120, "completion_tokens": 30}
        return Reply(next(replies), usage=usage, latency_ms=50.0)

    options = JudgeOptions(samples=samples)
    judgement = asyncio.run(
        judge(
            ask,
            model,
            "rubric",
            [{"role": "user", "content": "x"}],
            options,
            arg.decide,
            template=("azeval/rubric.j2", "0" * 64),
        )
    )
    outcome = outcome_of(arg, judgement)
    return CheckResult(
        "rubric", outcome.status, outcome.message, "cases[0].expect.rubric", judge=outcome.judge
    )


def run_with(path: Path, checks: list[CheckResult]) -> Path:
    journal = Journal(path)
    for i, check in enumerate(checks):
        turn = TurnResult(
            request={"messages": [{"role": "user", "content": "Capital of France?"}]},
            response=None,
            reply="Paris.",
            finish_reason="stop",
            usage={"prompt_tokens": 10, "completion_tokens": 2},
            latency_ms=100.0,
            checks=(check,),
        )
        verdict = {"pass": "pass", "fail": "fail"}.get(check.status, "unchecked")
        journal.append(CaseResult("geo", f"case{i}", "gpt35", 0, verdict, (turn,)))
    journal.close()
    write_meta(path, {"run_id": path.name, "targets": [{"name": "gpt35"}]})
    return path


PASS = json.dumps({"reasoning": REASONING, "verdict": "pass"})


def test_the_summary_counts_the_judges_apart(tmp_path: Path) -> None:
    """A Judges table gives each judge's checks, requests, tokens, cost and self-agreement."""
    checks = [
        judged_check([PASS]),
        judged_check([PASS, PASS, '{"reasoning": "no", "verdict": "fail"}'], samples=3),
    ]
    page = render_html(load_run(run_with(tmp_path / "run-j", checks)))
    table = page.split('class="summary judges"', 1)[1].split("</table>", 1)[0]
    cells = [markup.unescape(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", table)]
    row = cells[cells.index("gpt4o-judge") :]
    assert row[1].strip() == "gpt-4o 2024-08-06"
    assert row[2:6] == ["2", "4", "480 / 120", f"${4 * (120 * 0.0025 + 30 * 0.01) / 1000:.4f}"]
    assert row[6] == "67%"  # the three-sample check agreed 2 of 3
    assert row[7] == "1"  # and was uncertain


@pytest.mark.browser
def test_the_judgement_shows_under_its_check_as_text(chromium: Path, tmp_path: Path) -> None:
    """Opened, a judged check shows its judge, cost, each sample's verdict and reasoning;
    the reasoning is model text, shown as text and never run."""
    path = run_with(tmp_path / "run-judged", [judged_check([PASS])])
    report = write_report(load_run(path), path / "report.html")
    dom = run_chromium(chromium, path / "profile", "--dump-dom", report.as_uri() + "#expand=1")
    assert "<title>pwned</title>" not in dom
    detail = dom.split('<details class="judge">', 1)[1].split("</details>", 1)[0]
    text = markup.unescape(re.sub(r"<[^>]+>", " ", detail))
    assert "judge gpt4o-judge · gpt-4o 2024-08-06 · 1 sample · tokens 120 / 30" in text
    assert "template azeval/rubric.j2 · answer json_schema" in text
    assert "seed 0: pass" in text
    assert SCRIPT_PAYLOAD in text  # escaped: it is in the text, not in the DOM as a script
    assert "<script>document.title" not in detail
