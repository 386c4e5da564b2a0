"""Typed, validated suite contents: what the loader produces and everything else reads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.suite.cases import changed, checks_of


@dataclass(frozen=True)
class Message:
    """One chat message as sent to the service."""

    role: str
    content: str | None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[Mapping[str, Any], ...] | None = None
    # Where the suite file writes it ("cases[2].messages[1]", "defaults.system"), for errors.
    place: str = field(default="", compare=False)

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            body["name"] = self.name
        if self.tool_call_id is not None:
            body["tool_call_id"] = self.tool_call_id
        if self.tool_calls is not None:
            body["tool_calls"] = [dict(call) for call in self.tool_calls]
        return body


@dataclass(frozen=True)
class Expectation:
    """One check to apply to a reply: its registered name, its argument, where it was written."""

    check: str
    arg: Any
    place: str
    # What results call it when the name alone does not say (a user's "checks.py:polite").
    label: str = ""
    # How much it counts in the case's score (``weight:``), and the named score it adds to
    # in the report's per-target figures (``metric:``).
    weight: float = 1.0
    metric: str | None = None


@dataclass(frozen=True)
class Turn:
    """Messages added to the conversation, then one call to the model, then these checks."""

    messages: tuple[Message, ...]
    expectations: tuple[Expectation, ...]


@dataclass(frozen=True)
class Case:
    """One test case of a suite: a conversation of one or more turns and its parameters.

    A single-turn case has one turn whose messages are the whole prompt. In a multi-turn
    case, each later turn adds its messages (usually one user message) after the model's
    reply to the turn before.
    """

    suite: str
    id: str
    path: str
    place: str
    turns: tuple[Turn, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: tuple[str, ...] = ()
    repeat: int = 1
    history: str = "drop_oldest"
    budget: int | None = None
    # What a pairwise comparison of targets judges the replies on (None: overall quality).
    criteria: str | None = None
    # The case passes when its weighted score reaches this; None: every check must hold.
    threshold: float | None = None

    @property
    def key(self) -> str:
        return f"{self.suite}/{self.id}"

    @property
    def messages(self) -> tuple[Message, ...]:
        """The first request's messages (the whole prompt of a single-turn case)."""
        return self.turns[0].messages


@dataclass(frozen=True)
class Suite:
    """A loaded suite file."""

    id: str
    path: str
    sha256: str
    description: str
    # A tuple, or for a for_each a sequence building each case when read (suite/cases.py).
    cases: Sequence[Case]
    # A selection (-k, --tag, file::case) left out some of the file's cases.
    narrowed: bool = False
    # Files its checks read (schemas, Python checks), as written, with their sha256.
    files: tuple[tuple[str, str], ...] = ()

    def checks(self) -> Iterator[Expectation]:
        """The checks its cases hold, for questions about which kinds it has (needing a
        model, embeddings, a judge) answered without building each case: a for_each's as
        its first row has them, repeated by later rows only where a templated check's needs
        depend on its argument."""
        return checks_of(self.cases)


def streamed(suite: Suite) -> Suite:
    """The suite with every case's requests streamed (``--stream``): params stream: true."""
    return replace(suite, cases=changed(suite.cases, _streamed))


def _streamed(case: Case) -> Case:
    return replace(case, params={**case.params, "stream": True})
