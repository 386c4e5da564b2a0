"""Checks on structured replies: valid JSON, and JSON that satisfies a JSON Schema."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from harness.checks.context import CheckContext, Reply
from harness.checks.registry import LoadContext, Outcome, check, failed, no_text, passed
from harness.checks.text import quoted
from harness.project import read_checked
from harness.suite.yamlfile import YamlProblem, parse_yaml

# ```json, ```JSON or a bare ``` fence; the closing fence may follow the JSON on its line.
_FENCE = re.compile(r"^\s*```[ \t]*(?:json)?[ \t]*\n(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)


def load_schema(arg: Any, ctx: LoadContext) -> dict[str, Any]:
    """A JSON Schema written inline, or a JSON/YAML file relative to the suite; checked."""
    if isinstance(arg, str):
        path = ctx.file(arg, "schema file")  # inside the suite's project, a regular file
        stat = path.stat()
        schema = _schema_file(path, stat.st_mtime_ns, stat.st_size, arg)
        ctx.note(arg, path, stat)
    elif isinstance(arg, dict):
        schema = arg
    else:
        raise ValueError("expects a JSON Schema (a mapping) or the path of a schema file")
    _check_schema(json.dumps(schema, sort_keys=True, default=str))
    return schema


@functools.lru_cache(maxsize=1024)
def _check_schema(canonical: str) -> None:
    # Keyed by the schema's canonical JSON: a suite that repeats one schema over many
    # cases (for_each) checks it once.
    schema = json.loads(canonical)
    validator = jsonschema.validators.validator_for(schema)
    try:
        validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ValueError(f"invalid JSON Schema at {where}: {exc.message}") from None


@functools.lru_cache(maxsize=256)
def _schema_file(path: Path, mtime_ns: int, size: int, written: str) -> dict[str, Any]:
    """A schema file parsed once per version of it, however many cases name it."""
    try:
        text = read_checked(path, written, "schema file").decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"schema file {written} is not UTF-8 text") from None
    try:
        data = parse_yaml(text)[0] if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (json.JSONDecodeError, YamlProblem, RecursionError) as exc:
        reason = "nested too deep" if isinstance(exc, RecursionError) else exc
        raise ValueError(f"schema file {written} is not valid: {reason}") from None
    if not isinstance(data, dict):
        raise ValueError(f"schema file {written} does not hold a JSON Schema object")
    return data


def schema_errors(schema: dict[str, Any], data: Any) -> tuple[str, str, int] | None:
    """Where and why ``data`` first breaks ``schema`` ($.items[0], message, error count)."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.path])
    if not errors:
        return None
    first = errors[0]
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.path)
    return where, first.message, len(errors)


def parse_reply_json(content: str | None) -> tuple[Any, str | None]:
    """The reply as JSON (a ```json fence is allowed); the error text when it is not."""
    text = (content or "").strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"{exc.msg} at line {exc.lineno} column {exc.colno}"


@check("is_json", prepare=lambda arg, ctx: bool(arg))
def is_json(ctx: CheckContext, expected: bool) -> Outcome:
    """The reply parses as JSON (or, with false, does not)."""
    reply = ctx.reply
    if reply.text is None:
        return no_text(reply, "JSON", absent=not expected)
    _, error = parse_reply_json(reply.text)
    if (error is None) == expected:
        return passed("reply is JSON" if expected else "reply is not JSON", expected, None)
    if expected:
        return failed(_not_json(reply, error), "JSON", reply.text[:200])
    return failed("reply is JSON but was expected not to be", "not JSON", reply.text)


@check("json_schema", prepare=load_schema)
def json_schema(ctx: CheckContext, schema: dict[str, Any]) -> Outcome:
    """The reply parses as JSON and satisfies the JSON Schema."""
    reply = ctx.reply
    if reply.text is None:
        return no_text(reply, "JSON matching the schema")
    data, error = parse_reply_json(reply.text)
    if error is not None:
        return failed(_not_json(reply, error), "JSON matching the schema", reply.text)
    problem = schema_errors(schema, data)
    if problem is None:
        return passed("reply satisfies the JSON Schema", None, data)
    where, message, count = problem
    more = f" (+{count - 1} more)" if count > 1 else ""
    return failed(f"at {where}: {message}{more}", None, data)


def _not_json(reply: Reply, error: str | None) -> str:
    if reply.content is None:
        return "the model refused instead of answering"
    text = reply.content
    shown = text if len(text) <= 120 else text[:119] + "…"
    return f"reply is not JSON ({error}): {quoted(shown)}"
