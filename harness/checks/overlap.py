"""Checks that measure how close the reply stays to a golden answer: rouge, bleu, chrf,
levenshtein and f1, each scoring in [0, 1] and passing at ``min``.

The metrics come from well-kept libraries (rouge-score, sacrebleu, rapidfuzz) so that a
score means what it means in papers and in other tools; token F1 is the SQuAD evaluation
script's, a few lines with no library of its own. Each check's argument is a mapping with a
``reference`` (rendered with the case's variables like any other argument) and ``min``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.checks.context import CheckContext
from harness.checks.registry import ArgumentError, LoadContext, Outcome, check
from harness.checks.text import quoted
from harness.results.record import FAIL, PASS


@dataclass(frozen=True)
class Reference:
    """A prepared overlap argument: the golden answer and what the score must reach.
    ``variant``: rouge's type (rouge1, rouge2, rougeL); ``max_distance``: levenshtein's
    bound on edits, checked instead of ``min`` when given."""

    reference: str
    minimum: float
    variant: str = ""
    max_distance: int | None = None


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


# An option a check takes beyond reference and min: the Reference field it sets, and how
# its written value is checked (ValueError saying why not).
Option = tuple[str, Callable[[Any], Any]]


def reference_argument(
    default_min: float, extra: Mapping[str, Option] | None = None
) -> Callable[[Any, LoadContext], Reference]:
    """A prepare function for a check taking ``{reference, min, …extra}``."""
    extra = extra or {}

    def prepare(arg: Any, ctx: LoadContext) -> Reference:
        if not isinstance(arg, Mapping):
            raise ValueError("expects a mapping with a reference (and min)")
        unknown = sorted(set(arg) - {"reference", "min", *extra})
        if unknown:
            allowed = ", ".join(["reference", "min", *extra])
            raise ArgumentError(f"unknown key {unknown[0]!r} (allowed: {allowed})", (unknown[0],))
        reference = arg.get("reference")
        if reference is None or (isinstance(reference, str) and not reference.strip()):
            raise ValueError("needs a reference: the golden answer to compare the reply with")
        if not isinstance(reference, (str, int, float)) or isinstance(reference, bool):
            raise ArgumentError("the reference must be a string", ("reference",))
        minimum = arg.get("min", default_min)
        if (
            isinstance(minimum, bool)
            or not isinstance(minimum, (int, float))
            or not 0 <= minimum <= 1
        ):
            raise ArgumentError(f"min must be a number in [0, 1], not {minimum!r}", ("min",))
        options = {}
        for key, (name, parse) in extra.items():
            if key in arg:
                try:
                    options[name] = parse(arg[key])
                except ValueError as exc:
                    raise ArgumentError(str(exc), (key,)) from None
        return Reference(str(reference), float(minimum), **options)

    return prepare


def _rouge_type(value: Any) -> str:
    if value not in ROUGE_TYPES:
        raise ValueError(f"type must be one of {', '.join(ROUGE_TYPES)}, not {value!r}")
    return str(value)


def _distance(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"max_distance must be a whole number ≥ 0, not {value!r}")
    return value


def verdict(name: str, score: float, ref: Reference, text: str) -> Outcome:
    """Pass when the score reaches ``min``; the message says both, and the reference."""
    ok = score >= ref.minimum
    relation = "≥" if ok else "<"
    return Outcome(
        PASS if ok else FAIL,
        f"{name} {score:.3f} {relation} min {ref.minimum:g} against {quoted(ref.reference)}",
        expected=ref.reference,
        actual=text,
        score=score,
    )


@check(
    "rouge",
    prepare=reference_argument(0.5, {"type": ("variant", _rouge_type)}),
    needs=("text",),
)
def rouge(ctx: CheckContext, ref: Reference) -> Outcome:
    """ROUGE F-measure (rouge-score) of the reply against the reference: rouge1, rouge2 or
    rougeL (the default), passing at min (0.5)."""
    variant = ref.variant or "rougeL"
    text = ctx.reply.text or ""
    measured = _rouge_scorer(variant).score(ref.reference, text)[variant].fmeasure
    return verdict(variant, float(measured), ref, text)


def _rouge_scorer(variant: str) -> Any:
    return _ROUGE_SCORERS.get(variant) or _ROUGE_SCORERS.setdefault(variant, _new_scorer(variant))


def _new_scorer(variant: str) -> Any:
    from rouge_score import rouge_scorer  # imports nltk: paid only by suites that use it

    return rouge_scorer.RougeScorer([variant], use_stemmer=False)


_ROUGE_SCORERS: dict[str, Any] = {}


@check("bleu", prepare=reference_argument(0.5), needs=("text",))
def bleu(ctx: CheckContext, ref: Reference) -> Outcome:
    """Sentence BLEU (sacrebleu, exponential smoothing, effective order) divided by 100,
    passing at min (0.5)."""
    import sacrebleu

    text = ctx.reply.text or ""
    return verdict("bleu", sacrebleu.sentence_bleu(text, [ref.reference]).score / 100, ref, text)


@check("chrf", prepare=reference_argument(0.5), needs=("text",))
def chrf(ctx: CheckContext, ref: Reference) -> Outcome:
    """Sentence chrF (sacrebleu: character 6-grams, beta 2) divided by 100, passing at
    min (0.5)."""
    import sacrebleu

    text = ctx.reply.text or ""
    return verdict("chrf", sacrebleu.sentence_chrf(text, [ref.reference]).score / 100, ref, text)


@check(
    "levenshtein",
    prepare=reference_argument(0.8, {"max_distance": ("max_distance", _distance)}),
    needs=("text",),
)
def levenshtein(ctx: CheckContext, ref: Reference) -> Outcome:
    """Normalised Levenshtein similarity (rapidfuzz: 1 - edits / longer length), passing at
    min (0.8); with max_distance, passing when at most that many edits apart."""
    from rapidfuzz.distance import Levenshtein

    text = ctx.reply.text or ""
    similarity = float(Levenshtein.normalized_similarity(text, ref.reference))
    if ref.max_distance is None:
        return verdict("levenshtein similarity", similarity, ref, text)
    edits = int(Levenshtein.distance(text, ref.reference))
    ok = edits <= ref.max_distance
    return Outcome(
        PASS if ok else FAIL,
        f"{edits} edit{'s' if edits != 1 else ''} from {quoted(ref.reference)} "
        f"({'≤' if ok else '>'} max_distance {ref.max_distance})",
        expected=ref.reference,
        actual=text,
        score=similarity,
    )


@check("f1", prepare=reference_argument(0.5), needs=("text",))
def f1(ctx: CheckContext, ref: Reference) -> Outcome:
    """Token F1 as the SQuAD evaluation computes it (lower case, no punctuation, no
    articles), passing at min (0.5)."""
    text = ctx.reply.text or ""
    return verdict("token f1", token_f1(text, ref.reference), ref, text)


def token_f1(prediction: str, truth: str) -> float:
    """SQuAD v2's f1: the harmonic mean of token precision and recall after normalising;
    when either side has no tokens, 1 if both have none, else 0."""
    predicted, expected = _squad_tokens(prediction), _squad_tokens(truth)
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _squad_tokens(text: str) -> list[str]:
    # SQuAD's normalize_answer: lower, drop punctuation, drop articles, split on spaces.
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()
