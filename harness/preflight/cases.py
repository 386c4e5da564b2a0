"""The preflight of one case on one target: tokens, context limits, special tokens, parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from harness.conversation import HistoryTooLong, completion_budget, fit_case
from harness.models import Catalogue, ModelSpec, Price, load_catalogue, local_spec
from harness.preflight.params import param_problems, tools_of
from harness.preflight.problems import PlanTarget, Problem, assumed
from harness.quota_rules import request_charge
from harness.suite.model import Case, Message
from harness.tokens import count_messages, special_tokens_in


@dataclass(frozen=True)
class PlanRow:
    """One case on one target: its tokens, its limits, and its problems.

    ``turn_tokens`` holds the prompt tokens of each request; the first is exact, later
    turns of a multi-turn case are lower bounds (the model's replies are not known yet).
    Everything is per run of the case; ``repeat`` says how many runs there are.
    """

    suite: str
    case: str
    target: str
    path: str
    place: str
    model: str
    prompt_tokens: int
    turn_tokens: tuple[int, ...]
    max_tokens: int | None
    context_window: int
    fits: bool
    problems: tuple[Problem, ...]
    repeat: int = 1
    charged_tokens: int = 0
    # Prompt tokens exactly, completions at max_tokens (an upper bound); a case that sets no
    # completion limit has an unknown completion, left out of est_cost and counted here.
    est_cost: float | None = None
    completion_unknown: bool = False

    @property
    def key(self) -> str:
        return f"{self.suite}/{self.case}"

    @property
    def requests(self) -> int:
        return len(self.turn_tokens) * self.repeat

    @property
    def fatal(self) -> bool:
        return any(p.fatal for p in self.problems)

    def error_message(self) -> str:
        """The fatal problems, one a line: what the runner records as the preflight error."""
        return "\n".join(p.describe(self.path) for p in self.problems if p.fatal)


def spec_for(target: PlanTarget, catalogue: Catalogue) -> tuple[ModelSpec, list[str]]:
    """The model a target runs, and warnings about what had to be assumed."""
    if target.kind == "local":
        spec = local_spec(catalogue, getattr(target, "n_ctx", None))
        return spec, [
            f"target '{target.name}': local model token counts use {spec.encoding} and are "
            "approximate"
        ]
    spec, warning = catalogue.lookup(target.model, target.model_version)
    return spec, [f"target '{target.name}': {warning}"] if warning else []


def count_prompt(
    messages: Sequence[Message | Mapping[str, Any]],
    spec: ModelSpec,
    params: Mapping[str, Any] | None = None,
) -> int:
    """Prompt tokens of a request to ``spec``'s model (tools in ``params`` included)."""
    return _count_prompt(messages, spec, tools_of(params or {}))


def _count_prompt(
    messages: Sequence[Message | Mapping[str, Any]],
    spec: ModelSpec,
    tools: Sequence[Mapping[str, Any]] | None,
) -> int:
    return count_messages(
        messages,
        spec.name,
        model_version="0301" if spec.message_format == "0301" else "",
        tools=tools,
        encoding=spec.encoding,
    )


class _Asks(NamedTuple):
    """What a case's params ask of each request: its completion reserve and tools."""

    reserve: int | None
    tools: list[Mapping[str, Any]] | None


# The cases of a for_each share one params mapping (and every case of a run one spec per
# target): what they ask and what the model's tokens cost are worked out once for each,
# not per case. Keyed by id, holding the object so that its id stays its own.
_ASKS: dict[int, tuple[Mapping[str, Any], _Asks]] = {}
_PRICES: dict[int, tuple[ModelSpec, Price | None]] = {}
_REMEMBERED = 1024


def _asks(params: Mapping[str, Any]) -> _Asks:
    seen = _ASKS.get(id(params))
    if seen is not None and seen[0] is params:
        return seen[1]
    asks = _Asks(completion_budget(params), tools_of(params))
    if len(_ASKS) >= _REMEMBERED:
        _ASKS.clear()
    _ASKS[id(params)] = (params, asks)
    return asks


def _cost(spec: ModelSpec, prompt_tokens: int, completion_tokens: int) -> float | None:
    """``spec.cost``, with the spec's price made once."""
    seen = _PRICES.get(id(spec))
    if seen is None or seen[0] is not spec:
        if len(_PRICES) >= _REMEMBERED:
            _PRICES.clear()
        seen = _PRICES[id(spec)] = (spec, spec.price)
    price = seen[1]
    if price is None:
        return None
    return price.cost({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens})


def plan_case(
    case: Case,
    target: PlanTarget,
    catalogue: Catalogue | None = None,
    *,
    spec: ModelSpec | None = None,
) -> PlanRow:
    """The preflight of one case on one target."""
    catalogue = catalogue or load_catalogue()
    if spec is None:
        spec, _ = spec_for(target, catalogue)
    params = case.params
    reserve, tools = _asks(params)
    problems = _special_tokens(case)
    problems += param_problems(case, target, spec, catalogue)

    turn_problems: list[Problem] = []
    if len(case.turns) == 1:
        turn_tokens = [_count_prompt(case.turns[0].messages, spec, tools)]
    else:
        turn_tokens, turn_problems = _conversation(case, spec)
    first = turn_tokens[0]
    fits = first + (reserve or 1) <= spec.context_window
    if not fits or (reserve is not None and reserve > spec.max_output):
        limits, turn_problems = _limits(case, spec, first, reserve, turn_problems)
        problems += limits if spec.known else [assumed(p, spec) for p in limits]
    if turn_problems:
        problems += turn_problems
        fits = fits and not any(p.fatal for p in turn_problems)

    # What the runner's scheduler (and Azure) charges against TPM: a request without a
    # completion limit is charged the default, not nothing.
    charged = sum([request_charge(t, reserve) for t in turn_tokens])
    cost = _cost(spec, sum(turn_tokens), (reserve or 0) * len(turn_tokens))
    return PlanRow(
        suite=case.suite,
        case=case.id,
        target=target.name,
        path=case.path,
        place=case.place,
        model=spec.label,
        prompt_tokens=first,
        turn_tokens=tuple(turn_tokens),
        max_tokens=reserve,
        context_window=spec.context_window,
        fits=fits,
        problems=tuple(problems),
        repeat=case.repeat,
        charged_tokens=charged * case.repeat,
        est_cost=None if cost is None else cost * case.repeat,
        completion_unknown=reserve is None,
    )


def _limits(
    case: Case, spec: ModelSpec, first: int, reserve: int | None, turn_problems: list[Problem]
) -> tuple[list[Problem], list[Problem]]:
    """The context window and completion limit the first request passes over, and the
    turns' problems left to say."""
    limits: list[Problem] = []
    messages_place = case.place + ".messages"
    if first + (reserve or 1) > spec.context_window:
        limits.append(_too_long(messages_place, spec, first, reserve))
        # The service's own wording says it; the budget's would repeat it.
        turn_problems = [p for p in turn_problems if p.place != messages_place]
    if reserve is not None and reserve > spec.max_output:
        key = "max_completion_tokens" if "max_completion_tokens" in case.params else "max_tokens"
        limits.append(
            Problem(
                f"{case.place}.params.{key}",
                f"{key} is too large: {reserve}. This model supports at most "
                f"{spec.max_output} completion tokens, whereas you provided {reserve}.",
                f"lower it to {spec.max_output} or less",
            )
        )
    return limits, turn_problems


def _too_long(place: str, spec: ModelSpec, prompt: int, reserve: int | None) -> Problem:
    # The service's own context_length_exceeded wording, with the same numbers.
    if reserve is None:
        message = (
            f"This model's maximum context length is {spec.context_window} tokens. However, "
            f"your messages resulted in {prompt} tokens."
        )
        fix = "shorten the messages"
    else:
        message = (
            f"This model's maximum context length is {spec.context_window} tokens. However, "
            f"you requested {prompt + reserve} tokens ({prompt} in the messages, {reserve} in "
            "the completion)."
        )
        room = spec.context_window - prompt
        fix = (
            f"lower max_tokens to {room} or less, or shorten the messages"
            if room > 0
            else "shorten the messages"
        )
    return Problem(place, message, fix)


def _conversation(case: Case, spec: ModelSpec) -> tuple[list[int], list[Problem]]:
    """Prompt tokens of each request of a multi-turn case, fitted as the runner fits them.

    The runner fits every request, the first included, into the budget; the first count is
    exact, later ones are lower bounds (every reply counted as an empty message).
    """
    history: list[Message] = []
    budget = case.budget or spec.context_window
    tokens: list[int] = []
    problems: list[Problem] = []
    for k, turn in enumerate(case.turns):
        if k:
            history.append(Message(role="assistant", content=""))
        history.extend(turn.messages)
        # case.turns[0] is the case's own messages; the file's turns[] list starts at case.turns[1].
        place = f"{case.place}.messages" if k == 0 else f"{case.place}.turns[{k - 1}]"
        try:
            kept, _ = fit_case(history, case, spec)
        except HistoryTooLong as exc:
            if k == 0:
                problems.append(
                    Problem(
                        place,
                        f"{exc}: the case stops before its first request",
                        "raise the budget or shorten the messages",
                    )
                )
            elif case.history == "stop":
                problems.append(
                    Problem(
                        place,
                        f"the conversation will need at least {exc.needed:,} tokens here, over "
                        f"the budget of {budget:,}: the case will stop at this turn",
                        "raise the budget, shorten the turns, or use history: drop_oldest",
                        fatal=False,
                    )
                )
            else:
                problems.append(Problem(place, str(exc), "shorten the system message or this turn"))
            tokens.append(count_prompt(history, spec, case.params))
            break
        tokens.append(count_prompt(kept, spec, case.params))
    return tokens, problems


def _special_tokens(case: Case) -> list[Problem]:
    problems = []
    for k, turn in enumerate(case.turns):
        for j, message in enumerate(turn.messages):
            found = special_tokens_in(message.content or "") if message.content else []
            if message.name:
                found += special_tokens_in(message.name)
            if found:
                # The loader knows where the file writes each message; built cases may not.
                place = f"messages[{j}]" if k == 0 else f"turns[{k - 1}].messages[{j}]"
                problems.append(
                    Problem(
                        message.place or f"{case.place}.{place}",
                        f"special token(s) {', '.join(found)} in the message: the service "
                        "answers 400 'Failed to generate output due to special tokens in "
                        "the input'",
                        "remove them; the chat API adds its own message framing",
                    )
                )
    return problems
