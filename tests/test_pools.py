"""Deployment pools: one target over two fake Azure resources on loopback (east, sweden)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from harness.config import parse_config
from harness.errors import ConfigError
from harness.runner.engine import RunOptions
from harness.runner.pool import open_pool
from harness.testing import Action, Deployment, FakeAzure, Fault, Match, Rule
from tests.conftest import azeval

EAST_KEY = "sk-east-0123456789abcdef"
SWEDEN_KEY = "sk-sweden-0123456789abcd"
MEMBER = """
[targets.{name}]
kind = "azure"
endpoint = "${{{env}_ENDPOINT}}"
deployment = "gpt4o-{name}"
model = "gpt-4o"
model_version = "2024-08-06"
api_key_env = "{env}_KEY"
"""
CONFIG = (
    "[settings]\nmax_retries = 1\n"
    + MEMBER.format(name="east", env="EAST")
    + MEMBER.format(name="sweden", env="SWEDEN")
    + '\n[targets.gpt4o]\npool = ["east", "sweden"]\n'
)
RULES = [Rule(Match(last_user="(?i)capital"), Action(content="Paris.", latency_ms=30))]


def suite_text(n: int) -> str:
    cases = "".join(
        f"  - id: q{i:03d}\n    prompt: What is the capital of France? ({i})\n"
        "    expect: {contains: Paris}\n"
        for i in range(n)
    )
    return "suite: geo\ndefaults:\n  params: {max_tokens: 10}\ncases:\n" + cases


def fake(name: str, key: str, **deployment: object) -> FakeAzure:
    """One Azure resource holding the pool's model as deployment gpt4o-<name>."""
    return FakeAzure(
        [Deployment(f"gpt4o-{name}", model="gpt-4o-2024-08-06", **deployment)],  # type: ignore[arg-type]
        rules=RULES,
        api_keys=(key,),
    )


@pytest.fixture
def east():
    with fake("east", EAST_KEY) as server:
        yield server


@pytest.fixture
def sweden():
    with fake("sweden", SWEDEN_KEY) as server:
        yield server


@pytest.fixture
def project(tmp_path, monkeypatch, write, east, sweden):
    """Two members and their pool in azeval.toml, a 16-case suite, endpoints and keys set."""
    monkeypatch.chdir(tmp_path)
    for env, server, key in (("EAST", east, EAST_KEY), ("SWEDEN", sweden, SWEDEN_KEY)):
        monkeypatch.setenv(f"{env}_ENDPOINT", server.endpoint)
        monkeypatch.setenv(f"{env}_KEY", key)
    write("azeval.toml", CONFIG)
    write("suites/geo.yaml", suite_text(16))
    return tmp_path


def the_run(root: Path, reports: str = "reports") -> tuple[Path, dict, list[dict]]:
    """The latest run: by when it started (two ids of one second sort at random)."""
    metas = [
        (json.loads((d / "run.json").read_text()), d) for d in (root / reports / "runs").iterdir()
    ]
    meta, run_dir = max(metas, key=lambda m: m[0]["started_at"])
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return run_dir, meta, [json.loads(line) for line in lines]


def answered(server: FakeAzure) -> int:
    return sum(1 for r in server.requests if r.status == 200)


# --- configuration ------------------------------------------------------------------------

BAD_POOLS = [
    ('pool = ["east"]', "pool", "is no pool"),
    ('pool = ["east", "sweeden"]', "pool[1]", "did you mean 'sweden'"),
    ('pool = ["east", "east"]', "pool[1]", "named twice"),
    ('pool = ["east", "other"]', "pool[1]", "is not an azure target (kind openai)"),
    ('pool = ["east", "nested"]', "pool[1]", "is a pool"),
    ('pool = ["east", "old"]', "pool[1]", "model version '2024-05-13'"),
    ('pool = ["east", "mini"]', "pool[1]", "model 'gpt-4o-mini'"),
    ('pool = ["east", "preview"]', "pool[1]", "api_version"),
    ('pool = "east"', "pool", "must be a list of target names"),
    ('pool = ["east", "sweden"]\nendpoint = "https://x"', "endpoint", "unknown key for a pool"),
    ('pool = ["east", "sweden"]\nkind = "openai"', "kind", "a pool of azure deployments"),
]
OTHERS = (
    MEMBER.format(name="old", env="EAST").replace("2024-08-06", "2024-05-13")
    + MEMBER.format(name="mini", env="EAST").replace('"gpt-4o"', '"gpt-4o-mini"')
    + MEMBER.format(name="preview", env="EAST")
    + 'api_version = "2024-10-01-preview"\n'
    + '[targets.other]\nkind = "openai"\nmodel = "gpt-4o"\n'
    + '[targets.nested]\npool = ["east", "sweden"]\n'
)


@pytest.mark.parametrize(("pool", "place", "says"), BAD_POOLS)
def test_a_bad_pool_is_a_config_error_naming_its_place(pool, place, says):
    """A pool of one, a member that is not a target, is named twice, is not azure, is a
    pool, or runs another model, version or api-version: an error at targets.p.<place>."""
    import tomllib

    text = CONFIG + OTHERS + f"\n[targets.p]\n{pool}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(tomllib.loads(text), "azeval.toml")
    message = caught.value.format_message()
    assert f"azeval.toml: targets.p.{place}:" in message and says in message, message


def test_a_bad_pool_exits_2_and_sends_nothing(project, write, east, sweden, capsys):
    """azeval run with a pool of one: exit 2 naming the place, not one request sent."""
    write("azeval.toml", CONFIG.replace('["east", "sweden"]', '["east"]'))
    assert azeval("run", "suites", "-t", "gpt4o") == 2
    assert "targets.gpt4o.pool: a pool of 1 deployment(s) is no pool" in capsys.readouterr().err
    assert east.requests == [] and sweden.requests == []


def test_a_pool_takes_its_members_model_and_quota(project):
    """The pool runs its members' model and version, and its quota is theirs together."""
    import tomllib

    text = CONFIG.replace('api_key_env = "EAST_KEY"', 'api_key_env = "EAST_KEY"\ntpm = 1000')
    text = text.replace('api_key_env = "SWEDEN_KEY"', 'api_key_env = "SWEDEN_KEY"\ntpm = 3000')
    pool = parse_config(tomllib.loads(text), "azeval.toml").targets["gpt4o"]
    assert (pool.model, pool.model_version, pool.tpm, pool.rpm) == (
        "gpt-4o",
        "2024-08-06",
        4000,
        24,
    )
    assert [m.name for m in pool.members] == ["east", "sweden"]


# --- running ------------------------------------------------------------------------------


def test_a_pool_runs_as_one_target_and_records_the_member(project, east, sweden):
    """Every case runs once on the pool (its members are not run on their own), both
    members answer, each turn names the member that answered, and run.json has one
    target with each member's scheduling."""
    assert azeval("run", "suites") == 0
    run_dir, meta, results = the_run(project)
    assert {r["target"] for r in results} == {"gpt4o"} and len(results) == 16
    members = [r["turns"][0]["member"] for r in results]
    assert set(members) == {"east", "sweden"}
    assert members.count("east") == answered(east) and members.count("sweden") == answered(sweden)
    assert answered(east) + answered(sweden) == 16
    assert [t["name"] for t in meta["targets"]] == ["gpt4o"]
    assert [m["name"] for m in meta["targets"][0]["pool"]] == ["east", "sweden"]
    pooled = meta["scheduler"]["gpt4o"]["members"]
    assert pooled["east"]["answered"] == answered(east) and pooled["east"]["gone"] is None
    assert list(meta["summary"]["targets"]) == ["gpt4o"]
    assert meta["summary"]["targets"]["gpt4o"]["passed"] == 16
    report = (run_dir / "report.html").read_text()
    assert "gpt4o" in report
    assert "answered by pool member east" in report and "answered by pool member sweden" in report


def test_requests_go_to_the_member_with_the_most_quota_left(project, write, east, sweden):
    """Sent one at a time (both members idle), requests go where the larger share of the
    quota is left: east has a tenth of sweden's TPM, so sweden takes most, east some."""
    import tomllib

    text = CONFIG.replace('api_key_env = "EAST_KEY"', 'api_key_env = "EAST_KEY"\ntpm = 2000')
    text = text.replace('api_key_env = "SWEDEN_KEY"', 'api_key_env = "SWEDEN_KEY"\ntpm = 20000')
    config = parse_config(tomllib.loads(text), "azeval.toml").targets["gpt4o"].resolved()
    body = {"messages": [{"role": "user", "content": "The capital of France?"}], "max_tokens": 10}

    async def send_one_at_a_time() -> list[str | None]:
        pool = await open_pool(config, RunOptions())
        try:
            return [(await pool.complete(body, timeout=10)).member for _ in range(24)]
        finally:
            await pool.aclose()

    members = asyncio.run(send_one_at_a_time())
    assert members.count("sweden") > 2 * members.count("east") > 0
    assert (answered(east), answered(sweden)) == (members.count("east"), members.count("sweden"))


def test_a_429_on_one_member_moves_the_request_to_the_other(project, monkeypatch, sweden):
    """east answers its first requests 429 (Retry-After 1 s): each moves to sweden at once
    (no case backs off or counts a 429), and east's own scheduler records the 429s."""
    with fake("east", EAST_KEY, faults=(Fault("429", first=3, retry_after=1.0),)) as east:
        monkeypatch.setenv("EAST_ENDPOINT", east.endpoint)
        assert azeval("run", "suites") == 0
        _, meta, results = the_run(project)
        assert east.count(429) >= 1
    assert all(r["verdict"] == "pass" for r in results)
    assert all(r["rate_limited"] == 0 and r["waited_s"] == 0 for r in results)
    pooled = meta["scheduler"]["gpt4o"]["members"]
    assert pooled["east"]["rate_limited"] == east.count(429)
    assert pooled["east"]["moved_on"] == east.count(429)
    assert meta["scheduler"]["gpt4o"]["rate_limited"] == 0  # the pool was never paused
    assert answered(sweden) >= 3


def test_a_dead_member_is_dropped_and_the_others_go_on(project, monkeypatch, east, sweden, capsys):
    """east refuses the key (401): it costs one request, sweden answers every case, the
    run passes, and the gate says the member was dropped."""
    monkeypatch.setenv("EAST_KEY", "sk-wrong-key-000000000")
    assert azeval("run", "suites") == 0
    _, meta, results = the_run(project)
    assert all(r["verdict"] == "pass" for r in results)
    assert all(r["turns"][0]["member"] == "sweden" for r in results)
    assert len(east.requests) == 1 and east.count(401) == 1
    gone = meta["scheduler"]["gpt4o"]["members"]["east"]["gone"]
    assert gone.startswith("auth (HTTP 401)")
    assert "dead_targets" not in meta
    out = capsys.readouterr().out
    assert "pool 'gpt4o': member 'east' was dropped: auth (HTTP 401)" in out
    assert "sk-wrong-key" not in out


def test_a_pool_whose_every_member_refuses_is_a_dead_target(project, monkeypatch, east, sweden):
    """Both members refuse the key: one request each, the pool is dead, its cases are not
    sent, and the run exits 3."""
    monkeypatch.setenv("EAST_KEY", "sk-wrong-key-000000000")
    monkeypatch.setenv("SWEDEN_KEY", "sk-wrong-key-111111111")
    assert azeval("run", "suites") == 3
    _, meta, results = the_run(project)
    assert len(east.requests) == 1 and len(sweden.requests) == 1
    assert "every member of pool 'gpt4o' is gone" in meta["dead_targets"]["gpt4o"]
    assert all(r["verdict"] == "error" for r in results)
    assert sum(r["error"]["kind"] == "target_unavailable" for r in results) >= 15


def test_an_unreachable_member_is_dropped(project, monkeypatch, sweden):
    """east's endpoint refuses connections: after max_retries + 1 requests without an
    answer it is dropped, and every case passes on sweden."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("EAST_ENDPOINT", f"http://127.0.0.1:{port}")
    assert azeval("run", "suites") == 0
    _, meta, results = the_run(project)
    assert all(r["verdict"] == "pass" for r in results)
    assert meta["scheduler"]["gpt4o"]["members"]["east"]["gone"].startswith("unreachable")


def test_a_pool_works_with_the_cache_and_replay(project, monkeypatch, east, sweden):
    """A second --cache run of a pool sends nothing; --replay needs no key at all."""
    assert azeval("run", "suites", "--cache") == 0
    sent = len(east.requests) + len(sweden.requests)
    assert sent == 16
    assert azeval("run", "suites", "--cache") == 0
    assert len(east.requests) + len(sweden.requests) == sent
    _, _, results = the_run(project)
    assert all(r["cached"] for r in results)
    monkeypatch.delenv("EAST_KEY")
    monkeypatch.delenv("SWEDEN_KEY")
    assert azeval("run", "suites", "--replay") == 0
    assert len(east.requests) + len(sweden.requests) == sent


def test_a_pool_run_resumes_only_what_is_missing(project, east, sweden):
    """A pool's run cut short (half its journal, status interrupted) resumes with only the
    missing cases sent, and ends with every case, each naming its member."""
    assert azeval("run", "suites") == 0
    run_dir, meta, results = the_run(project)
    kept = (run_dir / "results.jsonl").read_text().splitlines()[:6]
    (run_dir / "results.jsonl").write_text("\n".join(kept) + "\n")
    meta["status"] = "interrupted"
    (run_dir / "run.json").write_text(json.dumps(meta))
    before = answered(east) + answered(sweden)
    assert azeval("run", "--resume", str(run_dir)) == 0
    assert answered(east) + answered(sweden) == before + 10
    _, meta, results = the_run(project)
    assert meta["status"] == "complete" and len(results) == 16
    assert all(r["turns"][0]["member"] in ("east", "sweden") for r in results)


def test_plan_and_validate_take_a_pool_without_keys_or_endpoints(project, monkeypatch, capsys):
    """azeval plan prices and times the pool at its members' model and quota together, and
    validate checks it, with no key or endpoint set (as in a fork's pull request)."""
    for name in ("EAST_ENDPOINT", "SWEDEN_ENDPOINT", "EAST_KEY", "SWEDEN_KEY"):
        monkeypatch.delenv(name)
    assert azeval("plan", "suites", "-t", "gpt4o") == 0
    out = capsys.readouterr().out
    assert "gpt4o" in out and "gpt-4o" in out
    assert azeval("validate", "suites", "-t", "gpt4o") == 0


def test_when_every_member_refuses_with_429_the_case_backs_off_and_passes(project, monkeypatch):
    """Both members answer their first requests 429: once each has refused a request, the
    case waits the shortest Retry-After left (counted on its record) and then passes."""
    faults = (Fault("429", first=2, retry_after=0.3),)
    with (
        fake("east", EAST_KEY, faults=faults) as east,
        fake("sweden", SWEDEN_KEY, faults=faults) as sweden,
    ):
        monkeypatch.setenv("EAST_ENDPOINT", east.endpoint)
        monkeypatch.setenv("SWEDEN_ENDPOINT", sweden.endpoint)
        assert azeval("run", "suites", "-j", "1") == 0
        _, meta, results = the_run(project)
        limited = east.count(429) + sweden.count(429)
    assert limited == 4
    assert all(r["verdict"] == "pass" for r in results)
    backed_off = [r for r in results if r["rate_limited"]]
    # Each back-off waits at most what is left of a member's 0.3 s Retry-After.
    waits = [(r["waited_s"], r["rate_limited"]) for r in backed_off]
    assert waits and all(0 < waited <= 0.3 * times for waited, times in waits), waits
    assert meta["scheduler"]["gpt4o"]["rate_limited"] == sum(r["rate_limited"] for r in results)


def test_a_member_named_beside_its_pool_is_warned_about(project, capsys):
    """-t gpt4o -t east runs east twice over (on its own and in the pool): said up front."""
    assert azeval("run", "suites", "-t", "gpt4o", "-t", "east") == 0
    err = capsys.readouterr().err
    assert "Warning: target 'east' runs on its own and as a member of pool 'gpt4o'" in err


def test_a_429_without_retry_after_still_moves_the_request_on(project, monkeypatch, sweden):
    """A 429 with no Retry-After pauses nothing: the request still goes to the other member
    at once instead of back to the one that refused it."""
    faults = (Fault("429", first=3, retry_after=None),)
    with fake("east", EAST_KEY, faults=faults) as east:
        monkeypatch.setenv("EAST_ENDPOINT", east.endpoint)
        assert azeval("run", "suites") == 0
        _, _, results = the_run(project)
        assert east.count(429) == 3 == len(east.requests) - answered(east)
    assert all(r["verdict"] == "pass" and r["rate_limited"] == 0 for r in results)
