"""The tool_calls check: which functions the model called, with what arguments."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.checks.registry import LoadContext, Outcome, Reply, check, failed, passed
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
def tool_calls(reply: Reply, expected: list[dict[str, Any]]) -> Outcome:
    """The reply calls each named function, with arguments that satisfy its JSON Schema."""
    calls = [c.get("function", {}) for c in reply.tool_calls if isinstance(c, Mapping)]
    names = [c.get("name") for c in calls]
    for spec in expected:
        matching = [c for c in calls if c.get("name") == spec["name"]]
        if not matching:
            return failed(f"no call to {spec['name']!r} (called: {names})", spec["name"], names)
        if "arguments" not in spec:
            continue
        try:
            arguments = json.loads(matching[0].get("arguments") or "{}")
        except json.JSONDecodeError as exc:
            return failed(f"{spec['name']} arguments are not JSON: {exc.msg}", None, matching[0])
        problem = schema_errors(spec["arguments"], arguments)
        if problem is not None:
            where, message, _ = problem
            return failed(f"{spec['name']} arguments at {where}: {message}", None, arguments)
    return passed(f"called {[s['name'] for s in expected]}", [s["name"] for s in expected], names)
