"""The response cache file: keys, modes of trust (TTL, retired models), bad files, processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from harness.errors import InputError
from harness.redact import Redactor
from harness.runner import cache as cache_module
from harness.runner.cache import (
    CacheError,
    ResponseCache,
    TargetIdentity,
    entry_key,
    parse_age,
)
from harness.targets.base import Completion, TargetInfo

INFO = TargetInfo(
    name="gpt35",
    kind="azure",
    model="gpt-35-turbo",
    model_version="0125",
    deployment="gpt-35-turbo",
    api_version="2024-10-21",
    endpoint="https://res.openai.azure.com/some/gateway/path",
)
IDENTITY = TargetIdentity.of(INFO)
BODY: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def answer(text: str = "hello", model: str = "gpt-35-turbo", latency: float = 812.5) -> Completion:
    body = {
        "id": "chatcmpl-1",
        "model": model,
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": text}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    return Completion.from_body(body, latency_ms=latency)


def store(cache: ResponseCache, body: dict[str, Any] = BODY, repeat: int = 0, **kw: Any) -> None:
    cache.put(IDENTITY, body, repeat, answer(**kw), target_name="gpt35", run_id="run-1")


def test_identity_is_the_target_not_its_name_nor_its_endpoint_path() -> None:
    """The identity keeps kind, host, deployment, api-version, model and version; the
    target's name and the endpoint's path or userinfo are not part of it."""
    other = TargetInfo(
        name="renamed",
        kind="azure",
        model="gpt-35-turbo",
        model_version="0125",
        deployment="gpt-35-turbo",
        api_version="2024-10-21",
        endpoint="https://user:secret@res.openai.azure.com/",
    )
    assert TargetIdentity.of(other) == IDENTITY
    assert IDENTITY.host == "res.openai.azure.com"
    assert "secret" not in TargetIdentity.of(other).text
    local = TargetIdentity.of(
        TargetInfo(name="l", kind="openai", model="m", endpoint="http://127.0.0.1:8080/v1")
    )
    assert local.host == "127.0.0.1:8080"


def test_a_stored_answer_comes_back_with_where_it_came_from(tmp_path: Path) -> None:
    """get returns the body, the original latency, the reported model and the run."""
    with ResponseCache.open(tmp_path / "c.sqlite") as cache:
        store(cache)
        hit = cache.get(IDENTITY, BODY, 0)
    assert hit is not None
    assert hit.body["choices"][0]["message"]["content"] == "hello"
    assert hit.latency_ms == 812.5
    assert hit.reported_model == "gpt-35-turbo"
    assert hit.system_fingerprint == "fp_1"
    assert hit.run_id == "run-1"
    served = hit.completion()
    assert served.latency_ms == 812.5
    assert served.cached is not None and served.cached.to_json()["cached"] is True
    assert served.cached.run_id == "run-1"


def test_the_key_is_the_exact_body_the_repeat_and_the_identity(tmp_path: Path) -> None:
    """Key order does not matter; any other change of body, repeat or identity is a miss."""
    with ResponseCache.open(tmp_path / "c.sqlite") as cache:
        store(cache)
        reordered = {"temperature": 0, "messages": [{"content": "hi", "role": "user"}]}
        assert cache.get(IDENTITY, reordered, 0) is not None
        assert cache.get(IDENTITY, {**BODY, "temperature": 0.5}, 0) is None
        assert (
            cache.get(IDENTITY, {**BODY, "messages": [{"role": "user", "content": "hi!"}]}, 0)
            is None
        )
        assert cache.get(IDENTITY, BODY, 1) is None
        newer = TargetIdentity(**{**IDENTITY.to_json(), "model_version": "1106"})
        assert cache.get(newer, BODY, 0) is None


def test_each_repeat_keeps_its_own_answer(tmp_path: Path) -> None:
    """--repeat 3 stores three answers and gets the same three back."""
    with ResponseCache.open(tmp_path / "c.sqlite") as cache:
        for n in range(3):
            store(cache, repeat=n, text=f"answer {n}")
        got = [cache.get(IDENTITY, BODY, n) for n in range(3)]
    assert [g.body["choices"][0]["message"]["content"] for g in got if g] == [
        "answer 0",
        "answer 1",
        "answer 2",
    ]
    assert len({entry_key(IDENTITY, BODY, n) for n in range(3)}) == 3


def test_replace_false_keeps_the_first_answer(tmp_path: Path) -> None:
    """put(replace=False), the write mode, keeps an entry already there; replace=True swaps."""
    with ResponseCache.open(tmp_path / "c.sqlite") as cache:
        store(cache, text="first")
        cache.put(
            IDENTITY, BODY, 0, answer("second"), target_name="gpt35", run_id="r2", replace=False
        )
        first = cache.get(IDENTITY, BODY, 0)
        cache.put(IDENTITY, BODY, 0, answer("third"), target_name="gpt35", run_id="r3")
        third = cache.get(IDENTITY, BODY, 0)
    assert first is not None and first.body["choices"][0]["message"]["content"] == "first"
    assert third is not None and third.run_id == "r3"


def test_an_entry_older_than_the_ttl_is_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ttl_s, an answer stored longer ago is a miss; a younger one is served."""
    with ResponseCache.open(tmp_path / "c.sqlite") as cache:
        now = cache_module.time.time()
        monkeypatch.setattr(cache_module.time, "time", lambda: now - 3 * 86400)
        store(cache)
        monkeypatch.setattr(cache_module.time, "time", lambda: now)
        assert cache.get(IDENTITY, BODY, 0, ttl_s=2 * 86400) is None
        assert cache.get(IDENTITY, BODY, 0, ttl_s=4 * 86400) is not None
        assert cache.get(IDENTITY, BODY, 0) is not None


def test_retire_stops_serving_the_answers_of_another_model(tmp_path: Path) -> None:
    """A deployment now reporting a new model retires the old model's entries, only those."""
    with ResponseCache.open(tmp_path / "c.sqlite") as cache:
        store(cache, model="gpt-4o-2024-08-06")
        store(cache, body={**BODY, "seed": 1}, model="gpt-4o-2024-11-20")
        assert cache.reported_models(IDENTITY) == {"gpt-4o-2024-08-06", "gpt-4o-2024-11-20"}
        assert cache.retire(IDENTITY, "gpt-4o-2024-11-20") == 1
        assert cache.get(IDENTITY, BODY, 0) is None
        assert cache.get(IDENTITY, {**BODY, "seed": 1}, 0) is not None
        assert cache.reported_models(IDENTITY) == {"gpt-4o-2024-11-20"}
        info = cache.info()
        assert sum(t.retired for t in info.by_target) == 1
        # prune removes the retired entry whatever its age.
        assert cache.prune(None) == 1
        assert cache.info().entries == 1


def test_info_counts_by_target_and_model(tmp_path: Path) -> None:
    """info: entries, size on disk, and one line per target identity and reported model."""
    with ResponseCache.open(tmp_path / "c.sqlite") as cache:
        store(cache)
        store(cache, repeat=1)
        store(cache, repeat=2, model="gpt-35-turbo-0613")
        info = cache.info()
    assert info.entries == 3
    assert info.size_bytes > 0
    lines = {(t.target_name, t.reported_model, t.entries) for t in info.by_target}
    assert lines == {("gpt35", "gpt-35-turbo", 2), ("gpt35", "gpt-35-turbo-0613", 1)}
    assert info.to_json()["by_target"][0]["model_version"] == "0125"


def test_clear_and_prune(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """prune removes entries older than the age given; clear removes all of them."""
    with ResponseCache.open(tmp_path / "c.sqlite") as cache:
        now = cache_module.time.time()
        monkeypatch.setattr(cache_module.time, "time", lambda: now - 40 * 86400)
        store(cache, repeat=0)
        monkeypatch.setattr(cache_module.time, "time", lambda: now)
        store(cache, repeat=1)
        store(cache, repeat=2)
        assert cache.prune(30 * 86400) == 1
        assert cache.get(IDENTITY, BODY, 0) is None
        assert cache.clear() == 2
        assert cache.info().entries == 0


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    """The cache runs in WAL mode, so readers and a writer in other processes do not block."""
    ResponseCache.open(tmp_path / "c.sqlite").close()
    db = sqlite3.connect(tmp_path / "c.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_a_file_that_is_not_a_database_is_an_input_error_naming_it(tmp_path: Path) -> None:
    """Random bytes where the cache should be: exit 2, the file named, the file untouched."""
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"not a database at all\n" * 200)
    with pytest.raises(CacheError) as caught:
        ResponseCache.open(path)
    assert isinstance(caught.value, InputError) and caught.value.exit_code == 2
    assert str(path) in str(caught.value)
    assert path.read_bytes() == b"not a database at all\n" * 200


def test_a_foreign_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    """Another program's database is not an azeval cache: named, exit 2, not changed."""
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(
        CacheError, match=r"other\.sqlite: is not an azeval response cache.*invoices"
    ):
        ResponseCache.open(path)
    assert path.read_bytes() == before
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    db.close()


def test_a_damaged_cache_is_an_error_never_a_wrong_answer(tmp_path: Path) -> None:
    """Overwritten pages in the middle of the file: opening it is a CacheError naming it."""
    path = tmp_path / "c.sqlite"
    with ResponseCache.open(path) as cache:
        for n in range(200):
            store(cache, repeat=n, text="x" * 500)
    raw = bytearray(path.read_bytes())
    assert len(raw) > 40_000
    raw[8192:40_000] = b"\xff" * (40_000 - 8192)
    path.write_bytes(bytes(raw))
    with pytest.raises(CacheError, match=r"c\.sqlite: .*(damaged|malformed)"):
        cache = ResponseCache.open(path)
        for n in range(200):
            cache.get(IDENTITY, BODY, n)


def test_an_answer_changed_in_the_file_is_not_served(tmp_path: Path) -> None:
    """A stored response that no longer matches its checksum is an error, not served."""
    path = tmp_path / "c.sqlite"
    with ResponseCache.open(path) as cache:
        store(cache)
    db = sqlite3.connect(path)
    db.execute("UPDATE answers SET response = replace(response, 'hello', 'HACKED')")
    db.commit()
    db.close()
    with ResponseCache.open(path) as cache, pytest.raises(CacheError, match="damaged"):
        cache.get(IDENTITY, BODY, 0)


def test_an_older_format_is_dropped_and_rebuilt_saying_so(tmp_path: Path) -> None:
    """A cache file of an older format version: its entries are ignored, the file rebuilt,
    and a notice says so; the rebuilt file works."""
    path = tmp_path / "c.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE azeval_cache_meta (name TEXT PRIMARY KEY, value TEXT)")
    db.execute(
        "INSERT INTO azeval_cache_meta VALUES ('format', 'azeval-response-cache'), ('version', '0')"
    )
    db.execute("CREATE TABLE answers (key TEXT, body TEXT)")
    db.execute("INSERT INTO answers VALUES ('k', 'old')")
    db.commit()
    db.close()
    with ResponseCache.open(path) as cache:
        assert len(cache.notices) == 1
        assert "older format (version 0)" in cache.notices[0] and str(path) in cache.notices[0]
        assert cache.info().entries == 0
        store(cache)
        assert cache.get(IDENTITY, BODY, 0) is not None
    with ResponseCache.open(path) as again:
        assert again.notices == ()


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    """A cache written by a newer azeval is not rebuilt (that would lose its entries): exit 2."""
    path = tmp_path / "c.sqlite"
    ResponseCache.open(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE azeval_cache_meta SET value = '99' WHERE name = 'version'")
    db.commit()
    db.close()
    with pytest.raises(CacheError, match="newer azeval"):
        ResponseCache.open(path)


def test_secrets_in_an_answer_are_scrubbed_before_storing(tmp_path: Path) -> None:
    """A planted key that comes back in a reply is masked in the file (and its WAL)."""
    planted = "sk-planted-0123456789abcdef"
    path = tmp_path / "c.sqlite"
    with ResponseCache.open(path, redact=Redactor([planted])) as cache:
        store(cache, text=f"your key is {planted}")
        hit = cache.get(IDENTITY, BODY, 0)
        assert hit is not None and "***" in hit.body["choices"][0]["message"]["content"]
        for file in tmp_path.iterdir():
            assert planted.encode() not in file.read_bytes(), file


def test_parse_age() -> None:
    """Ages read as a user writes them; anything else names where it was written."""
    assert parse_age("7d", "--cache-ttl") == 7 * 86400
    assert parse_age("90s", "x") == 90
    assert parse_age("1.5h", "x") == 5400
    assert parse_age("2w", "x") == 14 * 86400
    for bad in ("7", "d", "0d", "-1d", "7 days"):
        with pytest.raises(InputError, match=r"--cache-ttl: .* is not an age"):
            parse_age(bad, "--cache-ttl")


def _worker(args: tuple[str, int, int]) -> int:
    path, worker, count = args
    seen = 0
    with ResponseCache.open(Path(path)) as cache:
        for n in range(count):
            cache.put(
                IDENTITY,
                BODY,
                worker * 1000 + n,
                answer(f"{worker}/{n}"),
                target_name="t",
                run_id=f"w{worker}",
            )
            # Read what every worker has written so far, while the others write.
            for other in range(4):
                if cache.get(IDENTITY, BODY, other * 1000 + n // 2) is not None:
                    seen += 1
    return seen


def test_several_processes_share_one_cache(tmp_path: Path) -> None:
    """Four processes write and read the same file at once: no error, no lost entry, and
    each answer reads back as its writer stored it."""
    path = tmp_path / "shared.sqlite"
    count = 40
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        seen = pool.map(_worker, [(str(path), w, count) for w in range(4)])
    assert all(s >= count for s in seen)  # at least its own entries
    with ResponseCache.open(path) as cache:
        assert cache.info().entries == 4 * count
        for worker in range(4):
            for n in range(count):
                hit = cache.get(IDENTITY, BODY, worker * 1000 + n)
                assert hit is not None
                assert hit.body["choices"][0]["message"]["content"] == f"{worker}/{n}"
                assert hit.run_id == f"w{worker}"
