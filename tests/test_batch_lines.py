"""Batch mode's pieces: request lines and files, output lines read as answers, the price."""

from __future__ import annotations

from typing import Any

import pytest

from harness.batch.ledger import Job
from harness.batch.lines import Limits, custom_id, request_line, split
from harness.batch.summary import batch_notes, duration
from harness.models import Price
from harness.results.runmeta import RunMeta
from harness.targets.base import TargetError
from harness.targets.batch_api import batch_state, line_answer, read_lines

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


def entry(response: Any = None, error: Any = None) -> dict[str, Any]:
    return {"custom_id": "a", "response": response, "error": error}


def test_a_request_line_names_the_deployment_and_its_custom_id() -> None:
    """The body gets the batch deployment as model; the id is key/turn."""
    line = request_line(custom_id("s/c@gb#0", 2), {"messages": []}, "gb", "/chat/completions", 7)
    assert line.custom_id == "s/c@gb#0/2"
    assert b'"model":"gb"' in line.text and line.text.endswith(b"\n")


def test_split_keeps_every_file_within_lines_bytes_and_tokens() -> None:
    """Files are cut at whichever limit comes first, the lines kept in order."""
    lines = [
        request_line(str(i), {"messages": []}, "gb", "/chat/completions", 10) for i in range(10)
    ]
    assert [len(f) for f in split(lines, Limits(lines=4))] == [4, 4, 2]
    assert [len(f) for f in split(lines, Limits(tokens=25))] == [2, 2, 2, 2, 2]
    size = len(lines[0].text)
    assert [len(f) for f in split(lines, Limits(bytes=size * 3))] == [3, 3, 3, 1]
    assert [line.custom_id for f in split(lines, Limits(lines=3)) for line in f] == [
        str(i) for i in range(10)
    ]


def test_an_output_line_of_200_is_the_answer_with_no_latency() -> None:
    """A 200 line reads as a live answer would; it carries its batch, not a latency."""
    answer = line_answer(entry({"status_code": 200, "body": CHAT}), "batch_1")
    assert answer.response.content == "hi" and answer.batch == "batch_1"
    assert answer.measured_latency_ms is None


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (entry({"status_code": 200, "body": "<html>Bad Gateway</html>"}), "invalid_response"),
        (entry({"status_code": 200, "body": {"choices": "no"}}), "invalid_response"),
        (entry({"status_code": "200", "body": CHAT}), "invalid_response"),
        (entry(None, None), "invalid_response"),
        (
            entry({"status_code": 429, "body": {"error": {"code": "429", "message": "slow"}}}),
            "rate_limited",
        ),
        (
            entry(
                {"status_code": 400, "body": {"error": {"code": "content_filter", "message": "x"}}}
            ),
            "content_filter",
        ),
        (entry({"status_code": 500, "body": None}), "server_error"),
        (entry(None, {"code": "batch_expired", "message": "late"}), "batch_expired"),
        (entry(None, {"code": "weird"}), "server_error"),
    ],
)
def test_a_line_that_failed_or_is_malformed_is_a_classified_error(line: Any, kind: str) -> None:
    """Any output or error line, however malformed, is a TargetError of a known kind."""
    with pytest.raises(TargetError) as caught:
        line_answer(line, "batch_1")
    assert caught.value.kind == kind


def test_unusable_lines_of_a_file_are_counted_not_fatal() -> None:
    """Lines that are not JSON or have no custom_id are skipped and counted."""
    data = b'{"custom_id": "a", "response": null}\nnot json\n{"x": 1}\n[1]\n\n'
    found, unusable = read_lines(data)
    assert list(found) == ["a"] and unusable == 3


@pytest.mark.parametrize(
    "text", ["", "[]", '{"id": 3, "status": "completed"}', '{"status": "completed"}', "nan"]
)
def test_a_batch_body_that_is_not_one_is_invalid_response(text: str) -> None:
    """A batch object without a text id and status is an invalid_response error."""
    with pytest.raises(TargetError) as caught:
        batch_state(text)
    assert caught.value.kind == "invalid_response"


def test_a_batch_body_with_odd_fields_keeps_what_reads() -> None:
    """Counts that are not counts read as 0; errors without a line have none."""
    state = batch_state(
        '{"id": "b", "status": "failed", "request_counts": {"total": "x", "completed": -1},'
        ' "errors": {"data": [{"code": "token_limit_exceeded", "line": true}, 5]}}'
    )
    assert (state.total, state.completed, state.ended) == (0, 0, True)
    assert [(e.code, e.line) for e in state.errors] == [("token_limit_exceeded", None)]


def test_the_batch_price_is_half_and_recorded_as_such() -> None:
    """for_batch halves every rate and says so in the record; the record reads back."""
    live = Price(0.0025, 0.01, 0.00125)
    batch = live.for_batch()
    assert (batch.input_per_1k, batch.output_per_1k, batch.cached_input_per_1k) == (
        0.00125,
        0.005,
        0.000625,
    )
    assert batch.for_batch() == batch
    assert Price.from_json(batch.to_json()) == batch and "batch" not in live.to_json()
    usage = {"prompt_tokens": 1000, "completion_tokens": 1000}
    assert batch.cost(usage) == pytest.approx(live.cost(usage) / 2)


def test_a_job_from_a_hand_edited_record_is_typed() -> None:
    """Job.from_json takes what is of the right type and defaults the rest."""
    job = Job.from_json({"target": "gb", "lines": "9", "batch_id": 4, "counts": [], "errors": {}})
    assert (job.lines, job.batch_id, job.counts, job.errors) == (0, None, {}, [])
    assert Job.from_json(job.to_json()) == job


def test_batch_notes_and_durations_in_words() -> None:
    """The report's lines: jobs, rounds, time; a stopped job says how to retry."""
    assert (duration(4.25), duration(845), duration(12_000)) == (
        "4.2 s",
        "14 min 5 s",
        "3 h 20 min",
    )
    meta = {
        "batch": {
            "elapsed_s": 90,
            "jobs": [
                {
                    "target": "gb",
                    "batch_id": "b1",
                    "lines": 4,
                    "round": 0,
                    "status": "expired",
                    "downloaded": True,
                },
                {"target": "gb", "batch_id": "b2", "lines": 1, "round": 1, "status": "in_progress"},
            ],
        }
    }
    notes = batch_notes(RunMeta.from_json(meta, "r"))
    assert notes[0].startswith("Batch run: 2 Global Batch job(s) of 5 request(s) in 2 round(s)")
    assert "1 min 30 s" in notes[0]
    assert "--retry-errors" in notes[1] and "reattaches" in notes[2]
    assert batch_notes(RunMeta.from_json({}, "r")) == []
    assert batch_notes(RunMeta.from_json({"batch": "x"}, "r")) == []


def test_a_job_uploaded_by_a_stopped_run_finds_its_batch_instead_of_making_another(
    tmp_path: Any,
) -> None:
    """A run stopped after its create but before writing the batch id down: the resumed
    job looks the batch up by its input file and takes it; no second batch is made."""
    import asyncio

    import openai

    from harness.batch.job import JobRun, Polling
    from harness.batch.ledger import Ledger
    from harness.batch.lines import request_line
    from harness.targets.batch_api import BatchClient
    from harness.testing import BatchTiming, FakeAzure

    timing = BatchTiming(validating_s=0.02, in_progress_s=0.05, finalizing_s=0.02)
    with FakeAzure(["gb"], batch_timing=timing) as server:
        line = request_line(
            "s/c@gb#0/0",
            {"messages": [{"role": "user", "content": "hi"}]},
            "gb",
            "/chat/completions",
            3,
        )
        ledger = Ledger(tmp_path, {}, lambda: None)
        job = ledger.new_job("gb", line.text, 1, 3, 0)
        sync = openai.AzureOpenAI(
            azure_endpoint=server.endpoint, api_key="test-key", api_version="2024-10-21"
        )
        job.input_file_id = sync.files.create(file=("in.jsonl", line.text), purpose="batch").id
        made = sync.batches.create(
            input_file_id=job.input_file_id,
            endpoint="/chat/completions",  # type: ignore[arg-type]  # Azure's name
            completion_window="24h",
        )
        told: list[str] = []

        async def resume() -> Any:
            client = openai.AsyncAzureOpenAI(
                azure_endpoint=server.endpoint, api_key="test-key", api_version="2024-10-21"
            )
            run = JobRun(
                job,
                BatchClient(client, "gb", v1=False),
                ledger,
                Polling(0.02, 10),
                told.append,
                "gb",
            )
            try:
                return await run.run()
            finally:
                await client.close()

        finished = asyncio.run(resume())
        assert finished.state.id == made.id and finished.state.status == "completed"
        assert list(finished.entries) == ["s/c@gb#0/0"]
        assert len(server.service.batch_store.batches) == 1
        assert any("found " + made.id in line for line in told)
