"""Reference-based checks: what a rouge + levenshtein check costs over the bare libraries,
and what batching saves the similar check in embedding requests and wall time.

    python bench/bench_reference.py [--checks 10000] [--similar 1000] [--concurrency 32]
                                    [--latency-ms 50] [--rounds 3]

Overlap: ``--checks`` replies, each checked with rouge (rougeL) and levenshtein against its
reference through azeval's check path (prepared arguments, run_checks, outcomes, results)
against the same scores computed by calling rouge-score and rapidfuzz directly on the same
texts. Rounds alternate which goes first; the best of each is kept; the figure is time per
check and the ratio azeval / bare.

Similar: ``--similar`` cases, each with a reply and a reference of its own (no text repeats,
so nothing is saved by the run's memory of texts), run against the fake Azure server whose
embeddings deployment answers after ``--latency-ms``: once with embed_batch = 1 (one text
per request) and once batched (the default, 2,048 at most). The fake counts the requests;
both runs must score every case the same. Exits 1 when they do not, or when batching sent
as many requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from harness import api
from harness.checks import CheckContext, LoadContext, Reply, get_check, run_checks
from harness.runner.engine import RunOptions
from harness.suite.model import Case, Expectation
from harness.targets.base import TargetInfo
from harness.testing import Action, Deployment, FakeAzure, Fault, Match, Rule

KEY = "bench-key-0123456789"
WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "while",
    "rain",
    "fell",
    "over",
    "quiet",
    "city",
    "streets",
    "at",
    "night",
]


def texts(n: int) -> list[tuple[str, str]]:
    """``n`` (reply, reference) pairs of 20-30 words, varied and reproducible."""
    out = []
    for i in range(n):
        words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(20 + i % 11)]
        reference = " ".join(words)
        words[i % len(words)] = f"word{i}"
        out.append((" ".join(words), reference))
    return out


def through_azeval(pairs: list[tuple[str, str]]) -> float:
    """Seconds to run rouge + levenshtein on every pair through run_checks."""
    load = LoadContext(suite_dir=Path())
    case = Case(suite="s", id="c", path="s.yaml", place="cases[0]", turns=())
    info = TargetInfo(name="t", kind="azure", model="gpt-4o")
    prepared = [
        (
            reply,
            (
                Expectation("rouge", get_check("rouge").prepare({"reference": ref}, load), "r"),
                Expectation(
                    "levenshtein", get_check("levenshtein").prepare({"reference": ref}, load), "l"
                ),
            ),
        )
        for reply, ref in pairs
    ]

    async def every() -> None:
        for reply, expectations in prepared:
            ctx = CheckContext(Reply(content=reply), case, 0, (), info)
            await run_checks(expectations, ctx)

    started = time.perf_counter()
    asyncio.run(every())
    return time.perf_counter() - started


def bare(pairs: list[tuple[str, str]]) -> float:
    """Seconds to compute the same scores with rouge-score and rapidfuzz directly."""
    from rapidfuzz.distance import Levenshtein
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    started = time.perf_counter()
    scores = [
        (scorer.score(ref, reply)["rougeL"].fmeasure, Levenshtein.normalized_similarity(reply, ref))
        for reply, ref in pairs
    ]
    assert len(scores) == len(pairs)
    return time.perf_counter() - started


CONFIG = """
[settings]
max_retries = 2
concurrency = {concurrency}
embedder = "embed"
{batch}

[targets.gpt35]
kind = "azure"
endpoint = "{endpoint}"
deployment = "gpt35"
model = "gpt-35-turbo"

[targets.embed]
kind = "azure"
endpoint = "{endpoint}"
deployment = "embed"
model = "text-embedding-3-small"
concurrency = {concurrency}
"""
SUITE = """
suite: near
cases:
  - id: "q{{ row.n }}"
    for_each: {row: rows.jsonl}
    prompt: "{{ row.reply }}"
    expect:
      similar: {reference: "{{ row.reference }}", min: 0.5}
"""


def similar_run(root: Path, fake: FakeAzure, concurrency: int, batch: int | None) -> tuple:
    """One run of the similar suite: (embedding requests, wall seconds, scores)."""
    setting = "" if batch is None else f"embed_batch = {batch}"
    (root / "azeval.toml").write_text(
        CONFIG.format(endpoint=fake.endpoint, concurrency=concurrency, batch=setting)
    )
    fake.reset()
    prepared = api.prepare([root / "suites"], ["gpt35"], root / "azeval.toml")
    options = RunOptions.from_settings(prepared.config.settings)
    options = RunOptions(
        default_concurrency=concurrency,
        reports_dir=root / "reports",
        embed_batch=options.embed_batch,
        retry=options.retry,
    )
    started = time.perf_counter()
    outcome = api.run(prepared, options)
    wall = time.perf_counter() - started
    requests = sum(1 for r in fake.requests if r.path.endswith("/embeddings"))
    scores = {r.case: r.checks[0].score for r in outcome.run.results}
    return requests, wall, scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--similar", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    pairs = texts(args.checks)
    through_azeval(pairs[:10])  # warm: imports (rouge-score pulls in nltk), scorers built
    bare(pairs[:10])
    best = {"azeval": float("inf"), "bare": float("inf")}
    for n in range(args.rounds):
        order = [("azeval", through_azeval), ("bare", bare)]
        for name, fn in order if n % 2 == 0 else order[::-1]:
            took = fn(pairs)
            best[name] = min(best[name], took)
            print(f"round {n + 1}: {name:6} {took:6.3f} s")
    per = {k: v / args.checks * 1e6 for k, v in best.items()}
    print(
        f"overlap: {args.checks} replies x (rouge + levenshtein): azeval {per['azeval']:.1f} µs "
        f"per reply ({per['azeval'] / 2:.1f} µs per check), bare libraries {per['bare']:.1f} µs; "
        f"ratio {best['azeval'] / best['bare']:.2f}"
    )

    rows = [
        {"n": i, "reply": f"Reply {i}: {reply}", "reference": f"{reference} ref{i}"}
        for i, (reply, reference) in enumerate(texts(args.similar))
    ]
    rules = [Rule(Match(deployment="gpt35"), Action(content="{last_user}"))]
    slow = (Fault("slow", every=1, delay_ms=int(args.latency_ms)),) if args.latency_ms else ()
    deployments = [
        Deployment("gpt35"),
        Deployment("embed", model="text-embedding-3-small", faults=slow),
    ]
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeAzure(deployments, rules=rules, api_keys=(KEY,)) as fake,
    ):
        root = Path(tmp)
        (root / "suites").mkdir()
        (root / "suites" / "near.yaml").write_text(SUITE)
        (root / "suites" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.environ["AZURE_OPENAI_API_KEY"] = KEY
        here = Path.cwd()
        os.chdir(root)  # the run's reports and suite paths are relative to its project
        try:
            one = similar_run(root, fake, args.concurrency, 1)
            batched = similar_run(root, fake, args.concurrency, None)
        finally:
            os.chdir(here)
    texts_sent = 2 * args.similar
    print(
        f"similar: {args.similar} checks ({texts_sent} texts), embeddings answering after "
        f"{args.latency_ms:g} ms, concurrency {args.concurrency}:"
    )
    print(f"  one text per request: {one[0]} requests, wall {one[1]:.2f} s")
    print(f"  batched:              {batched[0]} requests, wall {batched[1]:.2f} s")
    print(
        f"  ratio: {one[0] / max(1, batched[0]):.1f}x fewer requests, "
        f"wall {batched[1] / one[1]:.2f} of one-per-request"
    )
    if one[2] != batched[2] or None in one[2].values():
        print("FAILED: the two runs scored the cases differently (or not at all)")
        return 1
    if batched[0] >= one[0]:
        print("FAILED: batching sent as many requests as one text per request")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
