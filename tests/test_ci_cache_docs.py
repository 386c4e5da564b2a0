"""docs/ci.md's response-cache workflow is safe to copy, as the shipped examples are."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _workflow() -> str:
    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    (block,) = [
        b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if "actions/cache" in b
    ]
    return block


def test_the_cache_workflow_restores_and_saves_and_replays() -> None:
    """The block is a workflow whose main job saves .azeval/ and whose PR job replays."""
    workflow = yaml.safe_load(_workflow())
    answers, replay = workflow["jobs"]["answers"], workflow["jobs"]["replay"]
    uses = [step.get("uses", "").split("@")[0] for step in answers["steps"]]
    assert "actions/cache/restore" in uses and "actions/cache/save" in uses
    assert "AZURE_OPENAI_API_KEY" in answers["env"]
    assert "secrets." not in str(replay)  # no secret reaches a pull request's job
    runs = " ".join(step.get("run", "") for step in replay["steps"])
    assert "--replay" in runs


def test_zizmor_finds_nothing_and_actions_are_pinned(tmp_path: Path) -> None:
    """zizmor (offline) has no finding, and every action is pinned to a 40-hex commit."""
    text = _workflow()
    for line in text.splitlines():
        if "uses:" in line:
            sha = line.split("uses:", 1)[1].split("#", 1)[0].strip().rsplit("@", 1)[1]
            assert re.fullmatch(r"[0-9a-f]{40}", sha), line
            assert re.search(r"# v\d", line), line
    path = tmp_path / ".github" / "workflows" / "prompt-answers.yml"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    zizmor = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or "zizmor"
    done = subprocess.run(
        [zizmor, "--offline", "--no-progress", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings" in done.stdout + done.stderr
