"""How a run uses the cache: modes, options over settings, replay misses, model drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.runner.cache import ResponseCache
from harness.runner.cached import CachePolicy, RunCache
from harness.targets.base import Completion, TargetError, TargetInfo

INFO = TargetInfo(
    name="gpt4o",
    kind="azure",
    model="gpt-4o",
    deployment="gpt-4o",
    api_version="2024-10-21",
    endpoint="https://res.openai.azure.com",
)
BODY = {"messages": [{"role": "user", "content": "hi"}]}


def live(text: str, model: str = "gpt-4o-2024-08-06") -> Completion:
    body = {"model": model, "choices": [{"message": {"content": text}}]}
    return Completion.from_body(body, latency_ms=5.0)


def run_cache(tmp_path: Path, mode: str, **kw) -> RunCache:
    policy = CachePolicy(mode=mode, path=tmp_path / "c.sqlite", **kw)  # type: ignore[arg-type]
    cache = RunCache.open(policy, "run-x", lambda text: text)
    assert cache is not None
    return cache


def text_of(hit) -> str:
    return hit.body["choices"][0]["message"]["content"]


def test_options_beat_settings_and_cache_means_readwrite() -> None:
    """--cache is readwrite; --cache-mode beats it; settings apply when no option is given."""
    assert CachePolicy.resolve({}).mode == "off"
    assert CachePolicy.resolve({}, cache=True).mode == "readwrite"
    assert CachePolicy.resolve({"cache": True}).mode == "readwrite"
    assert CachePolicy.resolve({"cache": True, "cache_mode": "read"}).mode == "read"
    assert CachePolicy.resolve({"cache_mode": "read"}, mode="refresh").mode == "refresh"
    assert CachePolicy.resolve({"cache": True}, mode="off").mode == "off"
    policy = CachePolicy.resolve({"cache_path": "x.sqlite", "cache_ttl": "2d"}, cache=True)
    assert (policy.path, policy.ttl_s) == (Path("x.sqlite"), 2 * 86400)
    assert CachePolicy.resolve({"cache_ttl": "2d"}, cache=True, ttl="1h").ttl_s == 3600
    with pytest.raises(InputError, match="--cache-ttl"):
        CachePolicy.resolve({}, cache=True, ttl="soon")
    # An age or a file for a cache that is off says so instead of being ignored.
    with pytest.raises(InputError, match="--cache-ttl goes with --cache"):
        CachePolicy.resolve({}, ttl="7d")
    with pytest.raises(InputError, match="--cache-path goes with --cache"):
        CachePolicy.resolve({"cache": True}, mode="off", path=Path("x.sqlite"))


def test_replay_reads_only_and_refuses_a_writing_mode() -> None:
    """--replay is read mode; with --cache-mode write, refresh or off it is exit 2."""
    assert CachePolicy.resolve({}, replay=True).mode == "read"
    assert CachePolicy.resolve({"cache": True}, replay=True, cache=True).mode == "read"
    for mode in ("write", "refresh", "off"):
        with pytest.raises(InputError, match=f"--replay .* --cache-mode {mode}") as caught:
            CachePolicy.resolve({}, replay=True, mode=mode)
        assert caught.value.exit_code == 2


def test_off_opens_no_file(tmp_path: Path) -> None:
    """Mode off: no cache object and no file."""
    assert RunCache.open(CachePolicy(path=tmp_path / "c.sqlite"), "r", str) is None
    assert not (tmp_path / "c.sqlite").exists()


def test_readwrite_serves_what_it_stored(tmp_path: Path) -> None:
    """readwrite: a miss, then the answer kept, then a hit from the run that stored it."""
    cache = run_cache(tmp_path, "readwrite").for_target(INFO)
    assert cache.find(BODY, 0) is None
    cache.keep(BODY, 0, live("one"))
    hit = cache.find(BODY, 0)
    assert hit is not None and text_of(hit) == "one" and hit.run_id == "run-x"
    served = cache.lookup(BODY, 0)
    assert served is not None and served.cached is not None
    assert (served.cached.run_id, served.latency_ms) == ("run-x", 5.0)
    assert served.response.content == "one"


def test_read_serves_but_never_writes(tmp_path: Path) -> None:
    """read: hits are served, live answers are not stored."""
    run_cache(tmp_path, "readwrite").for_target(INFO).keep(BODY, 0, live("one"))
    cache = run_cache(tmp_path, "read").for_target(INFO)
    cache.keep(BODY, 1, live("two"))
    assert text_of(cache.find(BODY, 0)) == "one"
    assert cache.find(BODY, 1) is None


def test_write_and_refresh_never_serve(tmp_path: Path) -> None:
    """write stores only answers not stored yet; refresh replaces them; neither serves."""
    run_cache(tmp_path, "readwrite").for_target(INFO).keep(BODY, 0, live("old"))
    write = run_cache(tmp_path, "write").for_target(INFO)
    assert write.find(BODY, 0) is None
    write.keep(BODY, 0, live("new"))
    write.keep(BODY, 1, live("other"))
    with ResponseCache.open(tmp_path / "c.sqlite") as store:
        assert text_of(store.get(write.identity, BODY, 0)) == "old"
        assert text_of(store.get(write.identity, BODY, 1)) == "other"
    refresh = run_cache(tmp_path, "refresh").for_target(INFO)
    assert refresh.find(BODY, 0) is None
    refresh.keep(BODY, 0, live("new"))
    with ResponseCache.open(tmp_path / "c.sqlite") as store:
        assert text_of(store.get(refresh.identity, BODY, 0)) == "new"


def test_a_replay_miss_is_not_in_cache(tmp_path: Path) -> None:
    """--replay: a stored answer is served; a miss raises not_in_cache naming the file."""
    run_cache(tmp_path, "readwrite").for_target(INFO).keep(BODY, 0, live("one"))
    cache = run_cache(tmp_path, "read", replay=True).for_target(INFO)
    assert text_of(cache.find(BODY, 0)) == "one"
    with pytest.raises(TargetError) as caught:
        cache.find(BODY, 1)
    assert caught.value.kind == "not_in_cache"
    assert not caught.value.retryable
    assert "c.sqlite" in caught.value.message


def test_a_new_model_retires_the_old_answers_and_says_so(tmp_path: Path) -> None:
    """A live answer from another model: the old entries are retired (not served, in this
    run or later), the drift is noted once, and answers of the new model are served."""
    first = run_cache(tmp_path, "readwrite")
    old = first.for_target(INFO)
    old.keep(BODY, 0, live("from 0806"))
    old.keep(BODY, 1, live("from 0806"))
    assert first.drift == []
    second = run_cache(tmp_path, "readwrite")
    cache = second.for_target(INFO)
    cache.keep({**BODY, "seed": 1}, 0, live("from 1120", model="gpt-4o-2024-11-20"))
    (drift,) = second.drift
    assert (drift.live_model, drift.stored_models, drift.retired) == (
        "gpt-4o-2024-11-20",
        ("gpt-4o-2024-08-06",),
        2,
    )
    assert "target 'gpt4o' now reports model gpt-4o-2024-11-20" in drift.message()
    assert cache.find(BODY, 0) is None
    assert text_of(cache.find({**BODY, "seed": 1}, 0)) == "from 1120"
    cache.keep({**BODY, "seed": 2}, 0, live("again", model="gpt-4o-2024-11-20"))
    assert len(second.drift) == 1
    assert run_cache(tmp_path, "readwrite").for_target(INFO).lookup(BODY, 1) is None


def test_read_mode_stops_serving_a_moved_model_without_touching_the_file(tmp_path: Path) -> None:
    """read: after a live answer of a new model, old answers are not served in this run,
    but the file is left as it was."""
    run_cache(tmp_path, "readwrite").for_target(INFO).keep(BODY, 0, live("old"))
    reading = run_cache(tmp_path, "read")
    cache = reading.for_target(INFO)
    assert cache.find(BODY, 0) is not None
    cache.keep({**BODY, "seed": 1}, 0, live("new", model="gpt-4o-2024-11-20"))
    assert cache.find(BODY, 0) is None
    assert reading.drift[0].retired is None
    assert "not served in this run" in reading.drift[0].message()
    assert run_cache(tmp_path, "read").for_target(INFO).lookup(BODY, 0) is not None
