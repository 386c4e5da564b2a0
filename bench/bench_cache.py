"""The response cache and rescore, against the fake server: requests sent and wall time.

    python bench/bench_cache.py [--cases 1000] [--latency-ms 300] [--rescore-cases 10000]

1. A first run of N cases with ``--cache`` (the fake server answering each request after
   ``--latency-ms``, as a deployment would), then a second run of the same suite: the
   second's requests (expected 0) and its wall time as a ratio of the first's.
2. One case's prompt changed: the requests the third run sends (expected 1).
3. ``rescore`` of a run of M cases (made against the server at zero latency): its wall
   time and the requests it sent (expected 0), with the time of the run it re-scores.

Everything goes through harness.api as the CLI calls it (preflight, run, journal, report).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from harness import api
from harness.runner.cached import CachePolicy
from harness.runner.engine import RunOptions
from harness.testing import Action, Deployment, FakeAzure

KEY = "bench-key-0123456789"
CONFIG = """
[targets.gpt35]
kind = "azure"
endpoint = "{endpoint}"
deployment = "gpt35"
model = "gpt-35-turbo"
model_version = "0125"
"""


def suite_text(cases: int, changed: int | None = None) -> str:
    lines = ["suite: cached", "defaults:", "  params: {max_tokens: 40, temperature: 0}", "cases:"]
    for n in range(cases):
        prompt = f"Please repeat case number {n} back to me."
        if n == changed:
            prompt = f"Please say case number {n} back to me."
        lines += [
            f"  - id: case-{n:05d}",
            f"    prompt: {prompt}",
            f"    expect: {{icontains: 'number {n}'}}",
        ]
    return "\n".join(lines) + "\n"


def timed_run(root: Path, policy: CachePolicy, concurrency: int) -> tuple[float, api.RunOutcome]:
    prepared = api.prepare([root / "suites"], ["gpt35"], root / "azeval.toml")
    options = RunOptions(concurrency=concurrency, reports_dir=root / "reports", cache=policy)
    started = time.perf_counter()
    outcome = api.run(prepared, options)
    elapsed = time.perf_counter() - started
    bad = [r.key for r in outcome.run.results if r.verdict != "pass"]
    assert not bad, f"cases did not pass: {bad[:3]}"
    return elapsed, outcome


def cache_figures(server: FakeAzure, cases: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "azeval.toml").write_text(CONFIG.format(endpoint=server.endpoint))
        (root / "suites").mkdir()
        (root / "suites" / "cached.yaml").write_text(suite_text(cases))
        policy = CachePolicy(mode="readwrite", path=root / ".azeval" / "cache.sqlite")
        server.reset()
        first, _ = timed_run(root, policy, concurrency)
        sent_first = len(server.requests)
        server.reset()
        second, outcome = timed_run(root, policy, concurrency)
        sent_second = len(server.requests)
        cached = sum(r.cached for r in outcome.run.results)
        print(f"first run, {cases} cases (cache empty): {first:8.3f} s, {sent_first} requests")
        print(f"second run (cache warm):             {second:8.3f} s, {sent_second} requests")
        print(f"  results answered from the cache: {cached} of {len(outcome.run.results)}")
        print(f"  second / first wall time: {second / first:.3f} (target <= 0.3)")
        (root / "suites" / "cached.yaml").write_text(suite_text(cases, changed=cases // 2))
        server.reset()
        third, _ = timed_run(root, policy, concurrency)
        sent = len(server.requests)
        print(f"one prompt changed in {cases}:        {third:8.3f} s, {sent} requests (expected 1)")


def rescore_figures(server: FakeAzure, cases: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "azeval.toml").write_text(CONFIG.format(endpoint=server.endpoint))
        (root / "suites").mkdir()
        (root / "suites" / "cached.yaml").write_text(suite_text(cases))
        made, outcome = timed_run(root, CachePolicy(), concurrency)
        server.reset()
        options = RunOptions(concurrency=concurrency, reports_dir=root / "reports")
        started = time.perf_counter()
        plan = api.prepare_rescore(outcome.run.path)
        rescored = api.rescore(plan, options)
        elapsed = time.perf_counter() - started
        assert all(r.verdict == "pass" for r in rescored.run.results)
        print(f"run of {cases} cases (zero latency):  {made:8.3f} s")
        sent = len(server.requests)
        print(
            f"rescore of it:                       {elapsed:8.3f} s, {sent} requests (expected 0)"
        )
        print(f"  rescore / run wall time: {elapsed / made:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--rescore-cases", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    os.environ["AZURE_OPENAI_API_KEY"] = KEY
    slow = Action(latency_ms=args.latency_ms)
    with FakeAzure([Deployment("gpt35")], api_keys=(KEY,), default=slow) as server:
        print(f"fake deployment answering after {args.latency_ms:g} ms, -j {args.concurrency}")
        cache_figures(server, args.cases, args.concurrency)
    with FakeAzure([Deployment("gpt35")], api_keys=(KEY,)) as server:
        rescore_figures(server, args.rescore_cases, args.concurrency)


if __name__ == "__main__":
    main()
