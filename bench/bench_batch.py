"""Batch mode's own cost: N cases through the fake's Global Batch endpoints, against the same
cases sent live in the same process.

    python bench/bench_batch.py [--cases 10000] [--poll 0.2]

Both runs go through ``api.run`` (preflight, checks, journal, report) on an in-process fake
Azure server answering at once. The batch run's wall time includes the fake's simulated
batch (validating, in progress, finalizing: a few seconds, as the ledger's elapsed_s records
it); what is left is azeval's own time: writing the JSONL, uploading, polling, downloading,
matching lines to cases. Prints both times, the ratio of azeval's batch time to the live
run, peak traced memory of each, and the requests the batch run made by kind.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from harness import api
from harness.batch import BatchSettings
from harness.batch.ledger import BatchRecord
from harness.runner.engine import RunOptions, RunOutcome
from harness.testing import Action, BatchTiming, FakeAzure

KEY = "bench-key-0123456789"
CONFIG = """
[targets.gb]
kind = "azure"
endpoint = "{endpoint}"
deployment = "gb"
model = "gpt-4o"
model_version = "2024-08-06"
"""


def suite_text(cases: int) -> str:
    lines = ["suite: batch-bench", "defaults:", "  params: {max_tokens: 30}", "cases:"]
    for n in range(cases):
        lines += [
            f"  - id: case-{n:05d}",
            f"    prompt: Please repeat case number {n} back to me.",
            "    expect:",
            f"      icontains: case number {n}",
            "      finish_reason: stop",
        ]
    return "\n".join(lines) + "\n"


def measured(options: RunOptions) -> tuple[RunOutcome, float, int]:
    """One api.run: its outcome, wall seconds and peak traced bytes."""
    prepared = api.prepare([Path("suites")])
    tracemalloc.start()
    started = time.perf_counter()
    outcome = api.run(prepared, options)
    wall = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return outcome, wall, peak


def kind_of(method: str, path: str) -> str:
    if path.endswith("/content"):
        return "downloads"
    if path.endswith("/files"):
        return "uploads"
    if path.endswith("/batches") and method == "POST":
        return "creates"
    if "/batches/" in path and method == "GET":
        return "polls"
    return f"other {method} {path}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between polls")
    args = parser.parse_args()
    timing = BatchTiming(validating_s=0.5, in_progress_s=2.0, finalizing_s=0.5)
    with (
        FakeAzure(
            ["gb"], default=Action(content="{last_user}"), api_keys=(KEY,), batch_timing=timing
        ) as server,
        tempfile.TemporaryDirectory() as folder,
    ):
        os.chdir(folder)
        os.environ["AZURE_OPENAI_API_KEY"] = KEY
        Path("azeval.toml").write_text(CONFIG.format(endpoint=server.endpoint))
        Path("suites").mkdir()
        Path("suites/bench.yaml").write_text(suite_text(args.cases))
        base = dataclasses.replace(RunOptions.from_settings({}), default_concurrency=32)
        # Warm up (imports, encodings, templates) so neither measured run pays for them.
        Path("warm").mkdir()
        Path("warm/warm.yaml").write_text(suite_text(1))
        api.run(api.prepare([Path("warm")]), base)
        live, live_s, live_peak = measured(base)
        server.reset()
        batch_options = dataclasses.replace(
            base, batch=BatchSettings(all_azure=True, poll_interval_s=args.poll)
        )
        batched, batch_s, batch_peak = measured(batch_options)
        requests = Counter(kind_of(r.method, r.path) for r in server.requests)
    same = {r.key: r.verdict for r in live.run.results} == {
        r.key: r.verdict for r in batched.run.results
    }
    simulated = BatchRecord.of(batched.run.meta).elapsed_s or 0.0
    own = batch_s - simulated
    print(f"cases: {args.cases}, verdicts identical: {same}")
    print(f"live api.run (reference): {live_s:.2f} s, peak {live_peak / 2**20:.1f} MiB")
    print(
        f"batch api.run: {batch_s:.2f} s wall, {simulated:.2f} s in the fake's batch, "
        f"{own:.2f} s azeval's own; peak {batch_peak / 2**20:.1f} MiB"
    )
    print(f"ratio batch own time / live: {own / live_s:.2f}")
    print(f"ratio batch peak / live peak: {batch_peak / max(live_peak, 1):.2f}")
    print("batch requests: " + ", ".join(f"{k} {v}" for k, v in sorted(requests.items())))
    cost_live = live.run.summary.targets["gb"].cost_usd or 0.0
    cost_batch = batched.run.summary.targets["gb"].cost_usd or 0.0
    print(f"cost live ${cost_live:.4f}, batch ${cost_batch:.4f}")


if __name__ == "__main__":
    main()
