"""The tool_calls check: which functions the model called, with what arguments."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.checks.context import CheckContext
from harness.checks.registry import LoadContext, Outcome, check, failed, passed
from harness.checks.structured import load_schema, schema_errors


def _prepare(arg: Any, ctx: LoadContext) -> list[dict[str, Any]]:
    specs = arg if isinstance(arg, list) else [arg]
    prepared = []
    for index, spec in enumerate(specs):
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise ValueError(f"call {index}: expects a function name or {{name, arguments}}")
        unknown = set(spec) - {"name", "arguments"}
        if unknown:
            raise ValueError(f"call {index}: unknown key {sorted(unknown)[0]!r}")
        item: dict[str, Any] = {"name": spec["name"]}
        if "arguments" in spec:
            item["arguments"] = load_schema(spec["arguments"], ctx)
        prepared.append(item)
    return prepared


@check("tool_calls", prepare=_prepare)
def tool_calls(ctx: CheckContext, expected: list[dict[str, Any]]) -> Outcome:
    """The reply calls each named function, with arguments that satisfy its JSON Schema.

    A function listed n times must be called at least n times, in any order, and every
    call to a listed function must satisfy one of its schemas: with parallel calls, one
    good call does not hide a bad one.
    """
    reply = ctx.reply
    calls = reply.functions
    names = [c.get("name") for c in calls]
    several = len(calls) > 1
    fits: list[list[int]] = [[] for _ in expected]  # the calls each spec accepts
    for index, call in enumerate(calls):
        specs = [i for i, spec in enumerate(expected) if spec["name"] == call.get("name")]
        if not specs:
            continue
        label = f"{call.get('name')} call {index + 1}" if several else str(call.get("name"))
        arguments, problem = _arguments(call, label)
        for i in specs:
            if "arguments" not in expected[i]:
                fits[i].append(index)
                continue
            if arguments is not _NOT_JSON:
                error = schema_errors(expected[i]["arguments"], arguments)
                if error is None:
                    fits[i].append(index)
                    continue
                where, message, _ = error
                problem = problem or f"{label} arguments at {where}: {message}"
        if not any(index in fits[i] for i in specs):
            return failed(problem, None, arguments if arguments is not _NOT_JSON else call)
    wanted = [s["name"] for s in expected]
    for spec in expected:
        if spec["name"] not in names:
            return failed(f"no call to {spec['name']!r} (called: {names})", spec["name"], names)
    if not _one_call_each(fits):
        counts = {n: wanted.count(n) for n in wanted}
        short = next((n for n, k in counts.items() if names.count(n) < k), None)
        if short is not None:
            message = f"expected {counts[short]} calls to {short!r}, the reply made"
            return failed(f"{message} {names.count(short)}", wanted, names)
        return failed("the calls do not match the listed arguments one call each", expected, calls)
    return passed(f"called {wanted}", wanted, names)


_NOT_JSON = object()


def _arguments(call: Mapping[str, Any], label: str) -> tuple[Any, str]:
    """The call's arguments parsed (or _NOT_JSON), and why they are unusable."""
    try:
        return json.loads(call.get("arguments") or "{}"), ""
    except (json.JSONDecodeError, TypeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return _NOT_JSON, f"{label} arguments are not JSON: {reason}"


def _one_call_each(fits: list[list[int]]) -> bool:
    """Whether every spec can have a call of its own (bipartite matching, augmenting paths)."""
    owner: dict[int, int] = {}

    def assign(spec: int, seen: set[int]) -> bool:
        for call in fits[spec]:
            if call in seen:
                continue
            seen.add(call)
            if call not in owner or assign(owner[call], seen):
                owner[call] = spec
                return True
        return False

    return all(assign(spec, set()) for spec in range(len(fits)))
