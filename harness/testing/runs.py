"""A stored run of any size, written in seconds: for the report's tests and benches at
100,000 cases, which would take minutes to run even against a zero-latency fake.

Each journal line is a real result (the runner's own serialisation of one template result
per verdict) with its case id and reply put in, so every reader reads it as it reads a
run's journal: ``write_large_run(path, 100_000)`` then ``load_run(path)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.results.record import (
    CaseResult,
    CheckResult,
    CheckStatus,
    ErrorInfo,
    TurnResult,
    Verdict,
)
from harness.results.store import RESULTS_FILE, write_meta
from harness.writable import json_text

SUITE = "scale"
TARGET = "gpt35"
_CASE, _REPLY = "@@case@@", "@@reply@@"


@dataclass(frozen=True)
class LargeRun:
    """What was written: the run's folder, and which cases did not pass (by case id)."""

    path: Path
    cases: int
    failed: tuple[str, ...]
    errored: tuple[str, ...]
    flaky: tuple[str, ...]

    def line_of(self, case: str, repeat: int = 0) -> int:
        """The journal line (from 1) of ``case``'s result ``repeat``: cases are written in
        order, one line each, a flaky case's second repeat right after its first."""
        number = int(case.removeprefix("ticket-"))
        before = sum(1 for c in self.flaky if int(c.removeprefix("ticket-")) < number)
        return number + before + repeat + 1


def case_id(number: int) -> str:
    return f"ticket-{number}"


def _template(verdict: Verdict, repeat: int) -> str:
    """One result line with the case id and reply left as placeholders."""
    status: CheckStatus = "fail" if verdict == "fail" else "pass"
    error = ErrorInfo("timeout", "no answer in 30 s") if verdict == "error" else None
    turn = TurnResult(
        request={"messages": [{"role": "user", "content": f"Please repeat case {_CASE}."}]},
        response=None,
        reply=None if error else _REPLY,
        finish_reason=None if error else "stop",
        usage={"prompt_tokens": 21, "completion_tokens": 12},
        latency_ms=None if error else 420.0,
        checks=()
        if error
        else (
            CheckResult("icontains", status, f"reply {'lacks' if status == 'fail' else 'has'} it"),
            CheckResult("finish_reason", "pass", "finish_reason is stop"),
        ),
        error=error,
    )
    result = CaseResult(SUITE, _CASE, TARGET, repeat, verdict, (turn,), error=error)
    return json_text(result.to_json())


def write_large_run(
    path: Path,
    cases: int,
    *,
    fail_every: int = 1000,
    error_every: int = 5000,
    flaky_every: int = 10_000,
) -> LargeRun:
    """A run of ``cases`` cases of suite "scale" on target "gpt35", in ``path``.

    Case n fails when n % fail_every == 3, errors when n % error_every == 7, and is flaky
    (two repeats, a pass then a fail) when n % flaky_every == 5; every other case passes.
    """
    path.mkdir(parents=True, exist_ok=True)
    templates = {
        (verdict, repeat): _template(verdict, repeat)
        for verdict in ("pass", "fail", "error")
        for repeat in (0, 1)
    }
    failed, errored, flaky = [], [], []
    with (path / RESULTS_FILE).open("w", encoding="utf-8") as journal:
        for n in range(cases):
            case = case_id(n)
            reply = f"Case {n} it is: your order arrived damaged and we are sorry."
            runs: list[tuple[Verdict, int]] = [("pass", 0)]
            if n % error_every == 7:
                runs = [("error", 0)]
                errored.append(case)
            elif n % fail_every == 3:
                runs = [("fail", 0)]
                failed.append(case)
            elif n % flaky_every == 5:
                runs = [("pass", 0), ("fail", 1)]
                flaky.append(case)
            for verdict, repeat in runs:
                line = templates[(verdict, repeat)].replace(_CASE, case).replace(_REPLY, reply)
                journal.write(line + "\n")
    write_meta(
        path,
        {
            "format": 2,
            "run_id": path.name,
            "status": "complete",
            "started_at": "2026-12-01T02:00:00Z",
            "finished_at": "2026-12-01T02:30:00Z",
            "azeval_version": "0.1.0",
            "suites": [{"id": SUITE, "path": "suites/scale.yaml", "cases": cases}],
            "targets": [{"name": TARGET, "kind": "azure", "model": "gpt-35-turbo"}],
        },
    )
    return LargeRun(path, cases, tuple(failed), tuple(errored), tuple(flaky))
