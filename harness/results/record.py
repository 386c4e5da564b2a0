"""The run record: what a run writes and what reports, diffs and gates read.

A run lives in ``reports/runs/<run-id>/``: ``run.json`` (the run's metadata and summary)
and ``results.jsonl`` (one line per case × target × repeat, appended as each finishes).

Every result line and run.json carry ``format`` (:data:`FORMAT`). Format 1 (azeval 0.1.0,
no ``format`` key) still loads: its errors have the same keys, and its turns have no cost
(read as unknown).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, cast

from harness.results.lazy import cached_property
from harness.results.stats import mean_of
from harness.streamed import StreamStats
from harness.targets.base import CachedFrom

# The record format this version writes; older formats load (see the module docstring).
FORMAT = 2

# A check's outcome. "n/a" means the target cannot give the data the check needs; it is
# shown as such and never counts as a pass.
CheckStatus = Literal["pass", "fail", "n/a", "error"]
PASS: CheckStatus = "pass"
FAIL: CheckStatus = "fail"
NOT_APPLICABLE: CheckStatus = "n/a"
CHECK_ERROR: CheckStatus = "error"

# A case's verdict. "unchecked" means no check applied, which is never a pass.
Verdict = Literal["pass", "fail", "error", "unchecked"]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "error", "unchecked")

# Why a request or a case failed. From the target (harness/targets): content_filter,
# rate_limited, timeout, server_error, auth, not_found, redirect, bad_request,
# context_length, connection, invalid_response; from the runner: preflight (the plan found
# the service would refuse it), deadline, target_unavailable, history_budget, not_in_cache
# (a --replay miss), stale (a rescore whose stored run never sent this request). A record
# from a newer azeval may hold a kind not listed here: it loads as written.
ErrorKind = Literal[
    "content_filter",
    "rate_limited",
    "timeout",
    "server_error",
    "auth",
    "not_found",
    "redirect",
    "bad_request",
    "context_length",
    "connection",
    "invalid_response",
    "preflight",
    "deadline",
    "target_unavailable",
    "history_budget",
    "not_in_cache",
    "stale",
    # A Global Batch job that ended before the case's line ran, or that was refused whole.
    "batch_expired",
    "batch_cancelled",
    "batch_failed",
]


@dataclass(frozen=True)
class ErrorInfo:
    """What went wrong with a request or a case: its kind, the message, the HTTP facts."""

    kind: ErrorKind
    message: str
    status: int | None = None
    code: str | None = None
    body: Any = None

    def line(self) -> str:
        """``kind (HTTP status): message``, as reports and the console show an error."""
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{self.kind}{status}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "status": self.status,
            "code": self.code,
            "body": self.body,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ErrorInfo:
        status = data.get("status")
        code = data.get("code")
        return cls(
            kind=cast(ErrorKind, str(data.get("kind") or "unknown")),
            message=str(data.get("message") or ""),
            status=status if isinstance(status, int) and not isinstance(status, bool) else None,
            code=None if code is None else str(code),
            body=data.get("body"),
        )


def _error_from(data: Any) -> ErrorInfo | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise TypeError("an error must be an object")
    return ErrorInfo.from_json(data)


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: what was expected, what came back, in words."""

    check: str
    status: CheckStatus
    message: str
    place: str = ""
    expected: Any = None
    actual: Any = None
    # A model-graded check's judgement (harness.judge.judging.Judgement.to_json()).
    judge: dict[str, Any] | None = None
    # How close the reply came, in [0, 1], for checks that measure (rouge, bleu, …); a
    # record written before scores existed has none.
    score: float | None = None
    # What the suite wrote: how much the check counts in its case's score (None: 1), and
    # the named score (``metric:``) it adds to.
    weight: float | None = None
    metric: str | None = None
    # USD the check spent for the run (similar's embedding tokens), counted in the case's
    # cost; None when it spent nothing (or an embedder without a price: see cost_known).
    cost_usd: float | None = None
    cost_known: bool = True

    @property
    def value(self) -> float | None:
        """What the check puts into its case's score: its own score, else 1 for a pass and
        0 for a fail; None for n/a and errors, which verified nothing."""
        if self.status not in (PASS, FAIL):
            return None
        if self.score is not None:
            return self.score
        return 1.0 if self.status == PASS else 0.0

    def scoring(self) -> str:
        """``score 0.800, weight 3, metric accuracy``: what of these the check has, as every
        text output says it ("" when none)."""
        parts = [] if self.score is None else [f"score {self.score:.3f}"]
        if self.weight is not None:
            parts.append(f"weight {self.weight:g}")
        if self.metric is not None:
            parts.append(f"metric {self.metric}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _CHECK_FIELDS}
        # Most checks have no judge, score, weight or metric: their lines stay as they were.
        for optional in ("judge", "score", "weight", "metric", "cost_usd"):
            if data[optional] is None:
                del data[optional]
        if data["cost_known"]:
            del data["cost_known"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckResult:
        return cls(**data)


@dataclass(frozen=True)
class Truncation:
    """What ``history: drop_oldest`` dropped from a conversation so that a turn fit its
    budget: each dropped message (its index in the history, from 0, and its role), the
    prompt tokens they took, and the budget."""

    dropped: tuple[tuple[int, str], ...]
    tokens: int
    budget: int

    def line(self) -> str:
        """One sentence, as the report, the console and Markdown show it."""
        which = ", ".join(f"#{i + 1} {role}" for i, role in self.dropped)
        return (
            f"history truncated (drop_oldest): {len(self.dropped)} message(s) dropped "
            f"({which}), {self.tokens:,} tokens, to fit the budget of {self.budget:,}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "dropped": [[i, role] for i, role in self.dropped],
            "tokens": self.tokens,
            "budget": self.budget,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Truncation:
        return cls(
            dropped=tuple((int(i), str(role)) for i, role in data.get("dropped") or ()),
            tokens=int(data.get("tokens") or 0),
            budget=int(data.get("budget") or 0),
        )


@dataclass(frozen=True)
class TurnResult:
    """One request of a case and what came of it."""

    request: dict[str, Any]
    response: dict[str, Any] | None
    reply: str | None
    finish_reason: str | None
    usage: dict[str, Any]
    latency_ms: float | None
    checks: tuple[CheckResult, ...]
    error: ErrorInfo | None = None
    # Answered from the response cache: the run that stored the answer, when, and the
    # latency it had then (``latency_ms`` is None: nothing was measured in this run).
    cached: CachedFrom | None = None
    # USD this run spent on the turn, priced from ``usage`` (harness.models.Price.cost); 0 for
    # an answer from the cache; None when the model has no price (or the record predates
    # costs): unknown, never 0.
    cost_usd: float | None = None
    # A streamed answer's timings and filter annotations; None when it was not streamed.
    stream: StreamStats | None = None
    # The deployment of a pool that answered (or failed) the request; None for any other.
    member: str | None = None
    # The history messages dropped to fit this turn's budget; None when none was.
    truncated: Truncation | None = None

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _TURN_FIELDS}
        data["checks"] = [c.to_json() for c in self.checks]
        data["cached"] = self.cached.to_json() if self.cached is not None else None
        data["error"] = self.error.to_json() if self.error is not None else None
        data["stream"] = self.stream.to_json() if self.stream is not None else None
        if self.member is None:
            del data["member"]  # only a pool's turns say which member: other lines as they were
        # Written only when something was dropped: other turns read as format 2 always did.
        if self.truncated is None:
            del data["truncated"]
        else:
            data["truncated"] = self.truncated.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TurnResult:
        values = dict(data)
        values["checks"] = tuple(CheckResult.from_json(c) for c in data.get("checks", ()))
        cached = data.get("cached")
        values["cached"] = CachedFrom.from_json(cached) if isinstance(cached, dict) else None
        values["error"] = _error_from(data.get("error"))
        stream = data.get("stream")
        values["stream"] = StreamStats.from_json(stream) if stream is not None else None
        truncated = data.get("truncated")
        values["truncated"] = Truncation.from_json(truncated) if truncated else None
        return cls(**values)


@dataclass(frozen=True)
class CaseResult:
    """One case on one target (one repeat): its turns, verdict and how it got there."""

    suite: str
    case: str
    target: str
    repeat: int
    verdict: Verdict
    turns: tuple[TurnResult, ...]
    error: ErrorInfo | None = None
    attempts: int = 1
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    model: str | None = None
    system_fingerprint: str | None = None
    started_at: str = ""
    duration_ms: float = 0.0
    tags: tuple[str, ...] = ()
    path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # The weighted mean of the checks' values (see CheckResult.value); None when no check
    # verified anything. ``threshold``: the case's, when its verdict was decided by score.
    score: float | None = None
    threshold: float | None = None

    @property
    def key(self) -> str:
        """Unique within a run: suite/case@target#repeat."""
        return f"{self.suite}/{self.case}@{self.target}#{self.repeat}"

    @cached_property
    def case_key(self) -> str:
        return f"{self.suite}/{self.case}"

    @property
    def reply(self) -> str | None:
        """The last turn's reply text."""
        return self.turns[-1].reply if self.turns else None

    @cached_property
    def checks(self) -> tuple[CheckResult, ...]:
        return tuple(c for t in self.turns for c in t.checks)

    @cached_property
    def prompt_tokens(self) -> int:
        return sum(int(t.usage.get("prompt_tokens") or 0) for t in self.turns)

    @cached_property
    def completion_tokens(self) -> int:
        return sum(int(t.usage.get("completion_tokens") or 0) for t in self.turns)

    @property
    def cached(self) -> bool:
        """Every turn was answered from the response cache (nothing was sent)."""
        return bool(self.turns) and all(t.cached is not None for t in self.turns)

    @cached_property
    def cost_usd(self) -> float | None:
        """USD of every turn and what its checks spent (embeddings); None when any of it is
        unknown. Nothing sent costs 0."""
        costs = [t.cost_usd for t in self.turns]
        if any(c is None for c in costs) or not all(c.cost_known for c in self.checks):
            return None
        spent = sum(c.cost_usd for c in self.checks if c.cost_usd is not None)
        return sum(c for c in costs if c is not None) + spent

    @cached_property
    def ttft_ms(self) -> float | None:
        """The mean time to first token of the streamed turns; None when none streamed."""
        return mean_of(t.stream.ttft_ms for t in self.turns if t.stream is not None)

    @cached_property
    def tokens_per_s(self) -> float | None:
        """The mean output rate of the streamed turns; None when none streamed."""
        return mean_of(t.stream.tokens_per_s for t in self.turns if t.stream is not None)

    @cached_property
    def latency_ms(self) -> float | None:
        values = [t.latency_ms for t in self.turns if t.latency_ms is not None]
        return sum(values) if values else None

    def scoring(self) -> str:
        """``score 0.850 ≥ threshold 0.7`` (or just ``score 0.850``), "" without a score."""
        if self.score is None:
            return ""
        if self.threshold is None:
            return f"score {self.score:.3f}"
        relation = "≥" if self.score >= self.threshold else "<"
        return f"score {self.score:.3f} {relation} threshold {self.threshold:g}"

    def history_notes(self) -> list[str]:
        """What ``history: drop_oldest`` dropped, a sentence per turn it dropped messages for
        (numbered as the conversation's turns when it has several)."""
        many = len(self.turns) > 1
        return [
            (f"turn {i + 1}: " if many else "") + t.truncated.line()
            for i, t in enumerate(self.turns)
            if t.truncated is not None
        ]

    def problem(self) -> str:
        """Why this result is not a pass, in one line: the error, else the first bad check."""
        if self.error is not None:
            return f"{self.error.kind}: {self.error.message}"
        if self.verdict == "pass":
            return ""  # a score that reached its threshold, over a check that fell short
        bad = [c for c in self.checks if c.status in (FAIL, CHECK_ERROR)]
        scored_out = self.threshold is not None and self.score is not None
        if scored_out and self.verdict == "fail" and CHECK_ERROR not in {c.status for c in bad}:
            return self.scoring()
        if bad:
            return f"check {bad[0].check}: {bad[0].message}"
        if self.verdict == "unchecked":
            return "no check verified this case"
        return ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view. Shallow: it shares the request and response bodies (copying
        them, as ``dataclasses.asdict`` would, costs more than sending the request)."""
        data: dict[str, Any] = {"format": FORMAT}
        data.update((name, getattr(self, name)) for name in _CASE_FIELDS)
        data["turns"] = [t.to_json() for t in self.turns]
        data["tags"] = list(self.tags)
        data["cached"] = self.cached
        data["error"] = self.error.to_json() if self.error is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseResult:
        """A result of this format or an older one (format 1 has no ``format`` key)."""
        values = dict(data)
        values.pop("cached", None)  # read from the turns
        values.pop("format", None)
        values["turns"] = tuple(TurnResult.from_json(t) for t in data.get("turns", ()))
        values["tags"] = tuple(data.get("tags", ()))
        values["error"] = _error_from(data.get("error"))
        return cls(**values)


_CHECK_FIELDS = tuple(f.name for f in fields(CheckResult))
_TURN_FIELDS = tuple(f.name for f in fields(TurnResult))
_CASE_FIELDS = tuple(f.name for f in fields(CaseResult))


def verdict_of(
    checks: tuple[CheckResult, ...], error: ErrorInfo | None, threshold: float | None = None
) -> Verdict:
    """pass only when at least one check passed and none failed or errored; with a
    ``threshold``, when the case's score reaches it instead (a check error still fails:
    a score missing a part is no verification)."""
    if error is not None:
        return "error"
    statuses = {c.status for c in checks}
    if threshold is not None and CHECK_ERROR not in statuses:
        score = case_score(checks)
        if score is None:
            return "unchecked"
        return "pass" if score >= threshold else "fail"
    if FAIL in statuses or CHECK_ERROR in statuses:
        return "fail"
    if PASS in statuses:
        return "pass"
    return "unchecked"


def case_score(checks: tuple[CheckResult, ...]) -> float | None:
    """The weighted mean of the checks' values to 6 places (as recorded: a mean of 0.7s
    that comes out 0.69999… reaches a threshold of 0.7); None when none has one."""
    total = weights = 0.0
    for c in checks:
        value = c.value
        if value is None:
            continue
        weight = 1.0 if c.weight is None else c.weight
        total += weight * value
        weights += weight
    return round(total / weights, 6) if weights else None
