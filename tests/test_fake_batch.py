"""The fake's Global Batch API (files and batches), driven by the openai SDK over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from harness.testing import Action, Deployment, ErrorReply, FakeAzure, Match, Rule
from harness.testing.batches import BatchTiming

TIMING = BatchTiming(validating_s=1, in_progress_s=10, finalizing_s=1, cancelling_s=1)


class Clock:
    """A clock the test moves by hand, so a batch is where the test says it is."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock) -> Iterator[FakeAzure]:
    rules = [
        Rule(Match(last_user="refund"), Action(content="Refunds take 5 days.")),
        Rule(Match(last_user="explode"), Action(error=ErrorReply(500))),
        Rule(Match(last_user="blocked"), Action(prompt_filters={"violence": "high"})),
    ]
    deployments = [
        Deployment("gb", model="gpt-4o", enqueued_tokens=400),
        Deployment("other", model="gpt-4o"),
    ]
    with FakeAzure(deployments, rules=rules, clock=clock, batch_timing=TIMING) as fake:
        yield fake


def azure(server: FakeAzure) -> openai.OpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=server.endpoint, api_key="test-key", api_version="2024-10-21", max_retries=0
    )


def v1(server: FakeAzure) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.endpoint + "/openai/v1", api_key="test-key", max_retries=0)


def line(custom_id: str, text: str, model: str = "gb", url: str = "/chat/completions") -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def upload(client: openai.OpenAI, lines: list[Any]) -> str:
    data = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    return client.files.create(file=("in.jsonl", data.encode()), purpose="batch").id


def submit(client: openai.OpenAI, lines: list[Any]) -> Any:
    return client.batches.create(
        input_file_id=upload(client, lines),
        endpoint="/chat/completions",  # type: ignore[arg-type]  # Azure's name; the SDK's is /v1/…
        completion_window="24h",
    )


def read_lines(client: openai.OpenAI, file_id: str | None) -> dict[str, Any]:
    assert file_id is not None
    text = client.files.content(file_id).text
    return {e["custom_id"]: e for e in map(json.loads, text.splitlines())}


@pytest.mark.parametrize("make", [azure, v1], ids=["api-version", "v1"])
def test_batch_runs_through_its_statuses_and_answers_as_live(
    server: FakeAzure, clock: Clock, make: Any
) -> None:
    """Both URL shapes: validating, in_progress with counts rising, finalizing, completed;
    each output line is the answer the same request gets live, matched by custom_id."""
    client = make(server)
    batch = submit(client, [line("a", "refund please"), line("b", "hello there")])
    assert batch.status == "validating" and batch.completion_window == "24h"
    clock.now += 1.5
    running = client.batches.retrieve(batch.id)
    assert running.status == "in_progress" and running.request_counts
    assert running.request_counts.total == 2
    clock.now += 5
    assert (
        client.batches.retrieve(batch.id).request_counts or running.request_counts
    ).completed == 1
    clock.now += 5
    assert client.batches.retrieve(batch.id).status == "finalizing"
    clock.now += 1
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.request_counts
    assert done.request_counts.completed == 2
    out = read_lines(client, done.output_file_id)
    live = client.chat.completions.create(model="gb", messages=[{"role": "user", "content": "hi"}])
    assert out["a"]["response"]["status_code"] == 200
    answer = out["a"]["response"]["body"]["choices"][0]["message"]["content"]
    assert answer == "Refunds take 5 days."
    echo = out["b"]["response"]["body"]["choices"][0]["message"]["content"]
    assert "hello there" in echo and "hi" in (live.choices[0].message.content or "")
    assert client.files.content(done.error_file_id or "").text == ""
    assert done.completed_at is not None and done.in_progress_at is not None


def test_failed_lines_go_to_the_error_file_with_their_status(
    server: FakeAzure, clock: Clock
) -> None:
    """A line the rules answer with an error, or whose prompt is filtered, is in the error
    file with the status and body a live request gets; the others are in the output."""
    client = azure(server)
    batch = submit(client, [line("ok", "hi"), line("bad", "explode"), line("f", "blocked")])
    clock.now += 13
    done = client.batches.retrieve(batch.id)
    counts = done.request_counts
    assert counts is not None and counts.completed == 1 and counts.failed == 2
    errors = read_lines(client, done.error_file_id)
    assert errors["bad"]["response"]["status_code"] == 500
    assert errors["f"]["response"]["body"]["error"]["code"] == "content_filter"
    assert set(read_lines(client, done.output_file_id)) == {"ok"}


@pytest.mark.parametrize(
    ("lines", "code"),
    [
        ([line("a", "x"), line("b", "y", model="other")], "model_mismatch"),
        ([line("a", "x"), line("a", "y")], "duplicate_custom_id"),
        ([line("a", "x", url="/embeddings")], "url_mismatch"),
        ([line("a", "x", model="nowhere")], "model_not_found"),
        (["{not json", line("b", "y")], "invalid_json_line"),
    ],
)
def test_an_input_file_that_does_not_validate_fails_the_batch(
    server: FakeAzure, clock: Clock, lines: list[Any], code: str
) -> None:
    """Validation errors end the batch failed, each naming its code and line."""
    client = azure(server)
    batch = submit(client, lines)
    clock.now += 1.5
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.errors is not None
    found = failed.errors.data or []
    assert [e.code for e in found] == [code]
    assert found[0].line is not None and found[0].line >= 1
    assert failed.output_file_id is None


def test_too_many_lines_and_an_empty_file_fail(clock: Clock) -> None:
    """More lines than the service takes is too_many_tasks; no lines is empty_file."""
    timing = BatchTiming(validating_s=1, max_lines=3)
    with FakeAzure(["gb"], clock=clock, batch_timing=timing) as server:
        client = azure(server)
        many = submit(client, [line(str(i), "x") for i in range(4)])
        empty = submit(client, [])
        clock.now += 2
        for batch, code in ((many, "too_many_tasks"), (empty, "empty_file")):
            got = client.batches.retrieve(batch.id)
            assert got.status == "failed"
            assert [e.code for e in (got.errors.data or [])] == [code]  # type: ignore[union-attr]


def test_enqueued_tokens_over_the_quota_are_token_limit_exceeded(
    server: FakeAzure, clock: Clock
) -> None:
    """A batch whose tokens with those already enqueued pass the deployment's quota fails
    token_limit_exceeded; once the first batch is done the same file is taken."""
    client = azure(server)
    text = " ".join(["word"] * 150)
    first = submit(client, [line("a", text)])
    second = submit(client, [line("b", text), line("c", text)])
    clock.now += 1.5
    assert client.batches.retrieve(first.id).status == "in_progress"
    refused = client.batches.retrieve(second.id)
    assert refused.status == "failed"
    assert [e.code for e in (refused.errors.data or [])] == ["token_limit_exceeded"]  # type: ignore[union-attr]
    clock.now += 12
    assert client.batches.retrieve(first.id).status == "completed"
    again = submit(client, [line("d", text)])
    clock.now += 1.5
    assert client.batches.retrieve(again.id).status == "in_progress"


def test_cancel_stops_a_batch_with_what_it_had_done(server: FakeAzure, clock: Clock) -> None:
    """cancel: cancelling, then cancelled; the lines answered by then are in the output."""
    client = azure(server)
    batch = submit(client, [line(str(i), f"n {i}") for i in range(10)])
    clock.now += 1 + 5
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    clock.now += 1
    cancelled = client.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    assert len(read_lines(client, cancelled.output_file_id)) == 5


def test_a_batch_past_its_window_expires_the_unfinished_lines(clock: Clock) -> None:
    """Past the completion window the batch is expired: done lines in the output, the
    rest in the error file as batch_expired."""
    timing = BatchTiming(validating_s=1, in_progress_s=10, window_s=6)
    with FakeAzure(["gb"], clock=clock, batch_timing=timing) as server:
        client = azure(server)
        batch = submit(client, [line(str(i), f"n {i}") for i in range(10)])
        clock.now += 7
        expired = client.batches.retrieve(batch.id)
        assert expired.status == "expired"
        assert len(read_lines(client, expired.output_file_id)) == 5
        errors = read_lines(client, expired.error_file_id)
        assert len(errors) == 5
        assert {e["error"]["code"] for e in errors.values()} == {"batch_expired"}


def test_files_retrieve_list_delete_and_errors(server: FakeAzure) -> None:
    """Files: retrieve, list, delete (then 404); a bad purpose, a missing api-version and a
    bad key are refused as Azure refuses them."""
    client = azure(server)
    file_id = upload(client, [line("a", "x")])
    assert client.files.retrieve(file_id).purpose == "batch"
    assert file_id in [f.id for f in client.files.list()]
    assert client.files.delete(file_id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file_id)
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("x.jsonl", b"{}\n"), purpose="nonsense")  # type: ignore[arg-type]
    with pytest.raises(openai.AuthenticationError):
        openai.AzureOpenAI(
            azure_endpoint=server.endpoint, api_key="wrong", api_version="2024-10-21"
        ).files.list()
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port)
    conn.request("GET", "/openai/batches", headers={"api-key": "test-key"})
    assert conn.getresponse().status == 400


def test_batches_list_pages_newest_first(server: FakeAzure, clock: Clock) -> None:
    """GET /batches lists newest first, paged by limit and after."""
    client = azure(server)
    ids = []
    for i in range(3):
        ids.append(submit(client, [line("a", f"x{i}")]).id)
        clock.now += 0.1
    page = client.batches.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    rest = client.batches.list(limit=2, after=page.data[-1].id)
    assert {b.id for b in [*page.data, *rest.data]} == set(ids)


def test_create_refuses_a_bad_window_or_endpoint(server: FakeAzure) -> None:
    """completion_window must be 24h and the endpoint chat completions."""
    client = azure(server)
    file_id = upload(client, [line("a", "x")])
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window="1h",  # type: ignore[arg-type]
        )
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        client.batches.create(
            input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h"
        )
