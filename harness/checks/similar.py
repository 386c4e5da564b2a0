"""``similar``: the cosine similarity of the reply's embedding and the reference's, from
the run's embedder (``[settings] embedder``), passing at ``min`` (0.8).

The vectors come through ``ctx.services.embeddings`` (harness.runner.embeddings), which
batches the texts of concurrent checks into shared requests and embeds each text once per
run; what this check's texts cost is recorded on it and counted in the case's cost. A
failed embeddings request is the check's error, never a pass or a fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence

from harness.checks.context import CheckContext
from harness.checks.overlap import Reference, reference_argument, verdict
from harness.checks.registry import Outcome, check
from harness.results.record import CHECK_ERROR, FAIL
from harness.targets.base import TargetError


@check("similar", prepare=reference_argument(0.8), needs=("text", "embeddings"))
async def similar(ctx: CheckContext, ref: Reference) -> Outcome:
    """Cosine similarity of the reply's and the reference's embeddings (the run's
    embedder), passing at min (0.8)."""
    embeddings = ctx.services.embeddings
    if embeddings is None:
        return Outcome(
            CHECK_ERROR,
            "no embedder was lent to this check: name one as [settings] embedder (a --replay "
            "run sends no embeddings request)",
        )
    text = ctx.reply.text or ""
    if not text.strip():
        return Outcome(
            FAIL, "the reply is empty: nothing to compare", ref.reference, text, score=0.0
        )
    try:
        reply, reference = await asyncio.gather(
            embeddings.embed(text), embeddings.embed(ref.reference)
        )
    except TargetError as exc:
        status = f" (HTTP {exc.status})" if exc.status else ""
        return Outcome(
            CHECK_ERROR,
            f"the embeddings request to '{embeddings.name}' failed: {exc.kind}{status}: {exc}",
        )
    costs = [reply.cost_usd, reference.cost_usd]
    known = None not in costs
    spent = sum(c for c in costs if c is not None)
    similarity = cosine(reply.vector, reference.vector)
    if similarity is None:
        return Outcome(
            CHECK_ERROR,
            f"'{embeddings.name}' gave vectors with no cosine (a zero vector, or lengths "
            f"{len(reply.vector)} and {len(reference.vector)})",
            cost_usd=spent if known else None,
            cost_known=known,
        )
    outcome = verdict("cosine similarity", max(0.0, similarity), ref, text)
    return dataclasses.replace(outcome, cost_usd=spent if known else None, cost_known=known)


def cosine(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The cosine similarity of two vectors; None when one has no length (or they differ
    in dimensions)."""
    if len(a) != len(b):
        return None
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    if norm == 0:
        return None
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm
