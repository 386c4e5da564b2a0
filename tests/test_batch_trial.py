"""The trial a new user makes of batch mode: a suite run as a batch, killed while its batch
is in progress, resumed without a second submission, with the live run's verdicts at half
its recorded cost (2,000 cases by hand; a size that runs in seconds here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.results.store import load_run, read_meta
from harness.testing import Action, BatchTiming, FakeAzure, Match, Rule
from tests.test_batch_run import CONFIG, suite_text

KEY = "sk-trial-0123456789abcdef"
AZEVAL = Path(sys.executable).with_name("azeval")
CASES = int(os.environ.get("AZEVAL_BATCH_TRIAL_CASES", "60"))


@pytest.fixture
def server() -> Iterator[FakeAzure]:
    timing = BatchTiming(validating_s=0.2, in_progress_s=2.0, finalizing_s=0.2)
    rules = [Rule(Match(last_user=r"[37]$"), Action(content="nope"))]
    with FakeAzure(
        ["gb"], rules=rules, default=Action(content="ok"), api_keys=(KEY,), batch_timing=timing
    ) as fake:
        yield fake


@pytest.fixture
def project(tmp_path: Path, server: FakeAzure) -> Path:
    (tmp_path / "azeval.toml").write_text(CONFIG)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "trial.yaml").write_text(suite_text(CASES))
    return tmp_path


def azeval_cli(project: Path, server: FakeAzure, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FAKE_AZURE_ENDPOINT": server.endpoint, "AZURE_OPENAI_API_KEY": KEY}
    return subprocess.Popen(
        [str(AZEVAL), "run", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_batch(project: Path, timeout: float = 60.0) -> Path:
    """The run's folder, once run.json shows its batch in progress at the service."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run_dir in (project / "reports" / "runs").glob("*"):
            try:
                jobs = (read_meta(run_dir).get("batch") or {}).get("jobs") or []
            except Exception:  # run.json being written
                continue
            if jobs and jobs[0].get("status") == "in_progress":
                return run_dir
        time.sleep(0.05)
    raise AssertionError("the batch never showed up in progress")


def test_killed_mid_batch_then_resumed_gives_the_live_verdicts_at_half_the_cost(
    project: Path, server: FakeAzure
) -> None:
    """kill -9 while the batch is in progress; --resume reattaches (one upload, one batch
    created in all), and the verdicts equal a live run's at half its cost."""
    first = azeval_cli(project, server, "--batch", "--batch-poll", "0.1")
    run_dir = wait_for_batch(project)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    batch_id = read_meta(run_dir)["batch"]["jobs"][0]["batch_id"]
    resumed = azeval_cli(project, server, "--resume", str(run_dir), "--batch-poll", "0.1")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 1, err  # some cases fail their check, as live
    assert f"reattached to {batch_id}" in err
    creates = [r for r in server.requests if r.method == "POST" and r.path == "/openai/batches"]
    uploads = [r for r in server.requests if r.method == "POST" and r.path == "/openai/files"]
    assert len(creates) == 1 and len(uploads) == 1
    batched = load_run(run_dir)
    assert batched.meta.status == "complete" and len(batched.results) == CASES
    live_proc = azeval_cli(project, server, "-j", "16")
    live_proc.communicate(timeout=300)
    runs = sorted((project / "reports" / "runs").glob("*"))
    live = load_run(next(r for r in runs if r != run_dir))
    assert {r.key: r.verdict for r in batched.results} == {r.key: r.verdict for r in live.results}
    live_cost = live.summary.targets["gb"].cost_usd
    batch_cost = batched.summary.targets["gb"].cost_usd
    assert live_cost and batch_cost == pytest.approx(live_cost / 2)
    assert json.loads((run_dir / "run.json").read_text())["batch"]["elapsed_s"] > 0
