"""A run's summary: one TargetSummary per target, computed once and read by every output.

One :class:`TargetSummary` per target is the only place a target's numbers are computed:
the HTML report, Markdown, JUnit, the gate, bless and ``azeval diff`` read it (through
``Run.summary``), and the runner stores its JSON as ``run.json["summary"]``.

It is built incrementally: a :class:`RunTally` (or a :class:`TargetTally` for one target)
is fed one result at a time with ``.add(result)`` and gives the summary with
``.summary()``, so a journal of any size is summarised in one pass without keeping its
results. Feed it one result per key (``latest_results``): a key added twice counts twice.

Counts are per result (one case on one target, one repeat); ``distinct_cases`` counts
cases once however often they were repeated.

``pass_rate`` is strict: ``passed / cases``. A case that errored or that no check
verified ("unchecked") counts as not passed, because a pass nothing verified must never
be shown. ``None`` when the target has no case.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from harness.results.record import NOT_APPLICABLE, CaseResult, Verdict
from harness.results.stability import STABILITIES, stability_of
from harness.results.stats import percentile, wilson_interval


@dataclass(frozen=True)
class TargetSummary:
    """Every figure a report, a gate or a baseline shows for one target of a run.

    ``cost_usd`` is None when any result's cost is unknown (a partial sum would read as
    the whole) or there is no result; ``saved_usd`` (what the cached answers would have
    cost to send) is None when none of them had a price.
    """

    target: str
    cases: int = 0
    distinct_cases: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    unchecked: int = 0
    pass_rate: float | None = None
    pass_rate_wilson_95: tuple[float, float] = (0.0, 1.0)
    checks: Mapping[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    # Results answered wholly from the response cache, and answers (turns) it gave.
    cached: int = 0
    cached_answers: int = 0
    # Streamed results only: time to first token and output tokens per second.
    streamed: int = 0
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    tokens_per_s_p50: float | None = None
    tokens_per_s_p95: float | None = None
    saved_usd: float | None = None
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    errors_by_kind: Mapping[str, int] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    system_fingerprints: tuple[str, ...] = ()
    cost_usd: float | None = None
    stability: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(STABILITIES, 0))
    # The mean weighted score of the results that have one (``scored`` of them), and each
    # named metric's weighted mean over the checks that name it (see CheckResult.value).
    score: float | None = None
    scored: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def na_checks(self) -> int:
        return self.checks.get(NOT_APPLICABLE, 0)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def scoring(self) -> str:
        """``0.850 over 3 results · accuracy 0.880 · tone 1.000``, as every output says it;
        "" when no result was scored and no check named a metric."""
        parts = [f"{self.score:.3f} over {self.scored} result(s)"] if self.score is not None else []
        parts += [f"{name} {value:.3f}" for name, value in self.metrics.items()]
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "distinct_cases": self.distinct_cases,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "unchecked": self.unchecked,
            "pass_rate": self.pass_rate,
            "pass_rate_wilson_95": list(self.pass_rate_wilson_95),
            "checks": dict(self.checks),
            "na_checks": self.na_checks,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "cached": self.cached,
            "cached_answers": self.cached_answers,
            "streamed": self.streamed,
            "ttft_p50_ms": self.ttft_p50_ms,
            "ttft_p95_ms": self.ttft_p95_ms,
            "tokens_per_s_p50": self.tokens_per_s_p50,
            "tokens_per_s_p95": self.tokens_per_s_p95,
            "saved_usd": self.saved_usd,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "waited_s": self.waited_s,
            "errors_by_kind": dict(self.errors_by_kind),
            "models": list(self.models),
            "system_fingerprints": list(self.system_fingerprints),
            "cost_usd": self.cost_usd,
            "stability": dict(self.stability),
            "score": self.score,
            "scored": self.scored,
            "metrics": dict(self.metrics),
        }

    @classmethod
    def from_json(cls, target: str, data: Mapping[str, Any]) -> TargetSummary:
        """A stored summary back; lenient, since a run of an older azeval may lack figures
        (they read as zero or unknown, never as a failure to load)."""

        def count(key: str) -> int:
            return int(_number(data.get(key)) or 0)

        def maybe(key: str) -> float | None:
            return _number(data.get(key))

        def counts(key: str) -> dict[str, int]:
            return _counts(data.get(key))

        def names(key: str) -> tuple[str, ...]:
            value = data.get(key)
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        interval = data.get("pass_rate_wilson_95")
        bounds = [_number(v) for v in interval] if isinstance(interval, list) else []
        low, high = bounds if len(bounds) == 2 else (None, None)
        low_high = (low, high) if low is not None and high is not None else (0.0, 1.0)
        return cls(
            target=target,
            cases=count("cases"),
            distinct_cases=count("distinct_cases"),
            passed=count("passed"),
            failed=count("failed"),
            errors=count("errors"),
            unchecked=count("unchecked"),
            pass_rate=maybe("pass_rate"),
            pass_rate_wilson_95=low_high,
            checks=counts("checks"),
            prompt_tokens=count("prompt_tokens"),
            completion_tokens=count("completion_tokens"),
            latency_p50_ms=maybe("latency_p50_ms"),
            latency_p95_ms=maybe("latency_p95_ms"),
            cached=count("cached"),
            cached_answers=count("cached_answers"),
            streamed=count("streamed"),
            ttft_p50_ms=maybe("ttft_p50_ms"),
            ttft_p95_ms=maybe("ttft_p95_ms"),
            tokens_per_s_p50=maybe("tokens_per_s_p50"),
            tokens_per_s_p95=maybe("tokens_per_s_p95"),
            saved_usd=maybe("saved_usd"),
            retries=count("retries"),
            rate_limited=count("rate_limited"),
            waited_s=maybe("waited_s") or 0.0,
            errors_by_kind=counts("errors_by_kind"),
            models=names("models"),
            system_fingerprints=names("system_fingerprints"),
            cost_usd=maybe("cost_usd"),
            stability={k: counts("stability").get(k, 0) for k in STABILITIES},
            score=maybe("score"),
            scored=count("scored"),
            metrics=_means(data.get("metrics")),
        )


def _counts(value: Any) -> dict[str, int]:
    """A JSON object of counts; what is not a count is left out."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): int(n) for k, v in value.items() if (n := _number(v)) is not None}


def _means(value: Any) -> dict[str, float]:
    """A JSON object of named means; what is not a number is left out."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): n for k, v in value.items() if (n := _number(v)) is not None}


def _number(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (a bool is not a number here)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class _Saved:
    """USD the cached answers saved, summed as they come; None when none had a price."""

    def __init__(self) -> None:
        self.total = 0.0
        self.priced = False

    def add(self, result: CaseResult) -> None:
        for turn in result.turns:
            if turn.cached is not None and turn.cached.saved_usd is not None:
                self.total += turn.cached.saved_usd
                self.priced = True

    def value(self) -> float | None:
        return round(self.total, 6) if self.priced else None


# Where a case's repeats run and pass in TargetTally's packed counts: passes below runs,
# with room for 2**39 repeats of a case.
_RUNS = 40
_PASSED = ((1 << _RUNS) - 1) & ~1


class TargetTally:
    """One target's summary, built one result at a time (``add``, then ``summary``).

    It keeps counts, sums and the measured latencies (for exact percentiles), plus three
    numbers per distinct case for its stability: never the results themselves.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self._verdicts: Counter[str] = Counter()
        self._checks: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        # Per case ("suite/case": a suite id holds no "/"): its repeats packed in one int,
        # passed << 1 | checked plus runs << _RUNS; a tuple key and a list of three were
        # about 200 bytes a case, 20 MB of summarising 100,000.
        self._cases: dict[str, int] = {}
        self._latency = array("d")
        self._ttft = array("d")
        self._rates = array("d")
        self._prompt = self._completion = 0
        self._cached = self._cached_answers = self._streamed = 0
        self._retries = self._rate_limited = 0
        self._waited = 0.0
        self._cost = 0.0
        self._cost_known = True
        self._saved = _Saved()
        self._models: set[str] = set()
        self._prints: set[str] = set()
        self._score = 0.0
        self._scored = 0
        # Per metric name: [weighted sum of values, sum of weights].
        self._metrics: dict[str, list[float]] = {}

    def add(self, result: CaseResult) -> None:
        """Count one result in."""
        verdict = result.verdict
        self._verdicts[verdict] += 1
        self._checks.update(c.status for c in result.checks)
        if result.error is not None:
            self._errors[result.error.kind] += 1
        key = f"{result.suite}/{result.case}"
        counts = self._cases.get(key, 0) + (1 << _RUNS) + ((verdict == "pass") << 1)
        self._cases[key] = counts | (verdict != "unchecked")
        if (latency := result.latency_ms) is not None:
            self._latency.append(latency)
        if (ttft := result.ttft_ms) is not None:
            self._ttft.append(ttft)
        if (rate := result.tokens_per_s) is not None:
            self._rates.append(rate)
        self._prompt += result.prompt_tokens
        self._completion += result.completion_tokens
        self._cached += result.cached
        self._cached_answers += sum(t.cached is not None for t in result.turns)
        self._streamed += any(t.stream is not None for t in result.turns)
        self._retries += result.retries
        self._rate_limited += result.rate_limited
        self._waited += result.waited_s
        cost = result.cost_usd
        if cost is None:
            self._cost_known = False
        else:
            self._cost += cost
        self._saved.add(result)
        if result.model:
            self._models.add(result.model)
        if result.system_fingerprint:
            self._prints.add(result.system_fingerprint)
        if result.score is not None:
            self._score += result.score
            self._scored += 1
        for check in result.checks:
            if check.metric is not None and (value := check.value) is not None:
                weight = 1.0 if check.weight is None else check.weight
                sums = self._metrics.setdefault(check.metric, [0.0, 0.0])
                sums[0] += weight * value
                sums[1] += weight

    def summary(self) -> TargetSummary:
        """The target's figures over every result added so far."""
        cases = sum(self._verdicts.values())
        passed = self._verdicts["pass"]
        stability = Counter(
            stability_of((c & _PASSED) >> 1, c >> _RUNS, bool(c & 1)) for c in self._cases.values()
        )
        return TargetSummary(
            target=self.target,
            cases=cases,
            distinct_cases=len(self._cases),
            passed=passed,
            failed=self._verdicts["fail"],
            errors=self._verdicts["error"],
            unchecked=self._verdicts["unchecked"],
            pass_rate=passed / cases if cases else None,
            pass_rate_wilson_95=wilson_interval(passed, cases),
            checks=dict(sorted(self._checks.items())),
            prompt_tokens=self._prompt,
            completion_tokens=self._completion,
            latency_p50_ms=_rounded(percentile(self._latency, 50), 1),
            latency_p95_ms=_rounded(percentile(self._latency, 95), 1),
            cached=self._cached,
            cached_answers=self._cached_answers,
            streamed=self._streamed,
            ttft_p50_ms=_rounded(percentile(self._ttft, 50), 1),
            ttft_p95_ms=_rounded(percentile(self._ttft, 95), 1),
            tokens_per_s_p50=_rounded(percentile(self._rates, 50), 1),
            tokens_per_s_p95=_rounded(percentile(self._rates, 95), 1),
            saved_usd=self._saved.value(),
            retries=self._retries,
            rate_limited=self._rate_limited,
            waited_s=round(self._waited, 3),
            errors_by_kind=dict(sorted(self._errors.items())),
            models=tuple(sorted(self._models)),
            system_fingerprints=tuple(sorted(self._prints)),
            # Rounded to a millionth of a cent: float sums of prices carry noise below it.
            cost_usd=round(self._cost, 8) if cases and self._cost_known else None,
            stability={k: stability[k] for k in STABILITIES},
            score=round(self._score / self._scored, 6) if self._scored else None,
            scored=self._scored,
            metrics={
                name: round(total / weights, 6)
                for name, (total, weights) in sorted(self._metrics.items())
            },
        )


def summarize_target(target: str, results: Iterable[CaseResult]) -> TargetSummary:
    """The summary of ``results`` taken as one target's (say one suite of it, for JUnit)."""
    return _fed(TargetTally(target), results).summary()


@dataclass(frozen=True)
class RunSummary:
    """A run's summary: one TargetSummary per target, and the run's totals."""

    targets: Mapping[str, TargetSummary]
    cases: int = 0
    repeats: int = 0
    verdicts: Mapping[str, int] = field(default_factory=dict)
    saved_usd: float | None = None

    @property
    def cached(self) -> int:
        return sum(s.cached for s in self.targets.values())

    @property
    def model_drift(self) -> list[str]:
        """Targets whose responses named more than one model: it changed under us mid-run."""
        return sorted(name for name, s in self.targets.items() if len(s.models) > 1)

    def verdict_count(self, verdict: Verdict) -> int:
        return self.verdicts.get(verdict, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "repeats": self.repeats,
            "targets": {name: s.to_json() for name, s in self.targets.items()},
            "verdicts": dict(self.verdicts),
            "cached": self.cached,
            "saved_usd": self.saved_usd,
            "model_drift": self.model_drift,
        }

    @classmethod
    def from_json(cls, data: Any) -> RunSummary:
        """A stored ``run.json["summary"]`` back (lenient, as TargetSummary.from_json)."""
        data = data if isinstance(data, Mapping) else {}
        targets = data.get("targets")
        targets = targets if isinstance(targets, Mapping) else {}
        return cls(
            targets={
                str(name): TargetSummary.from_json(str(name), body)
                for name, body in targets.items()
                if isinstance(body, Mapping)
            },
            cases=int(_number(data.get("cases")) or 0),
            repeats=int(_number(data.get("repeats")) or 0),
            verdicts=_counts(data.get("verdicts")),
            saved_usd=_number(data.get("saved_usd")),
        )


class RunTally:
    """A run's summary built one result at a time: ``add(result)``, then ``summary()``.

    Targets come in ``target_names`` order; a target seen in the results but not named is
    appended, so nothing goes missing from the summary.
    """

    def __init__(self, target_names: Iterable[str] = ()) -> None:
        self._targets = {name: TargetTally(name) for name in target_names}
        self._verdicts: Counter[str] = Counter()
        self._repeats = 0
        self._saved = _Saved()

    def add(self, result: CaseResult) -> None:
        """Count one result in."""
        tally = self._targets.get(result.target)
        if tally is None:
            tally = self._targets[result.target] = TargetTally(result.target)
        tally.add(result)
        self._verdicts[result.verdict] += 1
        self._repeats = max(self._repeats, result.repeat + 1)
        self._saved.add(result)

    def summary(self) -> RunSummary:
        """The run's summary over every result added so far."""
        return RunSummary(
            targets={name: tally.summary() for name, tally in self._targets.items()},
            cases=sum(self._verdicts.values()),
            repeats=self._repeats,
            verdicts=dict(sorted(self._verdicts.items())),
            saved_usd=self._saved.value(),
        )


def summarize(results: Iterable[CaseResult], target_names: Iterable[str]) -> RunSummary:
    """Per-target counts, rates, tokens, latency, retries, errors, models and cost."""
    return _fed(RunTally(target_names), results).summary()


_Tally = TypeVar("_Tally", TargetTally, RunTally)


def _fed(tally: _Tally, results: Iterable[CaseResult]) -> _Tally:
    for result in results:
        tally.add(result)
    return tally
