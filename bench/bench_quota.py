"""How much of a TPM quota azeval uses, against the fake server enforcing it as Azure does.

    python bench/bench_quota.py [--tpm 20000] [--window 5] [--windows 12] [--learn]

The fake deployment has a sliding-window quota (``window_s`` stands in for Azure's minute:
prompt + max_tokens charged up front, 429 + Retry-After when full; RPM 6 per 1,000 TPM).
azeval runs enough cases to keep it busy for ``--windows`` windows, with the target's tpm
configured (or, with --learn, learned from the x-ratelimit-remaining-* headers). Prints the
tokens the server charged in each window (aligned on the first request) as a share of the
quota, the mean over the full windows, the 429s met, and the cases that did not pass.
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

KEY = "bench-key-0123456789"
MAX_TOKENS = 150
CONFIG = """
[targets.gpt35]
kind = "azure"
endpoint = "{endpoint}"
deployment = "gpt35"
model = "gpt-35-turbo"
model_version = "0125"
{quota}
"""


def suite_text(cases: int) -> str:
    lines = ["suite: quota", "defaults:", f"  params: {{max_tokens: {MAX_TOKENS}}}", "cases:"]
    for n in range(cases):
        words = " ".join(["word"] * (n % 40))  # prompts of different sizes
        lines += [f"  - id: q{n:05d}", f"    prompt: case {n} {words}"]
        lines += ["    expect: {icontains: case}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tpm", type=int, default=20_000, help="tokens per window")
    parser.add_argument("--window", type=float, default=5.0, help="the quota's 'minute', s")
    parser.add_argument("--windows", type=int, default=12, help="how long to run, in windows")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--learn", action="store_true", help="no tpm in the config")
    args = parser.parse_args()
    per_case = MAX_TOKENS + 30  # about: prompt ≈ 10–50 tokens
    cases = args.tpm * args.windows // per_case
    deployment = Deployment("gpt35", model="gpt-35-turbo", tpm=args.tpm)
    with (
        FakeAzure([deployment], api_keys=(KEY,), window_s=args.window) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        os.environ["AZURE_OPENAI_API_KEY"] = KEY
        root = Path(tmp)
        quota = "" if args.learn else f"tpm = {args.tpm}"
        (root / "azeval.toml").write_text(CONFIG.format(endpoint=server.endpoint, quota=quota))
        (root / "suites").mkdir()
        (root / "suites" / "quota.yaml").write_text(suite_text(cases))
        prepared = api.prepare([root / "suites"], ["gpt35"], root / "azeval.toml")
        options = RunOptions(
            concurrency=args.concurrency,
            reports_dir=root / "reports",
            quota_window=args.window,
            case_deadline=None,
        )
        started = time.monotonic()
        outcome = api.run(prepared, options)
        elapsed = time.monotonic() - started
        admitted = [r for r in server.requests if r.status == 200]
        limited = server.count(429)
    results = outcome.run.results
    not_passed = [r for r in results if r.verdict != "pass"]
    by_case = {r.case: r for r in results}
    first = min(r.timestamp for r in admitted)
    charged: dict[int, int] = {}
    for request in admitted:
        text = request.body["messages"][-1]["content"]
        case = by_case[f"q{int(text.split()[1]):05d}"]
        cost = case.prompt_tokens + MAX_TOKENS
        window = int((request.timestamp - first) // args.window)
        charged[window] = charged.get(window, 0) + cost
    last = max(charged)
    print(
        f"{len(results)} cases, quota {args.tpm:,} tokens per {args.window:g} s window "
        f"({'learned from headers' if args.learn else 'configured'}), -j {args.concurrency}"
    )
    print(f"run took {elapsed:.1f} s; 429s met: {limited}; cases not passing: {len(not_passed)}")
    for window in range(last + 1):
        share = charged.get(window, 0) / args.tpm
        note = "  (last, partial)" if window == last else ""
        print(f"  window {window:2}: {charged.get(window, 0):7,} tokens  {share:6.1%}{note}")
    full = [charged.get(w, 0) / args.tpm for w in range(last)]
    if full:
        mean = sum(full) / len(full)
        print(f"share of the quota used over the {len(full)} full windows: {mean:.1%}")


if __name__ == "__main__":
    main()
