"""azeval cache info|clear|prune, and the cache settings in azeval.toml."""

from __future__ import annotations

import json
import sqlite3

import pytest

from harness.config import parse_config
from harness.errors import ConfigError
from harness.runner import cache as cache_module
from harness.runner.cache import ResponseCache, TargetIdentity
from harness.targets.base import Completion, TargetInfo
from tests.conftest import azeval

INFO = TargetInfo(
    name="gpt4o",
    kind="azure",
    model="gpt-4o",
    model_version="2024-08-06",
    deployment="gpt-4o",
    api_version="2024-10-21",
    endpoint="https://res.openai.azure.com",
)


def fill(path, count: int, model: str = "gpt-4o-2024-08-06", first: int = 0) -> None:
    with ResponseCache.open(path) as store:
        for n in range(first, first + count):
            body = {"model": model, "choices": [{"message": {"content": f"answer {n}"}}]}
            store.put(
                TargetIdentity.of(INFO),
                {"messages": [{"role": "user", "content": "q"}]},
                n,
                Completion.from_body(body, latency_ms=10.0),
                target_name="gpt4o",
                run_id="run-1",
            )


def test_info_shows_entries_by_target_and_model_version(tmp_path, monkeypatch, capsys):
    """cache info: the file, its answers and size, a line per target identity and model."""
    monkeypatch.chdir(tmp_path)
    fill(tmp_path / ".azeval" / "cache.sqlite", 3)
    fill(tmp_path / ".azeval" / "cache.sqlite", 2, model="gpt-4o-2024-11-20", first=10)
    assert azeval("cache", "info") == 0
    out = capsys.readouterr().out
    assert ".azeval/cache.sqlite: 5 answer(s)" in out
    assert (
        "gpt4o: gpt-4o 2024-08-06 (azure res.openai.azure.com deployment gpt-4o "
        "api-version 2024-10-21), reported model gpt-4o-2024-08-06: 3 answer(s)"
    ) in out
    assert "reported model gpt-4o-2024-11-20: 2 answer(s)" in out
    assert azeval("cache", "info", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["entries"] == 5
    assert {t["reported_model"]: t["entries"] for t in data["by_target"]} == {
        "gpt-4o-2024-08-06": 3,
        "gpt-4o-2024-11-20": 2,
    }


def test_info_without_a_cache_creates_nothing(tmp_path, monkeypatch, capsys):
    """Looking at a cache that is not there says so and leaves no file behind."""
    monkeypatch.chdir(tmp_path)
    assert azeval("cache", "info") == 0
    assert "no cache" in capsys.readouterr().out
    assert not (tmp_path / ".azeval").exists()


def test_the_path_comes_from_settings_or_the_option(tmp_path, monkeypatch, capsys, write):
    """[settings] cache_path is where the commands look; --cache-path beats it."""
    monkeypatch.chdir(tmp_path)
    write("azeval.toml", '[settings]\ncache_path = "shared/answers.sqlite"\n')
    fill(tmp_path / "shared" / "answers.sqlite", 2)
    fill(tmp_path / "other.sqlite", 1)
    assert azeval("cache", "info") == 0
    assert "shared/answers.sqlite: 2 answer(s)" in capsys.readouterr().out
    assert azeval("cache", "info", "--cache-path", "other.sqlite") == 0
    assert "other.sqlite: 1 answer(s)" in capsys.readouterr().out


def test_clear_removes_every_answer(tmp_path, monkeypatch, capsys):
    """cache clear empties the file and says how many answers went."""
    monkeypatch.chdir(tmp_path)
    fill(tmp_path / ".azeval" / "cache.sqlite", 4)
    assert azeval("cache", "clear") == 0
    assert "removed 4 answer(s)" in capsys.readouterr().out
    with ResponseCache.open(tmp_path / ".azeval" / "cache.sqlite") as store:
        assert store.info().entries == 0


def test_prune_older_than(tmp_path, monkeypatch, capsys):
    """cache prune --older-than 30d removes the old answers and keeps the recent ones."""
    monkeypatch.chdir(tmp_path)
    now = cache_module.time.time()
    monkeypatch.setattr(cache_module.time, "time", lambda: now - 45 * 86400)
    fill(tmp_path / ".azeval" / "cache.sqlite", 3)
    monkeypatch.setattr(cache_module.time, "time", lambda: now)
    fill(tmp_path / ".azeval" / "cache.sqlite", 2, first=10)
    assert azeval("cache", "prune", "--older-than", "30d") == 0
    assert "removed 3 answer(s), 2 left" in capsys.readouterr().out
    assert azeval("cache", "prune", "--older-than", "soon") == 2
    assert "--older-than: 'soon' is not an age" in capsys.readouterr().err


def test_a_foreign_file_is_exit_2_naming_it(tmp_path, monkeypatch, capsys):
    """cache info and clear on another program's database: exit 2 naming it, file kept."""
    monkeypatch.chdir(tmp_path)
    db = sqlite3.connect(tmp_path / "notes.db")
    db.execute("CREATE TABLE notes (text TEXT)")
    db.execute("INSERT INTO notes VALUES ('keep me')")
    db.commit()
    db.close()
    for command in ("info", "clear", "prune"):
        assert azeval("cache", command, "--cache-path", "notes.db") == 2
        err = capsys.readouterr().err
        assert "Error: notes.db: is not an azeval response cache (it holds tables: notes)" in err
        assert "Traceback" not in err
    db = sqlite3.connect(tmp_path / "notes.db")
    assert db.execute("SELECT text FROM notes").fetchall() == [("keep me",)]
    db.close()


def test_cache_settings_are_checked() -> None:
    """[settings] cache, cache_mode, cache_path and cache_ttl are read and checked."""
    settings = {"cache": True, "cache_mode": "read", "cache_path": "c.sqlite", "cache_ttl": "7d"}
    assert parse_config({"settings": settings}, "azeval.toml").settings == settings
    for key, bad, message in (
        ("cache", "yes", "must be true or false"),
        ("cache_mode", "rw", "must be one of readwrite, read, write, refresh, off"),
        ("cache_ttl", "7", "must be an age"),
        ("cache_ttl", 7, "must be an age"),
    ):
        with pytest.raises(ConfigError, match=f"azeval.toml: settings.{key}: {message}"):
            parse_config({"settings": {key: bad}}, "azeval.toml")
