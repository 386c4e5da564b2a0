"""Preflight: what each case will cost on each target, whether it fits, what would be refused.

Nothing here sends a request. ``plan(cases, targets)`` gives one ``PlanRow`` per case and
target, and totals per target (tokens, estimated cost, estimated duration under the
target's quota). A problem marked fatal is one the service would certainly reject: the
runner records such a case as a preflight error instead of sending it. ``azeval plan``
prints it with ``harness.report.plan``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from harness.conversation import HistoryTooLong, completion_budget, fit_case
from harness.errors import PreflightError
from harness.models import Catalogue, ModelSpec, api_version_key, load_catalogue, local_spec
from harness.runner.engine import DEFAULT_COMPLETION_CHARGE
from harness.suite.model import Case, Message
from harness.tokens import count_messages, special_tokens_in

RPM_PER_1000_TPM = 6
_SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_COMPLETION_ERA = ("best_of", "echo", "suffix", "prompt")
# Sampling parameters and the only value reasoning (o-series) models accept for each.
_SAMPLING_DEFAULTS: Mapping[str, Any] = {
    "temperature": 1,
    "top_p": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logit_bias": {},
}
_RANGES: Mapping[str, tuple[float, float]] = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "n": (1, 128),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
    "top_logprobs": (0, 20),
}


class PlanTarget(Protocol):
    """What preflight needs of a target (``harness.config.TargetConfig`` has it all)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def model_version(self) -> str: ...
    @property
    def api_version(self) -> str: ...
    @property
    def tpm(self) -> int | None: ...
    @property
    def rpm(self) -> int | None: ...


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a case on a target, where it is written, and how to fix it."""

    place: str
    message: str
    fix: str = ""
    fatal: bool = True

    def describe(self, path: str) -> str:
        where = f"{path}: {self.place}" if self.place else path
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{where}: {self.message}{fix}"


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
    est_cost: float | None = None

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


@dataclass(frozen=True)
class TargetTotals:
    """Sums over every case of one target, and how long its quota makes the run."""

    target: str
    model: str
    cases: int
    requests: int
    prompt_tokens: int
    charged_tokens: int
    est_cost: float | None
    tpm: int | None
    rpm: int | None
    duration_s: float | None


@dataclass(frozen=True)
class Plan:
    """The preflight of every case on every target."""

    rows: tuple[PlanRow, ...]
    targets: tuple[TargetTotals, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def prompt_tokens(self) -> int:
        return sum(t.prompt_tokens for t in self.targets)

    @property
    def charged_tokens(self) -> int:
        return sum(t.charged_tokens for t in self.targets)

    @property
    def est_cost(self) -> float | None:
        costs = [t.est_cost for t in self.targets if t.est_cost is not None]
        return sum(costs) if costs else None

    @property
    def duration_s(self) -> float | None:
        """Targets have their own quotas and run side by side: the slowest one's time."""
        known = [t.duration_s for t in self.targets if t.duration_s is not None]
        return max(known) if known else None

    @property
    def fatal_rows(self) -> tuple[PlanRow, ...]:
        return tuple(row for row in self.rows if row.fatal)


# --- one case ------------------------------------------------------------------------------


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
    return count_messages(
        messages,
        spec.name,
        model_version="0301" if spec.message_format == "0301" else "",
        tools=_tools(params or {}),
        encoding=spec.encoding,
    )


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
    reserve = completion_budget(params)
    problems: list[Problem] = []
    problems += _special_tokens(case)
    problems += _param_problems(case, target, spec, catalogue)

    messages_place = case.place + ".messages"
    turn_problems: list[Problem] = []
    if len(case.turns) == 1:
        turn_tokens = [count_prompt(case.turns[0].messages, spec, params)]
    else:
        turn_tokens, turn_problems = _conversation(case, spec)
    first = turn_tokens[0]
    fits = first + (reserve or 1) <= spec.context_window
    limits: list[Problem] = []
    if not fits:
        limits.append(_too_long(messages_place, spec, first, reserve))
        # The service's own wording says it; the budget's would repeat it.
        turn_problems = [p for p in turn_problems if p.place != messages_place]
    if reserve is not None and reserve > spec.max_output:
        key = "max_completion_tokens" if "max_completion_tokens" in params else "max_tokens"
        limits.append(
            Problem(
                f"{case.place}.params.{key}",
                f"{key} is too large: {reserve}. This model supports at most "
                f"{spec.max_output} completion tokens, whereas you provided {reserve}.",
                f"lower it to {spec.max_output} or less",
            )
        )
    problems += limits if spec.known else [_assumed(p, spec) for p in limits]
    problems += turn_problems
    fits = fits and not any(p.fatal for p in turn_problems)

    # What the runner's scheduler (and Azure) charges against TPM: a request without a
    # completion limit is charged the runner's default, not nothing.
    charge = reserve if reserve is not None else DEFAULT_COMPLETION_CHARGE
    charged = sum(t + charge for t in turn_tokens)
    cost = spec.cost(sum(turn_tokens), (reserve or 0) * len(turn_tokens))
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
    )


def _assumed(problem: Problem, spec: ModelSpec) -> Problem:
    """A problem found with what is assumed of an unknown model: a warning, not a refusal."""
    fix = f'describe the model in azeval.toml under [models."{spec.name}"]'
    return replace(
        problem,
        message=f"{problem.message} (assumed: {spec.name} is not in the model catalogue)",
        fix=f"{problem.fix}, or {fix}" if problem.fix else fix,
        fatal=False,
    )


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


# --- parameters ----------------------------------------------------------------------------


def _tools(params: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    tools = params.get("tools") or params.get("functions")
    return list(tools) if isinstance(tools, Sequence) and tools else None


def _features_used(params: Mapping[str, Any]) -> dict[str, str]:
    """Catalogue features the request uses, each with the parameter that uses it."""
    used: dict[str, str] = {}
    for key in ("tools", "tool_choice", "functions", "function_call"):
        if key in params:
            used.setdefault("tools", key)
    if "parallel_tool_calls" in params:
        used["parallel_tool_calls"] = "parallel_tool_calls"
    response_format = params.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        used[response_format["type"]] = "response_format"
    if params.get("logprobs") is True or "top_logprobs" in params:
        used["logprobs"] = "logprobs" if params.get("logprobs") is True else "top_logprobs"
    for key in ("seed", "max_tokens", "max_completion_tokens"):
        if key in params:
            used[key] = key
    if "stream_options" in params:
        used["stream_usage"] = "stream_options"
    return used


def _param_problems(
    case: Case, target: PlanTarget, spec: ModelSpec, catalogue: Catalogue
) -> list[Problem]:
    params = case.params
    at = f"{case.place}.params"
    problems: list[Problem] = []

    for key in _COMPLETION_ERA:
        if key in params:
            problems.append(
                Problem(
                    f"{at}.{key}",
                    f"'{key}' is a completions-API parameter; chat completions reject it",
                    "remove it",
                )
            )
    logprobs = params.get("logprobs")
    if isinstance(logprobs, int) and not isinstance(logprobs, bool):
        problems.append(
            Problem(
                f"{at}.logprobs",
                f"logprobs: {logprobs} is the completions-API form; chat completions take "
                "a boolean",
                f"use logprobs: true and top_logprobs: {logprobs}",
            )
        )

    for key, (low, high) in _RANGES.items():
        value = params.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not low <= value <= high:
            problems.append(Problem(f"{at}.{key}", f"{key} {value} is outside {low:g}–{high:g}"))
    stop = params.get("stop")
    if isinstance(stop, list) and len(stop) > 4:
        problems.append(Problem(f"{at}.stop", "stop takes at most 4 sequences"))
    tools = _tools(params)
    if tools and len(tools) > 128:
        problems.append(Problem(f"{at}.tools", f"{len(tools)} tools; the service takes 128"))

    problems += _response_format(case, at)
    rejects = _model_rejects(params, spec, at)
    problems += rejects if spec.known else [_assumed(p, spec) for p in rejects]
    if target.kind == "azure" and target.api_version:
        problems += _api_version_rejects(
            params, target.name, target.api_version, spec, catalogue, at
        )
    return problems


def _response_format(case: Case, at: str) -> list[Problem]:
    response_format = case.params.get("response_format")
    if not isinstance(response_format, Mapping):
        return []
    kind = response_format.get("type")
    if kind == "json_object":
        text = " ".join(m.content or "" for m in case.turns[0].messages).lower()
        if "json" not in text:
            return [
                Problem(
                    f"{at}.response_format",
                    "'messages' must contain the word 'json' in some form, to use "
                    "'response_format' of type 'json_object'",
                    "ask for JSON in the system or user message",
                )
            ]
    if kind == "json_schema":
        schema = response_format.get("json_schema")
        name = schema.get("name") if isinstance(schema, Mapping) else None
        if not isinstance(name, str) or not _SCHEMA_NAME.match(name):
            return [
                Problem(
                    f"{at}.response_format.json_schema.name",
                    f"json_schema name {name!r} must be 1–64 of a-z, A-Z, 0-9, _ and -",
                    "rename the schema",
                )
            ]
    return []


def _model_rejects(params: Mapping[str, Any], spec: ModelSpec, at: str) -> list[Problem]:
    problems: list[Problem] = []
    if spec.o_series and "max_tokens" in params:
        problems.append(
            Problem(
                f"{at}.max_tokens",
                f"{spec.name} is a reasoning model and rejects max_tokens",
                "use max_completion_tokens (it also covers the reasoning tokens)",
            )
        )
    if "sampling" not in spec.accepts:
        for key, default in _SAMPLING_DEFAULTS.items():
            if key in params and params[key] != default:
                problems.append(
                    Problem(
                        f"{at}.{key}",
                        f"{spec.name} accepts only the default {key} ({default!r})",
                        f"remove {key}",
                    )
                )
    for feature, key in _features_used(params).items():
        if feature in spec.accepts or (spec.o_series and feature == "max_tokens"):
            continue
        fatal = feature != "seed"  # an unsupported seed is ignored, not refused
        problems.append(
            Problem(
                f"{at}.{key}",
                f"{spec.label} does not support {feature.replace('_', ' ')}"
                + ("" if fatal else "; replies will not be reproducible"),
                f"remove {key}, or use a model that supports it",
                fatal=fatal,
            )
        )
    if "functions" in params or "function_call" in params:
        problems.append(
            Problem(
                f"{at}.functions",
                "functions/function_call are deprecated",
                "use tools and tool_choice",
                fatal=False,
            )
        )
    return problems


def _api_version_rejects(
    params: Mapping[str, Any],
    target_name: str,
    api_version: str,
    spec: ModelSpec,
    catalogue: Catalogue,
    at: str,
) -> list[Problem]:
    problems: list[Problem] = []
    have, floor = api_version_key(api_version), api_version_key(spec.min_api_version)
    if have is not None and floor is not None and have < floor:
        problems.append(
            Problem(
                "",
                f"target '{target_name}': {spec.name} is served only by api-version "
                f"{spec.min_api_version} and later; the target uses {api_version}",
                f"set the target's api_version to {spec.min_api_version} or later",
            )
        )
    for feature, key in _features_used(params).items():
        if catalogue.api_version_accepts(api_version, feature):
            continue
        first = catalogue.first_api_version(feature)
        fix = f"set the target's api_version to {first} or later (2024-10-21 has it)"
        if feature == "max_completion_tokens" and not spec.o_series:
            fix = f"use max_tokens, or {fix}"
        problems.append(
            Problem(
                f"{at}.{key}",
                f"api-version {api_version} does not accept {key}"
                + (f" ({feature.replace('_', ' ')})" if key != feature else ""),
                fix,
            )
        )
    return problems


# --- every case ----------------------------------------------------------------------------


def plan(
    cases: Iterable[Case], targets: Sequence[PlanTarget], catalogue: Catalogue | None = None
) -> Plan:
    """The preflight of every case on every target, with totals per target."""
    catalogue = catalogue or load_catalogue()
    cases = list(cases)
    rows: list[PlanRow] = []
    totals: list[TargetTotals] = []
    warnings: list[str] = []
    for target in targets:
        spec, target_warnings = spec_for(target, catalogue)
        warnings += target_warnings
        target_rows = [plan_case(case, target, catalogue, spec=spec) for case in cases]
        rows += target_rows
        totals.append(_totals(target, spec, target_rows))
    return Plan(rows=tuple(rows), targets=tuple(totals), warnings=tuple(warnings))


def _totals(target: PlanTarget, spec: ModelSpec, rows: Sequence[PlanRow]) -> TargetTotals:
    sendable = [row for row in rows if not row.fatal]
    requests = sum(row.requests for row in sendable)
    charged = sum(row.charged_tokens for row in sendable)
    costs = [row.est_cost for row in sendable]
    rpm = target.rpm or (target.tpm * RPM_PER_1000_TPM // 1000 if target.tpm else None)
    duration = None
    if target.tpm or rpm:
        minutes = max(
            charged / target.tpm if target.tpm else 0.0,
            requests / rpm if rpm else 0.0,
        )
        duration = minutes * 60
    return TargetTotals(
        target=target.name,
        model=spec.label,
        cases=len(sendable),
        requests=requests,
        prompt_tokens=sum(sum(row.turn_tokens) * row.repeat for row in sendable),
        charged_tokens=charged,
        est_cost=None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
        tpm=target.tpm,
        rpm=rpm,
        duration_s=duration,
    )


def raise_for_fatal(plan: Plan) -> None:
    """Raise PreflightError listing every fatal problem, if there is one."""
    problems = [
        f"[{row.target}] {problem.describe(row.path)}"
        for row in plan.fatal_rows
        for problem in row.problems
        if problem.fatal
    ]
    if problems:
        raise PreflightError(problems)
