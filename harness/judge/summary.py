"""Each judge's account of a run: what it was asked, what it cost, how far it agreed with
itself. Computed once from the check results and stored in run.json as ``judging``; judge
cost is counted here, apart from the targets' cost."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.results.record import CHECK_ERROR, NOT_APPLICABLE, CaseResult


def judge_summary(results: Iterable[CaseResult]) -> dict[str, dict[str, Any]]:
    """Per judge: judged checks, requests, tokens, cost, self-agreement, uncertain, errors.

    Self-agreement is the mean agreement of the checks that took more than one sample
    (None when none did): how often the judge repeats its own decision.
    """
    tally = JudgeTally()
    for result in results:
        tally.add(result)
    return tally.summary()


class JudgeTally:
    """judge_summary built one result at a time, for a reader that passes over the results
    for more than this (the HTML report's rows): ``add(result)``, then ``summary()``."""

    def __init__(self) -> None:
        self._by_judge: dict[str, dict[str, Any]] = {}
        self._agreements: dict[str, list[float]] = {}

    def add(self, result: CaseResult) -> None:
        """Count one result's judged checks in."""
        for check in result.checks:
            judge = check.judge
            if not judge:
                continue
            name = str(judge.get("judge"))
            row = self._by_judge.setdefault(
                name,
                {
                    "model": judge.get("model"),
                    "model_version": judge.get("model_version"),
                    "checks": 0,
                    "requests": 0,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "cost": None,
                    "uncertain": 0,
                    "errors": 0,
                    "self_agreement": None,
                    "templates": {},
                },
            )
            samples = judge.get("samples") or []
            row["checks"] += 1
            row["requests"] += len(samples)
            row["prompt_tokens"] += int(judge.get("prompt_tokens") or 0)
            row["completion_tokens"] += int(judge.get("completion_tokens") or 0)
            if judge.get("cost") is not None:
                row["cost"] = (row["cost"] or 0.0) + float(judge["cost"])
            row["uncertain"] += check.status == NOT_APPLICABLE and bool(judge.get("uncertain"))
            row["errors"] += check.status == CHECK_ERROR
            row["templates"][str(judge.get("template"))] = judge.get("template_sha256")
            if len(samples) > 1:
                self._agreements.setdefault(name, []).append(float(judge.get("agreement") or 0.0))

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per judge, over every result added so far (see judge_summary)."""
        by_judge = {name: dict(row) for name, row in self._by_judge.items()}
        for name, values in self._agreements.items():
            by_judge[name]["self_agreement"] = sum(values) / len(values)
        return dict(sorted(by_judge.items()))
