"""Counting throughput and `azeval plan` time on a large synthetic suite.

    python bench/bench_tokens.py [--cases 10000]

Prints, from one run: the time to build each encoding offline, tiktoken's raw
encode_ordinary throughput on the suite's text (the reference), count_messages throughput
on the same messages (uncached: every text encoded each time; cold: each distinct text
encoded once, repeats served from the count cache; warm: all from the cache), and plan()
time for every case on one and on two targets.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass

from harness import tokens
from harness.models import load_catalogue
from harness.preflight import plan
from harness.suite.model import Case, Message, Turn

WORDS = [
    "refund", "order", "invoice", "account", "customer", "shipping", "delayed", "package",
    "warranty", "replace", "broken", "charge", "twice", "subscription", "cancel", "upgrade",
    "plan", "billing", "address", "update", "email", "password", "reset", "login", "error",
    "Contoso", "Fabrikam", "Northwind", "42", "1999", "12.50", "EUR", "USD",
]  # fmt: skip
SYSTEM = (
    "You are a support assistant for Contoso. Extract the customer's name, order number and "
    "request from the message and answer as JSON with keys name, order, request. "
) * 4


@dataclass(frozen=True)
class Target:
    name: str
    kind: str
    model: str
    model_version: str
    api_version: str = "2024-10-21"
    tpm: int | None = 120_000
    rpm: int | None = None


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "."


def synthetic_suite(n: int, seed: int = 7) -> list[Case]:
    """n cases: a shared system prompt, 3 few-shot pairs from a pool, a unique question."""
    rng = random.Random(seed)
    shots = [
        (Message("user", sentence(rng, 40)), Message("assistant", sentence(rng, 25)))
        for _ in range(50)
    ]
    cases = []
    for i in range(n):
        messages = [Message("system", SYSTEM)]
        for user, assistant in rng.sample(shots, 3):
            messages += [user, assistant]
        messages.append(Message("user", sentence(rng, rng.randint(30, 200))))
        turns = [Turn(tuple(messages), ())]
        if i % 10 == 0:  # every tenth case is a conversation of three turns
            turns += [Turn((Message("user", sentence(rng, 20)),), ()) for _ in range(2)]
        cases.append(
            Case(
                suite="bench",
                id=f"case-{i}",
                path="suites/bench.yaml",
                place=f"cases[{i}]",
                turns=tuple(turns),
                params={"temperature": 0, "max_tokens": 300},
            )
        )
    return cases


def written(case: Case) -> tuple[Message, ...]:
    """Every message the suite writes, across turns (the model's replies not included)."""
    return tuple(m for turn in case.turns for m in turn.messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    args = parser.parse_args()

    for name in ("cl100k_base", "o200k_base"):
        start = time.perf_counter()
        tokens.get_encoding(name)
        print(f"build {name} offline: {time.perf_counter() - start:.2f} s")

    cases = synthetic_suite(args.cases)
    texts = [m.content or "" for case in cases for m in written(case)]
    encoding = tokens.get_encoding("cl100k_base")

    start = time.perf_counter()
    raw_tokens = sum(len(encoding.encode_ordinary(t)) for t in texts)
    raw_s = time.perf_counter() - start
    raw_rate = raw_tokens / raw_s
    print(f"{len(cases):,} cases, {len(texts):,} messages, {raw_tokens:,} content tokens")
    print(f"tiktoken encode_ordinary (reference): {raw_rate:,.0f} tokens/s ({raw_s:.2f} s)")

    cached_count = tokens._count
    for label in ("uncached", "cold", "warm"):
        # uncached: every text encoded each time, as if no text repeated across cases
        uncached = cached_count.__wrapped__
        tokens._count = uncached if label == "uncached" else cached_count  # type: ignore[assignment]
        if label == "cold":
            cached_count.cache_clear()
        start = time.perf_counter()
        counted = sum(tokens.count_messages(written(case), "gpt-35-turbo") for case in cases)
        took = time.perf_counter() - start
        print(
            f"count_messages {label}: {counted / took:,.0f} tokens/s ({took:.2f} s, "
            f"{counted:,} tokens, {counted / took / raw_rate:.2f}x tiktoken)"
        )
    tokens._count = cached_count  # type: ignore[assignment]

    catalogue = load_catalogue()
    one = [Target("gpt35", "azure", "gpt-35-turbo", "0125")]
    two = [*one, Target("gpt4o", "azure", "gpt-4o", "2024-08-06", tpm=450_000)]
    for targets in (one, two):
        tokens._count.cache_clear()
        start = time.perf_counter()
        result = plan(cases, targets, catalogue)
        took = time.perf_counter() - start
        print(
            f"plan {len(cases):,} cases x {len(targets)} target(s), cold cache: {took:.2f} s "
            f"({len(result.rows) / took:,.0f} rows/s); est. run "
            f"{(result.duration_s or 0) / 60:,.0f} min"
        )


if __name__ == "__main__":
    main()
