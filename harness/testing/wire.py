"""Azure OpenAI's wire shapes: completion bodies, content-filter results, error bodies."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

SEVERITY_CATEGORIES = ("hate", "self_harm", "sexual", "violence")
SEVERITIES = ("safe", "low", "medium", "high")
# Azure's default filter configuration blocks medium and high severities.
_FILTERED_FROM = SEVERITIES.index("medium")
PROMPT_DETECTIONS = ("jailbreak",)
COMPLETION_DETECTIONS = ("protected_material_text", "protected_material_code")

MISSING_API_VERSION = (
    "Missing required query parameter 'api-version'. "
    "The api-version query parameter (?api-version=) is required for all requests."
)
AUTH_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API endpoint "
    "for your resource."
)
NOT_FOUND_MESSAGE = (
    "The API deployment for this resource does not exist. If you created the deployment "
    "within the last 5 minutes, please wait a moment and try again."
)
PROMPT_FILTERED_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content "
    "management policy. Please modify your prompt and retry. To learn more about our content "
    "filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
SPECIAL_TOKENS_MESSAGE = "Failed to generate output due to special tokens in the input."
SERVER_ERROR_MESSAGE = (
    "The server had an error while processing your request. Sorry about that! You can retry "
    "your request, or contact us through an Azure support request at: "
    "https://go.microsoft.com/fwlink/?linkid=2213926 if the error persists."
)
UNAVAILABLE_MESSAGE = (
    "The service is temporarily unable to process your request. Please try again later."
)
TIMEOUT_MESSAGE = "The operation was timeout."

_ids = itertools.count(1)


def severity_result(value: Any) -> dict[str, Any]:
    """``{"filtered", "severity"}`` from a severity name or an explicit dict."""
    if isinstance(value, Mapping):
        severity = str(value.get("severity", "safe"))
        filtered = bool(value.get("filtered", SEVERITIES.index(severity) >= _FILTERED_FROM))
        return {"filtered": filtered, "severity": severity}
    severity = str(value)
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r} (expected one of {SEVERITIES})")
    return {"filtered": SEVERITIES.index(severity) >= _FILTERED_FROM, "severity": severity}


def detection_result(value: Any) -> dict[str, Any]:
    """``{"filtered", "detected"}`` from a bool or an explicit dict."""
    if isinstance(value, Mapping):
        detected = bool(value.get("detected", False))
        return {"filtered": bool(value.get("filtered", detected)), "detected": detected}
    return {"filtered": bool(value), "detected": bool(value)}


def filter_results(overrides: Mapping[str, Any], detections: Sequence[str]) -> dict[str, Any]:
    """A full content_filter_results object: every category safe unless overridden."""
    results: dict[str, Any] = {}
    for category in SEVERITY_CATEGORIES:
        results[category] = severity_result(overrides.get(category, "safe"))
    for category in detections:
        results[category] = detection_result(overrides.get(category, False))
    for category, value in overrides.items():
        if category not in results:  # e.g. profanity, custom blocklists
            results[category] = detection_result(value)
    return results


def any_filtered(results: Mapping[str, Any]) -> bool:
    return any(isinstance(v, Mapping) and v.get("filtered") for v in results.values())


def completion_id() -> str:
    return f"chatcmpl-fake{next(_ids):012d}"


def completion_body(
    *,
    model: str,
    system_fingerprint: str | None,
    choices: Sequence[Mapping[str, Any]],
    prompt_filters: Mapping[str, Any],
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
) -> dict[str, Any]:
    """A chat.completion body exactly as Azure sends it."""
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": system_fingerprint,
        "prompt_filter_results": [
            {"prompt_index": 0, "content_filter_results": dict(prompt_filters)}
        ],
        "choices": list(choices),
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens_details": {"reasoning_tokens": 0},
            "prompt_tokens_details": {"cached_tokens": cached_tokens},
        },
    }


def choice(
    index: int,
    *,
    content: str | None,
    finish_reason: str | None,
    tool_calls: list[dict[str, Any]] | None,
    refusal: str | None,
    filters: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "index": index,
        "finish_reason": finish_reason,
        "logprobs": None,
        "message": {
            "role": "assistant",
            "content": content,
            "tool_calls": tool_calls,
            "refusal": refusal,
        },
        "content_filter_results": dict(filters),
    }


# --- error bodies ----------------------------------------------------------------------------


def error(code: str | None, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def invalid_request(message: str, *, param: str | None = None, code: str | None = None) -> dict:
    # OpenAI's key order for request errors: message, type, param, code.
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }


def prompt_filtered(filters: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "error": {
            "message": PROMPT_FILTERED_MESSAGE,
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": dict(filters),
            },
        }
    }


def context_length_exceeded(window: int, prompt: int, completion: int | None) -> dict:
    if completion is None:
        message = (
            f"This model's maximum context length is {window} tokens. However, your messages "
            f"resulted in {prompt} tokens. Please reduce the length of the messages."
        )
    else:
        message = (
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the "
            "completion). Please reduce the length of the messages or completion."
        )
    return invalid_request(message, param="messages", code="context_length_exceeded")


def rate_limited(api_version: str, retry_after_s: int, *, kind: str = "token") -> dict:
    """429; ``kind`` is "token" (TPM) or "call" (RPM)."""
    return error(
        "429",
        f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        f"{api_version} have exceeded {kind} rate limit of your current OpenAI S0 pricing "
        f"tier. Please retry after {retry_after_s} seconds. Please go here: "
        "https://aka.ms/oai/quotaincrease if you would like to further increase the default "
        "rate limit.",
    )


def standard_error(status: int, api_version: str = "2024-10-21", retry_after_s: int = 1) -> dict:
    """The body Azure sends for ``status`` when nothing more specific applies."""
    if status == 400:
        return invalid_request("Invalid request.")
    if status == 401:
        return error("401", AUTH_MESSAGE)
    if status == 404:
        return error("DeploymentNotFound", NOT_FOUND_MESSAGE)
    if status == 408:
        return error("Timeout", TIMEOUT_MESSAGE)
    if status == 429:
        return rate_limited(api_version, retry_after_s)
    if status == 503:
        return error("ServiceUnavailable", UNAVAILABLE_MESSAGE, type="server_error")
    if status >= 500:
        return {"error": {"type": "server_error", "code": None, "message": SERVER_ERROR_MESSAGE}}
    return error(str(status), f"HTTP {status}")


def duration(seconds: float) -> str:
    """A reset header's value as OpenAI writes it: "120ms", "9.5s", "1m30s"."""
    ms = max(0, round(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    text = f"{ms / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{text}" if minutes else text


def dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
