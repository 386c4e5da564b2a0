"""Shared fixtures: suite files written into a temporary folder, and a project that talks
to a fake Azure server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from harness.cli import main
from harness.testing import FakeAzure

# Chromium from Debian (scripts/install-chromium), headless, with nothing that phones home.
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# Model text that would run if a report let it: the browser tests plant it and look.
SCRIPT_PAYLOAD = "<script>document.title='pwned'</script>"

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


def raw_data(html: str) -> dict[str, Any]:
    """The page's data block as embedded: texts and checks as indices into its tables."""
    match = re.search(
        r'<script type="application/json" id="azeval-data">(.*?)</script>', html, re.S
    )
    assert match
    return json.loads(match.group(1))


def embedded_data(html: str) -> dict[str, Any]:
    """The page's data with every text and check index looked up, as the page's script does."""
    data = raw_data(html)
    texts, checks = data["texts"], data["checks"]

    def text(index: int | None) -> str | None:
        return None if index is None else texts[index]

    def calls(value: list[list[int]] | None) -> list[dict[str, str]] | None:
        if value is None:
            return None
        return [{"name": texts[n], "arguments": texts[a], "id": texts[i]} for n, a, i in value]

    for row in data["rows"]:
        # A message: role and text, then name, tool calls and tool_call_id (null if absent).
        row["names"] = [text(m[2]) for m in row["m"]]
        row["calls"] = [calls(m[3]) for m in row["m"]]
        row["call_ids"] = [text(m[4]) for m in row["m"]]
        row["m"] = [[m[0], texts[m[1]]] for m in row["m"]]
        cells = [None if c is None else dict(zip(data["cell"], c, strict=True)) for c in row["c"]]
        for cell in cells:
            if cell is None:
                continue
            cell["r"], cell["mo"] = text(cell["r"]), text(cell["mo"])
            cell["ck"] = [checks[i] for i in cell["ck"]]
            cell["e"] = cell["e"] or []
            cell["tc"] = calls(cell["tc"])
            if cell["t"] is not None:
                cell["turn_calls"] = [calls(t[2]) for t in cell["t"]]
                cell["t"] = [[texts[t[0]], text(t[1])] for t in cell["t"]]
        row["c"] = cells
    return data


@pytest.fixture(scope="module")
def chromium() -> Path:
    """The headless Chromium the report tests use; a skip without it, a failure under CI."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing under CI: run scripts/install-chromium")
        pytest.skip(f"{CHROMIUM} not installed (scripts/install-chromium installs it)")
    return CHROMIUM


def run_chromium(chromium: Path, profile: Path, *args: str) -> str:
    """Chromium's output (say --dump-dom) for ``args``, in its own profile folder."""
    profile.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(chromium), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


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
