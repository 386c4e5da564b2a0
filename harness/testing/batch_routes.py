"""The HTTP face of the fake's Batch API: ``/openai/files`` and ``/openai/batches`` with an
api-version, or the same under ``/openai/v1/`` without one, as Azure serves both."""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.testing import wire
from harness.testing.batches import ENDPOINTS, Batch, BatchStore, StoredFile

if TYPE_CHECKING:
    from harness.testing.service import Answer, _Exchange

_ROUTE = re.compile(r"^/openai(/v1)?/(files|batches)(?:/([^/]+))?(?:/(content|cancel))?/?$")
# Azure's limit on one uploaded file.
MAX_FILE_BYTES = 200 * 1024 * 1024
_MIN_EXPIRY_S, _MAX_EXPIRY_S = 14 * 86_400, 30 * 86_400


def is_batch_path(path: str) -> bool:
    return _ROUTE.match(path) is not None


@dataclass(frozen=True)
class _Call:
    """One files/batches request: ``item`` the id in its path, ``action`` content/cancel."""

    exchange: _Exchange
    store: BatchStore
    method: str
    item: str | None
    action: str | None
    query: Mapping[str, str]
    headers: Mapping[str, str]
    raw: bytes


def route(
    exchange: _Exchange,
    store: BatchStore,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    raw: bytes,
) -> Answer:
    """Answer one files/batches request (auth and api-version as the chat paths have them)."""
    match = _ROUTE.match(path)
    assert match is not None
    v1, collection, item, action = match.groups()
    refused = exchange.refused(headers, query, v1=v1 is not None)
    if refused is not None:
        return refused
    call = _Call(exchange, store, method, item, action, query, headers, raw)
    return _files(call) if collection == "files" else _batches(call)


def _not_found(exchange: _Exchange, what: str, name: str) -> Answer:
    return exchange.answer(404, wire.error("NotFound", f"{what} '{name}' was not found."))


def _no_route(exchange: _Exchange) -> Answer:
    return exchange.answer(404, wire.error("404", "Resource not found"))


def _files(call: _Call) -> Answer:
    exchange, store, method, item = call.exchange, call.store, call.method, call.item
    if item is None:
        if method == "POST":
            return _upload(exchange, store, call.headers, call.raw)
        if method == "GET":
            files = list(reversed(store.files.values()))
            return exchange.answer(200, _page([f.to_api() for f in files], call.query))
        return _no_route(exchange)
    stored = store.files.get(item)
    if stored is None:
        return _not_found(exchange, "File", item)
    if call.action == "content" and method == "GET":
        answer = exchange.answer(200, None)
        answer.body = stored.data
        answer.headers["content-type"] = "application/octet-stream"
        return answer
    if call.action is None and method == "GET":
        return exchange.answer(200, stored.to_api())
    if call.action is None and method == "DELETE":
        del store.files[item]
        return exchange.answer(200, {"id": item, "object": "file", "deleted": True})
    return _no_route(exchange)


def _upload(
    exchange: _Exchange, store: BatchStore, headers: Mapping[str, str], raw: bytes
) -> Answer:
    fields, upload = _multipart(headers.get("content-type", ""), raw)
    if upload is None:
        return exchange.answer(400, wire.invalid_request("A file is required.", param="file"))
    filename, data = upload
    purpose = fields.get("purpose")
    if purpose not in ("batch", "fine-tune", "assistants"):
        return exchange.answer(
            400, wire.invalid_request(f"Invalid purpose '{purpose}'.", param="purpose")
        )
    if len(data) > MAX_FILE_BYTES:
        message = f"The file is {len(data)} bytes; the limit is {MAX_FILE_BYTES}."
        return exchange.answer(400, wire.invalid_request(message, param="file"))
    expires_s: int | None = None
    if "expires_after[seconds]" in fields:
        try:
            expires_s = int(fields["expires_after[seconds]"])
        except ValueError:
            expires_s = -1
        if not _MIN_EXPIRY_S <= expires_s <= _MAX_EXPIRY_S:
            message = "expires_after.seconds must be from 1209600 (14 days) to 2592000 (30 days)."
            return exchange.answer(400, wire.invalid_request(message, param="expires_after"))
    stored: StoredFile = store.add_file(filename, purpose, data, expires_s)
    return exchange.answer(200, stored.to_api())


def _multipart(content_type: str, raw: bytes) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """The text fields of a multipart/form-data body, and its file (name, bytes)."""
    if not content_type.lower().startswith("multipart/form-data"):
        return {}, None
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    fields: dict[str, str] = {}
    upload: tuple[str, bytes] | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "file":
            upload = (part.get_filename() or "upload.jsonl", data)
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8", "replace")
    return fields, upload


def _batches(call: _Call) -> Answer:
    exchange, store, method, item = call.exchange, call.store, call.method, call.item
    service = exchange.service
    if item is None and method == "POST":
        return _create(exchange, store, call.raw)
    if item is None and method == "GET":
        batches = [store.advance(b, service.answer_line) for b in store.batches.values()]
        # Newest first; the dict keeps creation order, which breaks ties within a second.
        batches.reverse()
        batches.sort(key=lambda b: b.created_at, reverse=True)
        return exchange.answer(200, _page([b.to_api(store.timing) for b in batches], call.query))
    batch = store.batches.get(item or "")
    if batch is None:
        return _not_found(exchange, "Batch", item or "")
    if call.action == "cancel" and method == "POST":
        store.cancel(batch)
        return exchange.answer(200, store.advance(batch, service.answer_line).to_api(store.timing))
    if call.action is None and method == "GET":
        return exchange.answer(200, store.advance(batch, service.answer_line).to_api(store.timing))
    return _no_route(exchange)


def _page(items: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """One page of a list answer: ``limit`` items (20 by default) after the id ``after``."""
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = max(1, min(10_000, int(query.get("limit") or 20)))
    except ValueError:
        limit = 20
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def _create(exchange: _Exchange, store: BatchStore, raw: bytes) -> Answer:
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return exchange.answer(
            400, wire.invalid_request("We could not parse the JSON body of your request.")
        )
    file_id, endpoint = body.get("input_file_id"), body.get("endpoint")
    window = body.get("completion_window")
    if endpoint not in ENDPOINTS:
        message = f"Invalid endpoint '{endpoint}': expected one of {', '.join(ENDPOINTS)}."
        return exchange.answer(400, wire.invalid_request(message, param="endpoint"))
    if window != "24h":
        message = f"Invalid completion_window '{window}': expected '24h'."
        return exchange.answer(400, wire.invalid_request(message, param="completion_window"))
    stored = store.files.get(file_id) if isinstance(file_id, str) else None
    if stored is None or stored.purpose != "batch":
        message = f"The input file '{file_id}' was not found or is not a batch file."
        return exchange.answer(400, wire.invalid_request(message, param="input_file_id"))
    metadata = body.get("metadata")
    service = exchange.service
    batch: Batch = store.create(
        stored,
        endpoint,
        window,
        metadata if isinstance(metadata, dict) else None,
        service.batch_deployment,
        service.line_tokens,
    )
    return exchange.answer(200, batch.to_api(store.timing))
