"""The Python API under the CLI: validate, run and report, each returning data."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.batch import batch_targets
from harness.config import Config, TargetConfig, load_config
from harness.gate import evaluate
from harness.judge.panel import JudgePlan, plan_judges
from harness.judge.sending import JudgeSetup
from harness.models import Catalogue, load_catalogue
from harness.outputs import Outputs, write_outputs
from harness.preflight import Plan, plan
from harness.report.summarised import DEFAULT_FULL_CASES
from harness.results.record import CaseResult
from harness.results.store import Run, load_run
from harness.runner.cached import ReplayTarget
from harness.runner.check_model import check_model_for
from harness.runner.embedder import embedder_for
from harness.runner.engine import RunOptions, RunOutcome, execute
from harness.runner.rescore import Rescoring, rescoring, suite_paths
from harness.runner.resume import Kept, read_kept
from harness.runner.work import WorkItems, item_key, work_items
from harness.suite import Case, Suite
from harness.suite.cases import Cases, key_at, picked
from harness.suite.loader import LoadedBefore
from harness.suite.model import streamed
from harness.suite.select import EVERY_CASE, Selection, load_selected
from harness.suite.shard import Shard, ShardPlan, cut
from harness.targets import Target, require_azure_identity
from harness.targets.gguf import resolve_gguf


@dataclass(frozen=True)
class Prepared:
    """Suites and targets, validated, with nothing sent yet."""

    config: Config
    suites: list[Suite]
    targets: list[TargetConfig]
    catalogue: Catalogue
    # What checks that need a model ask ([settings] check_model); None when none is named.
    check_model: TargetConfig | None = None
    # Who judges the model-graded checks, and the judges' targets (resolved when sending).
    judges: JudgePlan | None = None
    judge_targets: tuple[TargetConfig, ...] = ()
    # --shard K/N: the part of the selected cases this run holds (``suites`` is that part).
    shard: ShardPlan | None = None
    # Whose embeddings `similar` compares ([settings] embedder); None when none is named.
    embedder: TargetConfig | None = None
    # A resume narrowed by ``left``: the results (case x target x repeat) it has left to add.
    results_left: int | None = None

    def judging(self) -> JudgeSetup | None:
        """What the run needs to send to its judges; None when nothing is judged."""
        if self.judges is None or not self.judge_targets:
            return None
        return JudgeSetup(self.judges, self.judge_targets, self.catalogue)

    @property
    def case_count(self) -> int:
        return sum(len(s.cases) for s in self.suites)

    @property
    def cases(self) -> Sequence[Case]:
        """Every case of every suite, in order; a for_each's built as each is read."""
        return Cases([suite.cases for suite in self.suites])


# What a plan reads of a target: the rest (endpoint, deployment, …) may name variables that
# only the machines which send requests have.
PLAN_FIELDS = frozenset({"model", "model_version", "api_version"})


def prepare(
    paths: Iterable[str | Path],
    target_names: Iterable[str] = (),
    config_path: Path | None = None,
    *,
    sending: bool = True,
    selection: Selection = EVERY_CASE,
    judge: str | None = None,
    stream: bool = False,
    shard: Shard | None = None,
    loaded_before: LoadedBefore | None = None,
) -> Prepared:
    """Load config and suites and resolve the chosen targets; raises InputError, sends nothing.

    ``paths`` may name single cases (``file.yaml::case``); ``selection`` keeps the cases a
    -k expression and tags match. ``sending=False`` (a plan): only PLAN_FIELDS of a target
    must resolve from the environment. ``judge``: the judge of model-graded checks that name
    none (``--judge``). ``stream``: every case's requests are streamed (``--stream``), as if
    its params said so. ``shard``: only the cases of that shard of the selection (see
    harness.suite.shard); a shard may hold none. ``loaded_before``: the suites a resumed
    run loaded whole (its run.json), whose for_each rows need not all be built again to be
    checked (see harness.suite.loader.load_suite).
    """
    config = load_config(config_path)
    suites = load_selected(list(paths), selection, loaded_before)
    if stream:
        suites = [streamed(suite) for suite in suites]
    sharded = cut(suites, shard) if shard is not None else None
    if sharded is not None:
        suites = sharded.suites
    targets = config.select(list(target_names), only=None if sending else PLAN_FIELDS)
    catalogue = load_catalogue(config.models, source=config.path or "azeval.toml")
    check_model = check_model_for(config, suites, sending=sending)
    embedder = embedder_for(config, suites, sending=sending)
    judges = plan_judges(suites, config, judge)
    only = None if sending else PLAN_FIELDS
    return Prepared(
        config=config,
        suites=suites,
        targets=targets,
        catalogue=catalogue,
        check_model=check_model,
        judges=judges,
        judge_targets=tuple(config.select(list(judges.names), only=only)) if judges.names else (),
        shard=sharded,
        embedder=embedder,
    )


def check_targets(prepared: Prepared, *, keys: bool = True) -> None:
    """What a chosen target needs to send is there: its API key variable is set (or, with
    auth = "entra", azure-identity is installed), a local target's GGUF file exists and is
    one. A ConfigError otherwise (plan needs none of it). ``keys=False`` (a replay, which
    sends nothing): no credential is needed."""
    chosen = [
        *prepared.targets,
        *filter(None, [prepared.check_model, prepared.embedder]),
        *prepared.judge_targets,
    ]
    for target in (d for t in chosen for d in t.deployments):
        if keys and target.uses_key:
            target.api_key()
        if keys and target.auth == "entra":
            require_azure_identity(target)
        if target.kind == "local":
            resolve_gguf(target)


def kept(options: RunOptions) -> Kept | None:
    """The results a resume keeps (None for a new run), read from its journal once for
    the plan, the count of what is left and the run itself (``left``, ``pending``, ``run``)."""
    if options.resume is None:
        return None
    return read_kept(options.resume, options.retry_errors)


def left(prepared: Prepared, options: RunOptions, done: Collection[str] | None) -> Prepared:
    """The prepared run with only the cases a resume has something left of (``done``: the
    keys it keeps), each suite's cases held as their places: its plan and its lanes read
    no case it has finished. A new run (nothing done) is as it was prepared."""
    if not done:
        return prepared
    names = [t.name for t in prepared.targets]
    suites, results = [], 0
    for suite in prepared.suites:
        cases, missing = _left_cases(suite.cases, names, options.repeat, done)
        suites.append(replace(suite, cases=cases))
        results += missing
    return replace(prepared, suites=suites, results_left=results)


def _left_cases(
    cases: Sequence[Case], targets: list[str], repeat: int | None, done: Collection[str]
) -> tuple[Sequence[Case], int]:
    """The cases with a result missing, and how many results are missing in all."""
    # Only each case's key is read (a for_each renders only its row's id); the lanes build
    # the cases left, checks and all, from their places.
    places: list[int] = []
    results = 0
    for index in range(len(cases)):
        key, repeats = key_at(cases, index)
        missing = sum(
            item_key(key, t, n) not in done for t in targets for n in range(repeat or repeats)
        )
        if missing:
            places.append(index)
            results += missing
    return picked(cases, places), results


def pending(
    prepared: Prepared,
    options: RunOptions,
    done: Collection[str] | None = None,
    checked: Plan | None = None,
) -> int:
    """How many case × target × repeat results the run will add (a resume: what is missing;
    ``done``: what it keeps, when already read). From ``checked``, the run's preflight, the
    count reads its rows (each case on each target, with its repeat) and builds no case.
    A resume narrowed by ``left`` has counted them already."""
    if prepared.results_left is not None:
        return prepared.results_left
    done = (kept(options) or ()) if done is None else done
    if checked is not None:
        return sum(
            item_key(row.key, row.target, n) not in done
            for row in checked.rows
            for n in range(options.repeat or row.repeat)
        )
    items = work_items(prepared.suites, [t.name for t in prepared.targets], options.repeat)
    if not done:
        return len(items)
    return sum(item.key not in done for item in items)


def preflight(
    prepared: Prepared, options: RunOptions | None = None, done: Collection[str] = ()
) -> Plan:
    """Count, check limits and parameters of every case on every target; sends nothing.
    A resume (``done``: the keys it keeps) plans only the cases it has left to run (as
    ``preflight(left(...))``, which a caller that also runs them uses). The targets that
    send Global Batch jobs (their mode, or ``options.batch``) are costed at its price."""
    options = options or RunOptions()
    if done:
        prepared = left(prepared, options, done)
    batched = batch_targets(prepared.targets, options.batch)
    return plan(prepared.cases, prepared.targets, prepared.catalogue, batched=batched)


def run(
    prepared: Prepared,
    options: RunOptions,
    *,
    progress: Callable[[CaseResult], None] | None = None,
    checked: Plan | None = None,
    baseline: Run | None = None,
    done: Kept | None = None,
    cases_left: Prepared | None = None,
) -> RunOutcome:
    """Run the prepared suites on their targets and write the run record and report.

    Cases the preflight finds the service would certainly reject are recorded as preflight
    errors and not sent. A resume's kept results (``done``) and ``cases_left`` (``left`` of them,
    which ``checked`` planned), when given, are not read again.
    """
    if options.resume is not None and cases_left is None:
        done = done if done is not None else kept(options)
        cases_left = left(prepared, options, done)
    cases_left = cases_left or prepared
    checked = checked or preflight(cases_left, options)
    names = [t.name for t in prepared.targets]
    items = work_items(cases_left.suites, names, options.repeat, checked)
    # A resumed shard keeps the shard its run.json records (its suites are that shard's).
    extra = None
    if prepared.shard is not None and options.resume is None:
        extra = {"shard": prepared.shard.to_json()}
    outcome = asyncio.run(
        execute(
            prepared.suites,
            prepared.targets,
            options,
            items=items,
            progress=progress,
            check_model=prepared.check_model,
            record_extra=extra,
            judging=prepared.judging(),
            embedder=prepared.embedder,
            kept=done,
        )
    )
    write_html(
        outcome.run, options.reports_dir, baseline=baseline, full_cases=options.report_full_cases
    )
    return outcome


@dataclass(frozen=True)
class Rescore:
    """A stored run ready to be re-scored: the suites now, its targets, its replies."""

    prepared: Prepared
    work: Rescoring
    items: WorkItems
    send_stale: bool


def prepare_rescore(
    run_dir: Path,
    paths: Iterable[str | Path] = (),
    config_path: Path | None = None,
    *,
    selection: Selection = EVERY_CASE,
    send_stale: bool = False,
) -> Rescore:
    """Read the stored run and today's suites (``paths``, else the run's own) and plan the
    rescore; sends nothing. A folder that is not a run, or a run whose suites are gone, is
    an InputError naming it."""
    source = load_run(run_dir)
    config = load_config(config_path)
    work = rescoring(source, config, send_stale=send_stale)
    suites = load_selected(list(paths) or list(suite_paths(source)), selection)
    prepared = Prepared(
        config=config,
        suites=suites,
        targets=work.targets,
        catalogue=load_catalogue(config.models, source=config.path or "azeval.toml"),
        check_model=check_model_for(config, suites, sending=True),
        embedder=embedder_for(config, suites, sending=True),
    )
    check_targets(prepared, keys=send_stale)
    repeat = source.meta.options.repeat
    items = work_items(suites, [t.name for t in work.targets], repeat, preflight(prepared))
    return Rescore(prepared, work, items, send_stale)


def rescore(
    plan_: Rescore,
    options: RunOptions,
    *,
    progress: Callable[[CaseResult], None] | None = None,
    baseline: Run | None = None,
) -> RunOutcome:
    """The suites' current expectations on the replies stored in the run, written as a new
    run (``rescored_from`` names the source) with its report. Nothing is sent but the stale
    cases with ``send_stale``, and a check's model (through the cache, if on)."""
    work = plan_.work

    async def stored(config: TargetConfig) -> Target:
        return ReplayTarget(work.infos[config.name])

    outcome = asyncio.run(
        execute(
            plan_.prepared.suites,
            work.targets,
            options,
            items=plan_.items,
            progress=progress,
            check_model=plan_.prepared.check_model,
            embedder=plan_.prepared.embedder,
            answers=lambda info: work.replies[info.name],
            record_extra=work.record_extra(),
            open_with=None if plan_.send_stale else stored,
        )
    )
    write_html(
        outcome.run, options.reports_dir, baseline=baseline, full_cases=options.report_full_cases
    )
    return outcome


def write_html(
    run: Run,
    reports_dir: Path,
    baseline: Run | None = None,
    *,
    latest: bool = True,
    full_cases: int = DEFAULT_FULL_CASES,
) -> Path:
    """reports/runs/<id>/report.html, copied to reports/latest.html (unless not ``latest``);
    past ``full_cases`` cases it lists the passing ones by id."""
    html = run.path / "report.html"
    copy = reports_dir / "latest.html" if latest else None
    formats = Outputs(html=html, latest=copy, full_cases=full_cases)
    write_outputs(run, None, formats, baseline=baseline)
    return html


def rerender(
    run_dir: Path,
    reports_dir: Path | None = None,
    baseline: Run | None = None,
    *,
    full_cases: int = DEFAULT_FULL_CASES,
) -> Path:
    """Render a stored run's report again; reads only run records (and the baseline)."""
    run = load_run(run_dir)
    return write_html(
        run, reports_dir or run_dir.parent.parent, baseline=baseline, full_cases=full_cases
    )


def exit_code(outcome: RunOutcome, fail_under: float | None = None) -> int:
    """The run's exit code with no baseline: see harness.gate for every rule."""
    gate = evaluate(outcome.run, fail_under=fail_under)
    return gate.exit_code
