"""The judge's cost over plain requests, and the request count of a pairwise comparison.

    python bench/bench_judge.py [--checks 1000] [--concurrency 32] [--rounds 3]
                                [--pairwise-cases 500] [--samples 1]

Overhead: ``--checks`` rubric judgements through azeval's judge path (template, preflight,
structured-output parsing, aggregation, over the judge's sender) against the same number of
plain requests with the same bodies through the same sender (its quota scheduler, retries,
dead-target rule) and, for scale, through the bare SDK; all at the same concurrency, against
an in-process fake Azure answering at zero latency. Rounds alternate which goes first; the
best of each is kept; the ratio is judge calls per second over plain requests per second.

Pairwise: a stored run of ``--pairwise-cases`` cases on two targets is compared; the fake
server counts the requests the judge received, which must be 2 (both orders) × samples per
case, no more. Exits 1 when it is not.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import openai

from harness import api
from harness.config import load_config
from harness.judge.arguments import rubric_arg
from harness.judge.compare import compare
from harness.judge.judging import JudgeOptions
from harness.judge.panel import plan_judges
from harness.judge.standalone import standalone_judge
from harness.models import load_catalogue
from harness.runner.check_model import SenderModel
from harness.runner.engine import RunOptions
from harness.testing import Action, Deployment, FakeAzure, Match, Rule

KEY = "bench-key-0123456789"
CONFIG = """
[settings]
judge = "judge"

[targets.gpt35]
kind = "azure"
endpoint = "{endpoint}"
deployment = "gpt35"
model = "gpt-35-turbo"
model_version = "0125"

[targets.gpt4o]
kind = "azure"
endpoint = "{endpoint}"
deployment = "gpt4o"
model = "gpt-4o"
model_version = "2024-08-06"

[targets.judge]
kind = "azure"
endpoint = "{endpoint}"
deployment = "judge"
model = "gpt-4o"
model_version = "2024-08-06"
concurrency = {concurrency}
"""
RULES = [
    Rule(Match(deployment="judge", judged={"answer_a": "."}), Action(verdict={"winner": "A"})),
    Rule(Match(deployment="judge"), Action(verdict={"verdict": "pass", "reasoning": "Fine."})),
]
CONVERSATION = [{"role": "user", "content": "What is the capital of France?"}]


async def judged(root: Path, checks: int) -> tuple[float, list[dict]]:
    """``checks`` rubric judgements through the judge path; the time, and the bodies sent."""
    config = load_config(root / "azeval.toml")
    plan = plan_judges([], config, "judge")
    plan = replace(plan, names=("judge",))
    (target,) = config.select(["judge"])
    catalogue = load_catalogue()
    args = [rubric_arg(f"Names Paris (check {n}).", root, "judge") for n in range(checks)]
    async with standalone_judge(config, target, plan, catalogue) as standing:
        judges = standing.judges
        started = time.perf_counter()
        done = await asyncio.gather(*(judges.judge(a, "Paris.", CONVERSATION) for a in args))
        elapsed = time.perf_counter() - started
    assert all(j.result.decision == "pass" for j in done), "a judgement did not pass"
    bodies = [{"messages": list(j.messages), **dict(j.params)} for j in done]
    return elapsed, bodies


async def bare(endpoint: str, bodies: list[dict], concurrency: int) -> float:
    """For scale: the same request bodies through the SDK alone, behind a semaphore."""
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=endpoint, api_key=KEY, api_version="2024-10-21", max_retries=0
    )
    gate = asyncio.Semaphore(concurrency)

    async def one(body: dict) -> None:
        async with gate:
            await client.chat.completions.create(model="judge", **body)

    started = time.perf_counter()
    await asyncio.gather(*(one(b) for b in bodies))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


async def plain(root: Path, bodies: list[dict]) -> float:
    """The reference: the same bodies as plain requests through azeval's sending path (the
    judge target's sender: its quota, retries and dead-target rule), with no judging."""
    config = load_config(root / "azeval.toml")
    plan = replace(plan_judges([], config, "judge"), names=("judge",))
    (target,) = config.select(["judge"])
    async with standalone_judge(config, target, plan, load_catalogue()) as standing:
        model = SenderModel(standing.sender)
        started = time.perf_counter()
        await asyncio.gather(
            *(
                model.ask(b["messages"], **{k: v for k, v in b.items() if k != "messages"})
                for b in bodies
            )
        )
        return time.perf_counter() - started


def pairwise_requests(root: Path, server: FakeAzure, cases: int, samples: int) -> tuple[int, int]:
    """Requests the judge received comparing a run of ``cases`` on two targets."""
    suite = ["suite: pairwise", "cases:"]
    for n in range(cases):
        suite += [
            f"  - id: case-{n:04d}",
            f"    prompt: Say {n}.",
            "    expect: {finish_reason: stop}",
        ]
    (root / "suites" / "pairwise.yaml").write_text("\n".join(suite) + "\n")
    prepared = api.prepare(
        [root / "suites" / "pairwise.yaml"], ["gpt35", "gpt4o"], root / "azeval.toml"
    )
    outcome = api.run(prepared, RunOptions(concurrency=32, reports_dir=root / "reports"))
    config = load_config(root / "azeval.toml")
    plan = plan_judges([], config, "judge")
    plan = replace(plan, names=("judge",))
    (target,) = config.select(["judge"])
    before = sum(1 for r in server.requests if r.deployment == "judge")

    async def go() -> None:
        async with standalone_judge(config, target, plan, load_catalogue()) as standing:
            await compare(
                outcome.run.results,
                ["gpt35", "gpt4o"],
                standing.judges,
                "judge",
                JudgeOptions(samples=samples),
            )

    asyncio.run(go())
    sent = sum(1 for r in server.requests if r.deployment == "judge") - before
    return sent, 2 * samples * cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairwise-cases", type=int, default=500)
    parser.add_argument("--samples", type=int, default=1)
    args = parser.parse_args()
    deployments = [
        Deployment("gpt35"),
        Deployment("gpt4o"),
        Deployment("judge", model="gpt-4o-2024-08-06"),
    ]
    best = {"bare": float("inf"), "plain": float("inf"), "judge": float("inf")}
    with FakeAzure(deployments, rules=RULES, api_keys=(KEY,)) as server:
        os.environ["AZURE_OPENAI_API_KEY"] = KEY
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            text = CONFIG.format(endpoint=server.endpoint, concurrency=args.concurrency)
            (root / "azeval.toml").write_text(text)
            (root / "suites").mkdir()
            # Warm up (imports, templates, encodings), and the bodies the references send.
            _, bodies = asyncio.run(judged(root, args.checks))
            server.reset()
            for n in range(args.rounds):
                order = ["bare", "plain", "judge"]
                for name in order if n % 2 == 0 else order[::-1]:
                    if name == "judge":
                        took, bodies = asyncio.run(judged(root, args.checks))
                    elif name == "plain":
                        took = asyncio.run(plain(root, bodies))
                    else:
                        took = asyncio.run(bare(server.endpoint, bodies, args.concurrency))
                    best[name] = min(best[name], took)
                    print(f"round {n + 1}: {name:5} {took:6.2f} s")
                server.reset()
            sent, expected = pairwise_requests(root, server, args.pairwise_cases, args.samples)
    rates = {name: args.checks / took for name, took in best.items()}
    print(f"\n{args.checks} rubric checks, concurrency {args.concurrency}, best of {args.rounds}:")
    print(f"  bare SDK loop (for scale)          {rates['bare']:8.0f} requests/s")
    print(f"  plain requests (azeval's sender)   {rates['plain']:8.0f} requests/s")
    print(f"  judge calls (azeval's judge path)  {rates['judge']:8.0f} calls/s")
    print(f"  ratio judge / plain                {rates['judge'] / rates['plain']:8.2f}")
    print(
        f"pairwise over {args.pairwise_cases} cases x 2 targets, {args.samples} sample(s): "
        f"{sent} judge requests sent, expected {expected}"
    )
    if sent != expected:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
