"""`azeval init`: a starter project that validates, plans and runs at once, overwriting nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tomllib
import yaml

from harness.config import load_config
from harness.starter import FILES, IGNORED
from tests.conftest import azeval

ROOT = Path(__file__).resolve().parent.parent
WRITTEN = [dest for _, dest in FILES]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder, made the current one, as a new user's project is."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_init_writes_the_starter_project_and_says_what_next(project, capsys) -> None:
    """init writes the config, a suite with its schema and data file, a workflow and a
    .gitignore, and prints the next three commands."""
    assert azeval("init") == 0
    for name in [*WRITTEN, ".gitignore"]:
        assert (project / name).is_file(), name
    out = capsys.readouterr().out
    steps = out.split("Next:", 1)[1].strip().splitlines()
    assert [line.split("#")[0].strip() for line in steps] == [
        "azeval validate",
        "azeval run",
        "azeval run -t azure",
    ]
    suite = yaml.safe_load((project / "suites/example.yaml").read_text())
    text = json.dumps(suite)
    assert "schemas/caller.json" in text
    assert "data/capitals.csv" in text


def test_init_into_a_new_folder_says_cd_first(project, capsys) -> None:
    """`azeval init NAME` creates the folder, and the next steps start with cd NAME."""
    assert azeval("init", "prompts") == 0
    assert (project / "prompts/azeval.toml").is_file()
    assert "Next:\n  cd prompts\n" in capsys.readouterr().out


def test_init_refuses_to_overwrite_and_writes_nothing(project, capsys) -> None:
    """An existing file is named, kept as it was, and no other file is written (exit 2)."""
    (project / "azeval.toml").write_text("# mine\n")
    assert azeval("init") == 2
    err = capsys.readouterr().err
    assert "azeval.toml" in err
    assert "writes nothing over existing files" in err
    assert (project / "azeval.toml").read_text() == "# mine\n"
    assert not (project / "suites").exists()
    assert not (project / ".gitignore").exists()


def test_an_existing_gitignore_keeps_its_lines_and_gains_the_missing_ones(project) -> None:
    """.gitignore is extended, never replaced; a line it already has is not added twice."""
    (project / ".gitignore").write_text("node_modules/\nreports/runs\n.env")  # no last newline
    assert azeval("init") == 0
    lines = (project / ".gitignore").read_text().splitlines()
    assert lines[:3] == ["node_modules/", "reports/runs", ".env"]
    assert lines.count("reports/latest.html") == 1
    assert "reports/runs/" not in lines  # "reports/runs" already ignores it


def test_init_ignores_what_a_run_writes(project) -> None:
    """The .gitignore entries cover the run folders and the latest report a run writes."""
    assert azeval("init") == 0
    ignored = (project / ".gitignore").read_text().splitlines()
    assert set(IGNORED) <= set(ignored)
    assert {"reports/runs/", "reports/latest.html"} <= set(IGNORED)


def test_the_starter_validates_and_plans(project, capsys) -> None:
    """What init writes is a valid project: validate and plan pass, on the local target."""
    assert azeval("init") == 0
    assert azeval("validate") == 0
    out = capsys.readouterr().out
    assert "ok     suites/example.yaml: suite 'example', 5 case(s)" in out
    assert "targets: local" in out
    assert azeval("plan") == 0


def uncomment(text: str, table: str) -> str:
    """The config with one commented example table (and its keys) uncommented."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("# ["):
            inside = line == f"# [targets.{table}]"
        if inside and line.startswith("# "):
            line = line[2:]
        elif inside:
            inside = False
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("table", "variables"),
    [
        (
            "azure",
            {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com", "AZURE_OPENAI_API_KEY": "k1"},
        ),
        ("openai", {"OPENAI_API_KEY": "k2"}),
    ],
)
def test_the_commented_examples_work_once_uncommented(
    project, monkeypatch, capsys, table, variables
) -> None:
    """Uncommented, the Azure and OpenAI examples are valid targets that read the usual
    environment variables: validate passes without them (it needs no secret), run refuses
    to start and names the missing one, and once they are set the target resolves them."""
    assert azeval("init") == 0
    config = project / "azeval.toml"
    config.write_text(uncomment(config.read_text(), table))
    for name in variables:
        monkeypatch.delenv(name, raising=False)
    capsys.readouterr()
    assert azeval("validate", "-t", table) == 0
    assert f"targets: {table}" in capsys.readouterr().out
    assert azeval("run", "-t", table) == 2
    missing = capsys.readouterr().err
    assert any(f"environment variable {name} is not set" in missing for name in variables)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    (target,) = load_config(config).select([table])
    assert target.api_key() == variables[target.api_key_env]
    if table == "azure":
        assert target.endpoint == variables["AZURE_OPENAI_ENDPOINT"]


def uses(workflow: dict) -> list[str]:
    return [
        step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step
    ]


def test_the_workflow_is_safe_to_copy(project) -> None:
    """Every action is pinned to a full commit hash, the checkout keeps no credentials, and
    the workflow grants nothing by default and its job only reads the repository."""
    assert azeval("init") == 0
    workflow = yaml.safe_load((project / ".github/workflows/azeval.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request_target" not in triggers
    assert workflow["permissions"] == {}
    for job in workflow["jobs"].values():
        assert set(job["permissions"].values()) == {"read"}
    assert uses(workflow)
    for action in uses(workflow):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
    checkout = next(
        step
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/checkout@")
    )
    assert checkout["with"]["persist-credentials"] is False


def test_the_workflow_pins_the_same_actions_as_the_documented_one(project) -> None:
    """The starter workflow and docs/examples/github-actions.yml pin each shared action to
    the same commit, so a bump is made in both or a test says so."""
    assert azeval("init") == 0
    ours = uses(yaml.safe_load((project / ".github/workflows/azeval.yml").read_text()))
    docs = uses(yaml.safe_load((ROOT / "docs/examples/github-actions.yml").read_text()))
    pinned = dict(a.split("@") for a in docs)
    shared = [a for a in ours if a.split("@")[0] in pinned]
    assert shared
    for action in shared:
        name, commit = action.split("@")
        assert pinned[name] == commit, name


def test_readme_quick_start_begins_with_init() -> None:
    """The README's quick start shows `azeval init` and running what it wrote."""
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "azeval init" in quick
    assert quick.index("azeval init") < quick.index("azeval run")


@pytest.mark.local_model
@pytest.mark.timeout(300)
def test_init_then_run_passes_on_the_local_model(project, capsys) -> None:
    """`azeval init` then `azeval run`, as a new user types them: a real run on the embedded
    local model that passes every case and writes the report."""
    assert azeval("init") == 0
    capsys.readouterr()
    assert azeval("run") == 0
    out = capsys.readouterr().out
    assert "5 result(s): 5 passed, 0 failed, 0 errors, 0 unchecked" in out
    (run_dir,) = (project / "reports/runs").iterdir()
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert {r["verdict"] for r in results} == {"pass"}
    assert {r["target"] for r in results} == {"local"}
    assert (project / "reports/latest.html").is_file()


def test_the_package_ships_every_starter_file() -> None:
    """Each file init copies is matched by pyproject's package data, so an installed
    azeval (not only this checkout) has it."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["harness"]
    shipped = {p for pattern in patterns for p in (ROOT / "harness").glob(pattern) if p.is_file()}
    for source, _ in FILES:
        assert ROOT / "harness/starter_project" / source in shipped, source
