"""Streaming: how true the recorded timings are, and what streaming costs, on the fake server.

    python bench/bench_stream.py [--cases 1000] [--timed-cases 200] [--concurrency 32]
                                 [--rounds 3] [--first-token-ms 300] [--token-ms 20]

Accuracy: the fake Azure server waits ``--first-token-ms`` before each streamed reply's
first token and ``--token-ms`` between tokens; ``--timed-cases`` streamed cases run through
the runner at ``--concurrency``, and each recorded TTFT and median inter-token gap is set
against the configured one (the share within 10%, the median and worst error).

Overhead: ``--cases`` streamed cases against the same cases answered whole, both at zero
latency through the runner (scheduling, checks, journal, run.json), best of ``--rounds``
with alternating order. Prints times and the ratio streamed / whole.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from harness import api
from harness.runner.engine import RunOptions, execute
from harness.testing import Deployment, FakeAzure

KEY = "bench-key-0123456789"
CONFIG = """
[targets.{name}]
kind = "azure"
endpoint = "{endpoint}"
deployment = "{name}"
model = "gpt-35-turbo"
model_version = "0125"
"""
REPLY_WORDS = 24


def suite_text(cases: int, stream: bool) -> str:
    lines = [
        "suite: stream-bench",
        "defaults:",
        f"  params: {{max_tokens: 80, temperature: 0, stream: {str(stream).lower()}}}",
        "cases:",
    ]
    words = " ".join(f"w{i}" for i in range(REPLY_WORDS))
    for n in range(cases):
        lines += [
            f"  - id: case-{n:04d}",
            f"    prompt: Repeat case {n}, {words}",
            "    expect:",
            f"      icontains: case {n}",
            "      finish_reason: stop",
        ]
    return "\n".join(lines) + "\n"


def project(root: Path, endpoint: str, name: str, cases: int, stream: bool) -> Path:
    folder = root / f"{name}-{'stream' if stream else 'whole'}"
    (folder / "suites").mkdir(parents=True)
    (folder / "azeval.toml").write_text(CONFIG.format(endpoint=endpoint, name=name))
    (folder / "suites" / "bench.yaml").write_text(suite_text(cases, stream))
    return folder


def run(folder: Path, target: str, concurrency: int) -> tuple[float, list]:
    prepared = api.prepare([folder / "suites"], [target], folder / "azeval.toml")
    options = RunOptions(concurrency=concurrency, reports_dir=folder / "reports")
    started = time.perf_counter()
    outcome = asyncio.run(execute(prepared.suites, prepared.targets, options))
    elapsed = time.perf_counter() - started
    results = outcome.run.results
    assert all(r.verdict == "pass" for r in results), "a case did not pass"
    return elapsed, list(results)


def within(measured: list[float], expected: float) -> tuple[float, float, float]:
    """The share within 10% of ``expected``, the median and the worst relative error."""
    errors = [abs(m - expected) / expected for m in measured]
    return (
        sum(e <= 0.10 for e in errors) / len(errors),
        statistics.median(errors),
        max(errors),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--timed-cases", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-token-ms", type=float, default=300.0)
    parser.add_argument("--token-ms", type=float, default=20.0)
    args = parser.parse_args()
    deployments = [
        Deployment("fast"),
        Deployment("timed", first_token_ms=args.first_token_ms, token_ms=args.token_ms),
    ]
    os.environ["AZURE_OPENAI_API_KEY"] = KEY
    with (
        FakeAzure(deployments, api_keys=(KEY,), record=False) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        root = Path(tmp)
        timed = project(root, server.endpoint, "timed", args.timed_cases, stream=True)
        streamed = project(root, server.endpoint, "fast", args.cases, stream=True)
        whole = project(root / "whole", server.endpoint, "fast", args.cases, stream=False)

        took, results = run(timed, "timed", args.concurrency)
        stats = [t.stream for r in results for t in r.turns if t.stream is not None]
        assert len(stats) == len(results), "a streamed turn has no timings"
        ttft = [s.ttft_ms for s in stats if s.ttft_ms is not None]
        gaps = [s.gap_p50_ms for s in stats if s.gap_p50_ms is not None]
        print(
            f"accuracy: {len(stats)} streamed cases at -j {args.concurrency} in {took:.1f} s, "
            f"fake at {args.first_token_ms:g} ms to the first token, {args.token_ms:g} ms between"
        )
        for label, values, expected in (
            ("TTFT", ttft, args.first_token_ms),
            ("gap p50", gaps, args.token_ms),
        ):
            share, median, worst = within(values, expected)
            print(
                f"  {label:8} median {statistics.median(values):7.1f} ms   within 10%: "
                f"{share:6.1%}   error median {median:5.1%}, worst {worst:5.1%}"
            )

        run(streamed, "fast", args.concurrency)  # warm up
        best = {"stream": float("inf"), "whole": float("inf")}
        for n in range(args.rounds):
            order = ["whole", "stream"] if n % 2 == 0 else ["stream", "whole"]
            for name in order:
                folder = streamed if name == "stream" else whole
                elapsed, _ = run(folder, "fast", args.concurrency)
                best[name] = min(best[name], elapsed)
                print(f"round {n + 1}: {name:6} {elapsed:6.2f} s")
    print(f"\noverhead: {args.cases} cases, concurrency {args.concurrency}, best of {args.rounds}:")
    print(f"  answered whole   {best['whole']:6.2f} s")
    ratio = best["stream"] / best["whole"]
    print(f"  streamed         {best['stream']:6.2f} s  {ratio:.2f}x")


if __name__ == "__main__":
    main()
