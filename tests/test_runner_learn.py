"""Learned limits: the limit and the window each is counted over, from the answers alone."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from harness import api
from harness.runner.engine import RunOptions
from harness.runner.learn import _duration
from harness.runner.quota import Permit, Scheduler
from harness.testing import Deployment, FakeAzure

KEY = "learn-key-0123456789"


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def answer(remaining_requests: int, remaining_tokens: int, **extra: str) -> dict[str, str]:
    return {
        "x-ratelimit-remaining-requests": str(remaining_requests),
        "x-ratelimit-remaining-tokens": str(remaining_tokens),
        **extra,
    }


async def admit(scheduler: Scheduler, cost: int = 100, timeout: float = 1.0) -> Permit:
    return await asyncio.wait_for(scheduler.acquire(cost), timeout)


def learned(scheduler: Scheduler, name: str) -> Mapping[str, object]:
    return scheduler.snapshot()["learned"][name]


def test_a_429_whose_retry_after_outlasts_our_charges_lengthens_the_window() -> None:
    """Ten requests per (scaled) 10 s look like ten per second at first; the one request
    let through when that second is over probes it alone, and its 429's Retry-After shows
    the window is 10 s: the window moves there, the limit stays 10."""

    async def main() -> Scheduler:
        # A 6 s "minute": Azure's 1 s, 10 s and 60 s windows are 0.1 s, 1 s and 6 s.
        scheduler = Scheduler(max_concurrency=16, window_s=6.0)
        started = time.monotonic()
        for left in range(9, -1, -1):
            headers = answer(left, 5000 - 100 * (10 - left))
            scheduler.release(await admit(scheduler), ok=True, headers=headers)
        assert (scheduler.calls.limit, scheduler.calls.window_s) == (10, 0.1)
        probe = await admit(scheduler)  # after 0.1 s: our assumed window emptied
        held = asyncio.ensure_future(scheduler.acquire(100))
        await asyncio.sleep(0.15)
        assert not held.done()  # only one probe at a time while the service said "0 left"
        wait = started + 1.0 - time.monotonic()  # the service frees the first at 1 s
        refused = answer(0, 4000, **{"retry-after-ms": str(round(wait * 1000))})
        scheduler.release(probe, rate_limited=True, retry_after=wait, headers=refused)
        assert scheduler.calls.window_s == pytest.approx(1.0)  # snapped to Azure's 10 s
        held.cancel()
        return scheduler

    scheduler = asyncio.run(main())
    requests = learned(scheduler, "requests")
    assert requests["limit"] == 10
    assert requests["window_from"] == "retry-after"
    assert requests["per_minute"] == 60
    assert scheduler.effective_rpm == 60


def test_a_probe_answered_without_a_429_confirms_the_window() -> None:
    """Once a request let through on our window alone is answered, the window is trusted:
    the next ones are not held back one at a time."""

    async def main() -> None:
        scheduler = Scheduler(max_concurrency=16, window_s=6.0)
        for left in (1, 0):
            scheduler.release(await admit(scheduler), ok=True, headers=answer(left, 5000))
        probe = await admit(scheduler)
        assert probe.probing and not scheduler.learned[0].confirmed  # type: ignore[index]
        # The service had forgotten the first two as well: one of two is left after it.
        scheduler.release(probe, ok=True, headers=answer(1, 5000))
        assert scheduler.learned[0].confirmed  # type: ignore[index]
        first = await admit(scheduler)
        second = await admit(scheduler, timeout=0.5)  # not held behind the first
        assert not first.probing and not second.probing

    asyncio.run(main())


def test_room_the_service_reports_is_used_before_our_window_frees() -> None:
    """When the service says more is left than our books think, requests go at once: the
    remaining-* headers are the service's own count, less what we sent since."""

    async def main() -> None:
        clock = ManualClock()
        scheduler = Scheduler(max_concurrency=16, window_s=6.0, clock=clock)
        permits = [await admit(scheduler)]
        scheduler.release(permits[0], ok=True, headers=answer(9, 5000))
        permits = [await admit(scheduler) for _ in range(9)]
        for left, permit in zip(range(8, 0, -1), permits, strict=False):
            scheduler.release(permit, ok=True, headers=answer(left, 5000))
        # Ten in our window of ten: full, and our clock stands still. The last answer says
        # 5 are left (the service counts from when requests reached it): five go, not six.
        scheduler.release(permits[-1], ok=True, headers=answer(5, 5000))
        for _ in range(5):
            await admit(scheduler, timeout=0.1)
        with pytest.raises(TimeoutError):
            await admit(scheduler, timeout=0.05)

    asyncio.run(main())


def test_answers_showing_the_service_still_counts_older_requests_lengthen_the_window() -> None:
    """A request answered with less left than our (assumed 1 s) window allows shows the
    service still counts one we let go: the window grows to the next of Azure's."""

    async def main() -> Scheduler:
        clock = ManualClock()
        scheduler = Scheduler(max_concurrency=4, window_s=6.0, clock=clock)
        scheduler.release(await admit(scheduler), ok=True, headers=answer(9, 5000))
        clock.now += 0.5  # our window (0.1 s) let the first go; the service's has not
        scheduler.release(await admit(scheduler), ok=True, headers=answer(8, 5000))
        return scheduler

    scheduler = asyncio.run(main())
    assert scheduler.calls.window_s == pytest.approx(1.0)
    assert learned(scheduler, "requests")["window_from"] == "refill"


def test_answers_showing_the_service_forgot_requests_shorten_the_window() -> None:
    """Tokens are assumed counted per minute; an answer with more left than that allows
    shows the service forgot an earlier charge: the window shrinks to the one that fits."""

    async def main() -> Scheduler:
        clock = ManualClock()
        scheduler = Scheduler(max_concurrency=4, window_s=6.0, clock=clock)
        scheduler.release(await admit(scheduler, 100), ok=True, headers=answer(99, 900))
        clock.now += 1.2  # past a 10 s window (1 s here): the service forgot the first
        scheduler.release(await admit(scheduler, 100), ok=True, headers=answer(99, 900))
        return scheduler

    scheduler = asyncio.run(main())
    assert scheduler.tokens.window_s == pytest.approx(1.0)
    tokens = learned(scheduler, "tokens")
    assert (tokens["limit"], tokens["window_from"]) == (1000, "refill")


def test_reset_and_limit_headers_give_the_window_and_the_limit() -> None:
    """x-ratelimit-limit-* is taken as the limit and x-ratelimit-reset-* places the window
    (it empties when the newest charge leaves it), when a service sends them."""

    async def main() -> Scheduler:
        clock = ManualClock()
        scheduler = Scheduler(max_concurrency=4, window_s=6.0, clock=clock)
        permit = await admit(scheduler)
        clock.now += 0.02
        headers = answer(
            19,
            900,
            **{
                "x-ratelimit-limit-requests": "20",
                "x-ratelimit-reset-requests": "980ms",
                "x-ratelimit-limit-tokens": "1000",
                "x-ratelimit-reset-tokens": "5.98s",
            },
        )
        scheduler.release(permit, ok=True, headers=headers)
        return scheduler

    scheduler = asyncio.run(main())
    requests, tokens = learned(scheduler, "requests"), learned(scheduler, "tokens")
    assert (requests["limit"], requests["window_s"]) == (20, 1.0)
    assert (requests["limit_from"], requests["window_from"]) == ("limit header", "reset header")
    assert (tokens["limit"], tokens["window_s"], tokens["window_from"]) == (
        1000,
        6.0,
        "reset header",
    )


def test_configured_limits_ignore_the_headers() -> None:
    """tpm/rpm in the config are exact: answers' headers never change them or the window."""

    async def main() -> Scheduler:
        scheduler = Scheduler(max_concurrency=4, tpm=1000, rpm=6, window_s=6.0)
        permit = await admit(scheduler)
        scheduler.release(
            permit, ok=True, headers=answer(1, 10, **{"x-ratelimit-limit-requests": "2"})
        )
        return scheduler

    scheduler = asyncio.run(main())
    assert (scheduler.effective_tpm, scheduler.effective_rpm) == (1000, 6)
    assert (scheduler.calls.window_s, scheduler.tokens.window_s) == (6.0, 6.0)
    assert "learned" not in scheduler.snapshot()


def test_reset_durations_are_read_as_openai_and_azure_write_them() -> None:
    """ "20ms", "1.5s", "6m0s" and a bare number of seconds; anything else is ignored."""
    assert [_duration(v) for v in ("20ms", "1.5s", "6m0s", "1m30s", "2", " 3s ")] == [
        0.02,
        1.5,
        360.0,
        90.0,
        2.0,
        3.0,
    ]
    assert [_duration(v) for v in (None, "", "soon", "1x", "-1")] == [None] * 5


SUITE_CASE = "  - id: c{n:03d}\n    prompt: case {n}\n    expect: {{icontains: case}}\n"


def test_a_run_learns_a_request_limit_counted_per_10_seconds(tmp_path: Path) -> None:
    """Nothing configured, a deployment counting 60 RPM as 10 per 10 s (a 3 s "minute"
    here): the run learns 10 per 10 s from the answers, every case passes, probing costs a
    429 or two (not a burst of -j 16), and run.json says what was learned and from what."""
    deployment = Deployment("gpt35", model="gpt-35-turbo", tpm=10_000, rpm=60, request_window=10)
    cases = 36
    suite = "suite: learn\ndefaults:\n  params: {max_tokens: 20}\ncases:\n"
    suite += "".join(SUITE_CASE.format(n=n) for n in range(cases))
    with FakeAzure([deployment], api_keys=(KEY,), window_s=3.0) as server:
        (tmp_path / "azeval.toml").write_text(
            "[targets.gpt35]\n"
            'kind = "azure"\n'
            f'endpoint = "{server.endpoint}"\n'
            'deployment = "gpt35"\nmodel = "gpt-35-turbo"\nmodel_version = "0125"\n'
        )
        (tmp_path / "suites").mkdir()
        (tmp_path / "suites" / "learn.yaml").write_text(suite)
        os.environ["AZURE_OPENAI_API_KEY"] = KEY
        prepared = api.prepare([tmp_path / "suites"], ["gpt35"], tmp_path / "azeval.toml")
        options = RunOptions(
            concurrency=16, reports_dir=tmp_path / "reports", quota_window=3.0, case_deadline=None
        )
        outcome = api.run(prepared, options)
        refused = server.count(429)
    assert [r.verdict for r in outcome.run.results] == ["pass"] * cases
    assert refused <= 4  # each probe alone; a slow answer can make a probe's bound weak
    record = json.loads((outcome.run.path / "run.json").read_text())
    requests = record["scheduler"]["gpt35"]["learned"]["requests"]
    assert requests["limit"] == 10
    assert requests["window_s"] == pytest.approx(0.5)  # Azure's 10 s in a 3 s minute
    assert requests["window_from"] == "retry-after"
    assert record["scheduler"]["gpt35"]["rpm"] == 60


def test_a_429_within_the_window_keeps_charges_longer_until_it_passes() -> None:
    """Refused although the window is right: the service counts our requests from later
    than we do, so charges are kept longer by its Retry-After (a tenth of the window at
    most); after a whole window without a 429 that margin is halved."""

    async def main() -> Scheduler:
        clock = ManualClock()
        scheduler = Scheduler(max_concurrency=4, window_s=6.0, clock=clock)
        reset = {"x-ratelimit-reset-requests": "1s"}  # places the window at Azure's 10 s
        scheduler.release(await admit(scheduler), ok=True, headers=answer(1, 5000, **reset))
        clock.now += 0.5
        refused = answer(0, 5000, **{"retry-after-ms": "60"})
        scheduler.release(await admit(scheduler), rate_limited=True, headers=refused)
        assert scheduler.calls.window_s == pytest.approx(1.0)
        assert scheduler.calls.margin_s == pytest.approx(0.06)
        scheduler.paused_until = 0.0
        clock.now += 1.2
        scheduler.release(await admit(scheduler), ok=True, headers=answer(1, 5000))
        return scheduler

    scheduler = asyncio.run(main())
    assert scheduler.calls.margin_s == pytest.approx(0.03)


def test_a_probe_sent_while_others_race_it_confirms_nothing() -> None:
    """A probe answered while earlier requests were still on their way may have reached the
    service before them: its success does not make the window trusted."""

    async def main() -> Scheduler:
        clock = ManualClock()
        scheduler = Scheduler(max_concurrency=4, window_s=6.0, clock=clock)
        scheduler.release(await admit(scheduler), ok=True, headers=answer(1, 5000))
        racing = await admit(scheduler)  # the last one the service said it had room for
        clock.now += 0.2  # our assumed 1 s window (0.1 s here) has let both go
        probe = await admit(scheduler)
        assert probe.probing and not probe.alone
        scheduler.release(probe, ok=True, headers=answer(0, 5000))
        scheduler.release(racing, ok=True, headers=answer(0, 5000))
        return scheduler

    scheduler = asyncio.run(main())
    assert not scheduler.learned[0].confirmed  # type: ignore[index]


def test_refused_requests_do_not_count_as_room_left() -> None:
    """Refunding refused requests gives their charge back to our books, never to what the
    service last said was left: after two 429s saying 0 left, nothing is left."""

    async def main() -> Scheduler:
        scheduler = Scheduler(max_concurrency=4, window_s=6.0)
        scheduler.release(await admit(scheduler), ok=True, headers=answer(2, 5000))
        first, second = await admit(scheduler), await admit(scheduler)
        for permit in (first, second):
            scheduler.release(permit, rate_limited=True, headers=answer(0, 5000))
        return scheduler

    scheduler = asyncio.run(main())
    assert scheduler.learned[0].left() == 0  # type: ignore[index]
