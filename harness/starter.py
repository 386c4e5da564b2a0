"""``azeval init``: a starter project that runs straight away on the embedded local model.

The files are shipped in ``harness/starter_project/`` and copied as they are: a config with
the local target and commented Azure and OpenAI ones, one example suite with its schema and
data file, and a GitHub Actions workflow. Nothing existing is overwritten; ``.gitignore``
only gains the lines for run data that it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from harness.errors import InputError

# Where each shipped file goes in the user's project (the workflow is shipped under a name
# without a leading dot, which package data would otherwise leave out).
FILES: tuple[tuple[str, str], ...] = (
    ("azeval.toml", "azeval.toml"),
    ("suites/example.yaml", "suites/example.yaml"),
    ("suites/schemas/caller.json", "suites/schemas/caller.json"),
    ("suites/data/capitals.csv", "suites/data/capitals.csv"),
    ("github-workflow.yml", ".github/workflows/azeval.yml"),
)
# What a run writes and nobody commits: run records and the rendered reports.
IGNORED = ("reports/runs/", "reports/latest.html")
NEXT_STEPS = (
    ("azeval validate", "check the suite and the config; sends nothing"),
    ("azeval run", "run suites/ on the local model; the report is reports/latest.html"),
    (
        "azeval run -t azure",
        "on Azure: uncomment [targets.azure] in azeval.toml, export AZURE_OPENAI_ENDPOINT "
        "and AZURE_OPENAI_API_KEY",
    ),
)


class ExistingFiles(InputError):
    """``azeval init`` would overwrite files; it writes none of them."""

    def __init__(self, root: Path, existing: list[str]) -> None:
        self.existing = existing
        names = ", ".join(existing)
        super().__init__(
            f"{root}: already has {names}; azeval init writes nothing over existing files "
            "(move them away, or run it in another folder)"
        )


@dataclass(frozen=True)
class Started:
    """What ``azeval init`` did: the files written, and whether .gitignore gained lines."""

    root: Path
    written: tuple[str, ...]
    gitignore: str  # "created", "extended" or "unchanged"


def init_project(root: Path) -> Started:
    """Write the starter project into ``root`` (created if missing); ExistingFiles (exit 2)
    when any of its files is already there, before anything is written."""
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: not a folder")
    existing = [dest for _, dest in FILES if (root / dest).exists()]
    if existing:
        raise ExistingFiles(root, existing)
    shipped = resources.files("harness") / "starter_project"
    for source, dest in FILES:
        path = root / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((shipped / source).read_text(encoding="utf-8"), encoding="utf-8")
    return Started(root, tuple(dest for _, dest in FILES), _ignore_run_data(root / ".gitignore"))


def _ignore_run_data(gitignore: Path) -> str:
    """Add the run-data lines .gitignore lacks, keeping every line it has."""
    if not gitignore.exists():
        gitignore.write_text(
            "# azeval run data\n" + "".join(f"{p}\n" for p in IGNORED), encoding="utf-8"
        )
        return "created"
    text = gitignore.read_text(encoding="utf-8")
    have = {line.strip() for line in text.splitlines()}
    missing = [p for p in IGNORED if p not in have and p.rstrip("/") not in have]
    if not missing:
        return "unchanged"
    lead = "" if not text or text.endswith("\n") else "\n"
    gitignore.write_text(
        text + lead + "# azeval run data\n" + "".join(f"{p}\n" for p in missing),
        encoding="utf-8",
    )
    return "extended"
