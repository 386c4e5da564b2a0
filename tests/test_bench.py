"""The benchmarks under bench/ still run, on tiny sizes: a bench nobody runs rots unnoticed.

These check that each script runs to the end and prints its figures; the figures themselves
are measured by running the scripts at full size (see the README's Development section).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench(name: str, *args: str, timeout: float = 120) -> str:
    """Run bench/<name>.py with args; fail with its output unless it exits 0."""
    done = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=BENCH.parent,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_tokens_bench_counts_and_plans() -> None:
    """Counting throughput against tiktoken, and plan on one and two targets."""
    out = bench("bench_tokens", "--cases", "50")
    assert "tiktoken encode_ordinary (reference)" in out
    assert "count_messages warm" in out
    assert "plan 50 cases x 2 target(s)" in out


def test_overhead_bench_compares_with_the_bare_sdk() -> None:
    """The bare SDK loop, the runner and the full api.run, each as a ratio to the script a
    user would write by hand (the SDK, a semaphore, jsonschema and a JSONL file)."""
    out = bench("bench_overhead", "--cases", "20", "--concurrency", "4", "--rounds", "1")
    assert "hand-written script (reference)" in out
    assert "bare SDK loop" in out
    assert "azeval runner (execute)" in out
    assert "azeval api.run (+plan, report)" in out
    assert "fake served from a child process" in out
    assert re.search(r"wall\s+ratio\s+cpu\s+ratio", out)


def test_overhead_bench_can_serve_its_fake_from_a_thread_as_it_did() -> None:
    """--fake thread: the fake in the bench's own process (its CPU in both timings)."""
    out = bench(
        "bench_overhead",
        *("--cases", "10", "--concurrency", "2", "--rounds", "1", "--fake", "thread"),
    )
    assert "fake served from a thread of this process" in out
    assert "azeval runner (execute)" in out


def test_judge_bench_compares_judge_calls_with_plain_requests() -> None:
    """Judge calls against plain requests through the same sender, and the pairwise request
    count (2 per case and pair of targets) checked by the bench itself."""
    out = bench(
        "bench_judge",
        *("--checks", "20", "--concurrency", "4", "--rounds", "1", "--pairwise-cases", "5"),
    )
    assert "ratio judge / plain" in out
    assert (
        "pairwise over 5 cases x 2 targets, 1 sample(s): 10 judge requests sent, expected 10" in out
    )


def test_quota_bench_reports_the_share_used() -> None:
    """The share of a (short) quota window used, with no case failing."""
    out = bench("bench_quota", "--tpm", "3000", "--window", "1", "--windows", "2")
    assert "share of the quota used" in out
    assert "cases not passing: 0" in out


def test_quota_bench_learns_a_request_window_of_10_seconds() -> None:
    """Nothing configured and requests counted per 10 s: the bench says what was learned."""
    out = bench(
        "bench_quota", "--tpm", "6000", "--window", "3", "--windows", "2", "--learn",
        "--request-window", "10", "--max-tokens", "20",
    )  # fmt: skip
    assert "requests counted per 10 s of 60 (learned from the answers)" in out
    assert "cases not passing: 0" in out
    assert "learned requests: 6 per 0.5 s" in out


def test_report_bench_renders_with_and_without_a_baseline() -> None:
    """Render times of both reports against json.dumps of the same records."""
    out = bench("bench_report", "--cases", "50", "--repeat", "1")
    assert "render_html without baseline" in out
    assert "render_html with baseline" in out


def test_report_bench_writes_a_large_runs_report_against_every_case_in_full() -> None:
    """--large writes the report as azeval does and in full, and says if it is within 25 MB."""
    out = bench("bench_report", "--large", "2000")
    assert "every case in full (ref)" in out
    assert "as written / in full: size 1.00x" in out  # 2,000 cases: within the limit
    assert "under 25 MB: yes" in out


def test_report_bench_times_a_baseline_comparison_against_a_tenth_of_it() -> None:
    """--compare times report --baseline at N and N/10 cases, each in a child process,
    with the ratios of time and peak RSS, and says if it stayed under 400 MB."""
    out = bench("bench_report", "--compare", "500")
    assert "50 cases (ref)" in out
    assert re.search(r"500 / 50 cases: time [\d.]+x, peak RSS [\d.]+x", out)
    assert "peak RSS under 400 MB: yes" in out


@pytest.mark.local_model
@pytest.mark.timeout(300)
def test_local_bench_compares_with_direct_xllamacpp() -> None:
    """Completion tokens per second through azeval and through xllamacpp directly."""
    out = bench(
        "bench_local",
        *("--slots", "1", "--prompts", "2", "--max-tokens", "8", "--rounds", "1"),
        *("--n-ctx", "1024"),
        timeout=280,
    )
    assert "ratio" in out
    assert "cold start" in out


def test_stream_bench_measures_accuracy_and_overhead() -> None:
    """TTFT and gap accuracy against the fake's delays, and streamed vs whole answers."""
    out = bench(
        "bench_stream",
        *("--cases", "20", "--timed-cases", "8", "--concurrency", "4", "--rounds", "1"),
        *("--first-token-ms", "40", "--token-ms", "5"),
    )
    assert "TTFT" in out and "gap p50" in out and "within 10%" in out
    assert "streamed" in out and "x wall" in out and "x CPU" in out


def test_pool_bench_times_a_pool_against_one_deployment() -> None:
    """The same cases on one deployment and on a pool of two at the same TPM each: both
    pass every case, the pool splits the work, and the ratio of wall times is printed."""
    out = bench("bench_pool", "--cases", "40", "--tpm", "3000", "--window", "0.5")
    assert "one deployment: 40 cases, 0 not passing" in out
    assert "pool of two: 40 cases, 0 not passing" in out
    assert "ratio pool / one deployment:" in out
    split = re.search(r"split east (\d+), sweden (\d+)", out)
    assert split is not None and int(split[1]) > 0 and int(split[2]) > 0, out


def test_reference_bench_times_overlap_checks_and_counts_similar_requests() -> None:
    """Overlap check time against the bare libraries, and similar's embedding requests and
    wall time batched against one text per request (the bench exits 1 if batching saved
    no request or the two runs scored differently)."""
    out = bench(
        "bench_reference",
        *("--checks", "50", "--similar", "12", "--concurrency", "4"),
        *("--latency-ms", "5", "--rounds", "1"),
    )
    assert "overlap: 50 replies x (rouge + levenshtein)" in out
    assert "one text per request: 24 requests" in out
    assert "fewer requests" in out


def test_scale_bench_prints_a_table_with_ratios() -> None:
    """validate, plan, run, peak memory and run-folder sizes per suite size, each as a ratio
    to the smallest size."""
    out = bench("bench_scale", "--sizes", "20,40", "--concurrency", "4")
    assert "validate s" in out and "run RSS MiB" in out and "report MB" in out
    assert "(ratios to the 20-case line; concurrency 4)" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["20"].count("( 1.00x)") == 7 and "40" in lines


def test_scale_bench_can_time_only_the_resume() -> None:
    """--resume-only kills a run half-way and times only its resume, one column per size."""
    out = bench("bench_scale", "--sizes", "40", "--concurrency", "4", "--resume-only")
    assert "resume s" in out and "validate s" not in out
    assert "(ratios to the 40-case line; concurrency 4)" in out


def test_scale_bench_can_resume_a_selection() -> None:
    """--keyword runs and resumes only -k's cases (a resumed selection names each one)."""
    out = bench(
        "bench_scale", "--sizes", "100", "--concurrency", "4", "--resume-only",
        "--keyword", "ticket-1 or ticket-2",
    )  # fmt: skip
    assert "resume s" in out and "(ratios to the 100-case line; concurrency 4)" in out


def test_batch_bench_runs_cases_through_the_batch_endpoints() -> None:
    """The batch bench: live and batch verdicts agree, azeval's own time and memory are
    shown as ratios to the live run, and the batch made one upload and one batch."""
    out = bench("bench_batch", "--cases", "10", "--poll", "0.05")
    assert "verdicts identical: True" in out
    assert "ratio batch own time / live" in out and "ratio batch peak / live peak" in out
    assert "creates 1" in out and "uploads 1" in out and "downloads 2" in out
