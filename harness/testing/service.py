"""What the fake resource answers to one HTTP request: Azure's semantics, no sockets."""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import tokens
from harness.testing import batch_routes, embeddings, wire
from harness.testing.batches import BatchStore, BatchTiming
from harness.testing.config import Deployment
from harness.testing.faults import Fault, fault_for
from harness.testing.quota import UNLIMITED_REQUESTS, UNLIMITED_TOKENS, Quota, Standing
from harness.testing.rules import Action, ChatRequest, ErrorReply, Rule, RuleBook, render
from harness.testing.streaming import Event, stream_events

_DEPLOYMENT_PATH = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings)/?$")
_V1_PATHS = {
    "/openai/v1/chat/completions": "chat/completions",
    "/openai/v1/embeddings": "embeddings",
}
_BATCH_API = " batch api"  # the request counter of the files and batches endpoints
_REDACTED_HEADERS = frozenset({"api-key", "authorization", "ocp-apim-subscription-key"})
DEFAULT_ACTION = Action()


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it; credentials are redacted."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any  # the parsed JSON body, or None
    deployment: str | None
    timestamp: float
    status: int
    fault: str | None = None


@dataclass
class Answer:
    """An HTTP answer, and how the transport should misbehave while sending it."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    fault: str | None = None  # trickle | stall | reset | truncated | invalid_json
    trickle_s: float = 0.0  # a trickle: how long the body takes to send; a stall: its pause
    # A streamed answer: its SSE events, sent one by one as chunks (``body`` is unused).
    events: list[Event] | None = None


def redact(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("REDACTED" if k in _REDACTED_HEADERS else v) for k, v in headers.items()}


class AzureService:
    """Routes, authenticates, applies faults and quota, and answers by the rules.

    Thread-safe: every state change happens under one lock.
    """

    def __init__(
        self,
        *,
        deployments: Iterable[Deployment] | None,
        rules: Sequence[Rule],
        default: Action,
        api_keys: Sequence[str] | None,
        bearer_tokens: Sequence[str],
        window_s: float,
        clock: Callable[[], float],
        record: bool,
        batch_timing: BatchTiming | None = None,
        batch_faults: Sequence[Fault] = (),
    ) -> None:
        self.deployments = None if deployments is None else {d.name: d for d in deployments}
        self.rulebook = RuleBook(rules)
        self.default = default
        self.api_keys = None if api_keys is None else frozenset(api_keys)
        self.bearer_tokens = frozenset(bearer_tokens)
        self.window_s = window_s
        self.clock = clock
        self.record = record
        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.statuses: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self._numbers: Counter[str] = Counter()
        self._quotas: dict[str, Quota] = {}
        self.batch_store = BatchStore(batch_timing or BatchTiming(), clock)
        self.batch_faults = tuple(batch_faults)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.statuses.clear()
            self.faults.clear()
            self._numbers.clear()
            self._quotas.clear()
            self.batch_store.reset()
            self.rulebook.reset()

    def deployment(self, name: str) -> Deployment | None:
        if self.deployments is None:
            return Deployment(name=name, model=name)
        return self.deployments.get(name)

    def _quota(self, deployment: Deployment) -> Quota:
        quota = self._quotas.get(deployment.name)
        if quota is None:
            # A deployment's windows are in Azure's seconds; window_s is the server's minute.
            scale = self.window_s / 60.0
            quota = Quota(
                deployment.tpm,
                deployment.rpm,
                window_s=self.window_s,
                request_window_s=deployment.request_window * scale,
                token_window_s=deployment.token_window * scale,
                clock=self.clock,
            )
            self._quotas[deployment.name] = quota
        return quota

    # --- batch lines (called under the lock, from the batch routes) ----------------------

    def batch_deployment(self, name: str) -> tuple[bool, int | None]:
        """Whether ``name`` is a deployment here, and its enqueued-token limit."""
        deployment = self.deployment(name)
        return deployment is not None, deployment.enqueued_tokens if deployment else None

    def line_tokens(self, body: Mapping[str, Any]) -> int:
        """A batch line's enqueued tokens: its prompt, counted as a live request's is."""
        deployment = self.deployment(str(body.get("model")))
        messages = body.get("messages")
        if deployment is None or not isinstance(messages, list):
            return 0
        try:
            return tokens.count_messages(
                messages,
                deployment.model,
                model_version=deployment.model_version,
                tools=body.get("tools"),
            )
        except (TypeError, ValueError, AttributeError):
            return 0

    def answer_line(self, body: Mapping[str, Any]) -> tuple[int, Any]:
        """A batch line's answer: what the same request would get live, without the live
        quota and transport faults (a batch has its own quota and no connection to drop)."""
        state = _Exchange(self, "2024-10-21")
        state.body = body
        deployment = self.deployment(str(body.get("model")))
        if deployment is None:
            return 404, wire.standard_error(404)
        answer = state.complete(deployment, Quota(window_s=self.window_s, clock=self.clock))
        if answer.fault == "invalid_json":
            return answer.status, "<html>Bad Gateway</html>"
        return answer.status, json.loads(answer.body)

    # --- the request path ----------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        raw: bytes,
    ) -> Answer:
        with self.lock:
            state = _Exchange(self, query.get("api-version", "2024-10-21"))
            answer = state.run(method, path, query, headers, raw)
            self.statuses[answer.status] += 1
            if answer.fault:
                self.faults[answer.fault] += 1
            if self.record:
                self.requests.append(
                    RecordedRequest(
                        method,
                        path,
                        dict(query),
                        redact(headers),
                        state.body,
                        state.deployment_name,
                        time.time(),
                        answer.status,
                        answer.fault,
                    )
                )
            return answer


class _Exchange:
    """One request's trip through the service (called under the service's lock)."""

    def __init__(self, service: AzureService, api_version: str) -> None:
        self.service = service
        self.api_version = api_version
        self.body: Any = None
        self.deployment_name: str | None = None
        self.standing = Standing(UNLIMITED_TOKENS, UNLIMITED_REQUESTS)
        self.quota: Quota | None = None
        self.shown: Deployment | None = None  # whose limit/reset header settings apply
        self.operation = "chat/completions"  # or "embeddings"

    def answer(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> Answer:
        out = {
            "content-type": "application/json",
            "apim-request-id": str(uuid.uuid4()),
            **self.rate_headers(),
        }
        out.update(headers or {})
        return Answer(status, wire.dumps(body), out)

    def rate_headers(self) -> dict[str, str]:
        """remaining-* always; limit-* and reset-* when the deployment sends them."""
        standing, quota = self.standing, self.quota
        out = {
            "x-ratelimit-remaining-tokens": str(standing.remaining_tokens),
            "x-ratelimit-remaining-requests": str(standing.remaining_requests),
        }
        deployment = self.shown
        if quota is None or deployment is None:
            return out
        if deployment.limit_headers:
            out["x-ratelimit-limit-tokens"] = str(quota.tokens.limit or UNLIMITED_TOKENS)
            out["x-ratelimit-limit-requests"] = str(quota.calls.limit or UNLIMITED_REQUESTS)
        if deployment.reset_headers:
            out["x-ratelimit-reset-tokens"] = wire.duration(standing.reset_tokens_s)
            out["x-ratelimit-reset-requests"] = wire.duration(standing.reset_requests_s)
        return out

    def error(self, reply: ErrorReply) -> Answer:
        retry_after = reply.retry_after_s
        seconds = math.ceil(retry_after) if retry_after is not None else 1
        if reply.body is not None:
            body: Any = reply.body
        else:
            body = wire.standard_error(reply.status, self.api_version, seconds)
            if reply.code is not None:
                body["error"]["code"] = reply.code
            if reply.message is not None:
                body["error"]["message"] = reply.message
        headers = dict(reply.headers)
        if retry_after is not None:
            headers["retry-after"] = str(seconds)
            headers["retry-after-ms"] = str(round(retry_after * 1000))
        return self.answer(reply.status, body, headers)

    def run(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        raw: bytes,
    ) -> Answer:
        if batch_routes.is_batch_path(path):
            return self.batch_call(method, path, query, headers, raw)
        match = _DEPLOYMENT_PATH.match(path)
        operation = match.group(2) if match is not None else _V1_PATHS.get(path.rstrip("/"))
        if method != "POST" or operation is None:
            return self.answer(404, wire.error("404", "Resource not found"))
        self.operation = operation
        refused = self.refused(headers, query, v1=match is None)
        if refused is not None:
            return refused
        try:
            self.body = json.loads(raw or b"null")
        except ValueError:
            return self.answer(
                400, wire.invalid_request("We could not parse the JSON body of your request.")
            )
        if not isinstance(self.body, dict):
            return self.answer(400, wire.invalid_request("The request body must be an object."))
        name = match.group(1) if match is not None else self.body.get("model")
        if not isinstance(name, str) or not name:
            return self.answer(
                400, wire.invalid_request("you must provide a model parameter", param="model")
            )
        self.deployment_name = name
        deployment = self.service.deployment(name)
        if deployment is None:
            return self.answer(404, wire.standard_error(404))
        return self.chat(deployment)

    def refused(
        self, headers: Mapping[str, str], query: Mapping[str, str], *, v1: bool
    ) -> Answer | None:
        """401 for bad credentials, 400 for a missing api-version off the v1 paths."""
        if not self.authorized(headers, v1=v1):
            return self.answer(401, wire.standard_error(401))
        if not v1 and "api-version" not in query:
            return self.answer(
                400, wire.error("MissingApiVersionParameter", wire.MISSING_API_VERSION)
            )
        return None

    def authorized(self, headers: Mapping[str, str], *, v1: bool = False) -> bool:
        service = self.service
        if service.api_keys is None:
            return True
        if headers.get("api-key", "") in service.api_keys:
            return True
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        # The v1 API also takes the key as a bearer token: Microsoft's own example is the
        # plain OpenAI client with api_key=<the resource key> and base_url=…/openai/v1/.
        return token in service.bearer_tokens or (v1 and token in service.api_keys)

    def status_fault(self, fault: Fault, status: int) -> Answer:
        """The answer of a fault that is an HTTP status (429, 5xx, 408)."""
        retry_after = fault.retry_after if status in (429, 503) else None
        answer = self.error(ErrorReply(status, retry_after=retry_after))
        answer.fault = fault.kind
        return answer

    def batch_call(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        raw: bytes,
    ) -> Answer:
        """A files/batches request, with the server's batch faults (counted over them all);
        a broken answer (reset, truncated) is broken after the request took effect."""
        service = self.service
        service._numbers[_BATCH_API] += 1
        fault = fault_for(service.batch_faults, service._numbers[_BATCH_API])
        if fault is not None and fault.status is not None:
            return self.status_fault(fault, fault.status)
        answer = batch_routes.route(self, service.batch_store, method, path, query, headers, raw)
        if fault is not None and fault.kind in ("reset", "truncated", "invalid_json"):
            answer.fault = fault.kind
        return answer

    def chat(self, deployment: Deployment) -> Answer:
        service = self.service
        service._numbers[deployment.name] += 1
        quota = self.quota = service._quota(deployment)
        self.shown = deployment
        self.standing = quota.peek()
        fault = fault_for(deployment.faults, service._numbers[deployment.name])
        delay_s = 0.0
        if fault is not None and fault.status is not None:
            return self.status_fault(fault, fault.status)
        if fault is not None and fault.kind == "slow":
            delay_s = fault.delay_ms / 1000
        if self.operation == "embeddings":
            answer = self.embed(deployment, quota)
        else:
            answer = self.complete(deployment, quota)
        answer.delay_s += delay_s
        if fault is not None and fault.kind != "slow":
            answer.fault = fault.kind
            answer.trickle_s = fault.delay_ms / 1000 if fault.kind in ("trickle", "stall") else 0.0
        elif fault is not None:
            service.faults["slow"] += 1
        return answer

    def admit(self, quota: Quota, tokens: int) -> Answer | None:
        """Charge the quota; the 429 the service answers when it is spent, else None."""
        admission = quota.admit(tokens)
        self.standing = admission.standing
        if admission.admitted:
            return None
        seconds = max(1, math.ceil(admission.retry_after_s))
        return self.answer(
            429,
            wire.rate_limited(self.api_version, seconds, kind=admission.kind),
            {
                "retry-after": str(seconds),
                "retry-after-ms": str(max(1, round(admission.retry_after_s * 1000))),
            },
        )

    def embed(self, deployment: Deployment, quota: Quota) -> Answer:
        """An embeddings request: deterministic vectors (harness.testing.embeddings), its
        tokens charged to the deployment's quota as a chat request's prompt is."""
        inputs = embeddings.inputs_of(self.body)
        if isinstance(inputs, str):
            return self.answer(400, wire.invalid_request(inputs, param="input"))
        model = deployment.model
        counts = [tokens.count_text(text, model) for text in inputs]
        longest = max(counts)
        if longest > embeddings.MAX_INPUT_TOKENS:
            return self.answer(
                400,
                wire.invalid_request(
                    f"This model's maximum context length is {embeddings.MAX_INPUT_TOKENS} "
                    f"tokens, however you requested {longest} tokens in an input.",
                    param="input",
                    code="context_length_exceeded",
                ),
            )
        dimensions = self.body.get("dimensions", embeddings.dimensions_for(model))
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
            return self.answer(400, wire.invalid_request("Invalid dimensions.", param="dimensions"))
        refused = self.admit(quota, sum(counts))
        if refused is not None:
            return refused
        return self.answer(200, embeddings.embeddings_body(model, inputs, dimensions, sum(counts)))

    def complete(self, deployment: Deployment, quota: Quota) -> Answer:
        body = self.body
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.answer(
                400, wire.invalid_request("'messages' is a required property", param="messages")
            )
        if not all(isinstance(m, dict) for m in messages):
            return self.answer(400, wire.invalid_request("Invalid messages.", param="messages"))
        n = body.get("n", 1)
        if n is not None and (not isinstance(n, int) or not 1 <= n <= 128):
            return self.answer(
                400, wire.invalid_request(f"{n} is not valid for 'n': expected 1 to 128", param="n")
            )
        if deployment.is_o_series and "max_tokens" in body:
            return self.answer(
                400,
                wire.invalid_request(
                    "Unsupported parameter: 'max_tokens' is not supported with this model. "
                    "Use 'max_completion_tokens' instead.",
                    param="max_tokens",
                    code="unsupported_parameter",
                ),
            )
        for message in messages:
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            if tokens.special_tokens_in(text):
                return self.answer(
                    400, wire.invalid_request(wire.SPECIAL_TOKENS_MESSAGE, param="messages")
                )
        prompt_tokens = tokens.count_messages(
            messages,
            deployment.model,
            model_version=deployment.model_version,
            tools=body.get("tools"),
        )
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        limit = limit if isinstance(limit, int) else None
        window = deployment.context_window
        if window is not None and prompt_tokens + (limit or 0) > window:
            return self.answer(400, wire.context_length_exceeded(window, prompt_tokens, limit))
        refused = self.admit(quota, prompt_tokens + (limit or deployment.default_max_tokens))
        if refused is not None:
            return refused
        request = ChatRequest(deployment.name, body, tuple(messages))
        action = self.service.rulebook.pick(request) or self.service.default
        if limit is None and window is not None:
            limit = window - prompt_tokens
        answer = self.reply(deployment, request, action, prompt_tokens, limit)
        answer.delay_s = action.latency_ms / 1000
        answer.fault = action.fault
        return answer

    def reply(
        self,
        deployment: Deployment,
        request: ChatRequest,
        action: Action,
        prompt_tokens: int,
        limit: int | None,
    ) -> Answer:
        if action.error is not None:
            return self.error(action.error)
        prompt_filters = wire.filter_results(action.prompt_filters, wire.PROMPT_DETECTIONS)
        if wire.any_filtered(prompt_filters):
            return self.answer(400, wire.prompt_filtered(prompt_filters))
        model = deployment.model
        content = render(action, request, model)
        tool_calls = [call.to_api(i) for i, call in enumerate(action.tool_calls)] or None
        completion_tokens = 0
        if content is not None:
            completion_tokens = tokens.count_text(content, model)
        truncated = limit is not None and completion_tokens > limit
        if truncated and content is not None and limit is not None:
            content = tokens.truncate_text(content, limit, model)
            completion_tokens = tokens.count_text(content, model)
        for call in tool_calls or ():
            function = call["function"]
            completion_tokens += tokens.count_text(function["name"], model)
            completion_tokens += tokens.count_text(function["arguments"], model)
        filters = wire.filter_results(action.filters, wire.COMPLETION_DETECTIONS)
        if truncated:
            finish_reason = "length"
        elif action.finish_reason is not None:
            finish_reason = action.finish_reason
        elif wire.any_filtered(filters):
            finish_reason = "content_filter"
        else:
            finish_reason = "tool_calls" if tool_calls else "stop"
        n = request.body.get("n") or 1
        choices = [
            wire.choice(
                i,
                content=content,
                finish_reason=finish_reason,
                tool_calls=tool_calls,
                refusal=action.refusal,
                filters=filters,
            )
            for i in range(n)
        ]
        body = wire.completion_body(
            model=model,
            system_fingerprint=deployment.system_fingerprint,
            choices=choices,
            prompt_filters=prompt_filters,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens * n,
            cached_tokens=min(action.cached_tokens, prompt_tokens),
        )
        if request.body.get("stream") is True:
            options = request.body.get("stream_options")
            answer = self.answer(200, None)
            answer.body = b""
            answer.events = stream_events(
                body,
                model=model,
                timing=deployment.timing,
                include_usage=isinstance(options, Mapping) and options.get("include_usage") is True,
                filter_at=action.filter_at,
            )
            answer.headers["content-type"] = "text/event-stream; charset=utf-8"
            return answer
        return self.answer(200, body)
