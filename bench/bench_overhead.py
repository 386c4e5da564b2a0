"""azeval's overhead over a bare asyncio loop of the openai SDK, against the fake server.

    python bench/bench_overhead.py [--cases 1000] [--concurrency 32] [--rounds 3]
                                   [--fake process|thread]

Both send the same requests (chat completions with a JSON response format) to a fake Azure
server answering with zero latency, at the same concurrency. azeval runs each case's three
checks (icontains, json_schema, finish_reason), journals every result, and writes run.json;
the full figure adds the preflight (token counts) and the HTML report. The reference is the
script a user would write by hand: ``AsyncAzureOpenAI``, a semaphore, the same three checks
with ``jsonschema`` and a JSONL file of results. Rounds alternate which goes first; the best
of each is kept. Prints wall and CPU times, each with its ratio to the script.

The fake runs in a child process by default (``--fake process``), as a service would: the
wall and CPU times are then the client's alone, the same for both sides. ``--fake thread``
serves it from a thread of this process, as earlier versions of this bench did: its CPU
(and the GIL it holds) is then in both timings, which brings every ratio nearer 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
# Wall and CPU seconds of one timed part (CPU: every thread of this process).
Took = tuple[float, float]


def stopwatch() -> Callable[[], Took]:
    """Start timing; the returned function gives the wall and CPU seconds since."""
    wall, cpu = time.perf_counter(), time.process_time()
    return lambda: (time.perf_counter() - wall, time.process_time() - cpu)


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


async def bare(endpoint: str, cases: int, concurrency: int) -> Took:
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

    took = stopwatch()
    await asyncio.gather(*(one(n) for n in range(cases)))
    elapsed = took()
    await client.close()
    return elapsed


async def script(endpoint: str, cases: int, concurrency: int, out: Path) -> Took:
    """The reference: what a user writes by hand, with the same checks and a JSONL record."""
    took = stopwatch()
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
    elapsed = took()
    await client.close()
    return elapsed


def azeval_full(root: Path, concurrency: int) -> Took:
    """api.run as the CLI calls it: preflight, run, journal, run.json, HTML report."""
    prepared = api.prepare([root / "suites"], ["gpt35"], root / "azeval.toml")
    options = RunOptions(concurrency=concurrency, reports_dir=root / "reports")
    took = stopwatch()
    outcome = api.run(prepared, options)
    elapsed = took()
    assert all(r.verdict == "pass" for r in outcome.run.results), "a case did not pass"
    return elapsed


def azeval_runner(root: Path, concurrency: int) -> Took:
    """The runner alone (execute): scheduling, sending, checks, journal, run.json."""
    prepared = api.prepare([root / "suites"], ["gpt35"], root / "azeval.toml")
    options = RunOptions(concurrency=concurrency, reports_dir=root / "reports")
    took = stopwatch()
    outcome = asyncio.run(execute(prepared.suites, prepared.targets, options))
    elapsed = took()
    assert all(r.verdict == "pass" for r in outcome.run.results), "a case did not pass"
    return elapsed


@contextmanager
def fake_azure(where: str) -> Iterator[str]:
    """The fake's endpoint, served from a child process or a thread of this one."""
    if where == "thread":
        with FakeAzure([Deployment("gpt35")], api_keys=(KEY,), record=False) as server:
            yield server.endpoint
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        yield child.stdout.readline().decode().strip()
    finally:
        child.stdin.close()  # the child serves until its stdin ends
        child.wait(10)


def serve() -> None:
    """The child process of --fake process: serve until stdin ends."""
    with FakeAzure([Deployment("gpt35")], api_keys=(KEY,), record=False) as server:
        print(server.endpoint, flush=True)
        sys.stdin.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fake", choices=("process", "thread"), default="process")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    names = ["script", "bare", "runner", "full"]
    best = dict.fromkeys(names, (float("inf"), float("inf")))
    with fake_azure(args.fake) as endpoint:
        os.environ["AZURE_OPENAI_API_KEY"] = KEY
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "azeval.toml").write_text(CONFIG.format(endpoint=endpoint))
            (root / "suites").mkdir()
            (root / "suites" / "overhead.yaml").write_text(suite_text(args.cases))
            asyncio.run(bare(endpoint, 50, args.concurrency))  # warm up
            for n in range(args.rounds):
                for name in names if n % 2 == 0 else names[::-1]:
                    took: Took
                    if name == "script":
                        out = root / "script.jsonl"
                        took = asyncio.run(script(endpoint, args.cases, args.concurrency, out))
                    elif name == "bare":
                        took = asyncio.run(bare(endpoint, args.cases, args.concurrency))
                    elif name == "runner":
                        took = azeval_runner(root, args.concurrency)
                    else:
                        took = azeval_full(root, args.concurrency)
                    # Each the best of its rounds, wall and CPU apart.
                    best[name] = (min(best[name][0], took[0]), min(best[name][1], took[1]))
                    print(f"round {n + 1}: {name:6} {took[0]:6.2f} s  cpu {took[1]:6.2f} s")
    where = "a child process" if args.fake == "process" else "a thread of this process"
    print(
        f"\n{args.cases} cases, concurrency {args.concurrency}, best of {args.rounds}, "
        f"fake served from {where}:"
    )
    print(f"  {'':31} {'wall':>8}  {'ratio':>5}  {'cpu':>8}  {'ratio':>5}")
    ref_wall, ref_cpu = best["script"]
    for name, label in (
        ("script", "hand-written script (reference)"),
        ("bare", "bare SDK loop (no checks)"),
        ("runner", "azeval runner (execute)"),
        ("full", "azeval api.run (+plan, report)"),
    ):
        wall, cpu = best[name]
        ratios = f"{wall / ref_wall:.2f}x  {cpu:6.2f} s  {cpu / ref_cpu:.2f}x"
        print(f"  {label:31} {wall:6.2f} s  {ratios}")


if __name__ == "__main__":
    main()
