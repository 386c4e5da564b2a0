"""Run records for tests: one place that builds results, turns, errors and runs.

Defaults describe a small passing case on a gpt-35-turbo target; every argument names
what a test changes. Records built here are what the runner writes (same types, same
fields), so a reader tested on them reads a real run the same way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from harness.results.record import (
    CaseResult,
    CheckResult,
    CheckStatus,
    ErrorInfo,
    ErrorKind,
    TurnResult,
    Verdict,
)
from harness.results.runmeta import RunMeta
from harness.results.store import Journal, Run, load_run, write_meta

# The defaults a target gets in run_of and write_run: an Azure gpt-35-turbo deployment.
TARGET_DEFAULTS: dict[str, Any] = {
    "kind": "azure",
    "model": "gpt-35-turbo",
    "model_version": "0125",
    "api_version": "2024-10-21",
    "endpoint": "https://secret.example",
}


def check(
    status: CheckStatus = "pass",
    name: str = "contains",
    message: str | None = None,
    place: str = "",
) -> CheckResult:
    """One check's outcome; the message says what the check said unless given."""
    if message is None:
        message = f"reply {'has' if status == 'pass' else 'lacks'} it"
    return CheckResult(name, status, message, place=place)


def error(
    kind: ErrorKind = "timeout", message: str = "no answer in 60 s", **facts: Any
) -> ErrorInfo:
    """An error as the runner records it (``status``, ``code``, ``body`` optional)."""
    return ErrorInfo(kind, message, **facts)


def turn(
    reply: str | None = "Paris",
    *,
    checks: tuple[CheckResult, ...] = (),
    tokens: tuple[int, int] = (10, 5),
    latency: float | None = 100.0,
    cost: float | None = 0.001,
    error: ErrorInfo | None = None,
    messages: list[dict[str, Any]] | None = None,
    finish_reason: str | None = "stop",
    response: dict[str, Any] | None = None,
) -> TurnResult:
    """One answered turn (or, with ``error``, a failed one: no usage, no response)."""
    usage = {"prompt_tokens": tokens[0], "completion_tokens": tokens[1]} if tokens else {}
    return TurnResult(
        request={"messages": messages or []},
        response=response,
        reply=reply,
        finish_reason=finish_reason if reply is not None else None,
        usage=usage,
        latency_ms=latency,
        checks=checks,
        error=error,
        cost_usd=cost,
    )


def result(
    case: str,
    verdict: Verdict = "pass",
    *,
    suite: str = "geo",
    target: str = "gpt35",
    repeat: int = 0,
    reply: str | None = "Paris",
    model: str | None = "gpt-35-turbo",
    fingerprint: str | None = "fp_1",
    latency: float | None = 100.0,
    tokens: tuple[int, int] = (10, 5),
    cost: float | None = 0.001,
    checks: tuple[CheckResult, ...] | None = None,
    turns: tuple[TurnResult, ...] | None = None,
    **fields: Any,
) -> CaseResult:
    """One case on one target: one turn with one check, passed when ``verdict`` is pass.

    ``checks`` or ``turns`` replace what the turn checked or the turns themselves;
    any other CaseResult field (``error``, ``tags``, ``retries`` …) goes through ``fields``.
    """
    if checks is None:
        checks = (check("pass" if verdict == "pass" else "fail"),)
    if turns is None:
        turns = (turn(reply, checks=checks, tokens=tokens, latency=latency, cost=cost),)
    values: dict[str, Any] = {
        "model": model,
        "system_fingerprint": fingerprint,
        "started_at": "2025-01-01T00:00:00Z",
        "duration_ms": latency or 0.0,
        **fields,
    }
    return CaseResult(suite, case, target, repeat, verdict, turns, **values)


def failing(case: str, message: str = "reply lacks ['Paris']", **kw: Any) -> CaseResult:
    """A case whose contains check failed, with the place the check sits in its suite."""
    return result(
        case,
        "fail",
        checks=(check("fail", message=message, place="cases[0].expect.contains"),),
        **kw,
    )


def erroring(
    case: str, kind: ErrorKind = "timeout", message: str = "no answer in 60 s", **kw: Any
) -> CaseResult:
    """A case that ended with an error before any turn was answered."""
    return result(case, "error", turns=(), error=error(kind, message), **kw)


def unchecked(case: str, **kw: Any) -> CaseResult:
    """A case answered but checked by nothing: never a pass."""
    return result(case, "unchecked", checks=(), **kw)


def target_meta(name: str, **fields: Any) -> dict[str, Any]:
    """A target as run.json lists it."""
    return {"name": name, **TARGET_DEFAULTS, "deployment": name, **fields}


def run_meta(
    targets: tuple[str, ...] | list[dict[str, Any]] = ("gpt35",), **fields: Any
) -> dict[str, Any]:
    """run.json's content for a complete run on ``targets`` (names, or target entries)."""
    entries = [t if isinstance(t, dict) else target_meta(t) for t in targets]
    return {
        "run_id": "20250101-000000-abcd",
        "git_commit": "abc123",
        "started_at": "2025-01-01T00:00:00Z",
        "finished_at": "2025-01-01T00:05:00Z",
        "azeval_version": "0.1.0",
        "status": "complete",
        "suites": [{"id": "geo", "path": "suites/geo.yaml", "sha256": "f" * 64, "cases": 2}],
        "targets": entries,
        **fields,
    }


def run_of(results: list[CaseResult], targets: tuple[str, ...] = ("gpt35",), **meta: Any) -> Run:
    """A run held in memory (nothing written)."""
    recorded = RunMeta.from_json(run_meta(targets, **meta))
    return Run(path=Path("reports/runs/x"), meta=recorded, results=results)


def write_run(
    folder: Path,
    results: list[CaseResult],
    targets: tuple[str, ...] | list[dict[str, Any]] | None = None,
    **meta: Any,
) -> Run:
    """A run directory on disk (journal and run.json), loaded back as readers see it."""
    names = targets or tuple(dict.fromkeys(r.target for r in results)) or ("gpt35",)
    return write_records(folder, results, run_meta(names, **{"run_id": folder.name, **meta}))


def write_records(folder: Path, results: list[CaseResult], meta: dict[str, Any]) -> Run:
    """A run directory whose run.json is exactly ``meta`` (say a sparse one, as an old or
    foreign writer leaves it), loaded back as readers see it."""
    journal = Journal(folder)
    for r in results:
        journal.append(r)
    journal.close()
    write_meta(folder, meta)
    return load_run(folder)


# The run.json the HTML report tests read: a suite "refunds", a commit and the times.
REPORT_META: dict[str, Any] = {
    "started_at": "2025-03-01T10:00:00Z",
    "finished_at": "2025-03-01T10:05:00Z",
    "azeval_version": "0.1.0",
    "git_commit": "abc123def4567890",
    "suites": [{"id": "refunds", "path": "suites/refunds.yaml", "sha256": "f" * 64, "cases": 3}],
    "status": "complete",
}


def report_run(
    path: Path, results: list[CaseResult], targets: list[dict[str, Any]], **meta: Any
) -> Run:
    """A stored run of the suite "refunds" on ``targets`` (entries as run.json lists them)."""
    return write_records(
        path, results, {"run_id": path.name, **REPORT_META, "targets": targets, **meta}
    )


def report_case(
    name: str,
    verdict: Verdict,
    *,
    target: str = "gpt35",
    reply: str | None = "fine",
    statuses: tuple[CheckStatus, ...] = ("pass",),
    error: ErrorInfo | None = None,
    **fields: Any,
) -> CaseResult:
    """A case of suite "refunds" with one check per status (saying "check said <status>"),
    12/7 tokens, 321 ms, no model and no cost: what the HTML report tests render."""
    answered = TurnResult(
        request={"messages": [{"role": "user", "content": f"question {name}"}]},
        response=None,
        reply=reply,
        finish_reason="stop",
        usage={"prompt_tokens": 12, "completion_tokens": 7},
        latency_ms=321.0,
        checks=tuple(CheckResult("contains", s, f"check said {s}") for s in statuses),
    )
    return CaseResult("refunds", name, target, 0, verdict, (answered,), error=error, **fields)


def browser_result(
    case: str, target: str, verdict: Verdict, reply: str | None, **fields: Any
) -> CaseResult:
    """A case of suite "demo" as the browser tests render it: a contains check that says
    its verdict and a content_filter check that is n/a (no checks on an error)."""
    status: CheckStatus = {"pass": "pass", "fail": "fail"}.get(verdict, "n/a")  # type: ignore[assignment]
    answered = TurnResult(
        request={"messages": [{"role": "user", "content": f"Tell me about {case}."}]},
        response=None,
        reply=reply,
        finish_reason="stop" if reply is not None else None,
        usage={"prompt_tokens": 20, "completion_tokens": 9},
        latency_ms=400.0,
        checks=(
            CheckResult("contains", status, f"contains said {status}"),
            CheckResult("content_filter", "n/a", "no content filter results from this target"),
        )
        if verdict != "error"
        else (),
    )
    repeat = fields.pop("repeat", 0)
    return CaseResult("demo", case, target, repeat, verdict, (answered,), **fields)


def conversation(target: str, replies: list[str | None], error: str | None = None) -> CaseResult:
    """A conversation as the runner records it: each turn resends the history so far; a
    reply naming Ada passes its icontains check, and a missing one ends with ``error``."""
    asked = ["Hi, my name is Ada.", "What is my name?", "Where do I live?"]
    history: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    turns = []
    for question, reply in zip(asked, replies, strict=False):
        history = [*history, {"role": "user", "content": question}]
        status: CheckStatus = "pass" if reply and "Ada" in reply else "fail"
        turns.append(
            TurnResult(
                request={"messages": history},
                response=None,
                reply=reply,
                finish_reason="stop" if reply else None,
                usage={"prompt_tokens": 10, "completion_tokens": 5},
                latency_ms=200.0,
                checks=(CheckResult("icontains", status, f"icontains said {status}"),)
                if reply
                else (),
                error=ErrorInfo("timeout", error) if error and not reply else None,
            )
        )
        history = [*history, {"role": "assistant", "content": reply or ""}]
    verdict: Verdict = "error" if error else "pass"
    return CaseResult("chat", "name", target, 0, verdict, tuple(turns))


def replace_turn(result: CaseResult, **changes: Any) -> CaseResult:
    """``result`` with its first turn changed (a reply, checks, a cost …)."""
    first = dataclasses.replace(result.turns[0], **changes)
    return dataclasses.replace(result, turns=(first, *result.turns[1:]))


# azeval.toml of one azure target "gpt35" at the fake server FAKE_AZURE_ENDPOINT names.
GPT35_CONFIG = """
[targets.gpt35]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "gpt35"
model = "gpt-35-turbo"
model_version = "0125"
"""
