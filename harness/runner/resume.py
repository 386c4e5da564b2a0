"""What a resumed run needs from the run it continues: its suites, targets, repeat and the
command-line -j and --timeout it was started with."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness import __version__
from harness.errors import ConfigError
from harness.results.runmeta import RunMeta
from harness.results.store import JournalIndex, index_journal, read_meta
from harness.suite.loader import LoadedBefore
from harness.suite.model import Suite
from harness.suite.shard import Shard


@dataclass(frozen=True)
class ResumeInputs:
    """The suite paths, target names, repeat count, -j and --timeout of the original run."""

    paths: tuple[Path, ...]
    targets: tuple[str, ...]
    repeat: int | None
    concurrency: int | None = None
    timeout: float | None = None
    stream: bool = False
    # The shard of a --shard run (its suite paths already name that shard's cases).
    shard: Shard | None = None
    batch: bool = False  # --batch: every azure target ran as Global Batch jobs
    # The suites the run loaded whole, when this azeval is the version that ran it: their
    # for_each rows need not all be built again to be checked (see suite.loader.load_suite).
    loaded_before: LoadedBefore = field(default_factory=dict)


@dataclass(frozen=True)
class Kept(Collection[str]):
    """The results a resume keeps (each key's latest line, less the errors it retries),
    read from its journal once: the plan, the count of what is left and the engine all ask
    it (a second pass over 100,000 lines cost about 0.5 s before the first request)."""

    run_dir: Path
    journal_lines: int  # complete lines in its journal
    lines: Mapping[str, int]  # key -> the journal line that counts

    def __contains__(self, key: object) -> bool:
        return key in self.lines

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def tidy(self) -> None:
        """Rewrite the journal with only the lines kept, when some are not (a key written
        twice, or errors to run again): the journal then holds one line per result."""
        if len(self.lines) != self.journal_lines:
            JournalIndex(self.run_dir, self.journal_lines, {}).keep_only(self.lines.values())


def read_kept(run_dir: Path, retry_errors: bool = False) -> Kept:
    """What a resume of ``run_dir`` keeps, from one pass over its journal."""
    index = index_journal(run_dir)  # each key's line and verdict: only the lines are kept
    return Kept(run_dir, index.lines, index.kept(retry_errors))


def resume_inputs(run_dir: Path) -> ResumeInputs:
    """Read run.json of ``run_dir``; an unreadable or foreign folder is a ConfigError."""
    meta = RunMeta.from_json(read_meta(run_dir), run_dir.name)
    paths: list[Path] = []
    for suite in meta.suites:
        if not suite.path:
            continue
        # A selected run resumes its selection: each case it kept, as file::case.
        if suite.selected is not None:
            paths += [Path(f"{suite.path}::{case}") for case in suite.selected]
        else:
            paths.append(Path(suite.path))
    targets = tuple(name for name in meta.target_names if name)
    options = meta.options
    jobs, timeout = options.overrides.get("concurrency"), options.overrides.get("timeout")
    return ResumeInputs(
        paths=tuple(paths),
        targets=targets,
        repeat=options.repeat,
        # A hand-edited value that is not a number is ignored, not trusted.
        concurrency=jobs
        if isinstance(jobs, int) and not isinstance(jobs, bool) and jobs > 0
        else None,
        timeout=float(timeout)
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0
        else None,
        stream=options.stream,
        shard=_shard_of(meta.shard),
        batch=isinstance(batched := options.extra.get("batch"), Mapping)
        and batched.get("all_azure") is True,
        loaded_before=_loaded_before(meta),
    )


def _loaded_before(meta: RunMeta) -> dict[str, Mapping[str, str]]:
    # Another version may check a suite otherwise: its load of the same text proves nothing.
    if meta.azeval_version != __version__:
        return {}
    return {suite.sha256: suite.files for suite in meta.suites if suite.sha256}


def _shard_of(recorded: object) -> Shard | None:
    if not isinstance(recorded, dict):
        return None
    try:
        return Shard.parse(f"{recorded.get('index')}/{recorded.get('count')}")
    except ValueError:
        return None  # hand-edited: the cases the run.json names are what resumes


def check_unchanged(run_dir: Path, suites: Iterable[Suite]) -> None:
    """A ConfigError when a suite the run already ran has changed since (its sha256)."""
    # The results kept were made from the old text: resuming would report them as the
    # verdicts of the new one, and mix the two in one run.
    recorded = {s.get("id"): s for s in read_meta(run_dir).get("suites", [])}
    for suite in suites:
        before = recorded.get(suite.id) or {}
        if before.get("sha256") and before["sha256"] != suite.sha256:
            raise ConfigError(suite.path, "", _changed(run_dir, "text"))
        # A run recorded before files were: nothing to compare them with.
        files = before.get("files") or {}
        for written, sha256 in suite.files:
            if files.get(written, sha256) != sha256:
                where = f"{suite.path}: {written} (a file it reads)"
                raise ConfigError(where, "", _changed(run_dir, "file"))


def _changed(run_dir: Path, what: str) -> str:
    return (
        f"changed since run {run_dir} started; its kept results were made from the old "
        f"{what}, so a resume would mix the two: start a new run (or restore the file)"
    )


def resume_command(run_dir: Path, config_path: Path | None = None) -> str:
    """The command that finishes ``run_dir``: suites and targets come from its run.json."""
    config = f" --config {config_path}" if config_path is not None else ""
    return f"azeval run{config} --resume {run_dir}"
