"""A faithful fake Azure OpenAI resource, for tests, benchmarks and offline suites.

It serves real HTTP/1.1 (keep-alive) on 127.0.0.1 from a background thread, speaks the
Azure wire format (see the project's azure-openai.md), counts prompt tokens with tiktoken
exactly as the service does, and answers by scripted rules. Point the ``openai`` SDK at it::

    import openai
    from harness.testing import (
        Action, Deployment, ErrorReply, FakeAzure, Fault, Match, Rule
    )

    rules = [
        Rule(Match(last_user=r"(?i)refund"), Action(content="Refunds take 5 days.")),
        Rule(Match(any_message="bomb"), Action(prompt_filters={"violence": "medium"})),
        Rule(Match(deployment="flaky"), sequence=(Action(error=ErrorReply(500)), Action())),
    ]
    deployments = [
        Deployment("gpt35", model="gpt-35-turbo", context_window=16385, tpm=120_000),
        Deployment("flaky", model="gpt-4o-2024-08-06", faults=(Fault("429", first=2),)),
    ]
    with FakeAzure(deployments, rules=rules) as server:
        client = openai.AsyncAzureOpenAI(
            azure_endpoint=server.endpoint, api_key="test-key", api_version="2024-10-21"
        )
        ...
        assert server.requests[0].headers["api-key"] == "REDACTED"

Public API
----------
``FakeAzure(deployments=None, *, rules=(), default=Action(), api_keys=("test-key",),
bearer_tokens=("test-token",), host="127.0.0.1", port=0, window_s=60.0,
clock=time.monotonic, record=True)``
    ``deployments``: ``Deployment``s, names (model = name) or dicts; ``None`` serves any
    name. ``api_keys=None`` turns auth off. ``window_s`` is the length of the quota's
    "minute". ``start()``/``stop()`` or ``with``; ``endpoint``; ``requests`` (a snapshot of
    ``RecordedRequest``: method, path, query, headers with credentials "REDACTED", body,
    deployment, timestamp, status, fault); ``count(status)``; ``counters``; ``reset()``;
    ``set_rules(rules)``; ``FakeAzure.from_config(path_or_dict, **overrides)``.

``Deployment(name, model="gpt-35-turbo", model_version="", system_fingerprint="",
context_window=None, tpm=None, rpm=None, default_max_tokens=4096, request_window=60.0,
token_window=60.0, limit_headers=False, reset_headers=False, faults=(), first_token_ms=0,
token_ms=0, filter_mode="default", segment_chars=200)`` — the two windows are the seconds
(of a 60 s minute, scaled by ``window_s``) each limit is counted over: ``rpm=60,
request_window=10`` admits 10 requests in any 10 s and reports remaining-requests out of 10,
as Azure does; limit_headers / reset_headers add x-ratelimit-limit-* / x-ratelimit-reset-*.
A streamed answer waits ``first_token_ms`` before its first token and ``token_ms`` between
tokens; its completion filter is Azure's ``default`` (text filtered before it is sent) or
``asynchronous`` (text first, annotation chunks with ``content_filter_offsets`` a segment
behind, a violation ending the stream with finish_reason content_filter); see
``harness.testing.streaming``.

``Rule(match=Match(), reply=None, sequence=(), split=(), seed=0)`` — exactly one of
``reply`` (an ``Action``), ``sequence`` (actions cycled per matching request) or ``split``
(``(weight, Action)`` pairs drawn with ``random.Random(seed)``). First matching rule wins;
no match answers ``default`` (an echo of the last user message, or ``{"reply": ...}`` JSON
when the request asks for a JSON response_format).

``Match(deployment=None, last_user=None, any_message=None, system=None,
response_format=None, tools=None, judged=None)`` — regexes (``re.search``); response_format
is text, json_object, json_schema or "any"; tools True/False for requests with/without
tools; ``judged`` matches a judge's request: a regex on the judged reply, or ``{section:
regex}`` over its prompt's tagged sections (reply, answer_a, answer_b, reference, context,
criteria).

``Action(content=None, finish_reason=None, tool_calls=(), refusal=None, filters={},
prompt_filters={}, latency_ms=0, error=None, fault=None, filter_at=0)`` — ``content`` is a
template with ``{last_user}``, ``{system}``, ``{deployment}``, ``{model}`` (a dict/list is
sent as JSON); ``tool_calls`` are ``ToolCall(name, arguments, id=None)``; filters map a
category (hate, self_harm, sexual, violence, jailbreak, protected_material_text/code, …) to
a severity ("safe".."high", medium and up filtered) or a bool; a filtered prompt answers 400
content_filter; ``filter_at`` is where in the content the filtered text begins (how much a
stream shows first). ``error=ErrorReply(status, code=None, message=None, body=None,
retry_after="auto", headers={})``: ``retry_after`` seconds set Retry-After and
retry-after-ms, ``None`` sends neither, "auto" is 1 s on a 429 and none otherwise. ``fault``
is reset, truncated or invalid_json. ``verdict`` answers as a judge (``{"verdict":
"pass"}``, ``{"score": 2, "reasoning": "…"}``, ``{"winner": "A"}``): JSON for a JSON
response_format, else the reasoning then the object on the last line.

``Fault(kind, first=0, every=0, after=0, retry_after=1.0, delay_ms=0)`` — per deployment,
by request number: kinds "429", "500", "502", "503", "408", "slow", "trickle", "stall",
"reset", "truncated", "invalid_json" (on a stream: reset or cut after half its events, a
garbled event, a pause of ``delay_ms`` half-way); a "429" or "503" fault with
``retry_after=None`` comes without Retry-After.

Service behaviour: 401 for a bad ``api-key``/``Authorization: Bearer`` (on
``/openai/v1`` a key is taken as a bearer token too, as Azure does); 400 without
``api-version`` on the deployments path (``/openai/v1/chat/completions`` takes the
deployment from ``model``); 404 DeploymentNotFound; 400 for ChatML special tokens; 400
context_length_exceeded past ``context_window``; replies cut to max_tokens /
max_completion_tokens with finish_reason "length"; ``n`` choices; ``stream`` as SSE in
Azure's chunk shapes (the prompt annotation chunk first, a usage chunk when
``stream_options.include_usage`` asks); a sliding-window TPM/RPM quota charging prompt +
max_tokens up front (each limit over its own window), answering 429 with Retry-After /
retry-after-ms until budget frees up; ``x-ratelimit-remaining-*`` and ``apim-request-id`` on
every answer.

Global Batch (``harness.testing.batches``): ``/openai/files`` and ``/openai/batches`` (with an
api-version) or the same under ``/openai/v1/``: upload (multipart, purpose ``batch``,
``expires_after``), retrieve, list, content, delete; batches create (endpoint
``/chat/completions``, completion_window ``24h``), retrieve, list (newest first, paged),
cancel. A batch runs validating → in_progress → finalizing → completed on the server's clock
at the speed ``FakeAzure(batch_timing=BatchTiming(validating_s, in_progress_s, finalizing_s,
cancelling_s, window_s, max_lines))`` gives; its lines are answered by the same rules as live
requests, in a shuffled order, failures (non-200) in the error file. Validation fails it with
too_many_tasks, empty_file, invalid_json_line, url_mismatch, model_not_found, model_mismatch,
duplicate_custom_id, or token_limit_exceeded (a deployment's ``enqueued_tokens``); past
``window_s`` it expires (unfinished lines batch_expired in the error file); a cancel goes
cancelling → cancelled with the lines done by then. ``FakeAzure(batch_faults=(Fault(...),))``
breaks the files and batches requests by their number among them (a status, or an answer
reset after the request took effect, as a lost answer to a create is).

Config files (YAML/JSON, ``python -m harness.testing.fake_azure --config rules.yaml``)::

    api_keys: [test-key]
    deployments:
      gpt35: {model: gpt-35-turbo, context_window: 16385, tpm: 60000}
      flaky: {model: gpt-4o, faults: [{kind: 429, first: 2, retry_after: 1}]}
    rules:
      - match: {last_user: "(?i)refund"}
        reply: {content: "Refunds take 5 days. You said: {last_user}"}
      - match: {deployment: flaky}
        sequence: [{error: 500}, {content: ok}]
      - split: [{weight: 0.2, reply: {error: {status: 503}}}, {weight: 0.8, reply: {}}]
        seed: 7
      - match: {judged: "(?i)paris"}                # a judge asked about a reply naming Paris
        reply: {verdict: {verdict: pass, reasoning: "It names the capital."}}
"""

from harness.testing.batches import BatchTiming
from harness.testing.config import Deployment, load_config
from harness.testing.faults import Fault
from harness.testing.quota import Quota
from harness.testing.rules import Action, ErrorReply, Match, Rule, ToolCall
from harness.testing.server import FakeAzure
from harness.testing.service import RecordedRequest

__all__ = [
    "Action",
    "BatchTiming",
    "Deployment",
    "ErrorReply",
    "FakeAzure",
    "Fault",
    "Match",
    "Quota",
    "RecordedRequest",
    "Rule",
    "ToolCall",
    "load_config",
]
