"""Options shared by several commands, and the gate/CI options of ``azeval run``.

``gate_options`` decorates ``run`` with ``--baseline``, ``--fail-on-regression``,
``--min-lower-bound``, ``--junit`` and ``--markdown``; ``GateOptions.load`` reads the baseline
before anything is sent (a bad file exits 2 with nothing spent).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from harness.errors import InputError
from harness.results.baseline import load_reference
from harness.results.store import Run
from harness.runner.cache import CACHE_MODES, DEFAULT_CACHE_PATH

F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="azeval.toml to use (default: found from the current folder up).",
)
target_option = click.option(
    "-t",
    "--target",
    "targets",
    multiple=True,
    help="Target to run on (repeatable). Default: every configured target, else 'local'.",
)
reports_dir_option = click.option(
    "--reports-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where runs and reports go (default: reports).",
)
report_full_cases_option = click.option(
    "--report-full-cases",
    type=click.IntRange(min=1),
    metavar="N",
    help="Past N cases, the HTML report shows in full only those that did not pass or "
    "changed (the worst N) and lists the rest by id, each linked to its line of "
    "results.jsonl (default 10000, or [settings] report_full_cases).",
)

stream_option = click.option(
    "--stream",
    is_flag=True,
    help="Stream every request, as params: {stream: true} would: time to first token, "
    "gaps between tokens and tokens/s are measured and can be checked.",
)


def selection_options(command: F) -> F:
    """Add ``-k EXPR`` and ``--tag NAME`` (see harness.suite.select) to a command."""
    options = [
        click.option(
            "-k",
            "keyword",
            default="",
            metavar="EXPR",
            help="Run only cases whose suite/case id or tags match, as pytest's -k: "
            '-k "tax and not refund".',
        ),
        click.option(
            "--tag",
            "tags",
            multiple=True,
            metavar="NAME",
            help="Run only cases with this tag (repeatable: any of them).",
        ),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), command)


def cache_options(command: F) -> F:
    """Add ``--cache``, ``--cache-mode``, ``--cache-ttl``, ``--cache-path`` and ``--replay``."""
    return _cache_options(command, replay=True)


def judge_cache_options(command: F) -> F:
    """The cache options without ``--replay``, for the judge calls of ``rescore``."""
    return _cache_options(command, replay=False)


def _cache_options(command: F, *, replay: bool) -> F:
    options = [
        click.option(
            "--cache",
            "use_cache",
            is_flag=True,
            help="Answer repeated requests from the response cache and store new answers "
            "(--cache-mode readwrite).",
        ),
        click.option(
            "--cache-mode",
            type=click.Choice(CACHE_MODES),
            help="readwrite (--cache), read (serve, store nothing), write (send all, store "
            "what is missing), refresh (send all, replace), off.",
        ),
        click.option(
            "--cache-ttl",
            metavar="AGE",
            help="Serve only answers stored less than this long ago (7d, 12h).",
        ),
        click.option(
            "--cache-path",
            type=click.Path(path_type=Path, dir_okay=False),
            help=f"The cache file (default: [settings] cache_path, else {DEFAULT_CACHE_PATH}).",
        ),
    ]
    if replay:
        options.append(
            click.option(
                "--replay",
                is_flag=True,
                help="Answer only from the cache and send nothing (no key needed); a "
                "request it has no answer for is the error not_in_cache.",
            )
        )
    return functools.reduce(lambda f, option: option(f), reversed(options), command)


@dataclass(frozen=True)
class GateOptions:
    """What ``azeval run`` was asked to gate on and write for CI."""

    baseline: Run | None = None
    fail_on_regression: bool = False
    min_lower_bound: float | None = None
    junit: Path | None = None
    markdown: Path | None = None
    # A merge of CI shards may gate though a shard is missing (azeval merge, gate, report).
    allow_missing_shards: bool = False

    @classmethod
    def load(
        cls,
        baseline: Path | None = None,
        fail_on_regression: bool = False,
        min_lower_bound: float | None = None,
        junit: Path | None = None,
        markdown: Path | None = None,
        allow_missing_shards: bool = False,
    ) -> GateOptions:
        """Read the baseline and check the output folders now, before anything is sent."""
        for option, path in (("--junit", junit), ("--markdown", markdown)):
            if path is not None:
                writable_folder(path.parent, option)
        return cls(
            baseline=load_reference(baseline) if baseline is not None else None,
            fail_on_regression=fail_on_regression,
            min_lower_bound=min_lower_bound,
            junit=junit,
            markdown=markdown,
            allow_missing_shards=allow_missing_shards,
        )


def writable_folder(folder: Path, option: str) -> None:
    """Create ``folder`` if needed; one that cannot be written is an InputError (exit 2)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{option}: cannot create {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise InputError(f"{option}: cannot write into {folder}")


allow_missing_shards_option = click.option(
    "--allow-missing-shards",
    is_flag=True,
    help="Let a merge of CI shards that lacks a shard (or holds one that did not finish) "
    "pass the gate; by default it exits 1, naming the shards.",
)


def gate_options(command: F) -> F:
    """Add the gate and CI output options to a click command (``azeval run``)."""
    options = [
        click.option(
            "--baseline",
            type=click.Path(path_type=Path, exists=True),
            help="Baseline file (from 'azeval bless') or run directory to compare with.",
        ),
        click.option(
            "--fail-on-regression",
            is_flag=True,
            help="With --baseline: exit 1 only for cases that held in the baseline and broke "
            "(or new cases that fail); known failures do not block.",
        ),
        click.option(
            "--min-lower-bound",
            type=click.FloatRange(0, 100),
            help="Exit 1 if a case's Wilson 95% lower bound of its pass rate (%) across "
            "repeats is under this.",
        ),
        click.option(
            "--junit",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Write JUnit XML here (one testcase per case × target).",
        ),
        click.option(
            "--markdown",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Write a Markdown summary here (also appended to $GITHUB_STEP_SUMMARY).",
        ),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), command)
