"""The gate as a pure function of a stored run: `azeval gate RUN` gives the exit code the
run gave (1 and 3 included), `azeval report` writes every output, and a Python caller's
RunOptions(timeout=…) holds over a target's own timeout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import api
from harness.runner.engine import RunOptions
from harness.runner.retry import RetryPolicy
from harness.testing import Action, Deployment, FakeAzure, Fault, Match, Rule
from tests.conftest import azeval

KEY = "sk-test-0123456789abcdef"
CONFIG = """
[targets.a]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "gpt35"
model = "gpt-35-turbo"
timeout = 60
api_key_env = "KEY_A"
"""
SUITE = """
suite: s
cases:
  - id: good
    prompt: Say hello.
    expect: {contains: Hello}
  - id: bad
    prompt: Say goodbye.
    expect: {contains: Hello}
"""


@pytest.fixture
def fake() -> Any:
    rules = [Rule(Match(), Action(content="Hello!")), Rule(Match(last_user="bye"), Action("Bye"))]
    with FakeAzure(
        [Deployment("gpt35", model="gpt-35-turbo")], rules=rules[::-1], api_keys=(KEY,)
    ) as server:
        yield server


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Any, fake: FakeAzure) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_AZURE_ENDPOINT", fake.endpoint)
    monkeypatch.setenv("KEY_A", KEY)
    write("azeval.toml", CONFIG)
    write("suites/s.yaml", SUITE)
    return tmp_path


def last_run(project: Path) -> Path:
    """The run written last (two run ids of the same second do not sort by time)."""
    return max((project / "reports" / "runs").iterdir(), key=lambda p: p.stat().st_mtime_ns)


def test_gating_a_stored_run_gives_the_exit_code_the_run_gave(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run with a failing case exits 1, and so does `azeval gate` on its record; with
    --fail-under 50 both pass; the gate's lines are the same."""
    assert azeval("run", "suites") == 1
    said = capsys.readouterr().out
    run = last_run(project)
    assert azeval("gate", str(run)) == 1
    again = capsys.readouterr().out
    gate_lines = [line for line in said.splitlines() if line.startswith(("Gate:", "  - "))]
    assert gate_lines and all(line in again.splitlines() for line in gate_lines)
    assert azeval("gate", str(run), "--fail-under", "50") == 0


def test_a_dead_target_is_exit_3_from_the_record_too(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run refused by the service (a wrong key) exits 3; the record says which target was
    dead and why, so gating the stored run exits 3 as well, naming it."""
    monkeypatch.setenv("KEY_A", "sk-wrong-0123456789abcdef")
    assert azeval("run", "suites") == 3
    run = last_run(project)
    assert "a" in json.loads((run / "run.json").read_text())["dead_targets"]
    capsys.readouterr()
    assert azeval("gate", str(run)) == 3
    assert "target 'a' is unavailable: auth (HTTP 401)" in capsys.readouterr().out


def test_report_writes_html_junit_and_markdown_of_a_stored_run(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`azeval report RUN --junit --markdown` writes all three from the record and exits 0."""
    azeval("run", "suites")
    run = last_run(project)
    (run / "report.html").unlink()
    capsys.readouterr()
    assert azeval("report", str(run), "--junit", "out/j.xml", "--markdown", "out/m.md") == 0
    out = capsys.readouterr().out
    assert (run / "report.html").is_file()
    assert 'tests="2" failures="1"' in (project / "out" / "j.xml").read_text()
    assert "## ❌ azeval: gate failed (exit 1)" in (project / "out" / "m.md").read_text()
    assert "JUnit: out/j.xml" in out and "Markdown: out/m.md" in out


def test_a_python_callers_timeout_holds_over_the_targets_own(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RunOptions(timeout=0.3) cuts a 3 s reply although the target's own timeout is 60 s
    (the CLI used to rewrite each target to make --timeout hold; a Python caller's was
    silently ignored)."""
    with FakeAzure(
        [
            Deployment(
                "gpt35", model="gpt-35-turbo", faults=(Fault("slow", first=100, delay_ms=3000),)
            )
        ],
        rules=[Rule(Match(), Action(content="Hello!"))],
        api_keys=(KEY,),
    ) as slow:
        monkeypatch.setenv("FAKE_AZURE_ENDPOINT", slow.endpoint)
        prepared = api.prepare(["suites"], ["a"])
        assert prepared.targets[0].timeout == 60
        options = RunOptions(
            timeout=0.3, retry=RetryPolicy(max_retries=0), reports_dir=project / "reports"
        )
        outcome = api.run(prepared, options)
    # With the target's 60 s the 3 s reply would have passed; cut at 0.3 s it times out
    # (and a target that never answered is then dead for the other case).
    kinds = sorted(r.error.kind for r in outcome.run.results if r.error is not None)
    assert kinds == ["target_unavailable", "timeout"]
    assert outcome.run.meta.options.timeout == 0.3
