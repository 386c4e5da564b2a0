"""The 1–5 quality metrics a ``score`` check can ask for, each with anchored levels.

The metric names and the 1–5 scale with a pass threshold of 3 follow Microsoft's
azure-ai-evaluation quality evaluators; the wording of each definition and anchor here is
azeval's own. ``custom`` takes its question (``criteria``) and anchors from the check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

MetricName = Literal["groundedness", "relevance", "coherence", "fluency", "similarity", "custom"]
METRICS: tuple[MetricName, ...] = (
    "groundedness",
    "relevance",
    "coherence",
    "fluency",
    "similarity",
    "custom",
)
DEFAULT_MIN_SCORE = 3


@dataclass(frozen=True)
class Metric:
    """What to rate and what each level means; ``needs`` names the input it compares with."""

    name: MetricName
    question: str
    anchors: Mapping[int, str] = field(default_factory=dict)
    needs: Literal["context", "reference"] | None = None


BUILTIN: dict[str, Metric] = {
    "groundedness": Metric(
        "groundedness",
        "How well is every claim in the reply supported by the context given? Judge only "
        "support by the context, not whether a claim is true in the world.",
        {
            1: "The reply is unrelated to the context, or contradicts it.",
            2: "The reply touches the context but most of its claims are not supported by it.",
            3: "Some claims are supported; others are missing from the context or go beyond it.",
            4: "Nearly every claim is supported; a minor detail goes beyond the context.",
            5: "Every claim is supported by the context, and nothing is added or contradicted.",
        },
        needs="context",
    ),
    "relevance": Metric(
        "relevance",
        "How well does the reply address what the user asked in the conversation?",
        {
            1: "The reply does not address the question at all.",
            2: "The reply is on the topic but does not answer the question.",
            3: "The reply answers part of the question, or answers it with much that is off it.",
            4: "The reply answers the question, missing a minor part of it.",
            5: "The reply answers every part of the question directly and completely.",
        },
    ),
    "coherence": Metric(
        "coherence",
        "How logically organised is the reply: do its ideas follow from one another?",
        {
            1: "Disjointed: the sentences do not connect, or contradict each other.",
            2: "Hard to follow: ideas jump without links.",
            3: "Mostly followable, with some gaps or jumps in the reasoning.",
            4: "Well organised, with a minor awkward transition.",
            5: "Clear and logical throughout; each idea builds on the last.",
        },
    ),
    "fluency": Metric(
        "fluency",
        "How well written is the reply: grammar, word choice, readability (not its content)?",
        {
            1: "Barely readable: pervasive errors make it hard to understand.",
            2: "Frequent errors that get in the way of reading.",
            3: "Understandable, with noticeable errors or clumsy phrasing.",
            4: "Well written, with a rare minor slip.",
            5: "Fluent, precise and natural throughout.",
        },
    ),
    "similarity": Metric(
        "similarity",
        "How close in meaning is the reply to the reference answer (not in wording)?",
        {
            1: "It means something entirely different from the reference.",
            2: "It shares the topic but differs in its main point.",
            3: "It shares the main point but differs in important details.",
            4: "It means nearly the same; a minor detail differs or is missing.",
            5: "It means the same as the reference.",
        },
        needs="reference",
    ),
}


def custom_metric(criteria: str, anchors: Mapping[int, str]) -> Metric:
    """The user's own metric: their question and (optionally) what each level means."""
    return Metric("custom", criteria, dict(anchors))
