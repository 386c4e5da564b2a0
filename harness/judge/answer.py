"""How a judge is asked to answer, and reading its answer into a validated verdict.

Structured outputs (``json_schema``, strict) where the judge's model and api-version accept
them, else ``json_object``, else a last-line answer: reasoning first, the decision on the
last line (OpenAI Evals' ``cot_classify``). Whatever does not validate against the kind's
verdict schema is an ``AnswerError``, which the check records as a judge_error, never a pass.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from harness.checks.structured import parse_reply_json, schema_errors
from harness.judge.verdicts import JudgeVerdict, VerdictShape
from harness.models import Catalogue, ModelSpec

AnswerMode = Literal["json_schema", "json_object", "last_line"]
ANSWER_MODES: tuple[AnswerMode, ...] = ("json_schema", "json_object", "last_line")

# "Verdict: pass", "**Score:** 4", "Answer - C", "winner = tie": a label before the value.
_LABEL = re.compile(r"^(?:verdict|score|choice|winner|answer|final answer)\s*[:=\-]\s*", re.I)
_DECORATION = " \t*_`'\".。!"
_SHOWN = 300  # characters of a bad answer quoted in the error


class AnswerError(ValueError):
    """The judge's answer is not a valid verdict; the message says why and quotes it."""


def answer_mode(spec: ModelSpec, kind: str, api_version: str, catalogue: Catalogue) -> AnswerMode:
    """The strictest answer format the judge's model (and, on Azure, api-version) accepts."""
    modes: tuple[AnswerMode, ...] = ("json_schema", "json_object")
    for mode in modes:
        if mode not in spec.accepts:
            continue
        if kind == "azure" and not catalogue.api_version_accepts(api_version, mode):
            continue
        return mode
    return "last_line"


def response_format(shape: VerdictShape, mode: AnswerMode) -> dict[str, Any] | None:
    """The request's ``response_format`` for an answer mode (None: plain text)."""
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": shape.schema_name, "schema": shape.schema, "strict": True},
        }
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def parse_answer(shape: VerdictShape, text: str | None, mode: AnswerMode) -> JudgeVerdict:
    """The verdict in a judge's answer; AnswerError when there is none that validates.

    In the JSON modes the whole answer must be the verdict object (a ```json fence is
    allowed). In last-line mode the whole answer may be that object too; otherwise its last
    line holds the object or the bare decision (``Verdict: pass``), and the lines above it
    are the reasoning.
    """
    if text is None or not text.strip():
        raise AnswerError("the judge answered no text")
    data, error = parse_reply_json(text)
    if error is None:
        return _validated(shape, data, text)
    if mode != "last_line":
        raise AnswerError(f"the judge's answer is not JSON ({error}): {_quote(text)}")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last, reasoning = lines[-1].strip(), "\n".join(lines[:-1]).strip()
    if last.startswith("{"):
        try:
            data = json.loads(last)
        except json.JSONDecodeError as exc:
            raise AnswerError(
                f"the judge's last line is not JSON ({exc.msg}): {_quote(last)}"
            ) from None
        if isinstance(data, dict) and "reasoning" not in data:
            data = {"reasoning": reasoning, **data}
        return _validated(shape, data, text)
    bare = _LABEL.sub("", last.strip(_DECORATION)).strip(_DECORATION)
    value = shape.value_of(_number(bare) if isinstance(shape.values[0], int) else bare)
    if value is None:
        allowed = " | ".join(map(str, shape.values))
        raise AnswerError(
            f"the judge's last line gives no {shape.field} ({allowed}): {_quote(last)}"
        )
    return JudgeVerdict(shape.kind, value, reasoning)


def _validated(shape: VerdictShape, data: Any, text: str) -> JudgeVerdict:
    if isinstance(data, dict) and shape.field in data:
        value = shape.value_of(data[shape.field])
        if value is not None:  # "Pass" and 4.0 are read as "pass" and 4
            data = {**data, shape.field: value}
    problem = schema_errors(shape.schema, data)
    if problem is not None:
        where, message, _ = problem
        raise AnswerError(f"the judge's answer breaks the verdict schema at {where}: {message}")
    return JudgeVerdict(shape.kind, data[shape.field], data["reasoning"])


def _number(text: str) -> Any:
    # "4", "4/5", "4 out of 5": the leading integer is the score.
    match = re.match(r"^(\d+)(?:\s*(?:/|out of)\s*5)?$", text)
    return int(match.group(1)) if match else text


def _quote(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "…")
