"""The target edge on its own: redirects, the body limit, and the worst bodies' cost."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.redact import public_url
from harness.runner.quota import QueueDeadline, Scheduler
from harness.writable import json_text, printable
from tests.conftest import azeval
from tests.hostile.bodies import CORPUS
from tests.hostile.server import Answer, HostileServer, config_text, json_answer, ok

SUITE = """
suite: edge
cases:
  - id: first
    prompt: say ok
    expect: {contains: ok}
  - id: second
    prompt: say ok again
    expect: {contains: ok}
"""
KEY = "sk-edge-0123456789abcdef"


def run_project(root: Path, url: str, *args: str, extra: str = "") -> tuple[int, list[dict]]:
    (root / "azeval.toml").write_text(config_text(url, "EVIL_KEY", extra))
    (root / "suites").mkdir(exist_ok=True)
    (root / "suites" / "edge.yaml").write_text(SUITE)
    code = azeval("run", "suites", *args)
    (run_dir,) = (root / "reports" / "runs").iterdir()
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return code, [json.loads(line) for line in lines]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_origin_is_never_followed(tmp_path, monkeypatch, status):
    """A 3xx pointing at another server is not followed: the other server gets nothing
    (neither the prompt nor the key), the case records a redirect error naming where it
    pointed (without its query), and the target is dead (exit 3), as a wrong URL is."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVIL_KEY", KEY)
    with HostileServer({}) as elsewhere:
        where = f"{elsewhere.url}/steal?sig=secret-signature"
        redirect = Answer(status, b"", {"Location": where})
        with HostileServer({}, default=redirect) as server:
            code, results = run_project(tmp_path, server.url, "-j", "1")
        assert elsewhere.requests == []
    assert code == 3
    first = next(r for r in results if r["attempts"] == 1)
    assert first["error"]["kind"] == "redirect"
    assert f"{elsewhere.url}/steal" in first["error"]["message"]
    assert "secret-signature" not in json.dumps(results)
    assert len(server.requests) == 1, "one redirect is enough to know the target is wrong"


def test_the_body_limit_is_a_target_setting(tmp_path, monkeypatch):
    """max_response_bytes lowers the limit: a 2 kB answer over a 1 kB limit is an
    invalid_response naming the limit; the default takes the same answer."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVIL_KEY", KEY)
    with HostileServer({}, default=ok("ok " * 700)) as server:
        code, results = run_project(tmp_path, server.url, extra="max_response_bytes = 1000")
    assert code == 1
    assert {r["error"]["kind"] for r in results} == {"invalid_response"}
    assert "1,000-byte limit" in results[0]["error"]["message"]
    assert "max_response_bytes" in results[0]["error"]["message"]


def test_max_response_bytes_must_be_a_positive_whole_number(tmp_path, monkeypatch):
    """A limit that is not a positive whole number is exit 2 naming the key."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "azeval.toml").write_text(
        config_text("http://127.0.0.1:9", "EVIL_KEY", 'max_response_bytes = "lots"')
    )
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "edge.yaml").write_text(SUITE)
    assert azeval("validate", "suites") == 2


def test_public_url_drops_user_info_and_optionally_the_query():
    """A URL is recorded without user-info; a stranger's URL also without its query."""
    assert public_url("https://u:p@host:8443/a?b=c") == "https://host:8443/a?b=c"
    assert public_url("https://u:p@host/a?sig=x", query=False) == "https://host/a"
    assert public_url("http://[bad") == "***"


def test_json_text_keeps_a_lone_surrogate_escaped_and_exact():
    """json_text writes UTF-8-encodable text that reads back to the same string."""
    value = {"reply": "ok \ud83d é \U0001f600"}
    text = json_text(value)
    text.encode("utf-8")
    assert json.loads(text) == value
    assert printable("ok \ud83d") == "ok \ufffd"


WORST = [e for e in CORPUS if e.name in ("body-300mb-no-length", "gzip-bomb-1gb", "nested-200000")]
# The run's own cost: CPU seconds (steady on a loaded machine, unlike wall time) and the
# peak resident memory of this process image (VmHWM; ru_maxrss would count the forking
# pytest worker too).
MEASURE = """
import re, resource, sys, time
from pathlib import Path
from harness.cli import main

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

sys.argv = ["azeval", "run", "suites"]
started, wall = cpu(), time.perf_counter()
try:
    main()
except SystemExit:
    pass
peak = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
print(cpu() - started, time.perf_counter() - wall, peak)
"""


@pytest.mark.parametrize("entry", WORST, ids=lambda e: e.name)
def test_the_worst_bodies_cost_seconds_and_megabytes(tmp_path, entry):
    """A 300 MB body, a 1 GB gzip bomb and JSON nested 200,000 deep each cost the whole
    azeval run (two attempts) a few CPU seconds and under 200 MB of memory."""
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "edge.yaml").write_text(SUITE.replace("say ok", entry.marker))
    with HostileServer({entry.marker: entry.answer}) as server:
        (tmp_path / "azeval.toml").write_text(config_text(server.url, "EVIL_KEY"))
        env = {**os.environ, "EVIL_KEY": KEY}
        done = subprocess.run(
            [sys.executable, "-c", MEASURE], cwd=tmp_path, env=env, capture_output=True, text=True
        )
    cpu, wall, peak_kb = done.stdout.split()[-3:]
    print(f"{entry.name}: {float(cpu):.2f} s CPU, {float(wall):.2f} s, {int(peak_kb) >> 10} MB")
    assert float(cpu) < 5.0 and float(wall) < 30.0
    assert int(peak_kb) < 200 * 1024


def test_a_long_retry_after_never_holds_a_run_beyond_its_deadlines(tmp_path, monkeypatch):
    """Every request answered 429 with Retry-After 30 and case_deadline = 1: the run of
    three cases ends within seconds, not minutes, each case a deadline error saying why.
    Before, each queued case waited out a pause of its own after the one before it met
    the 429 (three cases with 20 s deadlines and Retry-After 59 took 118 s)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVIL_KEY", KEY)
    suite = SUITE + "  - id: third\n    prompt: and once more\n    expect: {contains: ok}\n"
    refused = json_answer({"error": {"code": "429", "message": "slow down"}}, 429)
    limited = Answer(429, refused.body, {**refused.headers, "Retry-After": "30"})
    with HostileServer({}, default=limited) as server:
        config = config_text(server.url, "EVIL_KEY").replace(
            "[settings]\n", "[settings]\ncase_deadline = 1\n"
        )
        (tmp_path / "azeval.toml").write_text(config)
        (tmp_path / "suites").mkdir()
        (tmp_path / "suites" / "edge.yaml").write_text(suite)
        started = time.perf_counter()
        code = azeval("run", "suites")
        elapsed = time.perf_counter() - started
    (run_dir,) = (tmp_path / "reports" / "runs").iterdir()
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert code == 1
    assert elapsed < 15.0, elapsed  # the queued cases waited the pause out: 33 s
    assert sorted(r["case"] for r in results) == ["first", "second", "third"]
    assert {r["error"]["kind"] for r in results} == {"deadline"}
    assert any("Retry-After" in r["error"]["message"] for r in results)


def test_a_pause_within_the_patience_holds_a_waiter_and_starts_its_deadline():
    """A queued request (deadline not started) held by a 429 pause shorter than its
    patience waits the pause out and is let through, its permit saying when the pause
    began holding it (where its case deadline starts); a longer pause fails it at once."""

    async def main() -> None:
        scheduler = Scheduler(max_concurrency=1)
        first = await scheduler.acquire(1)
        waiter = asyncio.ensure_future(scheduler.acquire(1, patience=5.0))
        impatient = asyncio.ensure_future(scheduler.acquire(1, patience=0.1))
        await asyncio.sleep(0)
        paused = time.monotonic()
        scheduler.release(first, rate_limited=True, retry_after=0.3)
        with pytest.raises(QueueDeadline, match=r"beyond the case deadline of 0\.1 s"):
            await impatient
        permit = await waiter
        assert time.monotonic() - paused >= 0.29
        assert permit.held_at is not None and abs(permit.held_at - paused) < 0.05

    asyncio.run(main())
