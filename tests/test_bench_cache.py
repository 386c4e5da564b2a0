"""bench/bench_cache.py still runs, on a tiny size (the figures come from full-size runs)."""

from __future__ import annotations

from tests.test_bench import bench


def test_cache_bench_counts_requests_and_times_runs() -> None:
    """Second run sends 0 requests, a changed prompt 1, and rescore 0."""
    out = bench("bench_cache", "--cases", "20", "--rescore-cases", "30", "--latency-ms", "20")
    assert "second run (cache warm)" in out and ", 0 requests" in out
    assert "1 requests (expected 1)" in out
    assert "rescore of it:" in out and "0 requests (expected 0)" in out
    assert "second / first wall time" in out
