"""azeval's overhead over a bare asyncio loop of the openai SDK, against the fake server.

    python bench/bench_overhead.py [--cases 1000] [--concurrency 32] [--rounds 3]

Both send the same requests (chat completions with a JSON response format) to an in-process
fake Azure server answering with zero latency, at the same concurrency. azeval runs each
case's three checks (icontains, json_schema, finish_reason), journals every result, and
writes run.json; the full figure adds the preflight (token counts) and the HTML report.
The reference is the script a user would write by hand: ``AsyncAzureOpenAI``, a semaphore,
the same three checks with ``jsonschema`` and a JSONL file of results. Rounds alternate which
goes first; the best of each is kept. Prints times and ratios to the script.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import jsonschema
import openai

from harness import api
from harness.runner.engine import RunOptions, execute
from harness.testing import Deployment, FakeAzure

KEY = "bench-key-0123456789"
CONFIG = """
[targets.gpt35]
kind = "azure"
endpoint = "{endpoint}"
deployment = "gpt35"
model = "gpt-35-turbo"
model_version = "0125"
"""
SYSTEM = "Answer as JSON with a key 'reply'."


def suite_text(cases: int) -> str:
    lines = [
        "suite: overhead",
        "defaults:",
        f"  system: {SYSTEM}",
        "  params: {max_tokens: 60, temperature: 0, response_format: {type: json_object}}",
        "cases:",
    ]
    for n in range(cases):
        lines += [
            f"  - id: case-{n:04d}",
            f"    prompt: Please repeat case number {n} back to me.",
            "    expect:",
            f"      icontains: case number {n}",
            "      json_schema: {type: object, required: [reply]}",
            "      finish_reason: stop",
        ]
    return "\n".join(lines) + "\n"


async def bare(endpoint: str, cases: int, concurrency: int) -> float:
    """The reference: the SDK alone, a semaphore, the same request bodies."""
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=endpoint, api_key=KEY, api_version="2024-10-21", max_retries=0
    )
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with gate:
            await client.chat.completions.create(
                model="gpt35",
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Please repeat case number {n} back to me."},
                ],
                max_tokens=60,
                temperature=0,
                response_format={"type": "json_object"},
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(cases)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


async def script(endpoint: str, cases: int, concurrency: int, out: Path) -> float:
    """The reference: what a user writes by hand, with the same checks and a JSONL record."""
    started = time.perf_counter()
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=endpoint, api_key=KEY, api_version="2024-10-21", max_retries=0
    )
    gate = asyncio.Semaphore(concurrency)
    schema = {"type": "object", "required": ["reply"]}
    with out.open("w") as results:

        async def one(n: int) -> None:
            prompt = f"Please repeat case number {n} back to me."
            async with gate:
                reply = await client.chat.completions.create(
                    model="gpt35",
                    messages=[
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": prompt},
                    ],
                    max_tokens=60,
                    temperature=0,
                    response_format={"type": "json_object"},
                )
            choice = reply.choices[0]
            text = choice.message.content or ""
            try:
                jsonschema.validate(json.loads(text), schema)
                valid = True
            except (ValueError, jsonschema.ValidationError):
                valid = False
            passed = f"case number {n}" in text.lower() and valid and choice.finish_reason == "stop"
            line = {"case": n, "prompt": prompt, "reply": text, "pass": passed}
            line["usage"] = reply.usage.model_dump() if reply.usage else None
            results.write(json.dumps(line) + "\n")
            results.flush()

        await asyncio.gather(*(one(n) for n in range(cases)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def azeval_full(root: Path, concurrency: int) -> float:
    """api.run as the CLI calls it: preflight, run, journal, run.json, HTML report."""
    prepared = api.prepare([root / "suites"], ["gpt35"], root / "azeval.toml")
    options = RunOptions(concurrency=concurrency, reports_dir=root / "reports")
    started = time.perf_counter()
    outcome = api.run(prepared, options)
    elapsed = time.perf_counter() - started
    assert all(r.verdict == "pass" for r in outcome.run.results), "a case did not pass"
    return elapsed


def azeval_runner(root: Path, concurrency: int) -> float:
    """The runner alone (execute): scheduling, sending, checks, journal, run.json."""
    prepared = api.prepare([root / "suites"], ["gpt35"], root / "azeval.toml")
    options = RunOptions(concurrency=concurrency, reports_dir=root / "reports")
    started = time.perf_counter()
    outcome = asyncio.run(execute(prepared.suites, prepared.targets, options))
    elapsed = time.perf_counter() - started
    assert all(r.verdict == "pass" for r in outcome.run.results), "a case did not pass"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    names = ["script", "bare", "runner", "full"]
    best = dict.fromkeys(names, float("inf"))
    with FakeAzure([Deployment("gpt35")], api_keys=(KEY,), record=False) as server:
        os.environ["AZURE_OPENAI_API_KEY"] = KEY
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "azeval.toml").write_text(CONFIG.format(endpoint=server.endpoint))
            (root / "suites").mkdir()
            (root / "suites" / "overhead.yaml").write_text(suite_text(args.cases))
            asyncio.run(bare(server.endpoint, 50, args.concurrency))  # warm up
            for n in range(args.rounds):
                for name in names if n % 2 == 0 else names[::-1]:
                    if name == "script":
                        out = root / "script.jsonl"
                        took = asyncio.run(
                            script(server.endpoint, args.cases, args.concurrency, out)
                        )
                    elif name == "bare":
                        took = asyncio.run(bare(server.endpoint, args.cases, args.concurrency))
                    elif name == "runner":
                        took = azeval_runner(root, args.concurrency)
                    else:
                        took = azeval_full(root, args.concurrency)
                    best[name] = min(best[name], took)
                    print(f"round {n + 1}: {name:6} {took:6.2f} s")
    print(f"\n{args.cases} cases, concurrency {args.concurrency}, best of {args.rounds}:")
    ref = best["script"]
    print(f"  hand-written script (reference) {ref:6.2f} s")
    for name, label in (
        ("bare", "bare SDK loop (no checks)"),
        ("runner", "azeval runner (execute)"),
        ("full", "azeval api.run (+plan, report)"),
    ):
        print(f"  {label:31} {best[name]:6.2f} s  {best[name] / ref:.2f}x")


if __name__ == "__main__":
    main()
