"""Running one case on one target: its turns, their checks, and the verdict."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from harness.checks import CheckContext, Reply, Services, expects_block, run_checks
from harness.checks.context import NO_SERVICES
from harness.conversation import HistoryTooLong, fit_turn
from harness.results.record import (
    CaseResult,
    ErrorInfo,
    ErrorKind,
    Truncation,
    TurnResult,
    case_score,
    verdict_of,
)
from harness.streamed import sends_stream_usage
from harness.suite.model import Case, Message, Turn
from harness.targets.base import CachedFrom, Completion, TargetError, TargetInfo

if TYPE_CHECKING:
    from harness.models import ModelSpec, Price
    from harness.runner.work import WorkItem

# Sends one request body and returns the answer, raising TargetError; retries live inside.
Sender = Callable[[Mapping[str, Any]], Awaitable[Completion]]


def request_body(case: Case, messages: list[dict[str, Any]], info: TargetInfo) -> dict[str, Any]:
    """The chat-completions body for one turn (the deployment goes in the URL, not here)."""
    return chat_body(messages, case.params, info)


def chat_body(
    messages: list[dict[str, Any]], params: Mapping[str, Any], info: TargetInfo
) -> dict[str, Any]:
    """A chat-completions body for a target: a non-Azure one names its model in it."""
    body: dict[str, Any] = {"messages": messages, **dict(params)}
    if info.kind != "azure":
        body["model"] = info.model
    if body.get("stream") is True and "stream_options" not in body and sends_stream_usage(info):
        # The usage chunk gives the service's own token count, not a tiktoken estimate.
        body["stream_options"] = {"include_usage": True}
    return body


def reply_of(completion: Completion, info: TargetInfo) -> Reply:
    answer = completion.response  # typed at the target's edge
    return Reply(
        content=answer.content,
        finish_reason=answer.finish_reason,
        refusal=answer.refusal,
        tool_calls=answer.tool_calls,
        usage=answer.usage,
        latency_ms=completion.measured_latency_ms,
        prompt_filter=answer.prompt_filter,
        completion_filter=answer.completion_filter,
        target_kind=info.kind,
        cached=completion.cached is not None,
        stream=completion.stream,
    )


async def run_case(
    item: WorkItem,
    info: TargetInfo,
    send: Sender,
    *,
    tally: Any = None,
    services: Services = NO_SERVICES,
) -> CaseResult:
    """Every turn in order; the first error ends the case and is recorded on it.

    A multi-turn conversation is fitted into its budget on the model the item runs on, and
    each answered turn is costed from its usage at that model's price (unknown without one).
    """
    case, repeat = item.case, item.repeat
    price = item.spec.price if item.spec is not None else None
    started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    started = time.perf_counter()
    history: list[dict[str, Any]] = []
    turns: list[TurnResult] = []
    error: ErrorInfo | None = None
    model = fingerprint = None
    for k, turn in enumerate(case.turns):
        history.extend(m.to_api() for m in turn.messages)
        try:
            messages, truncated = _fitted(history, case, item.spec)
        except HistoryTooLong as exc:
            # Name the turn that could not be sent, as the suite file numbers its turns.
            where = f"{case.place}.turns[{k - 1}]" if k else f"{case.place}.messages"
            error = ErrorInfo("history_budget", f"{where}: {exc}")
            break
        body = request_body(case, list(messages), info)
        # What each check of this turn is given besides the reply.
        context = partial(
            CheckContext,
            case=case,
            turn=k,
            conversation=tuple(body["messages"]),
            target=info,
            services=services,
        )

        try:
            completion = await send(body)
        except TargetError as exc:
            # A failed request ends the conversation; a blocked prompt the case expects is
            # its last turn and no error.
            result, error = await _failed_turn(turn, body, exc, info, context, price)
            turns.append(dataclasses.replace(result, truncated=truncated))
            break
        reply = reply_of(completion, info)
        model = completion.response.model or model
        fingerprint = completion.response.system_fingerprint or fingerprint
        turns.append(
            TurnResult(
                request=body,
                response=dict(completion.body),
                reply=reply.content,
                finish_reason=reply.finish_reason,
                usage=dict(reply.usage),
                latency_ms=completion.measured_latency_ms,
                checks=await run_checks(turn.expectations, context(reply)),
                cached=_with_saving(price, reply, completion),
                cost_usd=_spent(price, reply, completion),
                stream=completion.stream,
                member=completion.member,
                truncated=truncated,
            )
        )
        history.append(_assistant_message(reply))
    checks = tuple(c for t in turns for c in t.checks)
    return CaseResult(
        suite=case.suite,
        case=case.id,
        target=info.name,
        repeat=repeat,
        verdict=verdict_of(checks, error, case.threshold),
        turns=tuple(turns),
        error=error,
        attempts=getattr(tally, "attempts", 1),
        retries=getattr(tally, "retries", 0),
        rate_limited=getattr(tally, "rate_limited", 0),
        waited_s=round(getattr(tally, "waited_s", 0.0), 3),
        model=model,
        system_fingerprint=fingerprint,
        started_at=started_at,
        duration_ms=round((time.perf_counter() - started) * 1000.0, 3),
        tags=case.tags,
        path=case.path,
        # The kind of every failed attempt, in order: what the retries were for.
        extra={"attempt_errors": list(tally.errors)} if getattr(tally, "errors", None) else {},
        score=None if error is not None else case_score(checks),
        threshold=case.threshold,
    )


def _spent(price: Price | None, reply: Reply, completion: Completion) -> float | None:
    """What this run spent on an answer: its usage at the price, nothing for one from the
    cache (or a stored run being rescored); None without a price, or when the answer reports
    no token counts (a stream on an api-version that sends no usage chunk): unknown, never 0."""
    if price is None:
        return None
    if completion.cached:
        return 0.0
    return price.cost(reply.usage) if "completion_tokens" in reply.usage else None


def _with_saving(price: Price | None, reply: Reply, completion: Completion) -> CachedFrom | None:
    """A cached answer's origin, with what sending it again would have cost: saved."""
    if completion.cached is None:
        return None
    saved = price.cost(reply.usage) if price is not None else None
    return dataclasses.replace(completion.cached, saved_usd=saved)


def _fitted(
    history: list[dict[str, Any]], case: Case, spec: ModelSpec | None
) -> tuple[list[dict[str, Any]], Truncation | None]:
    """The messages to send: a conversation's history fitted into the case's budget (the
    model's context by default), and what was dropped for it; raises HistoryTooLong when
    it cannot be."""
    if spec is None or len(case.turns) == 1:
        return history, None
    fitted = fit_turn(history, case, spec)
    kept = [m.to_api() if isinstance(m, Message) else dict(m) for m in fitted.messages]
    if not fitted.dropped:
        return kept, None
    return kept, Truncation(fitted.dropped, fitted.tokens_dropped, fitted.budget)


async def _failed_turn(
    turn: Turn,
    body: dict[str, Any],
    exc: TargetError,
    info: TargetInfo,
    context: Callable[[Reply], CheckContext],
    price: Price | None,
) -> tuple[TurnResult, ErrorInfo | None]:
    """A turn whose request failed; a blocked prompt that the case expects is no error.

    A failed request reports no usage: it costs nothing we can see (unknown without a price).
    """
    error = ErrorInfo(
        kind=exc.kind,  # type: ignore[arg-type]  # TargetError.kind is one of ErrorKind
        message=exc.message,
        status=exc.status,
        code=exc.code,
        body=exc.body,
    )
    cost = 0.0 if price is not None else None
    if exc.kind == "content_filter" and expects_block(turn.expectations):
        reply = Reply(content=None, error_kind=exc.kind, error_body=exc.body, target_kind=info.kind)
        checks = await run_checks(turn.expectations, context(reply))
        return TurnResult(
            body,
            None,
            None,
            None,
            {},
            exc.latency_ms,
            checks,
            error,
            cost_usd=cost,
            member=exc.member,
        ), None
    failed = TurnResult(
        body, None, None, None, {}, exc.latency_ms, (), error, cost_usd=cost, member=exc.member
    )
    return failed, error


def _assistant_message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [dict(c) for c in reply.tool_calls]
    return message


def skipped_result(
    case: Case, info: TargetInfo, repeat: int, kind: ErrorKind, message: str
) -> CaseResult:
    """A case that was never sent (preflight, a dead target), recorded as an error."""
    return CaseResult(
        suite=case.suite,
        case=case.id,
        target=info.name,
        repeat=repeat,
        verdict="error",
        turns=(),
        error=ErrorInfo(kind, message),
        attempts=0,
        started_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        tags=case.tags,
        path=case.path,
    )


__all__ = ["Message", "request_body", "run_case", "skipped_result"]
