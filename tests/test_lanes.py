"""Work items run a few at a time per target: memory stays flat however long the run, and a
slow target never holds up another's items."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness import api
from harness.runner.engine import RunOptions
from harness.runner.lanes import SPARE_WORKERS, start_lanes
from harness.testing import Deployment, FakeAzure
from tests.test_faults import CONFIG, KEY


def items(target: str, count: int) -> list[Any]:
    return [SimpleNamespace(target=target, n=n) for n in range(count)]


def lanes_of(work: list[Any]) -> dict[str, Iterator[Any]]:
    """Each target's items in order, an iterator per target (as the engine draws them)."""
    targets = dict.fromkeys(item.target for item in work)
    return {t: iter([item for item in work if item.target == t]) for t in targets}


async def test_each_lane_runs_its_items_in_order_within_its_width() -> None:
    """A lane never has more than width + SPARE_WORKERS items under way, starts them in
    order, and runs every one exactly once."""
    running = {"a": 0, "b": 0}
    most = {"a": 0, "b": 0}
    started: list[tuple[str, int]] = []

    async def one(item: Any) -> None:
        started.append((item.target, item.n))
        running[item.target] += 1
        most[item.target] = max(most[item.target], running[item.target])
        await asyncio.sleep(0.001)
        running[item.target] -= 1

    work = [x for pair in zip(items("a", 60), items("b", 60), strict=True) for x in pair]
    work += items("a", 100)[60:]
    await asyncio.gather(*start_lanes(lanes_of(work), {"a": 2, "b": 5}.__getitem__, one))
    assert most == {"a": 2 + SPARE_WORKERS, "b": 5 + SPARE_WORKERS}
    assert [n for t, n in started if t == "a"] == list(range(100))
    assert [n for t, n in started if t == "b"] == list(range(60))


async def test_a_stuck_target_does_not_hold_up_another() -> None:
    """Every item of a target that answers is run while another target's lane hangs."""
    done: list[str] = []
    stuck = asyncio.Event()

    async def one(item: Any) -> None:
        if item.target == "slow":
            await stuck.wait()
        done.append(item.target)

    work = [x for pair in zip(items("slow", 50), items("fast", 50), strict=True) for x in pair]
    tasks = start_lanes(lanes_of(work), lambda _target: 1, one)
    for _ in range(200):
        if done.count("fast") == 50:
            break
        await asyncio.sleep(0.005)
    assert done.count("fast") == 50 and "slow" not in done
    stuck.set()
    await asyncio.gather(*tasks)
    assert done.count("slow") == 50


def test_a_run_keeps_few_tasks_alive_however_many_cases(tmp_path: Path, monkeypatch) -> None:
    """300 cases at -j 2: the tasks alive during the run stay a handful (a task per case
    held them all at once), and every case is recorded once."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    lines = ["suite: lanes", "cases:"]
    lines += [
        f"  - {{id: c{n}, prompt: say ok {n}, expect: {{icontains: ok}}}}" for n in range(300)
    ]
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "lanes.yaml").write_text("\n".join(lines) + "\n")
    alive: list[int] = []
    with FakeAzure([Deployment("gpt35")], api_keys=(KEY,), record=False) as server:
        (tmp_path / "azeval.toml").write_text(CONFIG.format(endpoint=server.endpoint))
        prepared = api.prepare(["suites"], ["gpt35"])
        options = RunOptions(concurrency=2, reports_dir=tmp_path / "r")
        outcome = api.run(prepared, options, progress=lambda _r: alive.append(_tasks()))
    results = [json.loads(x) for x in (outcome.run.path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["case"] for r in results) == sorted(f"c{n}" for n in range(300))
    assert max(alive) <= 2 + SPARE_WORKERS + 10, max(alive)


def _tasks() -> int:
    return len(asyncio.all_tasks())
