"""Parameters the service, the model or the api-version would refuse, each with its fix."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from harness.models import Catalogue, ModelSpec, api_version_key
from harness.preflight.problems import PlanTarget, Problem, assumed
from harness.suite.model import Case

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


def tools_of(params: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The request's tool (or legacy function) definitions, if it has any."""
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


def param_problems(
    case: Case, target: PlanTarget, spec: ModelSpec, catalogue: Catalogue
) -> list[Problem]:
    """Every parameter of the case that the service, the model or the api-version refuses."""
    at = f"{case.place}.params"
    written, served = _params_alone(case.params, target, spec, catalogue)
    if not written and not served:  # as nearly every case: only the messages can say more
        return _response_format(case, at)
    return [
        *(_placed(p, at) for p in written),
        *_response_format(case, at),
        *(_placed(p, at) for p in served),
    ]


# What params alone say, at a place standing for the case's ``params``: the cases of a
# for_each share one params mapping, so 100,000 rows look theirs up once.
_AT = "\0params"
_SEEN: dict[tuple[int, int, int, str, str, str], tuple[Any, ...]] = {}
_SEEN_MAX = 1024


def _placed(problem: Problem, at: str) -> Problem:
    if not problem.place.startswith(_AT):
        return problem
    return replace(problem, place=at + problem.place[len(_AT) :])


def _params_alone(
    params: Mapping[str, Any], target: PlanTarget, spec: ModelSpec, catalogue: Catalogue
) -> tuple[list[Problem], list[Problem]]:
    """The problems of the params written (before the response format's) and of what the
    model and api-version serve (after it), each at ``_AT``; remembered per params object."""
    key = (id(params), id(spec), id(catalogue), target.name, target.kind, target.api_version)
    seen = _SEEN.get(key)
    if seen is not None and seen[0] is params and seen[1] is spec and seen[2] is catalogue:
        return seen[3], seen[4]
    written, served = _written_params(params, _AT), _served_params(params, target, spec, catalogue)
    if len(_SEEN) >= _SEEN_MAX:
        _SEEN.clear()
    _SEEN[key] = (params, spec, catalogue, written, served)  # held: their ids stay theirs
    return written, served


def _written_params(params: Mapping[str, Any], at: str) -> list[Problem]:
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
    tools = tools_of(params)
    if tools and len(tools) > 128:
        problems.append(Problem(f"{at}.tools", f"{len(tools)} tools; the service takes 128"))
    return problems


def _served_params(
    params: Mapping[str, Any], target: PlanTarget, spec: ModelSpec, catalogue: Catalogue
) -> list[Problem]:
    at = _AT
    problems = _stream(params, at)
    rejects = _model_rejects(params, spec, at)
    problems += rejects if spec.known else [assumed(p, spec) for p in rejects]
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
    messages = case.turns[0].messages
    # Each message on its own: the word cannot span two of them.
    if kind == "json_object" and not any("json" in (m.content or "").lower() for m in messages):
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


def _stream(params: Mapping[str, Any], at: str) -> list[Problem]:
    if params.get("stream") is not True:
        if "stream_options" in params:
            return [
                Problem(
                    f"{at}.stream_options",
                    "the service takes stream_options only when stream is true (it answers "
                    "400 otherwise)",
                    "set stream: true, or remove stream_options",
                )
            ]
        return []
    n = params.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        return [
            Problem(
                f"{at}.n",
                f"stream with n {n}: the choices' chunks interleave in one stream, and azeval "
                "reads and times the first choice only",
                "remove n, or set stream: false",
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
