"""The gate: whether a run may pass, decided as data from the run record and a baseline.

Rules, each off unless asked for, except the first:

* no baseline regression rule → every case must pass (errors and failures exit 1);
* ``fail_on_regression`` with a baseline → a case that held in the baseline and breaks now
  exits 1, as does a new case that does not pass; a case that already failed in the
  baseline is reported but does not block (the gate ratchets, it does not demand a clean
  slate);
* ``fail_under`` (percent) → each target's pass rate must reach it;
* ``min_lower_bound`` (percent) → each case's Wilson 95% lower bound across its repeats
  must reach it, so a case must pass *reliably*, not once by luck;
* a run in which no check could be verified (every result unchecked or an error: say a
  content-filter suite on a target that reports no filter results) exits 1, saying why the
  checks were n/a, unless ``allow_unverified`` ([settings] allow_unverified) is set;
* a merge of CI shards that lacks a shard, or holds one that did not finish, exits 1
  saying which, unless ``allow_missing_shards`` is set: its verdict covers part of the suites.

A target that could not be reached gives exit 3. The reported model or system fingerprint
differing from the baseline's is a warning line, never a failure by itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.report.money import usd, usd_delta
from harness.results.compare import (
    FLAKY,
    NEW,
    Comparison,
    compare_to_baseline,
    outcome,
)
from harness.results.drift import drift_lines
from harness.results.merge import incomplete_merge
from harness.results.record import CaseResult
from harness.results.stability import UNCHECKED, CaseStability, Repeats, stability
from harness.results.store import Run

# A paired test's p-value under this says a change is unlikely to be chance.
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class GateResult:
    """The decision, why, and what was compared to reach it."""

    exit_code: int
    reasons: list[str]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    comparison: Comparison | None = None
    # The cases whose repeats neither all passed nor all failed.
    flaky: list[CaseStability] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def lines(self) -> list[str]:
        """What to print: the verdict, then each reason, warning and note."""
        head = "Gate: passed" if self.passed else f"Gate: FAILED (exit {self.exit_code})"
        return (
            [head]
            + [f"  - {r}" for r in self.reasons]
            + [f"  ! {w}" for w in self.warnings]
            + [f"  · {n}" for n in self.notes]
        )


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def significance_line(comparison: Comparison) -> str:
    """The exact McNemar test of the paired cases, in words."""
    m = comparison.mcnemar
    if m.broke + m.fixed == 0:
        return f"McNemar (exact): no case changed between pass and fail over {m.pairs} pair(s)"
    verdict = "significant" if m.p_value < SIGNIFICANCE else "not significant"
    direction = "drop" if m.broke > m.fixed else ("gain" if m.fixed > m.broke else "change")
    return (
        f"McNemar (exact) over {m.pairs} paired case(s): {m.broke} broke, {m.fixed} fixed, "
        f"p = {m.p_value:.3g} — the {direction} is {verdict} at {SIGNIFICANCE:g}"
    )


def cost_line(comparison: Comparison) -> str:
    """What the paired cases cost now against the baseline, in dollars."""
    paired, was, now = comparison.paired_costs()
    if not paired or was is None or now is None:
        return f"cost vs baseline: unknown over {paired} paired case(s) (a side has no price)"
    return (
        f"cost vs baseline over {paired} paired case(s) (mean per repeat): "
        f"{usd(was)} → {usd(now)} ({usd_delta(now - was)})"
    )


def dead_targets_of(run: Run) -> dict[str, str]:
    """The targets the run found unreachable or refusing it, and why, from its record."""
    return dict(run.meta.dead_targets)


def dropped_members(run: Run) -> list[str]:
    """A line per member a pool dropped during the run (the pool went on without it)."""
    lines = []
    for name, data in run.meta.scheduler.items():
        members = data.get("members") if isinstance(data, Mapping) else None
        for member, state in (members if isinstance(members, Mapping) else {}).items():
            gone = state.get("gone") if isinstance(state, Mapping) else None
            if gone:
                lines.append(f"pool '{name}': member '{member}' was dropped: {gone}")
    return lines


def pass_rates(run: Run) -> dict[str, float]:
    """Each target's strict pass rate, the one the summary and report show.

    An unchecked result counts as not passed: excluding it would let a bar be met by
    cases no check verified, and the gate line would disagree with the report's figure.
    """
    return {name: s.pass_rate for name, s in run.summary.targets.items() if s.pass_rate is not None}


# How many distinct reasons a "nothing verified" line names.
SHOWN_REASONS = 3


class _Unverified:
    """Why no check of the run could be verified, gathered one result at a time.

    A check is verified when it passed or failed; a run whose every check was n/a or an
    error (or that had no check) verified nothing, however many results it has.
    """

    def __init__(self) -> None:
        self.results = 0
        self.verified = False
        self.checked = False
        self.why: Counter[str] = Counter()

    def add(self, result: CaseResult) -> None:
        self.results += 1
        if self.verified:
            return
        if result.verdict in ("pass", "fail"):
            self.verified = True
            self.why.clear()  # the reasons are not needed any more: do not gather them
            return
        self.why.update(f"{c.check}: {c.message}" for c in result.checks if c.status == "n/a")
        if result.error:
            self.why[f"error {result.error.kind}"] += 1
        self.checked |= bool(result.checks)

    def sentence(self) -> str | None:
        """Why nothing was verified, in one sentence; None when something was."""
        if not self.results or self.verified:
            return None
        why = self.why
        if not self.checked and not why:
            why = Counter({"no case has a check": self.results})
        shown = "; ".join(f"{text} ({n}×)" for text, n in why.most_common(SHOWN_REASONS))
        more = (
            f"; and {len(why) - SHOWN_REASONS} other reason(s)" if len(why) > SHOWN_REASONS else ""
        )
        return f"no check could be verified in {self.results} result(s): {shown}{more}"


def nothing_verified(run: Run) -> str | None:
    """Why no check of the run could be verified, in one sentence; None when one was."""
    return _read(run, None).unverified.sentence()


@dataclass
class _Read:
    """What the gate takes from every result of a run, gathered in one pass over them."""

    unverified: _Unverified = field(default_factory=_Unverified)
    bad: int = 0  # results that failed or errored
    first_bad: CaseResult | None = None
    below: list[CaseStability] = field(default_factory=list)  # under the lower bound
    flaky: list[CaseStability] = field(default_factory=list)


def _read(run: Run, min_lower_bound: float | None) -> _Read:
    """One pass over the run's results. A run of one repeat has one result per case, so
    each is judged as it passes; only with repeats are the verdicts grouped by case."""
    read = _Read()
    repeats = Repeats() if run.summary.repeats > 1 else None
    for result in run.results:
        read.unverified.add(result)
        if result.verdict in ("fail", "error"):
            read.bad += 1
            read.first_bad = read.first_bad or result
        if repeats is not None:
            repeats.add(result)
        elif min_lower_bound is not None:
            one = (result.suite, result.case, result.target, (result.verdict,))
            _judge(stability(*one), min_lower_bound, read)
    if repeats is not None:
        for case in repeats.stabilities():
            _judge(case, min_lower_bound, read)
    return read


def _judge(case: CaseStability, min_lower_bound: float | None, read: _Read) -> None:
    if case.stability == FLAKY:
        read.flaky.append(case)
    checked = case.stability != UNCHECKED
    if min_lower_bound is not None and checked and case.low * 100 < min_lower_bound:
        read.below.append(case)


def evaluate(
    run: Run,
    *,
    baseline: Run | None = None,
    fail_on_regression: bool = False,
    fail_under: float | None = None,
    min_lower_bound: float | None = None,
    allow_unverified: bool = False,
    allow_missing_shards: bool = False,
) -> GateResult:
    """Apply every requested rule to the run; see the module docstring for the rules.

    A pure function of the records: the targets found dead are read from the run's own
    record, so gating a stored run gives the exit code the run that made it gave.
    """
    reasons: list[str] = []
    warnings: list[str] = []
    notes: list[str] = []
    failed = False
    comparison = compare_to_baseline(run, baseline) if baseline is not None else None
    read = _read(run, min_lower_bound)

    if comparison is not None and baseline is not None:
        counts = comparison.counts()
        notes.append(
            f"vs baseline {baseline.id}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        )
        notes.append(significance_line(comparison))
        notes.append(cost_line(comparison))
        notes.extend(delta.line() for delta in comparison.score_deltas())
        if comparison.not_compared:
            notes.append("baseline not compared: " + ", ".join(comparison.not_compared))
    warnings.extend(f"drift: {line}" for line in drift_lines(run, baseline))
    warnings.extend(dropped_members(run))

    if fail_on_regression and comparison is not None:
        for diff in comparison.regressions:
            failed = True
            reason = f"regression: {diff.case_key} @{diff.target} held in the baseline"
            if diff.status == FLAKY and diff.after:
                passed, total = diff.after.verdicts.count("pass"), len(diff.after.verdicts)
                reason += f", now flaky ({passed}/{total})"
            reasons.append(reason)
        for diff in comparison.by_status(NEW):
            if diff.after and outcome(diff.after.verdicts) != "pass":
                failed = True
                reasons.append(f"new case does not pass: {diff.case_key} @{diff.target}")
    else:
        first = read.first_bad
        if first is not None and fail_under is None:
            failed = True
            reasons.append(
                f"{read.bad} result(s) did not pass (first: {first.case_key} "
                f"@{first.target}: {first.verdict})"
            )
        if fail_on_regression and comparison is None:
            notes.append("--fail-on-regression without a baseline: every case must pass")

    if fail_under is not None:
        for name, rate in pass_rates(run).items():
            if rate * 100 < fail_under:
                failed = True
                reasons.append(
                    f"target '{name}' pass rate {rate * 100:.1f}% is under {fail_under:g}%"
                )

    for s in read.below:
        failed = True
        reasons.append(
            f"{s.case_key} @{s.target}: passed {s.passed}/{s.n}, Wilson 95% lower "
            f"bound {_pct(s.low)} is under {min_lower_bound:g}%"
        )

    for s in read.flaky:
        notes.append(
            f"flaky: {s.case_key} @{s.target} passed {s.passed}/{s.n} "
            f"(95% interval {_pct(s.low)}–{_pct(s.high)})"
        )

    unverified = read.unverified.sentence()
    if unverified:
        if allow_unverified:
            notes.append(f"{unverified} (allowed: allow_unverified)")
        else:
            failed = True
            reasons.append(
                f"{unverified}; a run must verify something to pass "
                "(set [settings] allow_unverified = true to accept it)"
            )

    incomplete = incomplete_merge(run)
    if incomplete and allow_missing_shards:
        notes.append(f"{incomplete} (allowed: --allow-missing-shards)")
    elif incomplete:
        failed = True
        reasons.append(
            f"{incomplete}; its verdict covers only part of the suites "
            "(merge every shard, or pass --allow-missing-shards)"
        )

    exit_code = 1 if failed else 0
    dead_targets = dead_targets_of(run)
    if dead_targets:
        exit_code = 3
        reasons.extend(f"target '{n}' is unavailable: {why}" for n, why in dead_targets.items())
    if comparison is not None and comparison.regressions and not fail_on_regression:
        notes.append(f"{len(comparison.regressions)} regression(s) (not gated)")
    return GateResult(exit_code, reasons, warnings, notes, comparison, read.flaky)
