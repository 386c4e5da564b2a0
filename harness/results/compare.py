"""Differences between two sets of case results: run vs run, run vs baseline, target vs target.

Cases pair up by ``suite/case`` (and by target name, unless a target is named on each side,
which is how two targets of one run are compared). Each side's repeats fold into one
outcome: ``pass`` (every repeat passed), ``fail`` (none did) or ``flaky`` (mixed). Errors
and unchecked verdicts count as not passed.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from harness.results.bootstrap import MeanDelta, paired_bootstrap
from harness.results.order import natural_key
from harness.results.record import CaseResult
from harness.results.stats import mcnemar_exact, mean_of, percentile

if TYPE_CHECKING:
    from harness.results.store import Run

REGRESSION, FIXED, NEW, REMOVED, FLAKY = "regression", "fixed", "new", "removed", "flaky"
UNCHANGED_PASS, UNCHANGED_FAIL = "unchanged-pass", "unchanged-fail"
# Worst first: the order a report lists them in.
STATUSES = (REGRESSION, FLAKY, FIXED, NEW, REMOVED, UNCHANGED_FAIL, UNCHANGED_PASS)

# A word with the whitespace after it, a lone punctuation mark, or leading whitespace:
# joining the tokens gives the text back, and half as many tokens keeps difflib fast.
_WORDS = re.compile(r"\w+\s*|[^\w\s]\s*|\s+")
# Past this many tokens a side, difflib's quadratic worst case costs more than the diff is worth.
MAX_DIFF_TOKENS = 4000


def word_diff(before: str, after: str) -> list[tuple[str, str]]:
    """A word-level diff as ``(op, text)`` runs, op being ``=``, ``-`` (removed) or ``+``."""
    if before == after:
        return [("=", before)] if before else []
    a, b = _WORDS.findall(before), _WORDS.findall(after)
    # Match on the words alone, so "Contoso" ending a sentence still matches "Contoso ".
    ka, kb = [t.rstrip() or t for t in a], [t.rstrip() or t for t in b]
    if len(a) > MAX_DIFF_TOKENS or len(b) > MAX_DIFF_TOKENS:
        return [(op, text) for op, text in (("-", before), ("+", after)) if text]
    # Trim the common ends first: most changed replies differ in a few words.
    start, limit = 0, min(len(a), len(b))
    while start < limit and ka[start] == kb[start]:
        start += 1
    end = 0
    while end < limit - start and ka[-1 - end] == kb[-1 - end]:
        end += 1
    out: list[tuple[str, str]] = []

    def emit(op: str, text: str) -> None:
        if not text:
            return
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))

    # Equal runs take the after side's text, so "=" and "+" runs rebuild ``after`` exactly.
    emit("=", "".join(b[:start]))
    mid_a, mid_b = a[start : len(a) - end], b[start : len(b) - end]
    keys_a, keys_b = ka[start : len(a) - end], kb[start : len(b) - end]
    matcher = difflib.SequenceMatcher(None, keys_a, keys_b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            emit("=", "".join(mid_b[j1:j2]))
        else:
            emit("-", "".join(mid_a[i1:i2]))
            emit("+", "".join(mid_b[j1:j2]))
    emit("=", "".join(b[len(b) - end :]))
    return out


def outcome(verdicts: Iterable[str]) -> str | None:
    """Fold a case's repeat verdicts into pass, fail or flaky; None when there is none."""
    passes = [v == "pass" for v in verdicts]
    if not passes:
        return None
    if all(passes):
        return "pass"
    return "fail" if not any(passes) else "flaky"


def _status(before: str | None, after: str | None) -> str:
    if before is None:
        return NEW
    if after is None:
        return REMOVED
    if FLAKY in (before, after):
        return FLAKY
    if before == after:
        return UNCHANGED_PASS if after == "pass" else UNCHANGED_FAIL
    return REGRESSION if before == "pass" else FIXED


@dataclass(frozen=True)
class Side:
    """One side of a paired case: its repeats, folded."""

    target: str
    verdicts: tuple[str, ...]
    reply: str | None
    prompt_tokens: float
    completion_tokens: float
    latency_ms: float | None
    cost_usd: float | None
    models: tuple[str, ...]
    fingerprints: tuple[str, ...]
    # Streamed repeats only (None when none streamed): mean TTFT and output tokens/s.
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    # The mean weighted score of the repeats that have one (see CaseResult.score).
    score: float | None = None

    @property
    def passed_majority(self) -> bool:
        return 2 * self.verdicts.count("pass") > len(self.verdicts)


class _Repeat(NamedTuple):
    """What a comparison reads of one result: held per result instead of the result."""

    repeat: int
    target: str
    verdict: str
    reply: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float | None
    cost_usd: float | None
    model: str | None
    system_fingerprint: str | None
    ttft_ms: float | None
    tokens_per_s: float | None
    score: float | None

    @classmethod
    def of(cls, r: CaseResult) -> _Repeat:
        return cls(
            r.repeat, r.target, r.verdict, r.reply, r.prompt_tokens, r.completion_tokens,
            r.latency_ms, r.cost_usd, r.model, r.system_fingerprint, r.ttft_ms, r.tokens_per_s,
            r.score,
        )  # fmt: skip


def _side(results: list[_Repeat]) -> Side:
    results = sorted(results, key=lambda r: r.repeat)
    n = len(results)
    latencies = [v for r in results if (v := r.latency_ms) is not None]
    # Unknown when any repeat's cost is (its model has no price): never a partial mean.
    costs = [r.cost_usd for r in results]
    known = [c for c in costs if c is not None]
    return Side(
        target=results[0].target,
        verdicts=tuple(r.verdict for r in results),
        reply=results[0].reply,
        prompt_tokens=sum(r.prompt_tokens for r in results) / n,
        completion_tokens=sum(r.completion_tokens for r in results) / n,
        latency_ms=sum(latencies) / len(latencies) if latencies else None,
        cost_usd=sum(known) / len(known) if known and len(known) == len(costs) else None,
        models=tuple(sorted({r.model for r in results if r.model})),
        fingerprints=tuple(sorted({r.system_fingerprint for r in results if r.system_fingerprint})),
        ttft_ms=mean_of(r.ttft_ms for r in results),
        tokens_per_s=mean_of(r.tokens_per_s for r in results),
        score=mean_of(r.score for r in results),
    )


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


@dataclass(frozen=True)
class CaseDiff:
    """One case compared across the two sides (per-repeat means for the numbers)."""

    case_key: str
    target: str
    status: str
    before: Side | None
    after: Side | None

    @property
    def broke(self) -> bool:
        """Every repeat passed before and not now (a regression, or pass → flaky)."""
        return bool(
            self.before
            and self.after
            and outcome(self.before.verdicts) == "pass"
            and outcome(self.after.verdicts) != "pass"
        )

    @property
    def reply_changed(self) -> bool:
        return bool(self.before and self.after and self.before.reply != self.after.reply)

    def reply_diff(self) -> list[tuple[str, str]]:
        """Word diff of the first repeat's reply, before → after."""
        before = (self.before.reply if self.before else None) or ""
        after = (self.after.reply if self.after else None) or ""
        return word_diff(before, after)

    @property
    def prompt_tokens_delta(self) -> float | None:
        b, a = self.before, self.after
        return _delta(b.prompt_tokens, a.prompt_tokens) if b and a else None

    @property
    def completion_tokens_delta(self) -> float | None:
        b, a = self.before, self.after
        return _delta(b.completion_tokens, a.completion_tokens) if b and a else None

    @property
    def latency_delta_ms(self) -> float | None:
        b, a = self.before, self.after
        return _delta(b.latency_ms, a.latency_ms) if b and a else None

    @property
    def ttft_delta_ms(self) -> float | None:
        b, a = self.before, self.after
        return _delta(b.ttft_ms, a.ttft_ms) if b and a else None

    @property
    def cost_delta_usd(self) -> float | None:
        b, a = self.before, self.after
        return _delta(b.cost_usd, a.cost_usd) if b and a else None

    @property
    def score_delta(self) -> float | None:
        b, a = self.before, self.after
        return _delta(b.score, a.score) if b and a else None

    @property
    def drift(self) -> tuple[str, ...]:
        """What the endpoint reported differently: ``model`` and/or ``system_fingerprint``."""
        b, a = self.before, self.after
        if not (b and a):
            return ()
        out = []
        if changed(b.models, a.models):
            out.append("model")
        if changed(b.fingerprints, a.fingerprints):
            out.append("system_fingerprint")
        return tuple(out)


def changed(before: Sequence[str], after: Sequence[str]) -> bool:
    """Drift: both sides reported values, and they differ."""
    return bool(before and after and before != after)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar over cases on both sides (a side passes when most of its repeats did)."""

    pairs: int
    broke: int
    fixed: int
    p_value: float


@dataclass(frozen=True)
class ScoreDelta:
    """A target's mean score change against the other side's (the same target name
    unless two were compared)."""

    before_target: str
    after_target: str
    delta: MeanDelta

    @property
    def label(self) -> str:
        same = self.before_target == self.after_target
        return self.after_target if same else f"{self.before_target} → {self.after_target}"

    def line(self) -> str:
        """``score gpt35: 0.812 → 0.774, Δ −0.038 (95% CI …): a drop beyond noise``."""
        return f"score {self.label}: {self.delta.words()}"


@dataclass(frozen=True)
class Comparison:
    """Every paired case, worst first, with totals and a paired significance test."""

    cases: tuple[CaseDiff, ...]
    mcnemar: McNemar
    before_models: tuple[str, ...]
    after_models: tuple[str, ...]
    before_fingerprints: tuple[str, ...]
    after_fingerprints: tuple[str, ...]
    # Parts of the baseline the run did not cover, so not compared (see scope_baseline).
    not_compared: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for diff in self.cases:
            counts[diff.status] += 1
        return counts

    def by_status(self, status: str) -> list[CaseDiff]:
        return [d for d in self.cases if d.status == status]

    @property
    def regressions(self) -> list[CaseDiff]:
        """Cases that held before and broke: status regression, or pass → flaky."""
        return [d for d in self.cases if d.broke]

    @property
    def model_drift(self) -> bool:
        """The reported model or system_fingerprint differs between the sides."""
        return self.models_changed or self.fingerprints_changed

    @property
    def models_changed(self) -> bool:
        return changed(self.before_models, self.after_models)

    @property
    def fingerprints_changed(self) -> bool:
        return changed(self.before_fingerprints, self.after_fingerprints)

    def score_deltas(self) -> list[ScoreDelta]:
        """Per target (pair of targets), the mean score change over the cases scored on
        both sides, with its paired bootstrap interval."""
        pairs: dict[tuple[str, str], dict[str, tuple[float, float]]] = defaultdict(dict)
        for d in self.cases:
            b, a = d.before, d.after
            if b is None or a is None or b.score is None or a.score is None:
                continue
            pairs[(b.target, a.target)][d.case_key] = (b.score, a.score)
        out = []
        for (before, after), scored in pairs.items():
            delta = paired_bootstrap(scored)
            if delta is not None:
                out.append(ScoreDelta(before, after, delta))
        return sorted(out, key=lambda s: (s.after_target, s.before_target))

    def totals(self) -> dict[str, Any]:
        """Sums of per-case deltas over paired cases, and the latency p50 on each side."""
        paired = [d for d in self.cases if d.before and d.after]

        def total(values: Iterable[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return sum(present) if present else None

        def p50(side: str, measure: str = "latency_ms") -> float | None:
            values = [getattr(s, measure) for d in paired if (s := getattr(d, side))]
            return percentile([v for v in values if v], 50)

        return {
            "paired": len(paired),
            "prompt_tokens_delta": total(d.prompt_tokens_delta for d in paired),
            "completion_tokens_delta": total(d.completion_tokens_delta for d in paired),
            "cost_delta_usd": total(d.cost_delta_usd for d in paired),
            "latency_p50_before_ms": p50("before"),
            "latency_p50_after_ms": p50("after"),
            "ttft_p50_before_ms": p50("before", "ttft_ms"),
            "ttft_p50_after_ms": p50("after", "ttft_ms"),
            "tokens_per_s_p50_before": p50("before", "tokens_per_s"),
            "tokens_per_s_p50_after": p50("after", "tokens_per_s"),
        }


def _group(
    results: Iterable[CaseResult], target: str | None
) -> dict[tuple[str, str], list[_Repeat]]:
    groups: dict[tuple[str, str], list[_Repeat]] = defaultdict(list)
    for r in results:
        if target is None:
            groups[(r.case_key, r.target)].append(_Repeat.of(r))
        elif r.target == target:
            groups[(r.case_key, "")].append(_Repeat.of(r))
    return groups


def compare(
    before: Iterable[CaseResult],
    after: Iterable[CaseResult],
    *,
    before_target: str | None = None,
    after_target: str | None = None,
) -> Comparison:
    """Pair ``before`` and ``after`` case by case and classify every change.

    With ``before_target``/``after_target``, only that target's results are taken from each
    side and cases pair by ``suite/case`` alone (target A vs target B, or a baseline recorded
    under another target name). Without them, cases pair by ``suite/case`` and target name.
    """
    if (before_target is None) != (after_target is None):
        # One name alone means "this target on both sides".
        before_target = before_target or after_target
        after_target = after_target or before_target
    old, new = _group(before, before_target), _group(after, after_target)
    order = list(old) + [k for k in new if k not in old]
    diffs = []
    for key in order:
        b = _side(old[key]) if key in old else None
        a = _side(new[key]) if key in new else None
        status = _status(
            outcome(b.verdicts) if b else None,
            outcome(a.verdicts) if a else None,
        )
        side = a or b
        target = side.target if side else ""
        diffs.append(CaseDiff(key[0], target, status, b, a))
    rank = {s: i for i, s in enumerate(STATUSES)}
    # Worst first, then by case (row-2 before row-10) and target: the order two runs
    # finished their cases in does not change a diff's order.
    diffs.sort(key=lambda d: (rank[d.status], natural_key(d.case_key), d.target))

    pairs = [(d.before, d.after) for d in diffs if d.before and d.after]
    broke = sum(1 for b, a in pairs if b.passed_majority and not a.passed_majority)
    fixed = sum(1 for b, a in pairs if a.passed_majority and not b.passed_majority)

    def reported(results: Iterable[list[_Repeat]], attr: str) -> tuple[str, ...]:
        return tuple(sorted({v for group in results for r in group if (v := getattr(r, attr))}))

    return Comparison(
        cases=tuple(diffs),
        mcnemar=McNemar(len(pairs), broke, fixed, mcnemar_exact(broke, fixed)),
        before_models=reported(old.values(), "model"),
        after_models=reported(new.values(), "model"),
        before_fingerprints=reported(old.values(), "system_fingerprint"),
        after_fingerprints=reported(new.values(), "system_fingerprint"),
    )


def pair_targets(run: Run, baseline: Run) -> tuple[str | None, str | None]:
    """Target names to pair across the sides: by name, or the one target each side has.

    The one pairing rule for gates, diffs and the report: a run target whose name the
    baseline lacks is compared with another baseline target only when each side has just
    the one target; otherwise its cases are new.
    """
    ours, theirs = (
        set(run.targets or {r.target for r in run.results}),
        set(baseline.targets or {r.target for r in baseline.results}),
    )
    if len(ours) == 1 and len(theirs) == 1 and ours != theirs:
        return next(iter(theirs)), next(iter(ours))
    return None, None


def scope_baseline(run: Run, baseline: Run) -> tuple[Run, tuple[str, ...]]:
    """The baseline narrowed to the suites and targets this run ran, and what was left out.

    A run of one suite (or one target) against a baseline of all of them did not remove the
    rest: they were not run. Cases of a suite that did run and are gone now are removed.
    """
    ran_suites, ran_targets = set(), set()
    for r in run.results:  # one pass over the run
        ran_suites.add(r.suite)
        ran_targets.add(r.target)
    suites = {s.id for s in run.meta.suites} | ran_suites
    # Suites of which a selection (-k, --tag, file::case) ran only some cases.
    selected = {s.id: set(s.selected) for s in run.meta.suites if s.selected is not None}
    targets = set(run.targets) | ran_targets
    paired_across_names = pair_targets(run, baseline)[0] is not None

    def left_out_by(r: CaseResult) -> str:
        """What leaves a baseline result out: its suite, its case or its target; or ""."""
        if r.suite not in suites:
            return "suite"
        if r.suite in selected and r.case not in selected[r.suite]:
            return "case"
        if not paired_across_names and r.target not in targets:
            return "target"
        return ""

    kept, suites_out, targets_out = 0, set(), set()
    cases_out: dict[str, set[str]] = {}
    for r in baseline.results:
        why = left_out_by(r)
        if why == "suite":
            suites_out.add(r.suite)
        elif why == "case":
            cases_out.setdefault(r.suite, set()).add(r.case)
        elif why == "target":
            targets_out.add(r.target)
        else:
            kept += 1
    if kept == len(baseline.results):
        return baseline, ()
    left_out = [f"suite '{name}' (not run)" for name in sorted(suites_out)]
    left_out += [
        f"{len(cases)} case(s) of suite '{name}' (not selected)"
        for name, cases in sorted(cases_out.items())
    ]
    left_out += [f"target '{name}' (not run)" for name in sorted(targets_out)]
    scoped = Kept(baseline.results, lambda r: not left_out_by(r), kept)
    return dataclasses.replace(baseline, results=scoped), tuple(left_out)


class Kept(Collection[CaseResult]):
    """The results of ``source`` that ``keep`` keeps (``count`` of them), picked again on
    each pass: a narrowed baseline or run holds no list of its own."""

    def __init__(
        self, source: Iterable[CaseResult], keep: Callable[[CaseResult], bool], count: int
    ) -> None:
        self._source, self._keep, self._count = source, keep, count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[CaseResult]:
        return (r for r in self._source if self._keep(r))

    def __contains__(self, item: object) -> bool:
        return any(r == item for r in self)


def compare_to_baseline(run: Run, baseline: Run) -> Comparison:
    """The run against the part of its baseline it ran, case by case (and target by target)."""
    before_target, after_target = pair_targets(run, baseline)
    scoped, left_out = scope_baseline(run, baseline)
    comparison = compare(
        scoped.results, run.results, before_target=before_target, after_target=after_target
    )
    return dataclasses.replace(comparison, not_compared=left_out)
