"""The CI workflows we ship as examples are safe to copy: zizmor finds nothing in them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / "docs" / "examples").glob("github-*.yml"))
# What `azeval init` writes is copied as it is too.
STARTER = ROOT / "harness" / "starter_project" / "github-workflow.yml"


def _zizmor() -> str:
    found = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    if found is None:  # a dev dependency: its absence is a broken set-up, not a skip
        pytest.fail("zizmor is not installed (it is in the dev extra: run scripts/bootstrap)")
    return found


def test_there_are_workflows_to_audit() -> None:
    """The glob finds the GitHub Actions example, so the audit below cannot pass vacuously."""
    assert [p.name for p in WORKFLOWS] == ["github-actions-shards.yml", "github-actions.yml"]


@pytest.mark.parametrize("workflow", [*WORKFLOWS, STARTER], ids=lambda p: p.name)
def test_zizmor_finds_nothing(workflow: Path) -> None:
    """Actions pinned to a commit, no persisted credentials, least permissions: no finding,
    not even a pedantic one (every job is named)."""
    done = subprocess.run(
        [_zizmor(), "--offline", "--no-progress", "--persona", "pedantic", str(workflow)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings" in done.stdout + done.stderr


def test_every_action_is_pinned_to_a_full_commit_hash() -> None:
    """A tag can be moved to other code; a 40-hex commit cannot."""
    for workflow in WORKFLOWS:
        for line in workflow.read_text().splitlines():
            if "uses:" in line:
                ref = line.split("uses:", 1)[1].split("#", 1)[0].strip()
                assert "@" in ref, line
                sha = ref.rsplit("@", 1)[1]
                assert len(sha) == 40 and all(c in "0123456789abcdef" for c in sha), line
