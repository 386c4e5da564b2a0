"""bless, diff and the run gate through the CLI, end to end on a fake Azure resource."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import xmlschema
from click.testing import CliRunner

from harness import api
from harness.cli.options import GateOptions, gate_options
from harness.cli.records import bless, diff
from harness.cli.running import finish_run
from harness.cli.running import run as run_command
from harness.errors import AzevalError, InputError
from harness.gate import evaluate
from harness.results.baseline import load_reference
from harness.results.stability import FLAKY, case_stability
from harness.results.stats import wilson_interval
from harness.runner.engine import RunOptions
from harness.runner.retry import RetryPolicy
from harness.testing import Action, Deployment, FakeAzure, Match, Rule
from tests import factories
from tests.conftest import JUNIT_SCHEMA
from tests.factories import failing, result

SUITE = """
suite: geo
cases:
  - id: france
    prompt: "The capital of France is Paris."
    expect: {contains: Paris}
  - id: italy
    prompt: "The capital of Italy is Rome."
    expect: {contains: Rome}
"""


@click.group()
def azeval() -> None:
    """The azeval group as the CLI will have it: run plus bless and diff."""


for command in (run_command, bless, diff):
    azeval.add_command(command)


def invoke(*args: str) -> tuple[int, str]:
    """Run the CLI as the console entry point does: return value or error → exit code."""
    outcome = CliRunner().invoke(azeval, list(args), standalone_mode=False)
    if isinstance(outcome.exception, AzevalError):
        return outcome.exception.exit_code, outcome.output + str(outcome.exception)
    if outcome.exception is not None:
        raise outcome.exception
    return int(outcome.return_value or 0), outcome.output


def test_bless_writes_the_baseline(tmp_path: Path) -> None:
    """bless writes the baseline file and says what it blessed."""
    run_dir = factories.write_run(
        tmp_path / "r1", [result("a"), result("b")], run_id="20250101-000000-abcd"
    ).path
    out = tmp_path / "baselines" / "b.json"
    code, output = invoke("bless", str(run_dir), "-o", str(out))
    assert code == 0
    assert "Blessed run 20250101-000000-abcd: 2 case(s) on gpt35 (2/2 results passed)" in output
    assert json.loads(out.read_text())["targets"]["gpt35"]["cases"]["geo/a"]["passed"] == 1


def test_bless_refuses_an_interrupted_run(tmp_path: Path) -> None:
    """An unfinished run is not blessed unless asked, and that is exit 2."""
    run_dir = factories.write_run(tmp_path / "r1", [result("a")], status="interrupted").path
    code, output = invoke("bless", str(run_dir), "-o", str(tmp_path / "b.json"))
    assert code == 2
    assert "the run is interrupted" in output
    code, _ = invoke("bless", str(run_dir), "-o", str(tmp_path / "b.json"), "--allow-partial")
    assert code == 0


def test_diff_prints_changes_and_gates(tmp_path: Path) -> None:
    """diff lists each changed case with deltas and a reply diff; exit 1 only when asked."""
    before = factories.write_run(tmp_path / "r1", [result("a"), result("b")]).path
    after = factories.write_run(
        tmp_path / "r2", [result("a"), failing("b", reply="Lyon", latency=160)]
    ).path
    code, output = invoke("diff", str(before), str(after))
    assert code == 0
    assert "regression  geo/b" in output
    assert "+60 ms" in output
    assert "reply: [-Paris-]{+Lyon+}" in output
    assert "McNemar (exact) over 2 paired case(s): 1 broke, 0 fixed" in output
    code, _ = invoke("diff", str(before), str(after), "--fail-on-regression")
    assert code == 1


def test_diff_reads_a_baseline_file_and_reports_drift(tmp_path: Path) -> None:
    """A blessed file is a valid side of a diff; a changed reported model is said plainly."""
    before = factories.write_run(tmp_path / "r1", [result("a")]).path
    after = factories.write_run(tmp_path / "r2", [result("a", model="gpt-35-turbo-1106")]).path
    invoke("bless", str(before), "-o", str(tmp_path / "b.json"))
    code, output = invoke("diff", str(tmp_path / "b.json"), str(after), "--fail-on-regression")
    assert code == 0
    assert "reported model was gpt-35-turbo in the baseline, now gpt-35-turbo-1106" in output


def test_malformed_baseline_is_exit_two_before_running(tmp_path: Path) -> None:
    """A broken baseline file stops the run before anything is sent."""
    bad = tmp_path / "b.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match="'azeval_baseline' is a required property"):
        GateOptions.load(baseline=bad)


def test_gate_options_decorate_a_command() -> None:
    """gate_options adds the five options to a command."""

    @click.command()
    @gate_options
    def command(**kwargs: Any) -> None:
        """A command."""

    names = {p.name for p in command.params}
    assert names == {"baseline", "fail_on_regression", "min_lower_bound", "junit", "markdown"}


# --- end to end on the fake Azure resource -------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeAzure]:
    with FakeAzure([Deployment("gpt35"), Deployment("gpt4", model="gpt-4o")]) as server:
        yield server


@pytest.fixture
def project(tmp_path: Path, fake: FakeAzure, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two fake deployments as targets, and a suite whose replies (echoes) pass."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "test-key")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    config = "".join(
        textwrap.dedent(
            f"""
            [targets.{name}]
            kind = "azure"
            endpoint = "{fake.endpoint}"
            deployment = "{name}"
            model = "gpt-35-turbo"
            """
        )
        for name in ("gpt35", "gpt4")
    )
    (tmp_path / "azeval.toml").write_text(config + "\n[settings]\nmax_retries = 0\n")
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "geo.yaml").write_text(SUITE)
    return tmp_path


def latest_run(project: Path) -> Path:
    return sorted((project / "reports" / "runs").iterdir())[-1]


def gated_run(project: Path, repeat: int | None = None, **gate: Any) -> tuple[int, Any]:
    """What `azeval run --baseline … --fail-on-regression …` does, through the library."""
    options = GateOptions.load(**gate)
    prepared = api.prepare([project / "suites"], (), project / "azeval.toml")
    run_options = RunOptions(
        reports_dir=project / "reports", retry=RetryPolicy(max_retries=0), repeat=repeat
    )
    outcome = api.run(prepared, run_options)
    return finish_run(outcome, options), outcome


def test_blessed_baseline_gates_the_next_run(project: Path, fake: FakeAzure) -> None:
    """Bless run 1; run 2 unchanged exits 0; a planted regression exits 1 (CLI and gate)."""
    code, _ = invoke("run", "suites", "--config", "azeval.toml", "--reports-dir", "reports")
    assert code == 0
    first = latest_run(project)
    assert invoke("bless", str(first), "-o", "baselines/baseline.json")[0] == 0

    code, _ = gated_run(project, baseline=Path("baselines/baseline.json"), fail_on_regression=True)
    assert code == 0
    assert invoke("diff", "baselines/baseline.json", str(latest_run(project)))[0] == 0

    fake.set_rules(
        [Rule(Match(deployment="gpt4", last_user="Italy"), Action(content="I cannot say."))]
    )
    junit = project / "out" / "junit.xml"
    code, outcome = gated_run(
        project,
        baseline=Path("baselines/baseline.json"),
        fail_on_regression=True,
        junit=junit,
        markdown=project / "out" / "summary.md",
    )
    assert code == 1
    xmlschema.XMLSchema(JUNIT_SCHEMA).validate(junit)
    summary = (project / "out" / "summary.md").read_text()
    assert "regression: geo/italy @gpt4 held in the baseline" in summary

    code, output = invoke(
        "diff", "baselines/baseline.json", str(outcome.run.path), "--fail-on-regression"
    )
    assert code == 1
    assert "regression  geo/italy" in output
    assert "[-Echo: The capital of Italy is Rome-]{+I cannot say+}." in output


def test_flaky_target_is_classed_flaky_with_its_interval(project: Path, fake: FakeAzure) -> None:
    """Six repeats on a target that answers right one time in three pass 2/6: flaky."""
    good, bad = Action(content="Paris."), Action(content="Lyon.")
    fake.set_rules([Rule(Match(deployment="gpt35", last_user="France"), sequence=(good, bad, bad))])
    code, outcome = gated_run(project, repeat=6, min_lower_bound=10)
    assert code == 1
    stability = {(s.case_key, s.target): s for s in case_stability(outcome.run.results)}
    france = stability[("geo/france", "gpt35")]
    assert (france.passed, france.n, france.stability) == (2, 6, FLAKY)
    assert (france.low, france.high) == wilson_interval(2, 6)
    assert stability[("geo/france", "gpt4")].passed == 6
    # Every repeat was its own request: none answered from another's response.
    assert len([r for r in fake.requests if r.deployment == "gpt35"]) == 12


def test_step_summary_is_appended(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With $GITHUB_STEP_SUMMARY set, a gated run appends its Markdown there."""
    summary = tmp_path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, _ = gated_run(project)
    assert code == 0
    assert summary.read_text().startswith("## ✅ azeval: gate passed")


def test_diff_gates_with_the_same_rules_as_run(tmp_path: Path) -> None:
    """diff --fail-on-regression blocks a new case that fails, as run --baseline does."""
    before = factories.write_run(tmp_path / "r1", [result("a")]).path
    after = factories.write_run(tmp_path / "r2", [result("a"), result("b", verdict="fail")]).path
    code, output = invoke("diff", str(before), str(after))
    assert code == 0
    assert "not gated: new case does not pass: geo/b" in output
    code, output = invoke("diff", str(before), str(after), "--fail-on-regression")
    assert code == 1
    assert "new case does not pass: geo/b" in output


def _judging(version: str, template_sha: str) -> dict[str, Any]:
    """run.json's ``judging`` for one judge: its model and its rubric template's hash."""
    return {
        "judge": {
            "model": "gpt-4o",
            "model_version": version,
            "checks": 1,
            "templates": {"rubric.j2": template_sha},
        }
    }


def test_diff_and_the_baseline_gate_say_when_the_judge_changed(tmp_path: Path) -> None:
    """A judge whose model version or template hash differs between the two runs is named
    by `azeval diff`, and by a gate against a blessed baseline (which keeps the judge):
    a verdict of a judged check that moved may have moved because of the judge."""
    old = factories.write_run(
        tmp_path / "r1", [result("a")], judging=_judging("2024-05-13", "a" * 64)
    )
    new = factories.write_run(
        tmp_path / "r2", [result("a", "fail")], judging=_judging("2024-08-06", "b" * 64)
    )
    code, output = invoke("diff", str(old.path), str(new.path))
    assert code == 0
    suspect = "changes in its checks' verdicts and scores may be the judge's, not the target's"
    assert (
        "drift: judge 'judge' model changed from gpt-4o 2024-05-13 to gpt-4o 2024-08-06: " + suspect
    ) in output
    assert (
        f"drift: judge 'judge' template rubric.j2 changed (sha256 {'a' * 12} → {'b' * 12}): "
        + suspect
    ) in output
    baseline = tmp_path / "b.json"
    assert invoke("bless", str(old.path), "-o", str(baseline))[0] == 0
    assert json.loads(baseline.read_text())["judging"]["judge"]["templates"] == {
        "rubric.j2": "a" * 64
    }
    gate = evaluate(new, baseline=load_reference(baseline))
    assert any(
        w.startswith("drift: judge 'judge' template rubric.j2 changed") for w in gate.warnings
    )
    same = factories.write_run(
        tmp_path / "r3", [result("a")], judging=_judging("2024-05-13", "a" * 64)
    )
    assert not any("judge" in w for w in evaluate(same, baseline=old).warnings)
