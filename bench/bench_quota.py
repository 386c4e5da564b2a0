"""How much of a quota azeval uses, against the fake server enforcing it as Azure does.

    python bench/bench_quota.py [--tpm 20000] [--rpm N] [--window 5] [--windows 12]
        [--request-window 60|10|1] [--max-tokens 150] [--learn]

The fake deployment has a sliding-window quota (``--window`` seconds stand in for Azure's
minute: prompt + max_tokens charged up front, 429 + Retry-After when full; RPM 6 per 1,000
TPM unless --rpm), the request limit counted over ``--request-window`` of Azure's seconds
(a sixth of the minute for 10, as Azure counts 60 RPM as 10 per 10 s). azeval runs enough
cases to keep it busy for ``--windows`` minutes, with the target's tpm (and rpm) configured,
or with --learn nothing configured: limits and windows learned from the answers. Prints,
per minute (aligned on the first request), the tokens and requests the server admitted as
shares of their quotas; the share of the binding one averaged over the full minutes; the
429s met; and the cases that did not pass.
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


def suite_text(cases: int, max_tokens: int = MAX_TOKENS) -> str:
    lines = ["suite: quota", "defaults:", f"  params: {{max_tokens: {max_tokens}}}", "cases:"]
    for n in range(cases):
        words = " ".join(["word"] * (n % 40))  # prompts of different sizes
        lines += [f"  - id: q{n:05d}", f"    prompt: case {n} {words}"]
        lines += ["    expect: {icontains: case}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tpm", type=int, default=20_000, help="tokens per minute")
    parser.add_argument("--rpm", type=int, default=None, help="default: 6 per 1,000 TPM")
    parser.add_argument("--window", type=float, default=5.0, help="the quota's 'minute', s")
    parser.add_argument("--windows", type=int, default=12, help="how long to run, in minutes")
    parser.add_argument(
        "--request-window", type=float, default=60.0, help="Azure seconds the rpm counts over"
    )
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--learn", action="store_true", help="no tpm/rpm in the config")
    args = parser.parse_args()
    rpm = args.rpm if args.rpm is not None else max(1, args.tpm * 6 // 1000)
    per_case = args.max_tokens + 30  # about: prompt ≈ 10–50 tokens
    cases = min(args.tpm // per_case, rpm) * args.windows + rpm
    deployment = Deployment(
        "gpt35",
        model="gpt-35-turbo",
        tpm=args.tpm,
        rpm=rpm,
        request_window=args.request_window,
    )
    with (
        FakeAzure([deployment], api_keys=(KEY,), window_s=args.window) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        os.environ["AZURE_OPENAI_API_KEY"] = KEY
        root = Path(tmp)
        quota = "" if args.learn else f"tpm = {args.tpm}\nrpm = {rpm}"
        (root / "azeval.toml").write_text(CONFIG.format(endpoint=server.endpoint, quota=quota))
        (root / "suites").mkdir()
        (root / "suites" / "quota.yaml").write_text(suite_text(cases, args.max_tokens))
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
    calls: dict[int, int] = {}
    for request in admitted:
        text = request.body["messages"][-1]["content"]
        case = by_case[f"q{int(text.split()[1]):05d}"]
        minute = int((request.timestamp - first) // args.window)
        charged[minute] = charged.get(minute, 0) + case.prompt_tokens + args.max_tokens
        calls[minute] = calls.get(minute, 0) + 1
    last = max(charged)
    how = "learned from the answers" if args.learn else "configured"
    print(
        f"{len(results)} cases, quota {args.tpm:,} tokens and {rpm:,} requests per "
        f"{args.window:g} s minute, requests counted per {args.request_window:g} s of 60 "
        f"({how}), -j {args.concurrency}"
    )
    print(f"run took {elapsed:.1f} s; 429s met: {limited}; cases not passing: {len(not_passed)}")
    shares = []
    for minute in range(last + 1):
        tokens, requests = charged.get(minute, 0) / args.tpm, calls.get(minute, 0) / rpm
        note = "  (last, partial)" if minute == last else ""
        print(
            f"  minute {minute:2}: {charged.get(minute, 0):7,} tokens {tokens:6.1%}  "
            f"{calls.get(minute, 0):5,} requests {requests:6.1%}{note}"
        )
        if minute < last:
            shares.append(max(tokens, requests))
    if shares:
        mean = sum(shares) / len(shares)
        print(f"share of the quota used over the {len(shares)} full minutes: {mean:.1%}")
    scheduler = outcome.run.meta.scheduler.get("gpt35", {})
    for name, learned in scheduler.get("learned", {}).items():
        print(
            f"learned {name}: {learned['limit']} per {learned['window_s']:g} s "
            f"(limit from {learned['limit_from']}, window from {learned['window_from']})"
        )


if __name__ == "__main__":
    main()
