"""The run's embedder as checks use it: texts batched into requests, each text embedded
once per run.

``similar`` asks for a text's vector with ``embed``. Texts asked for while a request is
being gathered go into the same request, up to ``max_inputs`` (Azure takes 2,048) — the
checks of concurrent cases share requests. A text embedded once (a reference shared by
many cases, a reply given twice) is not sent again in the run: later checks get the same
vector at no cost. A request's cost is shared by its texts in proportion to their tokens,
and charged to the checks that first asked for them, so it lands in the run's cost.

A failed request (after the sender's retries) fails every check waiting on it with the
TargetError, recorded as that check's error; its texts are forgotten, so a later check
asks again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from harness import tokens
from harness.runner.embedder import MAX_INPUTS, EmbeddingModel
from harness.runner.sender import NotSent, TargetSender
from harness.targets.base import TargetError

# How long the first text of a request waits for others to join it. Checks of cases that
# finish together land within it; one alone waits no longer than a round trip's fraction.
GATHER_S = 0.01


@dataclass(frozen=True)
class Embedding:
    """A text's vector, and what this ask cost (None: the embedder has no price)."""

    vector: tuple[float, ...]
    tokens: int
    cost_usd: float | None
    cached: bool = False


@dataclass
class _Pending:
    text: str
    tokens: int
    future: asyncio.Future[Embedding]


class Embeddings:
    """Batches and remembers a run's embedding requests to one embedder target."""

    def __init__(
        self,
        sender: TargetSender,
        model: EmbeddingModel,
        *,
        max_inputs: int = MAX_INPUTS,
        gather_s: float = GATHER_S,
    ) -> None:
        self.sender = sender
        self.model = model
        self.max_inputs = max(1, min(max_inputs, MAX_INPUTS))
        self.gather_s = gather_s
        self._known: dict[str, asyncio.Future[Embedding]] = {}
        self._pending: list[_Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        # What the run sent: requests, texts, tokens (reported in run.json).
        self.requests = self.inputs = self.tokens = 0

    @property
    def name(self) -> str:
        return self.sender.config.name

    async def embed(self, text: str) -> Embedding:
        """The text's vector; raises TargetError when its request failed."""
        known = self._known.get(text)
        if known is not None:
            first = await asyncio.shield(known)
            return Embedding(first.vector, first.tokens, 0.0, cached=True)
        count = tokens.count_text(text, self.sender.target.info.model)
        if count > self.model.max_input_tokens:
            raise TargetError(
                "context_length",
                f"the text is {count:,} tokens, over the {self.model.max_input_tokens:,} one "
                f"input to '{self.name}' may have (not sent)",
            )
        future: asyncio.Future[Embedding] = asyncio.get_running_loop().create_future()
        self._known[text] = future
        self._pending.append(_Pending(text, count, future))
        if len(self._pending) >= self.max_inputs:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.gather_s, self._flush)
        return await asyncio.shield(future)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            batch, self._pending = (
                self._pending[: self.max_inputs],
                self._pending[self.max_inputs :],
            )
            task = asyncio.ensure_future(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: Sequence[_Pending]) -> None:
        counted = sum(p.tokens for p in batch)
        try:
            answer = await self.sender.embed([p.text for p in batch], max(1, counted))
        except NotSent:
            why = self.sender.dead.get(self.name, "")
            self._fail(
                batch,
                TargetError("target_unavailable", f"embedder '{self.name}' is unavailable: {why}"),
            )
            return
        except TargetError as error:
            self._fail(batch, error)
            return
        except BaseException as error:  # cancelled: nobody must wait for ever
            self._fail(batch, TargetError("connection", f"the embeddings request ended: {error!r}"))
            raise
        self.requests += 1
        self.inputs += len(batch)
        billed = answer.prompt_tokens if answer.prompt_tokens is not None else counted
        self.tokens += billed
        price = self.model.price_per_1k
        cost = None if price is None else billed * price / 1000
        for pending, vector in zip(batch, answer.vectors, strict=True):
            share = None if cost is None else cost * pending.tokens / max(1, counted)
            if not pending.future.done():
                pending.future.set_result(Embedding(vector, pending.tokens, share))

    def _fail(self, batch: Sequence[_Pending], error: TargetError) -> None:
        for pending in batch:
            if self._known.get(pending.text) is pending.future:
                del self._known[pending.text]
            if not pending.future.done():
                pending.future.set_exception(error)
                # Retrieved by the check awaiting it; marked so a shielded copy is quiet.
                pending.future.exception()

    def to_json(self) -> dict[str, object]:
        """What the run sent to its embedder, for run.json."""
        return {
            "target": self.name,
            "requests": self.requests,
            "inputs": self.inputs,
            "tokens": self.tokens,
            "max_inputs": self.max_inputs,
        }
