"""Shared fixtures: suite files written into a temporary folder, and a project that talks
to a fake Azure server."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from harness.cli import main
from harness.testing import FakeAzure

# The JUnit XML schema the JUnit outputs are validated against (Jenkins' junit-10.xsd).
JUNIT_SCHEMA = Path(__file__).parent / "data" / "junit-10.xsd"


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a dedented text file below tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return _write


class MakeProject(Protocol):
    def __call__(
        self, server: FakeAzure, key: str, config: str, files: Mapping[str, str]
    ) -> Path: ...


@pytest.fixture
def make_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[str, str], Path]
) -> MakeProject:
    """A project for CLI tests: tmp_path as the working folder, FAKE_AZURE_ENDPOINT set to
    ``server``, AZURE_OPENAI_API_KEY to ``key``, ``config`` as azeval.toml and each of
    ``files`` (suites, check files…) written; returns the project folder."""

    def _make(server: FakeAzure, key: str, config: str, files: Mapping[str, str]) -> Path:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("FAKE_AZURE_ENDPOINT", server.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", key)
        write("azeval.toml", config)
        for name, text in files.items():
            write(name, text)
        return tmp_path

    return _make


def latest_run(root: Path) -> tuple[Path, dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
    """The one run stored under ``root``: its folder, run.json, and results by (case, target)."""
    (run_dir,) = sorted((root / "reports" / "runs").iterdir())
    meta = json.loads((run_dir / "run.json").read_text())
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return run_dir, meta, {(r["case"], r["target"]): r for r in results}


def azeval(*args: str) -> int:
    """Run the console entry point as a user would; return its exit code."""
    old = sys.argv
    sys.argv = ["azeval", *args]
    try:
        main()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        sys.argv = old
    return 0
