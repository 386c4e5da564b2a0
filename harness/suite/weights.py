"""What a check's argument says about scoring besides the check itself: ``weight:`` (how
much the check counts in its case's score) and ``metric:`` (the named score it adds to).

Any check written as a mapping may carry them; a check whose argument is not a mapping is
written ``{value: <argument>, weight: …, metric: …}``. They are taken off before the check
prepares its argument, so no check needs to know about them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.checks import ArgumentError

SCORING_KEYS = ("weight", "metric")


@dataclass(frozen=True)
class Scoring:
    """A check's argument without the scoring keys, and what they said."""

    arg: Any
    weight: float = 1.0
    metric: str | None = None


def scoring_of(arg: Any, own_keys: frozenset[str] = frozenset()) -> Scoring:
    """Split ``weight``/``metric`` off a check's argument; ArgumentError at the bad key.
    A key in ``own_keys`` stays for the check, and a string there names its metric too."""
    if not isinstance(arg, Mapping) or not any(k in arg for k in SCORING_KEYS):
        return Scoring(arg)
    rest = {k: v for k, v in arg.items() if k not in SCORING_KEYS or k in own_keys}
    weight = arg.get("weight", 1.0)
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not math.isfinite(weight)
        or weight <= 0
    ):
        raise ArgumentError(f"weight must be a number > 0, not {weight!r}", ("weight",))
    metric = arg.get("metric")
    if "metric" in own_keys:
        metric = metric if isinstance(metric, str) and metric.strip() else None
    elif metric is not None and (not isinstance(metric, str) or not metric.strip()):
        raise ArgumentError(f"metric must be a name, not {metric!r}", ("metric",))
    if set(rest) == {"value"}:
        rest = rest["value"]  # the wrapped form of an argument that is not a mapping
    return Scoring(rest, float(weight), metric.strip() if metric else None)
