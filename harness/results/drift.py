"""Model drift in plain sentences: the one wording the gate, ``azeval diff`` and the report use.

Drift is a deployment answering with something other than what it did: the configured
model or version changed since the baseline, the service reported another model or
system_fingerprint than in the baseline, or more than one model within one run. It is a
warning, never a failure by itself: the figures come from each run's TargetSummary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    """Every drift sentence of ``run``: against ``baseline`` when given, then within the run."""
    return [*(baseline_drift(run, baseline) if baseline is not None else []), *mid_run_drift(run)]
