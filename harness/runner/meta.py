"""The run's metadata: ids, the git commit, what ran where."""

from __future__ import annotations

import secrets
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import __version__
from harness.models import Price
from harness.results.record import FORMAT
from harness.suite.model import Suite
from harness.targets.base import TargetInfo


def new_run_id() -> str:
    """Sortable by time, unique enough: 20261125-140512-3fa2."""
    now = datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def git_commit(where: Path) -> str | None:
    """The commit checked out at ``where`` (with '+dirty' when changed), if it is a repo."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def suite_meta(suite: Suite) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "id": suite.id,
        "path": suite.path,
        "sha256": suite.sha256,
        "cases": len(suite.cases),
    }
    if suite.files:
        # What its checks read: a resume refuses a run whose schema or check file changed.
        meta["files"] = dict(suite.files)
    if suite.narrowed:
        # Which cases a selection kept: a baseline compares only those, a resume runs them.
        meta["selected"] = [case.id for case in suite.cases]
    return meta


def target_entry(info: TargetInfo, price: Price | None) -> dict[str, Any]:
    """A target as run.json records it: what it is, and the price its turns were costed at."""
    return {**info.to_json(), "price": price.to_json() if price is not None else None}


def run_meta(
    run_id: str, suites: list[Suite], targets: list[dict[str, Any]], options: dict[str, Any]
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "run_id": run_id,
        "azeval_version": __version__,
        "git_commit": git_commit(Path.cwd()),
        "started_at": now_iso(),
        "finished_at": None,
        "status": "running",
        "suites": [suite_meta(s) for s in suites],
        "targets": targets,
        "options": options,
        "summary": {},
    }
