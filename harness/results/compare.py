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
from array import array
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


# Past this many cases, a comparison holds only the cases that changed; the unchanged ones
# are counted and summed as they pass (see _Tally), as a large report lists its passing
# cases by id instead of in full. 100,000 unchanged CaseDiffs took about 1 KB each.
HELD_CASES = 2000


class _Tally:
    """What a comparison says of all its cases, summed one case at a time: how many of
    each status, the McNemar pairs, the totals of paired deltas, the latency (TTFT,
    tokens/s) of each side for its p50, the paired costs and the paired scores."""

    _SUMS = ("prompt_tokens_delta", "completion_tokens_delta", "cost_delta_usd")
    _P50S = ("latency_ms", "ttft_ms", "tokens_per_s")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(STATUSES, 0)
        self.paired = self.broke = self.fixed = 0
        self.sums: dict[str, float | None] = dict.fromkeys(self._SUMS)
        # Per measure and side, the values its p50 is taken over (8 bytes each).
        self.values = {(m, side): array("d") for m in self._P50S for side in ("before", "after")}
        # Each side's summed cost over the paired cases; None once a case has no price.
        self.costs: list[float | None] = [0.0, 0.0]
        self.scores: dict[tuple[str, str], dict[str, tuple[float, float]]] = defaultdict(dict)

    def add(self, d: CaseDiff) -> None:
        self.counts[d.status] += 1
        b, a = d.before, d.after
        if b is None or a is None:
            return
        self.paired += 1
        self.broke += b.passed_majority and not a.passed_majority
        self.fixed += a.passed_majority and not b.passed_majority
        for name in self._SUMS:
            value = getattr(d, name)
            if value is not None:
                total = self.sums[name]
                self.sums[name] = value if total is None else total + value
        for measure in self._P50S:
            for side, s in (("before", b), ("after", a)):
                if value := getattr(s, measure):  # as the p50s always read: no zero, no None
                    self.values[(measure, side)].append(value)
        for i, cost in enumerate((b.cost_usd, a.cost_usd)):
            total = self.costs[i]
            self.costs[i] = None if total is None or cost is None else total + cost
        if b.score is not None and a.score is not None:
            self.scores[(b.target, a.target)][d.case_key] = (b.score, a.score)

    def p50(self, measure: str, side: str) -> float | None:
        return percentile(self.values[(measure, side)], 50)


@dataclass(frozen=True)
class Comparison:
    """Every paired case, worst first, with totals and a paired significance test.

    ``cases`` holds every case up to HELD_CASES of them; past that only those whose
    status is not unchanged-pass or unchanged-fail: the others are in the counts, totals,
    costs and score deltas, which always cover every case.
    """

    cases: tuple[CaseDiff, ...]
    mcnemar: McNemar
    before_models: tuple[str, ...]
    after_models: tuple[str, ...]
    before_fingerprints: tuple[str, ...]
    after_fingerprints: tuple[str, ...]
    # Parts of the baseline the run did not cover, so not compared (see scope_baseline).
    not_compared: tuple[str, ...] = ()
    tally: _Tally = dataclasses.field(default_factory=_Tally, repr=False, compare=False)

    @property
    def summarised(self) -> bool:
        """Whether the unchanged cases were counted only (not held in ``cases``)."""
        return len(self.cases) < sum(self.tally.counts.values())

    def counts(self) -> dict[str, int]:
        return dict(self.tally.counts)

    def by_status(self, status: str) -> list[CaseDiff]:
        """The cases of ``status``; none of the unchanged ones when they were only counted."""
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
        out = []
        for (before, after), scored in self.tally.scores.items():
            delta = paired_bootstrap(scored)
            if delta is not None:
                out.append(ScoreDelta(before, after, delta))
        return sorted(out, key=lambda s: (s.after_target, s.before_target))

    def paired_costs(self) -> tuple[int, float | None, float | None]:
        """How many cases were paired, and each side's cost summed over them (mean per
        repeat); None for a side when a paired case of it has no price."""
        before, after = self.tally.costs
        return self.tally.paired, before, after

    def totals(self) -> dict[str, Any]:
        """Sums of per-case deltas over paired cases, and the latency p50 on each side."""
        t = self.tally
        return {
            "paired": t.paired,
            **t.sums,
            "latency_p50_before_ms": t.p50("latency_ms", "before"),
            "latency_p50_after_ms": t.p50("latency_ms", "after"),
            "ttft_p50_before_ms": t.p50("ttft_ms", "before"),
            "ttft_p50_after_ms": t.p50("ttft_ms", "after"),
            "tokens_per_s_p50_before": t.p50("tokens_per_s", "before"),
            "tokens_per_s_p50_after": t.p50("tokens_per_s", "after"),
        }


class _Reported:
    """The models and fingerprints a side's results reported, gathered as they pass."""

    def __init__(self) -> None:
        self.models: set[str] = set()
        self.fingerprints: set[str] = set()

    def add(self, r: _Repeat) -> None:
        if r.model:
            self.models.add(r.model)
        if r.system_fingerprint:
            self.fingerprints.add(r.system_fingerprint)


def _repeats(
    results: Iterable[CaseResult], target: str | None, reported: _Reported
) -> Iterator[tuple[tuple[str, str], _Repeat]]:
    """Each result of ``target`` (every target when None) under its pairing key."""
    for r in results:
        if target is None:
            key = (r.case_key, r.target)
        elif r.target == target:
            key = (r.case_key, "")
        else:
            continue
        repeat = _Repeat.of(r)
        if repeat.repeat:  # a side shows its first repeat's reply: the others' are not held
            repeat = repeat._replace(reply=None)
        reported.add(repeat)
        yield key, repeat


def _diff(key: tuple[str, str], old: list[_Repeat] | None, new: list[_Repeat] | None) -> CaseDiff:
    b = _side(old) if old else None
    a = _side(new) if new else None
    status = _status(outcome(b.verdicts) if b else None, outcome(a.verdicts) if a else None)
    side = a or b
    return CaseDiff(key[0], side.target if side else "", status, b, a)


class _Diffs:
    """The diffs of a comparison as they are made: every one up to HELD_CASES, then only
    the changed ones, with every diff counted and summed in the tally."""

    def __init__(self) -> None:
        self.tally = _Tally()
        self.held: list[CaseDiff] | None = []  # None: past HELD_CASES, counted only
        self.changed: list[CaseDiff] = []

    def add(self, diff: CaseDiff) -> None:
        if self.held is not None:
            self.held.append(diff)
            if len(self.held) <= HELD_CASES:
                return
            for held in self.held:
                self._count(held)
            self.held = None
            return
        self._count(diff)

    def _count(self, diff: CaseDiff) -> None:
        self.tally.add(diff)
        if not diff.status.startswith("unchanged"):
            self.changed.append(diff)

    def sorted(self) -> tuple[CaseDiff, ...]:
        """Worst first, then by case (row-2 before row-10) and target: the order two runs
        finished their cases in does not change a diff's order. Within HELD_CASES, the
        tally is summed in that order, as it always was."""
        rank = {s: i for i, s in enumerate(STATUSES)}
        diffs = self.changed if self.held is None else self.held
        diffs.sort(key=lambda d: (rank[d.status], natural_key(d.case_key), d.target))
        if self.held is not None:
            for diff in self.held:
                self.tally.add(diff)
        return tuple(diffs)


def _alternate(
    before: Iterator[tuple[tuple[str, str], _Repeat]],
    after: Iterator[tuple[tuple[str, str], _Repeat]],
) -> Iterator[tuple[bool, tuple[str, str], _Repeat]]:
    """Both sides' results, one of each in turn (is-after, key, repeat): two runs of one
    suite list their cases in about the same order, so each pairs soon after it is read."""
    sides = [(False, before), (True, after)]
    while sides:
        for side in list(sides):
            is_after, results = side
            item = next(results, None)
            if item is None:
                sides.remove(side)
            else:
                yield is_after, *item


def compare(
    before: Iterable[CaseResult],
    after: Iterable[CaseResult],
    *,
    before_target: str | None = None,
    after_target: str | None = None,
    before_single: bool = False,
    after_single: bool = False,
) -> Comparison:
    """Pair ``before`` and ``after`` case by case and classify every change.

    With ``before_target``/``after_target``, only that target's results are taken from each
    side and cases pair by ``suite/case`` alone (target A vs target B, or a baseline recorded
    under another target name). Without them, cases pair by ``suite/case`` and target name.

    Each side is read once. ``before_single``/``after_single``: that side holds one result
    per case (a run of one repeat), so its case is complete once its result is read. With
    both, the sides are read in turn and a case is paired as soon as both sides named it:
    only the cases one side named and the other not yet are held. With one, the other side
    is held whole, and each of this side's results is paired as it passes.
    """
    if (before_target is None) != (after_target is None):
        # One name alone means "this target on both sides".
        before_target = before_target or after_target
        after_target = after_target or before_target
    reported_before, reported_after = _Reported(), _Reported()
    old_side = _repeats(before, before_target, reported_before)
    new_side = _repeats(after, after_target, reported_after)
    diffs = _Diffs()
    old: dict[tuple[str, str], list[_Repeat]] = defaultdict(list)
    new: dict[tuple[str, str], list[_Repeat]] = defaultdict(list)
    if before_single and after_single:
        for is_after, key, repeat in _alternate(old_side, new_side):
            waiting, mine = (old, new) if is_after else (new, old)
            other = waiting.pop(key, None)
            if other is None:
                mine[key].append(repeat)
            elif is_after:
                diffs.add(_diff(key, other, [repeat]))
            else:
                diffs.add(_diff(key, [repeat], other))
    else:
        for key, repeat in old_side:
            old[key].append(repeat)
        for key, repeat in new_side:
            if after_single:
                diffs.add(_diff(key, old.pop(key, None), [repeat]))
            else:
                new[key].append(repeat)
    for key in list(old):
        diffs.add(_diff(key, old.pop(key), new.pop(key, None)))
    for key in list(new):
        diffs.add(_diff(key, None, new.pop(key)))
    cases = diffs.sorted()
    t = diffs.tally
    return Comparison(
        cases=cases,
        mcnemar=McNemar(t.paired, t.broke, t.fixed, mcnemar_exact(t.broke, t.fixed)),
        before_models=tuple(sorted(reported_before.models)),
        after_models=tuple(sorted(reported_after.models)),
        before_fingerprints=tuple(sorted(reported_before.fingerprints)),
        after_fingerprints=tuple(sorted(reported_after.fingerprints)),
        tally=t,
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

    def left_out_by(suite: str, case: str, target: str) -> str:
        """What leaves a baseline result out: its suite, its case or its target; or ""."""
        if suite not in suites:
            return "suite"
        if suite in selected and case not in selected[suite]:
            return "case"
        if not paired_across_names and target not in targets:
            return "target"
        return ""

    kept, suites_out, targets_out = 0, set(), set()
    cases_out: dict[str, set[str]] = {}
    for r in baseline.results:
        why = left_out_by(r.suite, r.case, r.target)
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
    scoped = Kept(baseline.results, lambda *key: not left_out_by(*key), kept)
    return dataclasses.replace(baseline, results=scoped), tuple(left_out)


class Kept(Collection[CaseResult]):
    """The results of ``source`` that ``keeps`` keeps (``count`` of them), picked again on
    each pass: a narrowed baseline or run holds no list of its own."""

    def __init__(
        self, source: Iterable[CaseResult], keeps: Callable[[str, str, str], bool], count: int
    ) -> None:
        self._source, self._count = source, count
        # Of a result's suite, case and target: what a journal index's key says, too.
        self.keeps = keeps

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[CaseResult]:
        return (r for r in self._source if self.keeps(r.suite, r.case, r.target))

    def __contains__(self, item: object) -> bool:
        return any(r == item for r in self)


def compare_to_baseline(run: Run, baseline: Run) -> Comparison:
    """The run against the part of its baseline it ran, case by case (and target by target)."""
    before_target, after_target = pair_targets(run, baseline)
    scoped, left_out = scope_baseline(run, baseline)
    comparison = compare(
        scoped.results,
        run.results,
        before_target=before_target,
        after_target=after_target,
        before_single=baseline.summary.repeats == 1,
        after_single=run.summary.repeats == 1,
    )
    return dataclasses.replace(comparison, not_compared=left_out)
