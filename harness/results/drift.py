"""Model drift in plain sentences: the one wording the gate, ``azeval diff`` and the report use.

Drift is a deployment answering with something other than what it did: the configured
model or version changed since the baseline, the service reported another model or
system_fingerprint than in the baseline, or more than one model within one run. A judge
drifts too: another judge model or a changed template (its hash, recorded per judged check
and summed up in run.json's ``judging``) makes the verdicts and scores of judged checks
suspect. Drift is a warning, never a failure by itself: the figures come from each run's
TargetSummary and its recorded judging.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.results.compare import pair_targets

if TYPE_CHECKING:
    from harness.results.store import Run

_CONFIGURED = (("model", "configured model"), ("model_version", "model version"))


def _label(old: str, new: str) -> str:
    return f"target '{new}'" if old == new else f"target '{new}' (baseline '{old}')"


def baseline_drift(run: Run, baseline: Run) -> list[str]:
    """A sentence for every target whose model, version or fingerprint moved since ``baseline``."""
    before_target, after_target = pair_targets(run, baseline)
    old_names = set(baseline.meta.target_names)
    pairs = (
        [(before_target, after_target)]
        if before_target and after_target
        else [(n, n) for n in run.meta.target_names if n in old_names]
    )
    old_stats, new_stats = baseline.summary.targets, run.summary.targets
    lines = []
    for old, new in pairs:
        label = _label(old, new)
        a, b = baseline.meta.target(old), run.meta.target(new)
        for key, what in _CONFIGURED:
            was_set, now_set = getattr(a, key, ""), getattr(b, key, "")
            if was_set and now_set and was_set != now_set:
                lines.append(f"{label} {what} changed from {was_set} to {now_set}")
        was, now = old_stats.get(old), new_stats.get(new)
        if was is None or now is None:
            continue
        for before, after, what in (
            (was.models, now.models, "reported model"),
            (was.system_fingerprints, now.system_fingerprints, "reported system_fingerprint"),
        ):
            if before and after and before != after:
                lines.append(
                    f"{label} {what} was {', '.join(before)} in the baseline, "
                    f"now {', '.join(after)}"
                )
    return lines


def mid_run_drift(run: Run) -> list[str]:
    """A sentence for every target whose responses named more than one model in this run."""
    return [
        f"target '{name}' reported more than one model in this run: {', '.join(s.models)}"
        for name, s in run.summary.targets.items()
        if len(s.models) > 1
    ]


def drift_lines(run: Run, baseline: Run | None = None) -> list[str]:
    """Every drift sentence of ``run``: against ``baseline`` when given (its targets, then
    its judges), then within the run."""
    against = [*baseline_drift(run, baseline), *judge_drift(run, baseline)] if baseline else []
    return [*against, *mid_run_drift(run)]


def _judge_model(facts: Mapping[str, Any]) -> str:
    return " ".join(str(v) for v in (facts.get("model"), facts.get("model_version")) if v)


def _templates(facts: Mapping[str, Any]) -> dict[str, str]:
    templates = facts.get("templates")
    if not isinstance(templates, Mapping):
        return {}
    return {str(name): str(digest or "") for name, digest in templates.items()}


_SUSPECT = "changes in its checks' verdicts and scores may be the judge's, not the target's"


def judge_drift(run: Run, baseline: Run) -> list[str]:
    """A sentence for every judge whose model or template changed since ``baseline``: a
    judged check that moved may have moved because its judge did."""
    before, after = baseline.meta.judging, run.meta.judging
    lines = []
    if before and after and set(before) != set(after):
        lines.append(
            f"judged checks were judged by {', '.join(sorted(before))} in the baseline, now by "
            f"{', '.join(sorted(after))}; changes in judged checks may be the judges', not the "
            "targets'"
        )
    for name in sorted(set(before) & set(after)):
        was, now = before[name], after[name]
        changes = []
        if _judge_model(was) and _judge_model(now) and _judge_model(was) != _judge_model(now):
            changes.append(f"model changed from {_judge_model(was)} to {_judge_model(now)}")
        old, new = _templates(was), _templates(now)
        for template in sorted(set(old) & set(new)):
            if old[template] and new[template] and old[template] != new[template]:
                changes.append(
                    f"template {template} changed (sha256 {old[template][:12]} → "
                    f"{new[template][:12]})"
                )
        if old and new and set(old) != set(new):
            changes.append(
                f"templates were {', '.join(sorted(old))} in the baseline, now "
                f"{', '.join(sorted(new))}"
            )
        lines.extend(f"judge '{name}' {change}: {_SUSPECT}" for change in changes)
    return lines
