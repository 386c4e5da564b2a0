"""Streaming: how true the recorded timings are, and what streaming costs, on the fake server.

    python bench/bench_stream.py [--cases 1000] [--timed-cases 200] [--concurrency 32]
                                 [--rounds 3] [--first-token-ms 300] [--token-ms 20]

The fake Azure server runs in a process of its own. Accuracy: it waits
``--first-token-ms`` before each streamed reply's first token and ``--token-ms`` between
tokens; ``--timed-cases`` streamed cases run through the runner at ``--concurrency``, and
each recorded TTFT and median inter-token gap is set against the configured one (the share
within 10%, the median and worst error).

Overhead: ``--cases`` streamed cases against the same cases answered whole, both at zero
latency through the runner (scheduling, checks, journal, run.json), best of ``--rounds``
with alternating order. Prints times and the ratio streamed / whole.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from harness import api
from harness.runner.engine import RunOptions, execute

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


def run(folder: Path, target: str, concurrency: int) -> tuple[float, float, list]:
    """Wall seconds, this process's CPU seconds, and the results of one run."""
    prepared = api.prepare([folder / "suites"], [target], folder / "azeval.toml")
    options = RunOptions(concurrency=concurrency, reports_dir=folder / "reports")
    started, cpu = time.perf_counter(), time.process_time()
    outcome = asyncio.run(execute(prepared.suites, prepared.targets, options))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    results = outcome.run.results
    assert all(r.verdict == "pass" for r in results), "a case did not pass"
    return elapsed, cpu, list(results)


@contextlib.contextmanager
def fake_server(config: dict, folder: Path) -> Iterator[str]:
    """The fake Azure server in a process of its own, so that its work does not take the
    runner's interpreter (and GIL) from the measurement; yields its endpoint."""
    path = folder / "fake.json"
    path.write_text(json.dumps(config))
    server = subprocess.Popen(
        [sys.executable, "-m", "harness.testing.fake_azure", "--config", str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait(10)


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
    config = {
        "api_keys": [KEY],
        "record": False,
        "deployments": {
            "fast": {},
            "timed": {"first_token_ms": args.first_token_ms, "token_ms": args.token_ms},
        },
    }
    os.environ["AZURE_OPENAI_API_KEY"] = KEY
    with tempfile.TemporaryDirectory() as tmp, fake_server(config, Path(tmp)) as endpoint:
        root = Path(tmp)
        timed = project(root, endpoint, "timed", args.timed_cases, stream=True)
        streamed = project(root, endpoint, "fast", args.cases, stream=True)
        whole = project(root / "whole", endpoint, "fast", args.cases, stream=False)

        took, _, results = run(timed, "timed", args.concurrency)
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
        cpu_best = dict(best)
        for n in range(args.rounds):
            order = ["whole", "stream"] if n % 2 == 0 else ["stream", "whole"]
            for name in order:
                folder = streamed if name == "stream" else whole
                elapsed, cpu, _ = run(folder, "fast", args.concurrency)
                best[name] = min(best[name], elapsed)
                cpu_best[name] = min(cpu_best[name], cpu)
                print(f"round {n + 1}: {name:6} {elapsed:6.2f} s  (runner CPU {cpu:5.2f} s)")
    print(f"\noverhead: {args.cases} cases, concurrency {args.concurrency}, best of {args.rounds}:")
    # The runner's own CPU time says what streaming costs azeval even on a machine so busy
    # that wall time mostly measures waiting for a core.
    print(f"  answered whole   {best['whole']:6.2f} s   runner CPU {cpu_best['whole']:5.2f} s")
    ratio, cpu_ratio = best["stream"] / best["whole"], cpu_best["stream"] / cpu_best["whole"]
    print(
        f"  streamed         {best['stream']:6.2f} s   runner CPU {cpu_best['stream']:5.2f} s"
        f"   {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU"
    )


if __name__ == "__main__":
    main()
