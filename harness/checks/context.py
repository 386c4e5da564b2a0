"""What a check is given: the reply, the case, the turn, the conversation, the target, services.

A check is called as ``fn(ctx, arg)`` with a ``CheckContext`` and its prepared argument, and
may be a coroutine function. What a check reads is declared as its ``needs`` (``Need``), so
the runner knows what to provide without reading the check's argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

if TYPE_CHECKING:
    from harness.judge.service import Judges
    from harness.runner.embeddings import Embeddings
    from harness.streamed import StreamStats
    from harness.suite.model import Case
    from harness.targets.base import TargetInfo

# What a check reads, and so what the runner must give it:
#   reply         the model's answer (finish_reason, usage, tool calls, latency, text): a
#                 blocked prompt has none, and the check is n/a without being called
#   text          the answer's words: as reply, and a reply without text (it only called
#                 tools) fails the check without calling it, so ctx.reply.text is a str
#   filters       Azure's content-filter annotations: called on a blocked prompt too
#   prompt_block  the check expects the content filter to refuse the prompt: that 400 is
#                 the turn's answer, not an error of the case
#   model         a model to ask (ctx.services.model), given by the runner
#   judge         the run's judges (ctx.services.judges), for model-graded checks
#   embeddings    the run's embedder (ctx.services.embeddings), for similar
Need = Literal["reply", "text", "filters", "prompt_block", "model", "judge", "embeddings"]
NEEDS: tuple[str, ...] = get_args(Need)


@dataclass(frozen=True)
class Reply:
    """What a check can look at: one turn's answer, or the error that replaced it."""

    content: str | None
    finish_reason: str | None = None
    # What the model said instead of answering (structured outputs' message.refusal).
    refusal: str | None = None
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    usage: Mapping[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None
    prompt_filter: Mapping[str, Any] | None = None
    completion_filter: Mapping[str, Any] | None = None
    error_kind: str | None = None
    error_body: Any = None
    target_kind: str = ""
    # The answer came from the response cache: no latency was measured in this run.
    cached: bool = False
    # How a streamed reply arrived (TTFT, gaps, tokens/s, filter offsets); None when the
    # reply came whole.
    stream: StreamStats | None = None

    @property
    def text(self) -> str | None:
        """The words of the reply: its content, else its refusal; None when it has neither."""
        return self.content if self.content is not None else self.refusal

    @property
    def functions(self) -> list[Mapping[str, Any]]:
        """The function object of each tool call; {} for a call that has none."""
        return [_function_of(call) for call in self.tool_calls]

    def why_no_text(self) -> str:
        """Why a reply with no text has none, in words, for n/a and failure messages."""
        if self.tool_calls:
            names = [function.get("name") for function in self.functions]
            return f"the reply has no text: it only called tools {names}"
        return f"the reply has no text (finish_reason {self.finish_reason!r})"

    @property
    def blocked(self) -> bool:
        """The prompt was refused by the content filter (HTTP 400 content_filter)."""
        return self.error_kind == "content_filter"


def _function_of(call: Any) -> Mapping[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    return function if isinstance(function, Mapping) else {}


class CheckModel(Protocol):
    """A model a check may ask (a judge): its own target, quota and retries.

    ``ask`` sends one chat request and returns the answer as a ``Reply``; a request that
    fails after its retries raises ``harness.targets.TargetError``, which makes the check's
    result an error that says so.
    """

    @property
    def name(self) -> str:
        """The configured target that answers."""
        ...

    async def ask(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Reply:
        """One chat completion of ``messages`` with these parameters (temperature, …)."""
        ...


class NoModel(LookupError):
    """A check asked for a model, and none was given to it."""


@dataclass(frozen=True)
class Services:
    """What the runner lends checks beyond the reply. ``model`` is given only to checks
    that declare they need one; asking without it raises NoModel."""

    check_model: CheckModel | None = None
    # The run's judges ([settings] judge, judge: on a check, case or suite, --judge).
    judges: Judges | None = None
    # The run's embedder ([settings] embedder), batching and caching within the run.
    embeddings: Embeddings | None = None

    @property
    def model(self) -> CheckModel:
        if self.check_model is None:
            raise NoModel(
                "no model to ask: name a configured target as [settings] check_model, "
                "and declare needs=('model',)"
            )
        return self.check_model


NO_SERVICES = Services()


@dataclass(frozen=True)
class CheckContext:
    """One turn of one case on one target, as a check sees it.

    ``conversation`` holds the messages sent in this turn's request (the history after
    fitting, the turn's own messages last); ``turn`` counts from 0.
    """

    reply: Reply
    case: Case
    turn: int
    conversation: tuple[Mapping[str, Any], ...]
    target: TargetInfo
    services: Services = NO_SERVICES
