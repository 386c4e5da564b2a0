"""What a suite writes for a judged check, validated into one typed argument.

    rubric: "criteria text"  or  {criteria, judge, samples, template, …}
    score: {metric, min, context, reference, criteria, anchors, judge, samples, template, …}
    factuality: {reference, pass, judge, samples, template, …}

Every judged check also takes ``judge`` (a target's name), ``samples`` (≥ 1), ``template``
(a Jinja2 file next to the suite), ``temperature``, ``seed``, ``max_tokens`` (of the
judge's answer) and ``min_agreement``. A
wrong argument is a ValueError whose message names the key, raised at load time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.checks.registry import ArgumentError
from harness.judge.answer import AnswerMode
from harness.judge.metrics import BUILTIN, DEFAULT_MIN_SCORE, METRICS, Metric, custom_metric
from harness.judge.verdicts import FACT_CHOICES, SHAPES, JudgeKind, Value

_COMMON = ("judge", "samples", "template", "temperature", "seed", "max_tokens", "min_agreement")
_KEYS: dict[str, tuple[str, ...]] = {
    "rubric": ("criteria", *_COMMON),
    "score": ("metric", "min", "context", "reference", "criteria", "anchors", *_COMMON),
    "factuality": ("reference", "pass", *_COMMON),
}
# Factuality passes unless the reply disagrees with the reference (D).
DEFAULT_PASSING = frozenset({"A", "B", "C", "E"})


@dataclass(frozen=True)
class JudgedArg:
    """A judged check's prepared argument: what to ask, and how (None: the run's default)."""

    kind: JudgeKind
    criteria: str | None = None
    metric: Metric | None = None
    min_score: int = DEFAULT_MIN_SCORE
    context: str | None = None
    reference: str | None = None
    passing: frozenset[str] = DEFAULT_PASSING
    judge: str | None = None
    samples: int | None = None
    template: Path | None = None
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    min_agreement: float | None = None

    def decide(self, value: Value | float) -> str:
        """The gating decision a verdict value stands for: pass or fail."""
        if self.kind == "score":
            return "pass" if float(value) >= self.min_score else "fail"
        if self.kind == "factuality":
            return "pass" if value in self.passing else "fail"
        return str(value)

    @property
    def expected(self) -> str:
        """What the check asks of the reply, in words, for its result."""
        if self.kind == "score" and self.metric is not None:
            return f"{self.metric.name} ≥ {self.min_score}"
        if self.kind == "factuality":
            return "facts " + " or ".join(sorted(self.passing)) + " against the reference"
        return self.criteria or ""

    def variables(
        self, reply: str, conversation: Sequence[Mapping[str, Any]], mode: AnswerMode
    ) -> dict[str, Any]:
        """What the judge template is rendered with."""
        return {
            **template_basics(self.kind, mode, conversation),
            "reply": reply,
            "criteria": self.criteria,
            "metric": self.metric,
            "context": self.context,
            "reference": self.reference,
            "fact_choices": FACT_CHOICES,
        }


def template_basics(
    kind: JudgeKind, mode: AnswerMode, conversation: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """What every judge template is rendered with: the answer's shape and the conversation."""
    shape = SHAPES[kind]
    return {
        "kind": kind,
        "shape": {"field": shape.field, "values": list(shape.values)},
        "answer_mode": mode,
        "conversation": [_shown(m) for m in conversation],
    }


def _shown(message: Mapping[str, Any]) -> dict[str, str]:
    content = message.get("content")
    if not isinstance(content, str):
        content = "" if content is None else str(content)
    if message.get("tool_calls"):
        content = (content + f" [called tools: {message['tool_calls']}]").strip()
    return {"role": str(message.get("role", "")), "content": content}


def rubric_arg(arg: Any, suite_dir: Path, judge: str | None) -> JudgedArg:
    """``rubric: "criteria"`` or ``rubric: {criteria, …}``."""
    if isinstance(arg, str):
        arg = {"criteria": arg}
    body = _mapping(arg, "rubric", "criteria text, or a mapping with criteria")
    return JudgedArg(
        kind="rubric",
        criteria=_text(body, "criteria", required=True),
        **_common(body, suite_dir, judge),
    )


def score_arg(arg: Any, suite_dir: Path, judge: str | None) -> JudgedArg:
    """``score: {metric, min, …}`` with the metric's own inputs."""
    body = _mapping(arg, "score", f"a mapping with metric ({', '.join(METRICS)})")
    name = body.get("metric")
    if name not in METRICS:
        raise ValueError(
            f"unknown metric {name!r} (one of {', '.join(METRICS)})"
            if name is not None
            else f"needs a metric ({', '.join(METRICS)})"
        )
    minimum = body.get("min", DEFAULT_MIN_SCORE)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or not 1 <= minimum <= 5:
        raise ArgumentError(f"min must be a whole number from 1 to 5, got {minimum!r}", ("min",))
    context, reference = _text(body, "context"), _text(body, "reference")
    if name == "custom":
        metric = custom_metric(_text(body, "criteria", required=True) or "", _anchors(body))
    else:
        for key in ("criteria", "anchors"):
            if key in body:
                raise ArgumentError(f"{key} is for metric: custom; {name} has its own", (key,))
        metric = BUILTIN[name]
    if metric.needs == "context" and context is None:
        raise ValueError(f"metric {name} needs context: the text the reply must be grounded in")
    if metric.needs == "reference" and reference is None:
        raise ValueError(f"metric {name} needs reference: the answer to compare the reply with")
    return JudgedArg(
        kind="score",
        metric=metric,
        min_score=minimum,
        context=context,
        reference=reference,
        **_common(body, suite_dir, judge),
    )


def factuality_arg(arg: Any, suite_dir: Path, judge: str | None) -> JudgedArg:
    """``factuality: {reference, pass: [A, B, C, E]}``."""
    if isinstance(arg, str):
        arg = {"reference": arg}
    body = _mapping(arg, "factuality", "a mapping with reference")
    passing = body.get("pass", sorted(DEFAULT_PASSING))
    if isinstance(passing, str):
        passing = [passing]
    if not isinstance(passing, list) or not passing or any(p not in FACT_CHOICES for p in passing):
        raise ArgumentError(
            f"pass must list fact categories from A–E, got {body.get('pass')!r}", ("pass",)
        )
    return JudgedArg(
        kind="factuality",
        reference=_text(body, "reference", required=True),
        passing=frozenset(passing),
        **_common(body, suite_dir, judge),
    )


def _mapping(arg: Any, name: str, wanted: str) -> Mapping[str, Any]:
    if not isinstance(arg, Mapping):
        raise ValueError(f"expects {wanted}")
    unknown = sorted(set(arg) - set(_KEYS[name]))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (known: {', '.join(_KEYS[name])})")
    return arg


def _text(body: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise ValueError(f"needs {key}")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ArgumentError(f"{key} must be non-empty text", (key,))
    return value


def _anchors(body: Mapping[str, Any]) -> dict[int, str]:
    anchors = body.get("anchors", {})
    if not isinstance(anchors, Mapping):
        raise ArgumentError("anchors must map levels 1–5 to what each means", ("anchors",))
    result: dict[int, str] = {}
    for level, meaning in anchors.items():
        number = int(level) if isinstance(level, str) and level.isdigit() else level
        if isinstance(number, bool) or number not in (1, 2, 3, 4, 5):
            raise ArgumentError(f"anchors: level {level!r} is not one of 1–5", ("anchors",))
        if not isinstance(meaning, str):
            raise ArgumentError(f"anchors: level {level} must be described in text", ("anchors",))
        result[number] = meaning
    return result


def _common(body: Mapping[str, Any], suite_dir: Path, judge: str | None) -> dict[str, Any]:
    samples = body.get("samples")
    if samples is not None and (
        isinstance(samples, bool) or not isinstance(samples, int) or samples < 1
    ):
        raise ArgumentError(
            f"samples must be a whole number of at least 1, got {samples!r}", ("samples",)
        )
    own_judge = body.get("judge")
    if own_judge is not None and (not isinstance(own_judge, str) or not own_judge.strip()):
        raise ArgumentError("judge must be the name of a configured target", ("judge",))
    template = body.get("template")
    if template is not None:
        if not isinstance(template, str) or not template.strip():
            raise ArgumentError("template must be the path of a Jinja2 file", ("template",))
        path = suite_dir / template
        if not path.is_file():
            raise ArgumentError(f"judge template not found: {template}", ("template",))
        template = path
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not 0 <= temperature <= 2
    ):
        raise ArgumentError(
            f"temperature must be a number from 0 to 2, got {temperature!r}", ("temperature",)
        )
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ArgumentError(f"seed must be a whole number, got {seed!r}", ("seed",))
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise ArgumentError(
            f"max_tokens must be a positive whole number, got {max_tokens!r}", ("max_tokens",)
        )
    agreement = body.get("min_agreement")
    if agreement is not None and (
        isinstance(agreement, bool)
        or not isinstance(agreement, (int, float))
        or not 0 <= agreement <= 1
    ):
        raise ArgumentError(
            f"min_agreement must be a share from 0 to 1, got {agreement!r}", ("min_agreement",)
        )
    return {
        "judge": own_judge or judge,
        "samples": samples,
        "template": template,
        "temperature": temperature,
        "seed": seed,
        "max_tokens": max_tokens,
        "min_agreement": agreement,
    }
