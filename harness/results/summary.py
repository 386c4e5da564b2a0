"""A run's summary per target, and each case's stability across repeats.

The runner calls :func:`summarize` once the run ends and stores the dict as
``run.json["summary"]``; reports and gates read it back.

Counts are per result (one case on one target, one repeat); ``distinct_cases`` counts
cases once however often they were repeated.

``pass_rate`` is strict: ``passed / cases``. A case that errored or that no check
verified ("unchecked") counts as not passed, because a pass nothing verified must never
be shown. ``None`` when the target has no case.

:func:`scheduling` reads what the runner's scheduler did per target
(``run.json["scheduler"]``) into typed values for reports.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.results.record import NOT_APPLICABLE, CaseResult
from harness.results.stats import percentile, wilson_interval

STABLE_PASS, FLAKY, STABLE_FAIL, UNCHECKED = "stable-pass", "flaky", "stable-fail", "unchecked"


@dataclass(frozen=True)
class CaseStability:
    """One case on one target across its repeats: how often it passed and how sure we are."""

    suite: str
    case: str
    target: str
    passed: int
    n: int
    verdicts: tuple[str, ...]
    low: float
    high: float

    @property
    def case_key(self) -> str:
        return f"{self.suite}/{self.case}"

    @property
    def pass_rate(self) -> float:
        return self.passed / self.n if self.n else 0.0

    @property
    def stability(self) -> str:
        """stable-pass, stable-fail, flaky (mixed), or unchecked when no repeat was checked."""
        if all(v == "unchecked" for v in self.verdicts):
            return UNCHECKED
        if self.passed == self.n:
            return STABLE_PASS
        if self.passed == 0:
            return STABLE_FAIL
        return FLAKY

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "case": self.case,
            "target": self.target,
            "passed": self.passed,
            "n": self.n,
            "pass_rate": self.pass_rate,
            "wilson_95": [self.low, self.high],
            "stability": self.stability,
        }


def case_stability(results: Iterable[CaseResult]) -> list[CaseStability]:
    """Group results by (suite, case, target) across repeats, in first-seen order."""
    groups: dict[tuple[str, str, str], list[CaseResult]] = defaultdict(list)
    for result in results:
        groups[(result.suite, result.case, result.target)].append(result)
    out = []
    for (suite, case, target), group in groups.items():
        group.sort(key=lambda r: r.repeat)
        verdicts = tuple(r.verdict for r in group)
        passed = verdicts.count("pass")
        low, high = wilson_interval(passed, len(verdicts))
        out.append(CaseStability(suite, case, target, passed, len(verdicts), verdicts, low, high))
    return out


def total_cost(results: Iterable[CaseResult]) -> float | None:
    """USD of all ``results``; None when any one's cost is unknown (a partial sum would read
    as the whole) or there is none. Rounded to a millionth of a cent."""
    costs = [r.cost_usd for r in results]
    if not costs or None in costs:
        return None
    return round(sum(c for c in costs if c is not None), 8)


def _target_summary(results: list[CaseResult]) -> dict[str, Any]:
    verdicts = Counter(r.verdict for r in results)
    checks = Counter(c.status for r in results for c in r.checks)
    latencies = [v for r in results if (v := r.latency_ms) is not None]
    stability = Counter(s.stability for s in case_stability(results))
    cases = len(results)
    passed = verdicts["pass"]
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(r.completion_tokens for r in results)
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    ttft = [v for r in results if (v := r.ttft_ms) is not None]
    rates = [v for r in results if (v := r.tokens_per_s) is not None]
    return {
        "cases": cases,
        "distinct_cases": len({r.case_key for r in results}),
        "passed": passed,
        "failed": verdicts["fail"],
        "errors": verdicts["error"],
        "unchecked": verdicts["unchecked"],
        "pass_rate": passed / cases if cases else None,
        "pass_rate_wilson_95": list(wilson_interval(passed, cases)),
        "checks": dict(sorted(checks.items())),
        "na_checks": checks[NOT_APPLICABLE],
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "latency_p50_ms": round(p50, 1) if p50 is not None else None,
        "latency_p95_ms": round(p95, 1) if p95 is not None else None,
        # Results answered wholly from the response cache, and answers (turns) it gave.
        "cached": sum(r.cached for r in results),
        "cached_answers": sum(t.cached is not None for r in results for t in r.turns),
        # Streamed results only: time to first token and output tokens per second.
        "streamed": sum(any(t.stream is not None for t in r.turns) for r in results),
        "ttft_p50_ms": _rounded(percentile(ttft, 50), 1),
        "ttft_p95_ms": _rounded(percentile(ttft, 95), 1),
        "tokens_per_s_p50": _rounded(percentile(rates, 50), 1),
        "tokens_per_s_p95": _rounded(percentile(rates, 95), 1),
        # What the cached answers would have cost to send (their cost_usd is 0: not spent).
        "saved_usd": _saved(results),
        "retries": sum(r.retries for r in results),
        "rate_limited": sum(r.rate_limited for r in results),
        "waited_s": round(sum(r.waited_s for r in results), 3),
        "errors_by_kind": dict(
            sorted(Counter(r.error.kind for r in results if r.error is not None).items())
        ),
        "models": sorted({r.model for r in results if r.model}),
        "system_fingerprints": sorted(
            {r.system_fingerprint for r in results if r.system_fingerprint}
        ),
        "cost_usd": total_cost(results),
        "stability": {k: stability[k] for k in (STABLE_PASS, FLAKY, STABLE_FAIL, UNCHECKED)},
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _saved(results: Iterable[CaseResult]) -> float | None:
    """USD the cached answers saved; None when none of them had a price."""
    saved = [
        t.cached.saved_usd
        for r in results
        for t in r.turns
        if t.cached is not None and t.cached.saved_usd is not None
    ]
    return round(sum(saved), 6) if saved else None


def summarize(results: list[CaseResult], target_names: list[str]) -> dict[str, Any]:
    """Per-target counts, rates, tokens, latency, retries, errors and models; JSON-ready.

    Targets come in ``target_names`` order; a target seen in the results but not named is
    appended, so nothing goes missing from the summary.
    """
    by_target: dict[str, list[CaseResult]] = {name: [] for name in target_names}
    for result in results:
        by_target.setdefault(result.target, []).append(result)
    targets = {name: _target_summary(group) for name, group in by_target.items()}
    return {
        "cases": len(results),
        "repeats": max((r.repeat for r in results), default=-1) + 1 if results else 0,
        "targets": targets,
        "verdicts": dict(sorted(Counter(r.verdict for r in results).items())),
        "cached": sum(s["cached"] for s in targets.values()),
        "saved_usd": _saved(results),
        # A target whose responses named more than one model changed under us mid-run.
        "model_drift": sorted(name for name, s in targets.items() if len(s["models"]) > 1),
    }


@dataclass(frozen=True)
class Scheduling:
    """What the runner's scheduler did for one target: budget spent, waits, concurrency."""

    requests: int
    tokens_charged: int
    refunded: int  # requests whose charge came back (refused with a 429, or never sent)
    rate_limited: int
    paused_s: float  # the whole target paused on a 429's Retry-After
    queued_s: float  # summed over requests waiting for budget
    min_concurrency: int
    final_concurrency: int | None
    max_concurrency: int | None
    max_in_flight: int
    tpm: int | None
    rpm: int | None
    # "config" when the target's config set tpm/rpm, "learned" when they came from the
    # answers' rate-limit headers (None until a header was seen).
    limits_from: str

    @property
    def eventful(self) -> bool:
        """Whether the scheduler ever held this target back: a 429, a pause or a smaller -j."""
        smaller = self.max_concurrency is not None and self.min_concurrency < self.max_concurrency
        return bool(self.rate_limited or self.paused_s or smaller)


def _count(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _maybe(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def scheduling(meta: Mapping[str, Any]) -> dict[str, Scheduling]:
    """Each target's scheduling from a run's meta; empty for runs recorded before it existed.

    Lenient on purpose: a report must render whatever an older or newer runner wrote, so an
    unknown shape reads as zeros and unknowns rather than failing the page.
    """
    recorded = meta.get("scheduler")
    if not isinstance(recorded, Mapping):
        return {}
    out = {}
    for name, data in recorded.items():
        if not isinstance(data, Mapping):
            continue
        out[str(name)] = Scheduling(
            requests=_count(data.get("requests")),
            tokens_charged=_count(data.get("tokens_charged")),
            refunded=_count(data.get("refunded")),
            rate_limited=_count(data.get("rate_limited")),
            paused_s=_seconds(data.get("paused_s")),
            queued_s=_seconds(data.get("queued_s")),
            min_concurrency=_count(data.get("min_concurrency")),
            final_concurrency=_maybe(data.get("concurrency")),
            max_concurrency=_maybe(data.get("max_concurrency")),
            max_in_flight=_count(data.get("max_in_flight")),
            tpm=_maybe(data.get("tpm")),
            rpm=_maybe(data.get("rpm")),
            limits_from=str(data.get("tpm_source") or "config"),
        )
    return out
