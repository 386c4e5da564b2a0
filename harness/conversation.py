"""Fitting a conversation into a token budget, the way Azure's guidance describes.

Keep the system message(s); drop the oldest exchanges (a user message with the replies and
tool results that follow it) until the rest fits; never drop the newest exchange. A
multi-turn case chooses what happens when its history outgrows the budget:

    drop_oldest   drop the oldest exchanges and carry on (the default)
    stop          stop the case at that turn and report it
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from harness.suite.model import Case, Message
from harness.tokens import count_messages

if TYPE_CHECKING:
    from harness.models import ModelSpec

HistoryPolicy = Literal["drop_oldest", "stop"]
POLICIES: tuple[HistoryPolicy, ...] = ("drop_oldest", "stop")

AnyMessage = Message | Mapping[str, Any]


class HistoryTooLong(Exception):
    """A conversation does not fit its budget (under the chosen policy).

    Raised for the runner to record on the case's result; ``needed`` is the smallest prompt
    the policy allows (system messages + the newest exchange for drop_oldest, the whole
    history for stop) plus the reserve.
    """

    def __init__(self, needed: int, budget: int, policy: str) -> None:
        self.needed = needed
        self.budget = budget
        self.policy = policy
        if policy == "stop":
            message = (
                f"the conversation needs {needed:,} tokens but the budget is {budget:,} "
                "(history: stop)"
            )
        else:
            message = (
                f"even the system message(s) and the newest turn need {needed:,} tokens, "
                f"over the budget of {budget:,}"
            )
        super().__init__(message)


def _role(message: AnyMessage) -> Any:
    return message.role if isinstance(message, Message) else message.get("role")


def exchanges(messages: Sequence[AnyMessage]) -> tuple[list[int], list[list[int]]]:
    """Indexes of the system messages, and of the rest grouped by exchange, oldest first.

    An exchange starts at a user message; messages before the first user message form an
    exchange of their own. Grouping keeps an assistant's tool calls with their results.
    """
    system: list[int] = []
    groups: list[list[int]] = []
    for i, message in enumerate(messages):
        role = _role(message)
        if role in ("system", "developer"):
            system.append(i)
        elif role == "user" or not groups:
            groups.append([i])
        else:
            groups[-1].append(i)
    return system, groups


@dataclass(frozen=True)
class Fitted:
    """A history fitted into its budget: the messages to send, and what was dropped."""

    messages: list[AnyMessage]
    # Indexes (in the whole history, oldest first) of the messages dropped, and their roles.
    dropped: tuple[tuple[int, str], ...] = ()
    # The prompt tokens the dropped messages took, and the budget they were dropped for.
    tokens_dropped: int = 0
    budget: int = 0


def fit_history(
    messages: Sequence[AnyMessage], budget: int, model: str, **options: Any
) -> tuple[list[AnyMessage], int]:
    """The messages to send so that prompt + ``reserve`` fits ``budget``, and how many dropped.

    ``options`` are fit's: ``reserve`` is what the completion needs (usually max_tokens).
    Raises HistoryTooLong when even the system message(s) and the newest exchange do not
    fit, or, under the ``stop`` policy, when anything would have to be dropped.
    """
    fitted = fit(messages, budget, model, **options)
    return fitted.messages, len(fitted.dropped)


def fit(
    messages: Sequence[AnyMessage],
    budget: int,
    model: str,
    *,
    reserve: int = 0,
    policy: HistoryPolicy = "drop_oldest",
    model_version: str = "",
    encoding: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> Fitted:
    """As fit_history, saying which messages were dropped and how many tokens they took."""
    if policy not in POLICIES:
        raise ValueError(f"unknown history policy {policy!r} (known: {', '.join(POLICIES)})")

    def cost(chosen: Sequence[AnyMessage]) -> int:
        return (
            count_messages(
                chosen, model, model_version=model_version, tools=tools, encoding=encoding
            )
            + reserve
        )

    total = cost(messages)
    if total <= budget:
        return Fitted(list(messages), budget=budget)
    whole = total
    if policy == "stop":
        raise HistoryTooLong(total, budget, policy)
    system, groups = exchanges(messages)
    # Drop from the front, one exchange at a time; the cost of each part is additive, so
    # count each exchange once rather than recounting the whole history per step.
    per_group = [cost([messages[i] for i in group]) - cost([]) for group in groups]
    kept_from = 0
    while kept_from < len(groups) - 1 and total > budget:
        total -= per_group[kept_from]
        kept_from += 1
    if total > budget:
        raise HistoryTooLong(total, budget, policy)
    keep = set(system)
    for group in groups[kept_from:]:
        keep.update(group)
    kept = [m for i, m in enumerate(messages) if i in keep]
    dropped = tuple((i, str(_role(m))) for i, m in enumerate(messages) if i not in keep)
    return Fitted(kept, dropped, whole - total, budget)


def completion_budget(params: Mapping[str, Any]) -> int | None:
    """The completion tokens a request reserves: max_completion_tokens, else max_tokens."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def fit_case(
    messages: Sequence[AnyMessage], case: Case, spec: ModelSpec
) -> tuple[list[AnyMessage], int]:
    """fit_history with a case's budget (default: the context window), policy and reserve."""
    fitted = fit_turn(messages, case, spec)
    return fitted.messages, len(fitted.dropped)


def fit_turn(messages: Sequence[AnyMessage], case: Case, spec: ModelSpec) -> Fitted:
    """fit with a case's budget (default: the context window), policy and reserve.

    The one rule the runner (when it sends a later turn) and the plan (when it estimates
    one) share: reserve = max_completion_tokens or max_tokens, tools counted, the model's
    encoding and message format.
    """
    params = case.params
    tools = params.get("tools") or params.get("functions") or None
    return fit(
        messages,
        case.budget or spec.context_window,
        spec.name,
        reserve=completion_budget(params) or 0,
        policy="stop" if case.history == "stop" else "drop_oldest",
        model_version="0301" if spec.message_format == "0301" else "",
        encoding=spec.encoding,
        tools=tools,
    )
