"""Scripted replies: rules that match a request and the action each one answers with."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

FAULT_KINDS = ("reset", "truncated", "invalid_json")


@dataclass(frozen=True)
class ChatRequest:
    """What rules look at in one chat-completions request."""

    deployment: str
    body: Mapping[str, Any]
    messages: tuple[Mapping[str, Any], ...]

    @functools.cached_property
    def last_user(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message_text(message)
        return ""

    @functools.cached_property
    def system(self) -> str:
        return "\n".join(
            message_text(m) for m in self.messages if m.get("role") in ("system", "developer")
        )

    @property
    def response_format(self) -> str:
        value = self.body.get("response_format")
        return str(value.get("type", "text")) if isinstance(value, Mapping) else "text"

    @property
    def has_tools(self) -> bool:
        return bool(self.body.get("tools") or self.body.get("functions"))

    @functools.cached_property
    def judged(self) -> Mapping[str, str]:
        """The tagged sections of a judge's request (``<reply>``, ``<answer_a>``,
        ``<reference>`` …, as azeval's judge templates write them), by tag name."""
        sections: dict[str, str] = {}
        for message in self.messages:
            for found in _SECTION.finditer(message_text(message)):
                sections.setdefault(found.group(1), found.group(2))
        return sections


def message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


# <tag>\ntext\n</tag>: a section of a judge prompt; the closing tag must match the opening.
_SECTION = re.compile(r"<([a-z_]+)>\n(.*?)\n</\1>", re.DOTALL)


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True)
class Match:
    """Which requests a rule applies to; every given field must hold (regexes use search)."""

    deployment: str | None = None
    last_user: str | None = None
    any_message: str | None = None
    system: str | None = None
    response_format: str | None = None  # text | json_object | json_schema | any
    tools: bool | None = None  # True: the request defines tools; False: it defines none
    # A judge's request: a regex on the judged reply, or {section: regex} over the tagged
    # sections of its prompt (reply, answer_a, answer_b, reference, context, criteria).
    judged: str | Mapping[str, str] | None = None

    def matches(self, request: ChatRequest) -> bool:
        if self.deployment is not None and request.deployment != self.deployment:
            return False
        if self.judged is not None and not self._judged(request):
            return False
        if self.last_user is not None and not _compiled(self.last_user).search(request.last_user):
            return False
        if self.system is not None and not _compiled(self.system).search(request.system):
            return False
        if self.any_message is not None:
            pattern = _compiled(self.any_message)
            if not any(pattern.search(message_text(m)) for m in request.messages):
                return False
        if self.response_format is not None:
            present = request.response_format
            wanted = self.response_format
            if wanted == "any" and present == "text":
                return False
            if wanted != "any" and present != wanted:
                return False
        return self.tools is None or self.tools == request.has_tools

    def _judged(self, request: ChatRequest) -> bool:
        wanted = {"reply": self.judged} if isinstance(self.judged, str) else self.judged or {}
        sections = request.judged
        return all(
            name in sections and _compiled(pattern).search(sections[name])
            for name, pattern in wanted.items()
        )


@dataclass(frozen=True)
class ToolCall:
    """One function call in a scripted reply; ``arguments`` is JSON text or a JSON object."""

    name: str
    arguments: str | Mapping[str, Any] = "{}"
    id: str | None = None

    def to_api(self, index: int) -> dict[str, Any]:
        arguments = self.arguments
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        call_id = self.id or f"call_fake{index:04d}"
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": arguments},
        }


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error answer: Azure's standard body for ``status`` unless ``body`` is given.

    ``retry_after`` (seconds) sets Retry-After and retry-after-ms; ``None`` sends neither
    (Azure's 429s sometimes come without); "auto" is 1 s on a 429 and none otherwise.
    """

    status: int
    code: str | None = None
    message: str | None = None
    body: Mapping[str, Any] | None = None
    retry_after: float | Literal["auto"] | None = "auto"
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.retry_after, str) and self.retry_after != "auto":
            raise ValueError(f"retry_after: seconds, null or 'auto', not {self.retry_after!r}")

    @property
    def retry_after_s(self) -> float | None:
        """The seconds to announce, or None for no Retry-After header."""
        if isinstance(self.retry_after, str):
            return 1.0 if self.status == 429 else None
        return self.retry_after


@dataclass(frozen=True)
class Action:
    """How to answer a matched request.

    ``content`` is a template: ``{last_user}``, ``{system}``, ``{deployment}`` and ``{model}``
    are replaced; a dict or list is sent as JSON text. ``None`` means the default reply
    (unless ``tool_calls`` are given). ``filters`` / ``prompt_filters`` map a category to a
    severity ("safe".."high"; medium and up are filtered) or a detection bool; a filtered
    prompt category answers 400 content_filter. ``fault`` breaks the HTTP answer itself.
    ``cached_tokens``: how many prompt tokens the usage reports as read from Azure's prompt
    cache (at most the prompt's tokens), as a repeated long prefix would be.
    ``filter_at``: where in the content the filtered text begins, which decides how much a
    stream shows before the filter ends it (harness.testing.streaming).
    """

    content: str | Mapping[str, Any] | Sequence[Any] | None = None
    finish_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: str | None = None
    filters: Mapping[str, Any] = field(default_factory=dict)
    prompt_filters: Mapping[str, Any] = field(default_factory=dict)
    latency_ms: float = 0.0
    error: ErrorReply | None = None
    fault: str | None = None  # reset | truncated | invalid_json
    verdict: Mapping[str, Any] | None = None
    cached_tokens: int = 0
    filter_at: int = 0

    def __post_init__(self) -> None:
        if self.verdict is not None and not isinstance(self.verdict, Mapping):
            raise ValueError(f"verdict: a mapping such as {{verdict: pass}}, not {self.verdict!r}")
        if self.fault is not None and self.fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.fault!r} (expected one of {FAULT_KINDS})")


@dataclass(frozen=True)
class Rule:
    """A match and what to answer: one ``reply``, a ``sequence`` cycled per matching
    request, or a weighted ``split`` drawn from a generator seeded with ``seed``."""

    match: Match = field(default_factory=Match)
    reply: Action | None = None
    sequence: tuple[Action, ...] = ()
    split: tuple[tuple[float, Action], ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        given = sum(1 for x in (self.reply, self.sequence, self.split) if x)
        if given != 1:
            raise ValueError("a rule needs exactly one of reply, sequence, split")


class RuleBook:
    """Rules in order, first match wins, with the state sequences and splits keep.

    Not thread-safe by itself: the server calls it under its lock.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self.reset()

    def reset(self) -> None:
        self._turns = [itertools.count() for _ in self.rules]
        self._rngs = [random.Random(rule.seed) for rule in self.rules]

    def pick(self, request: ChatRequest) -> Action | None:
        for index, rule in enumerate(self.rules):
            if not rule.match.matches(request):
                continue
            if rule.reply is not None:
                return rule.reply
            if rule.sequence:
                return rule.sequence[next(self._turns[index]) % len(rule.sequence)]
            weights = [weight for weight, _ in rule.split]
            return self._rngs[index].choices([a for _, a in rule.split], weights)[0]
        return None


def render(action: Action, request: ChatRequest, model: str) -> str | None:
    """The reply text of an action: its template filled in, or the default reply."""
    content: Any = action.content
    if action.verdict is not None:
        content = _verdict_text(action.verdict, request)
    if content is None:
        if action.tool_calls or action.refusal is not None:
            return None  # as the service answers: a refusal or tool calls, no content
        if request.response_format in ("json_object", "json_schema"):
            content = {"reply": "{last_user}"}
        else:
            content = "Echo: {last_user}"
    values = {
        "{last_user}": request.last_user,
        "{system}": request.system,
        "{deployment}": request.deployment,
        "{model}": model,
    }
    filled = _fill(content, values)
    return filled if isinstance(filled, str) else json.dumps(filled)


def _verdict_text(verdict: Mapping[str, Any], request: ChatRequest) -> str:
    answer = {"reasoning": "Judged by the fake server's rule.", **verdict}
    if request.response_format in ("json_object", "json_schema"):
        return json.dumps(answer)
    decision = {k: v for k, v in answer.items() if k != "reasoning"}
    return f"{answer['reasoning']}\n{json.dumps(decision)}"


def _fill(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if "{" in value:
            for placeholder, text in values.items():
                value = value.replace(placeholder, text)
        return value
    if isinstance(value, Mapping):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [_fill(v, values) for v in value]
    return value


# --- from plain data (YAML / JSON) -----------------------------------------------------------


def _fields(cls: type, data: Mapping[str, Any], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} (expected some of {sorted(known)})")


def action_from_dict(data: Mapping[str, Any], where: str = "reply") -> Action:
    """An Action from plain data (``tool_calls`` as dicts, ``error`` as a dict or a status)."""
    _fields(Action, data, where)
    values = dict(data)
    if "tool_calls" in values:
        calls = []
        for i, call in enumerate(values["tool_calls"]):
            _fields(ToolCall, call, f"{where}.tool_calls[{i}]")
            calls.append(ToolCall(**call))
        values["tool_calls"] = tuple(calls)
    error = values.get("error")
    if isinstance(error, int):
        values["error"] = ErrorReply(status=error)
    elif error is not None:
        _fields(ErrorReply, error, f"{where}.error")
        values["error"] = ErrorReply(**error)
    return Action(**values)


def rule_from_dict(data: Mapping[str, Any], where: str = "rule") -> Rule:
    """A Rule from ``{match: {...}, reply: {...} | sequence: [...] | split: [...], seed}``."""
    _fields(Rule, data, where)
    match_data = data.get("match") or {}
    _fields(Match, match_data, f"{where}.match")
    sequence = tuple(
        action_from_dict(a, f"{where}.sequence[{i}]")
        for i, a in enumerate(data.get("sequence") or ())
    )
    split = []
    for i, part in enumerate(data.get("split") or ()):
        if not isinstance(part, Mapping) or set(part) - {"weight", "reply"}:
            raise ValueError(f"{where}.split[{i}]: expected {{weight, reply}}")
        split.append(
            (float(part.get("weight", 1.0)), action_from_dict(part["reply"], f"{where}.split[{i}]"))
        )
    reply = data.get("reply")
    try:
        return Rule(
            match=Match(**match_data),
            reply=action_from_dict(reply, f"{where}.reply") if reply is not None else None,
            sequence=sequence,
            split=tuple(split),
            seed=int(data.get("seed", 0)),
        )
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
