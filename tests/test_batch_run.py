"""Batch mode end to end: azeval's cases as Global Batch jobs on the fake Azure server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import api
from harness.batch import BatchSettings
from harness.batch.ledger import BatchRecord
from harness.results.store import load_run, read_meta
from harness.runner.engine import RunOptions, RunOutcome
from harness.testing import (
    Action,
    BatchTiming,
    Deployment,
    ErrorReply,
    FakeAzure,
    Match,
    Rule,
)
from tests.conftest import azeval

KEY = "sk-batch-0123456789abcdef"
FAST = BatchTiming(validating_s=0.05, in_progress_s=0.2, finalizing_s=0.05, cancelling_s=0.05)
CONFIG = """
[targets.gb]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "gb"
model = "gpt-4o"
model_version = "2024-08-06"
"""
RULES = [
    Rule(Match(last_user=r"[0369]$"), Action(content="nope")),
    Rule(Match(last_user="explode"), Action(error=ErrorReply(500))),
    Rule(Match(last_user="garble"), Action(fault="invalid_json")),
]


def suite_text(cases: int, *, conversation: bool = False, extra: str = "") -> str:
    lines = ["suite: batched", "defaults:", "  params: {max_tokens: 20}", "cases:"]
    for n in range(cases):
        lines += [f"  - id: c{n:03d}", f"    prompt: case {n}", "    expect: {icontains: ok}"]
    if conversation:
        lines += [
            "  - id: talk",
            "    prompt: first",
            "    expect: {icontains: ok}",
            "    turns:",
            "      - user: second",
            "        expect: {icontains: ok}",
            "      - user: third",
            "        expect: {icontains: ok}",
        ]
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
def server() -> Iterator[FakeAzure]:
    deployments = [Deployment("gb", model="gpt-4o-2024-08-06")]
    with FakeAzure(
        deployments, rules=RULES, default=Action(content="ok"), api_keys=(KEY,), batch_timing=FAST
    ) as fake:
        yield fake


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeAzure) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_AZURE_ENDPOINT", server.endpoint)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    (tmp_path / "azeval.toml").write_text(CONFIG)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "batched.yaml").write_text(suite_text(12, conversation=True))
    return tmp_path


def options(batch: bool = True, **settings: Any) -> RunOptions:
    base = RunOptions.from_settings({})
    return dataclasses.replace(
        base,
        batch=BatchSettings(all_azure=batch, poll_interval_s=0.02, **settings),
        default_concurrency=8,
    )


def run(opts: RunOptions) -> RunOutcome:
    return api.run(api.prepare([Path("suites")]), opts)


def verdicts(outcome: RunOutcome) -> dict[str, str]:
    return {r.key: r.verdict for r in outcome.run.results}


def jobs_of(outcome: RunOutcome) -> list[dict[str, Any]]:
    """The run's batch jobs as run.json records them."""
    return [job.to_json() for job in BatchRecord.of(outcome.run.meta).jobs]


def paths(server: FakeAzure) -> list[str]:
    return [f"{r.method} {r.path.split('/')[2]}" for r in server.requests]


def test_a_batch_run_gives_the_live_verdicts_at_half_the_cost(
    project: Path, server: FakeAzure
) -> None:
    """The same suite live and as a batch: the same verdicts and replies, every request of
    the batch run through the files and batches endpoints, and half the recorded cost."""
    live = run(options(batch=False))
    server.reset()
    batched = run(options())
    assert verdicts(batched) == verdicts(live)
    assert {r.verdict for r in batched.run.results} == {"pass", "fail"}
    assert not any("chat" in r.path for r in server.requests)
    live_cost = live.run.summary.targets["gb"].cost_usd
    batch_cost = batched.run.summary.targets["gb"].cost_usd
    assert live_cost and batch_cost == pytest.approx(live_cost / 2)
    replies = {r.key: [t.reply for t in r.turns] for r in live.run.results}
    assert {r.key: [t.reply for t in r.turns] for r in batched.run.results} == replies
    price = batched.run.meta.targets[0].price
    assert price is not None and price["batch"] is True
    # A batch line's latency is the batch's, not the model's: none is recorded.
    assert all(t.latency_ms is None for r in batched.run.results for t in r.turns)


def test_a_conversation_runs_one_round_per_turn(project: Path, server: FakeAzure) -> None:
    """Round k + 1 is made of the replies of round k: three jobs for a three-turn case,
    the first holding every case's first turn; each line names the deployment."""
    outcome = run(options())
    jobs = jobs_of(outcome)
    assert [(j["round"], j["lines"]) for j in jobs] == [(0, 13), (1, 1), (2, 1)]
    talk = next(r for r in outcome.run.results if r.case == "talk")
    assert talk.verdict == "pass" and len(talk.turns) == 3
    assert talk.turns[2].request["messages"][-2]["role"] == "assistant"
    first = (project / outcome.run.path / jobs[0]["file"]).read_text().splitlines()
    lines = [json.loads(line) for line in first]
    assert {line["body"]["model"] for line in lines} == {"gb"}
    assert {line["url"] for line in lines} == {"/chat/completions"}
    ids = [line["custom_id"] for line in lines]
    assert len(set(ids)) == len(ids) and "batched/c000@gb#0/0" in ids
    assert (BatchRecord.of(outcome.run.meta).elapsed_s or 0) > 0


def test_failed_and_malformed_lines_are_their_cases_errors(
    project: Path, server: FakeAzure
) -> None:
    """A line the service failed (500 in the error file) is that case's server_error; a
    line whose body is not a chat completion is its invalid_response; the rest pass."""
    extra = "\n".join(
        [
            "  - id: boom",
            "    prompt: explode",
            "    expect: {icontains: ok}",
            "  - id: torn",
            "    prompt: garble",
            "    expect: {icontains: ok}",
        ]
    )
    (project / "suites" / "batched.yaml").write_text(suite_text(2) + extra + "\n")
    outcome = run(options())
    by_case = {r.case: r for r in outcome.run.results}
    assert by_case["c001"].verdict == "pass"
    boom, torn = by_case["boom"], by_case["torn"]
    assert boom.verdict == "error" and boom.error is not None
    assert (boom.error.kind, boom.error.status) == ("server_error", 500)
    assert torn.verdict == "error" and torn.error is not None
    assert torn.error.kind == "invalid_response"


def test_lines_split_across_files_at_the_line_limit(project: Path, server: FakeAzure) -> None:
    """More lines than a file may hold go out as several jobs, all answered."""
    outcome = run(options(max_lines=5))
    first_round = [j for j in jobs_of(outcome) if j["round"] == 0]
    assert [j["lines"] for j in first_round] == [5, 5, 3]
    assert len(outcome.run.results) == 13
    assert all(r.verdict in ("pass", "fail") for r in outcome.run.results)


def test_enqueued_tokens_split_and_token_limit_exceeded_resubmits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """batch_enqueued_tokens cuts the files to fit and runs them one after another; when
    the service still refuses one (token_limit_exceeded: another job holds the quota) it
    is submitted again later, and every case is answered."""
    slow = BatchTiming(validating_s=0.05, in_progress_s=1.5, finalizing_s=0.05)
    deployment = Deployment("gb", model="gpt-4o-2024-08-06", enqueued_tokens=120)
    with FakeAzure(
        [deployment], default=Action(content="ok"), api_keys=(KEY,), batch_timing=slow
    ) as fake:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("FAKE_AZURE_ENDPOINT", fake.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        (tmp_path / "azeval.toml").write_text(CONFIG + "batch_enqueued_tokens = 50\n")
        (tmp_path / "suites").mkdir()
        (tmp_path / "suites" / "batched.yaml").write_text(suite_text(10))
        _someone_elses_batch(fake, tokens=100)
        outcome = run(options())
    jobs = jobs_of(outcome)
    assert len(jobs) == 2 and all(j["tokens"] <= 50 for j in jobs)
    assert jobs[0]["submissions"] > 1
    assert {r.verdict for r in outcome.run.results} == {"pass"}
    assert len(outcome.run.results) == 10


def _someone_elses_batch(server: FakeAzure, tokens: int) -> None:
    """A batch of another user on the same deployment, holding enqueued tokens."""
    import openai

    client = openai.AzureOpenAI(
        azure_endpoint=server.endpoint, api_key=KEY, api_version="2024-10-21"
    )
    text = " ".join(["word"] * (tokens - 8))
    body = {"model": "gb", "messages": [{"role": "user", "content": text}]}
    line = {"custom_id": "x", "method": "POST", "url": "/chat/completions", "body": body}
    data = (json.dumps(line) + "\n").encode()
    uploaded = client.files.create(file=("x.jsonl", data), purpose="batch")
    client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/chat/completions",  # type: ignore[arg-type]  # Azure's name
        completion_window="24h",
    )


def test_an_expired_batch_records_the_unfinished_cases_and_retry_errors_reruns_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch past its window: the cases it finished keep their verdicts, the others are
    batch_expired errors; --resume with --retry-errors sends only those, in a new batch."""
    timing = BatchTiming(validating_s=0.05, in_progress_s=1.0, finalizing_s=0.05, window_s=0.55)
    with FakeAzure(
        ["gb"], default=Action(content="ok"), api_keys=(KEY,), batch_timing=timing
    ) as fake:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("FAKE_AZURE_ENDPOINT", fake.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        (tmp_path / "azeval.toml").write_text(CONFIG)
        (tmp_path / "suites").mkdir()
        (tmp_path / "suites" / "batched.yaml").write_text(suite_text(10))
        first = run(options())
        expired = [r for r in first.run.results if r.verdict == "error"]
        assert expired and len(expired) < 10
        assert {r.error.kind for r in expired if r.error} == {"batch_expired"}
        fake.service.batch_store.timing = dataclasses.replace(timing, window_s=100)
        again = dataclasses.replace(options(), resume=first.run.path, retry_errors=True)
        resumed = run(again)
    assert len(resumed.run.results) == 10
    assert {r.verdict for r in resumed.run.results} == {"pass"}
    jobs = jobs_of(resumed)
    assert [j["lines"] for j in jobs] == [10, len(expired)]


def test_a_file_the_service_refuses_records_its_message_on_each_case(
    project: Path, server: FakeAzure, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that fails validation (the deployment is not there: model_not_found) ends
    each case as batch_failed with the service's message and line."""
    (project / "azeval.toml").write_text(CONFIG.replace('deployment = "gb"', 'deployment = "gone"'))
    server.service.deployments = {"gb": server.service.deployments["gb"]}  # type: ignore[index]
    outcome = run(options())
    errors = [r.error for r in outcome.run.results]
    assert all(e is not None and e.kind == "batch_failed" for e in errors)
    first = errors[0]
    assert first is not None and "model_not_found" in first.message and "line" in first.message


def test_run_json_holds_the_batch_ids_while_the_batch_runs(
    project: Path, server: FakeAzure
) -> None:
    """The input file id and batch id are in run.json while the batch is still running,
    so a run killed then can find its batch again."""
    server.service.batch_store.timing = dataclasses.replace(FAST, in_progress_s=1.0)
    (project / "suites" / "batched.yaml").write_text(suite_text(4))
    prepared = api.prepare([Path("suites")])
    seen: list[dict[str, Any]] = []

    async def main() -> None:
        task = asyncio.ensure_future(asyncio.to_thread(api.run, prepared, options()))
        while not task.done():
            await asyncio.sleep(0.05)
            for run_dir in (project / "reports" / "runs").glob("*"):
                if not (run_dir / "run.json").is_file():  # the folder comes first
                    continue
                jobs = (read_meta(run_dir).get("batch") or {}).get("jobs") or []
                if jobs and jobs[0].get("status") == "in_progress":
                    seen.append(jobs[0])
        await task

    asyncio.run(main())
    assert seen and seen[0]["batch_id"].startswith("batch_")
    assert seen[0]["input_file_id"].startswith("file-")


def test_a_killed_batch_run_resumes_by_reattaching_without_a_second_submission(
    project: Path, server: FakeAzure
) -> None:
    """Stopped while its batch is in progress, the run's --resume polls the same batch and
    downloads its answers: one upload and one batch created in all, the live verdicts."""
    server.service.batch_store.timing = dataclasses.replace(FAST, in_progress_s=1.0)
    (project / "suites" / "batched.yaml").write_text(suite_text(12))
    prepared = api.prepare([Path("suites")])
    opts = options()

    async def interrupted() -> None:
        from harness.runner.engine import execute
        from harness.runner.work import work_items

        items = work_items(prepared.suites, ["gb"], None, api.preflight(prepared))
        task = asyncio.ensure_future(execute(prepared.suites, prepared.targets, opts, items=items))
        while not any(r.path == "/openai/batches" for r in server.requests):  # noqa: ASYNC110  # the server runs in another thread
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        task.cancel()
        outcome = await task
        assert outcome.interrupted

    asyncio.run(interrupted())
    (run_dir,) = (project / "reports" / "runs").glob("*")
    assert load_run(run_dir).meta.status == "interrupted"
    assert not load_run(run_dir).results
    resumed = run(dataclasses.replace(opts, resume=run_dir))
    creates = [r for r in server.requests if r.method == "POST" and r.path == "/openai/batches"]
    uploads = [r for r in server.requests if r.method == "POST" and r.path == "/openai/files"]
    assert len(creates) == 1 and len(uploads) == 1
    assert resumed.run.meta.status == "complete"
    assert len(resumed.run.results) == 12
    server.reset()
    live = run(options(batch=False))
    assert verdicts(resumed) == verdicts(live)


def test_batch_status_and_cancel_of_a_run_dir(
    project: Path, server: FakeAzure, capsys: Any
) -> None:
    """``azeval batch status`` shows a stopped run's batch as the service has it; ``batch
    cancel`` cancels it, and the resume records its unfinished cases as batch_cancelled."""
    server.service.batch_store.timing = dataclasses.replace(FAST, in_progress_s=30)
    prepared = api.prepare([Path("suites")])
    opts = options()

    async def interrupted() -> None:
        from harness.runner.engine import execute

        task = asyncio.ensure_future(execute(prepared.suites, prepared.targets, opts))
        while not any(r.path.startswith("/openai/batches/") for r in server.requests):  # noqa: ASYNC110  # another thread's server
            await asyncio.sleep(0.02)
        task.cancel()
        await task

    asyncio.run(interrupted())
    (run_dir,) = (project / "reports" / "runs").glob("*")
    capsys.readouterr()
    assert azeval("batch", "status", str(run_dir)) == 0
    shown = capsys.readouterr().out
    assert "batch_" in shown and ("in_progress" in shown or "validating" in shown)
    assert azeval("batch", "cancel", str(run_dir)) == 0
    assert "cancel" in capsys.readouterr().out
    resumed = run(dataclasses.replace(opts, resume=run_dir))
    kinds = {r.error.kind for r in resumed.run.results if r.error}
    assert kinds == {"batch_cancelled"}


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--batch", "--stream"], "--stream"),
        (["--batch", "-t", "local"], "--batch"),
    ],
)
def test_a_batch_with_streaming_or_without_azure_is_exit_2(
    project: Path, server: FakeAzure, capsys: Any, args: list[str], where: str
) -> None:
    """--batch with --stream, or with no azure target chosen: exit 2, nothing sent."""
    assert azeval("run", *args) == 2
    assert where in capsys.readouterr().err
    assert not server.requests


def test_a_streaming_case_on_a_batch_target_is_exit_2(
    project: Path, server: FakeAzure, capsys: Any
) -> None:
    """mode = "batch" and a case that streams: exit 2 naming the case's params.stream."""
    (project / "azeval.toml").write_text(CONFIG + 'mode = "batch"\n')
    text = suite_text(1) + "  - id: s\n    prompt: hi\n    params: {stream: true}\n"
    (project / "suites" / "batched.yaml").write_text(text)
    assert azeval("run") == 2
    err = capsys.readouterr().err
    assert "cases[1].params.stream" in err and "targets.gb" in err
    assert not server.requests


def test_mode_batch_on_a_non_azure_target_is_exit_2(
    project: Path, server: FakeAzure, capsys: Any
) -> None:
    """mode = "batch" on an openai target is a config error naming targets.x.mode."""
    (project / "azeval.toml").write_text(
        CONFIG + '\n[targets.oa]\nkind = "openai"\nmodel = "gpt-4o"\nmode = "batch"\n'
    )
    assert azeval("run") == 2
    assert "targets.oa.mode" in capsys.readouterr().err
    assert not server.requests


def test_mode_batch_in_the_config_runs_that_target_as_a_batch(
    project: Path, server: FakeAzure
) -> None:
    """mode = "batch" on a target, with no --batch: its cases go out as a batch."""
    (project / "azeval.toml").write_text(CONFIG + 'mode = "batch"\n')
    outcome = run(options(batch=False))
    assert jobs_of(outcome)
    assert not any("chat" in r.path for r in server.requests)


def test_the_report_and_console_say_it_was_a_batch_run_and_how_long_it_took(
    project: Path, server: FakeAzure, capsys: Any
) -> None:
    """azeval run --batch: progress lines per job, then the summary and report.html name
    the batch jobs, the batch price and the time from submission to the last result."""
    assert azeval("run", "--batch", "--batch-poll", "0.02") == 1  # some cases fail, as live
    captured = capsys.readouterr()
    assert "gb (azure, batch)" in captured.err
    assert "submitted 13 line(s) as batch_" in captured.err
    assert "completed 13/13 done" in captured.err
    assert "Batch run: 3 Global Batch job(s) of 15 request(s) in 3 round(s)" in captured.out
    assert "From the first submission to the last result:" in captured.out
    (run_dir,) = (project / "reports" / "runs").glob("*")
    html = (run_dir / "report.html").read_text()
    assert "Global Batch." in html and "costed at the batch price (50% of live)" in html


def test_a_refused_key_on_upload_kills_the_target_with_exit_3(
    project: Path, server: FakeAzure, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A 401 on the upload: one request, every case an auth error, the target dead, exit 3."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "sk-wrong-0123456789abcdef")
    assert azeval("run", "--batch", "--batch-poll", "0.02") == 3
    assert len(server.requests) == 1 and server.requests[0].status == 401
    (run_dir,) = (project / "reports" / "runs").glob("*")
    run_ = load_run(run_dir)
    assert {r.error.kind for r in run_.results if r.error} == {"auth"}
    assert "gb" in run_.meta.dead_targets


def test_faults_on_the_batch_endpoints_lose_no_case_and_bill_no_batch_twice(
    project: Path, server: FakeAzure
) -> None:
    """The answer to the create is lost (reset after the batch was made) and every third
    files/batches request answers 503: the run finds its batch instead of making a second,
    retries the rest, and every case gets its live verdict."""
    from harness.testing import Fault

    server.service.batch_faults = (
        Fault("reset", first=1, after=1),
        Fault("503", every=3, retry_after=0.01),
    )
    (project / "suites" / "batched.yaml").write_text(suite_text(8))
    outcome = run(options())
    creates = [r for r in server.requests if r.method == "POST" and r.path == "/openai/batches"]
    made = [r for r in creates if r.status == 200 and r.fault is None]
    assert len(server.service.batch_store.batches) == 1
    assert creates and not made  # the one create that took effect lost its answer
    assert server.count(503) >= 2
    assert {r.verdict for r in outcome.run.results} == {"pass", "fail"}
    assert len(outcome.run.results) == 8


def test_a_batch_deployment_in_a_pool_is_exit_2(
    project: Path, server: FakeAzure, capsys: Any
) -> None:
    """A pool sends live: a member whose mode is "batch" is refused, naming its mode."""
    east, west = (CONFIG.replace("[targets.gb]", f"[targets.{name}]") for name in ("east", "west"))
    (project / "azeval.toml").write_text(
        east + 'mode = "batch"\n' + west + '\n[targets.both]\npool = ["east", "west"]\n'
    )
    assert azeval("run", "-t", "both") == 2
    assert "targets.east.mode" in capsys.readouterr().err
    assert not server.requests


def test_two_batch_targets_each_run_their_own_jobs(project: Path, server: FakeAzure) -> None:
    """Two azure targets under --batch: each its own jobs, naming its own deployment."""
    server.service.deployments = None  # any deployment name is served
    second = CONFIG.replace("[targets.gb]", "[targets.gb2]").replace(
        'deployment = "gb"', 'deployment = "gb2"'
    )
    (project / "azeval.toml").write_text(CONFIG + second)
    (project / "suites" / "batched.yaml").write_text(suite_text(6))
    outcome = run(options())
    jobs = jobs_of(outcome)
    assert sorted(j["target"] for j in jobs) == ["gb", "gb2"]
    assert len(outcome.run.results) == 12
    assert {r.verdict for r in outcome.run.results} == {"pass", "fail"}


def test_an_output_file_gone_at_the_service_ends_its_cases_without_killing_the_target(
    project: Path, server: FakeAzure
) -> None:
    """A batch whose output file was deleted before the download: its cases end as
    invalid_response errors (to retry), not a dead target."""
    store = server.service.batch_store
    original = store._answer

    def answer_then_delete(batch: Any, answer: Any, status: str) -> None:
        original(batch, answer, status)
        del store.files[batch.output_file_id]

    store._answer = answer_then_delete  # type: ignore[method-assign]
    (project / "suites" / "batched.yaml").write_text(suite_text(3))
    outcome = run(options())
    assert {r.error.kind for r in outcome.run.results if r.error} == {"invalid_response"}
    assert not outcome.run.meta.dead_targets


def test_one_round_holds_every_case_however_narrow_the_live_lane(
    project: Path, server: FakeAzure
) -> None:
    """A batch target's cases all wait for the same round: -j 2 live would run two at a
    time, but the batch is one job of every case, not many of a few."""
    (project / "suites" / "batched.yaml").write_text(suite_text(40))
    narrow = dataclasses.replace(options(), concurrency=2)
    outcome = run(narrow)
    assert [(j["round"], j["lines"]) for j in jobs_of(outcome)] == [(0, 40)]
    assert len(outcome.run.results) == 40
