"""`azeval run` with no configuration: the embedded local model, for real, end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import azeval

pytestmark = [pytest.mark.local_model, pytest.mark.timeout(300)]

SUITE = """
suite: local-smoke
defaults:
  system: You are a helpful assistant. Answer in one short sentence.
  params: {temperature: 0, seed: 7, max_tokens: 16}
cases:
  - id: capital
    prompt: What is the capital of France?
    expect: {icontains: paris}
  - id: impossible
    prompt: Say hello.
    expect: {contains: "zebra-unicorn-42"}
  - id: filter-only
    prompt: Say hello.
    expect: {content_filter: {max_severity: safe}}
"""


def test_default_local_run_records_real_replies(tmp_path, monkeypatch, write, capsys):
    """No targets configured: local runs, says so, and records real passes, fails and n/a."""
    monkeypatch.chdir(tmp_path)
    write("suites/smoke.yaml", SUITE)
    assert azeval("run", "suites") == 1
    assert "using the embedded local model" in capsys.readouterr().err

    (run_dir,) = (tmp_path / "reports" / "runs").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    (target,) = meta["targets"]
    assert target["kind"] == "local"
    gguf = Path(target["gguf"])
    assert target["sha256"] == hashlib.sha256(gguf.read_bytes()).hexdigest()
    results = {
        r["case"]: r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())
    }
    assert results["capital"]["verdict"] == "pass"
    assert "paris" in results["capital"]["turns"][0]["reply"].lower()
    assert results["impossible"]["verdict"] == "fail"
    assert results["filter-only"]["verdict"] == "unchecked"
    (check,) = results["filter-only"]["turns"][0]["checks"]
    assert check["status"] == "n/a"
    assert (tmp_path / "reports" / "latest.html").is_file()
