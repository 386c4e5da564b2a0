"""Asking a judge for one verdict: the request, N samples with distinct seeds, the record.

``judge()`` is transport-free: it is given an ``ask`` coroutine (the runner's sending path
to the judge's target, with its quota, retries and dead-target handling) and returns a
``Judgement`` that holds everything the check result stores: the prompt, every sample's raw
answer, parsed verdict, reasoning, tokens and latency, the aggregate, and the judge's cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.judge.answer import AnswerError, AnswerMode, parse_answer, response_format
from harness.judge.sampling import DEFAULT_MIN_AGREEMENT, Aggregate, aggregate, seeds
from harness.judge.verdicts import SHAPES, JudgeKind, JudgeVerdict, Value
from harness.models import ModelSpec

DEFAULT_MAX_TOKENS = 600


class JudgeReply(Protocol):
    """What the judge's sending path gives back (``harness.checks.Reply`` has it)."""

    @property
    def content(self) -> str | None: ...
    @property
    def refusal(self) -> str | None: ...
    @property
    def finish_reason(self) -> str | None: ...
    @property
    def usage(self) -> Mapping[str, Any]: ...
    @property
    def latency_ms(self) -> float | None: ...


# Sends one chat request to the judge: (messages, **params) → its reply. A failure after
# the sending path's retries raises (harness.targets.TargetError).
Ask = Callable[..., Awaitable[JudgeReply]]


@dataclass(frozen=True)
class JudgeOptions:
    """How a judge is asked: sampling parameters and how many samples to take."""

    temperature: float = 0.0
    seed: int = 0
    max_tokens: int = DEFAULT_MAX_TOKENS
    samples: int = 1
    min_agreement: float = DEFAULT_MIN_AGREEMENT


@dataclass(frozen=True)
class JudgeModel:
    """The judge's target as the judging needs it: name, model and how it answers."""

    name: str
    model: str
    model_version: str
    spec: ModelSpec
    answer_mode: AnswerMode

    def params(self, kind: JudgeKind, options: JudgeOptions, seed: int) -> dict[str, Any]:
        """The request's parameters for one sample, as this model accepts them."""
        params: dict[str, Any] = {}
        if self.spec.o_series:
            # Reasoning models take only the default sampling and count their reasoning
            # within max_completion_tokens.
            params["max_completion_tokens"] = options.max_tokens
        else:
            params["temperature"] = options.temperature
            params["max_tokens"] = options.max_tokens
        if "seed" in self.spec.accepts:
            params["seed"] = seed
        fmt = response_format(SHAPES[kind], self.answer_mode)
        if fmt is not None:
            params["response_format"] = fmt
        return params


@dataclass(frozen=True)
class Sample:
    """One request to the judge and what came of it."""

    seed: int
    raw: str | None
    verdict: JudgeVerdict | None
    error: str | None
    usage: Mapping[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "raw": self.raw,
            "verdict": self.verdict.to_json() if self.verdict else None,
            "error": self.error,
            "usage": dict(self.usage),
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True)
class Judgement:
    """Everything a judged check stores about asking its judge."""

    kind: JudgeKind
    judge: str
    model: str
    model_version: str
    template: str
    template_sha256: str
    answer_mode: AnswerMode
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any]
    samples: tuple[Sample, ...]
    result: Aggregate
    cost: float | None
    min_agreement: float = DEFAULT_MIN_AGREEMENT

    @property
    def reasoning(self) -> str:
        """The reasoning of the first sample that agrees with the aggregate decision."""
        for sample in self.samples:
            if sample.verdict is not None and str(sample.verdict.value) == str(self.result.value):
                return sample.verdict.reasoning
        return next((s.verdict.reasoning for s in self.samples if s.verdict), "")

    @property
    def errors(self) -> list[str]:
        return [s.error for s in self.samples if s.error]

    @property
    def prompt_tokens(self) -> int:
        return sum(int(s.usage.get("prompt_tokens") or 0) for s in self.samples)

    @property
    def completion_tokens(self) -> int:
        return sum(int(s.usage.get("completion_tokens") or 0) for s in self.samples)

    @property
    def latency_ms(self) -> float:
        return sum(s.latency_ms or 0.0 for s in self.samples)

    def to_json(self) -> dict[str, Any]:
        result = self.result
        return {
            "kind": self.kind,
            "judge": self.judge,
            "model": self.model,
            "model_version": self.model_version,
            "template": self.template,
            "template_sha256": self.template_sha256,
            "answer_mode": self.answer_mode,
            "messages": [dict(m) for m in self.messages],
            "params": dict(self.params),
            "samples": [s.to_json() for s in self.samples],
            "value": result.value,
            "decision": result.decision,
            "agreement": result.agreement,
            "uncertain": result.uncertain,
            "min_agreement": self.min_agreement,
            "counts": dict(result.counts),
            "reasoning": self.reasoning,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": round(self.latency_ms, 3),
            "cost": self.cost,
        }


async def judge(
    ask: Ask,
    model: JudgeModel,
    kind: JudgeKind,
    messages: Sequence[Mapping[str, Any]],
    options: JudgeOptions,
    decide: Callable[[Value | float], str],
    *,
    template: tuple[str, str] = ("", ""),
) -> Judgement:
    """Ask the judge ``options.samples`` times (distinct seeds, at once) and aggregate.

    A sample whose request fails or whose answer does not validate is kept with its error;
    it counts against agreement, and with no valid sample the aggregate has failed.
    """
    shape = SHAPES[kind]
    sample_seeds = seeds(options.seed, options.samples)

    async def one(seed: int) -> Sample:
        try:
            reply = await ask(messages, **model.params(kind, options, seed))
        except Exception as exc:  # the sending path's failure becomes data on the sample
            kind_of = getattr(exc, "kind", type(exc).__name__)
            return Sample(seed, None, None, f"the judge's request failed: {kind_of}: {exc}")
        usage = dict(reply.usage or {})
        if reply.content is None and reply.refusal is not None:
            error = f"the judge refused: {reply.refusal}"
            return Sample(seed, None, None, error, usage, reply.latency_ms)
        try:
            verdict = parse_answer(shape, reply.content, model.answer_mode)
        except AnswerError as exc:
            return Sample(seed, reply.content, None, str(exc), usage, reply.latency_ms)
        return Sample(seed, reply.content, verdict, None, usage, reply.latency_ms)

    samples = tuple(await asyncio.gather(*(one(seed) for seed in sample_seeds)))
    result = aggregate(
        [s.verdict for s in samples],
        decide,
        median=kind == "score",
        min_agreement=options.min_agreement,
    )
    prompt = sum(int(s.usage.get("prompt_tokens") or 0) for s in samples)
    completion = sum(int(s.usage.get("completion_tokens") or 0) for s in samples)
    return Judgement(
        kind=kind,
        judge=model.name,
        model=model.model,
        model_version=model.model_version,
        template=template[0],
        template_sha256=template[1],
        answer_mode=model.answer_mode,
        messages=tuple(dict(m) for m in messages),
        params=model.params(kind, options, options.seed),
        samples=samples,
        result=result,
        cost=model.spec.cost(prompt, completion),
        min_agreement=options.min_agreement,
    )
