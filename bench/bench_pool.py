"""A deployment pool against one deployment: the same cases, the same TPM limit each.

    python bench/bench_pool.py [--cases 600] [--tpm 6000] [--window 2] [--max-tokens 40]

Two fake Azure resources on loopback enforce a sliding-window quota as Azure does
(``--window`` seconds stand in for its minute; prompt + max_tokens charged up front; RPM
6 per 1,000 TPM; 429 + Retry-After when full). The cases run twice in this process, each
through ``api.run``: on one deployment (``solo``, on the first resource) at ``--tpm``, and
on a pool of two (``east`` on the first resource, ``sweden`` on the second) at ``--tpm``
each, the limits configured on the targets. The reference is the single deployment: the
figure is the pool's wall time as a ratio of it (the issue's target: at most 0.55), with
how the pool split the work and the 429s each run met.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from harness import api
from harness.runner.engine import RunOptions
from harness.testing import Deployment, FakeAzure

KEY = "bench-pool-key-0123456789"
TARGET = """
[targets.{name}]
kind = "azure"
endpoint = "{endpoint}"
deployment = "{name}"
model = "gpt-4o"
model_version = "2024-08-06"
tpm = {tpm}
"""


def suite_text(cases: int, max_tokens: int) -> str:
    lines = ["suite: pool", "defaults:", f"  params: {{max_tokens: {max_tokens}}}", "cases:"]
    for n in range(cases):
        lines += [f"  - id: p{n:05d}", f"    prompt: case {n} of the pool bench"]
        lines += ["    expect: {icontains: case}"]
    return "\n".join(lines) + "\n"


def timed_run(root: Path, target: str, options: RunOptions) -> tuple[float, object]:
    prepared = api.prepare([root / "suites"], [target], root / "azeval.toml")
    started = time.monotonic()
    outcome = api.run(prepared, options)
    return time.monotonic() - started, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=600)
    parser.add_argument("--tpm", type=int, default=6000, help="tokens per 'minute', each")
    parser.add_argument("--window", type=float, default=2.0, help="the quota's 'minute', s")
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=16, help="-j, per deployment")
    args = parser.parse_args()
    model = "gpt-4o-2024-08-06"
    first = [Deployment(name, model=model, tpm=args.tpm) for name in ("solo", "east")]
    first.append(Deployment("warm", model=model))  # no quota: the warm-up run's
    second = [Deployment("sweden", model=model, tpm=args.tpm)]
    with (
        FakeAzure(first, api_keys=(KEY,), window_s=args.window) as one,
        FakeAzure(second, api_keys=(KEY,), window_s=args.window) as two,
        tempfile.TemporaryDirectory() as tmp,
    ):
        os.environ["AZURE_OPENAI_API_KEY"] = KEY
        root = Path(tmp)
        config = "".join(
            TARGET.format(name=name, endpoint=server.endpoint, tpm=args.tpm)
            for name, server in (("solo", one), ("east", one), ("sweden", two))
        )
        config += TARGET.format(name="warm", endpoint=one.endpoint, tpm=10**9)
        config += '\n[targets.pool]\npool = ["east", "sweden"]\n'
        (root / "azeval.toml").write_text(config)
        (root / "suites").mkdir()
        (root / "suites" / "pool.yaml").write_text(suite_text(args.cases, args.max_tokens))
        options = RunOptions(
            concurrency=args.concurrency,
            reports_dir=root / "reports",
            quota_window=args.window,
            case_deadline=None,
        )
        # Imports, the SDK's first client, tiktoken's tables: paid before either is timed.
        (root / "warm").mkdir()
        (root / "warm" / "warm.yaml").write_text(suite_text(4, args.max_tokens))
        warm = api.prepare([root / "warm"], ["warm"], root / "azeval.toml")
        api.run(warm, options)
        solo_s, solo = timed_run(root, "solo", options)
        limited_solo = one.count(429)
        pool_s, pooled = timed_run(root, "pool", options)
        limited_pool = one.count(429) - limited_solo + two.count(429)
    for name, outcome in (("one deployment", solo), ("pool of two", pooled)):
        results = outcome.run.results  # type: ignore[attr-defined]
        failing = sum(r.verdict != "pass" for r in results)
        print(f"{name}: {len(results)} cases, {failing} not passing")
    members = [t.member for r in pooled.run.results for t in r.turns]  # type: ignore[attr-defined]
    split = ", ".join(f"{m} {members.count(m)}" for m in ("east", "sweden"))
    print(
        f"{args.cases} cases, {args.tpm:,} TPM per deployment per {args.window:g} s minute, "
        f"max_tokens {args.max_tokens}, -j {args.concurrency}"
    )
    paused = {
        name: outcome.run.meta.scheduler[target].get("paused_s")  # type: ignore[attr-defined]
        for name, outcome, target in (("solo", solo, "solo"), ("pool", pooled, "pool"))
    }
    print(
        f"one deployment (reference): {solo_s:.2f} s, 429s met: {limited_solo}, "
        f"paused {paused['solo']} s"
    )
    print(f"pool of two:                {pool_s:.2f} s, 429s met: {limited_pool}; split {split}")
    print(f"ratio pool / one deployment: {pool_s / solo_s:.3f} (target ≤ 0.55)")


if __name__ == "__main__":
    main()
