"""Running cases × targets × repeats: scheduling, retries, journal, resume, dead targets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.batch import BatchSettings, batch_priced, batch_targets
from harness.checks import Services
from harness.checks.context import NO_SERVICES
from harness.config import TargetConfig
from harness.judge.summary import judge_summary
from harness.models import Price
from harness.redact import Redactor
from harness.report.summarised import DEFAULT_FULL_CASES
from harness.results.record import CaseResult
from harness.results.runmeta import RunMeta
from harness.results.store import (
    Journal,
    Run,
    index_journal,
    read_meta,
    stored_results,
    write_meta,
)
from harness.results.summary import RunTally
from harness.runner.cache import ResponseCache
from harness.runner.cached import (
    Answers,
    AnswersFor,
    CachePolicy,
    ReplayTarget,
    RunCache,
    cached_models,
    open_store,
)
from harness.runner.check_model import SenderModel
from harness.runner.embedder import MAX_INPUTS, embedding_model
from harness.runner.embeddings import Embeddings
from harness.runner.lanes import start_lanes
from harness.runner.meta import new_run_id, now_iso, run_meta, suite_meta, target_entry
from harness.runner.pool import open_for_run, scheduling_of
from harness.runner.resume import Kept, check_unchanged, read_kept
from harness.runner.retry import RetryPolicy
from harness.runner.sender import TargetSender
from harness.runner.work import WorkItem, WorkItems, run_item, work_items
from harness.suite.model import Suite
from harness.targets import Target, open_embedder, target_info
from harness.writable import json_text

if TYPE_CHECKING:
    from harness.batch.ledger import Ledger
    from harness.judge.sending import JudgeSetup

Progress = Callable[[CaseResult], None]


@dataclass(frozen=True)
class RunOptions:
    """How to run: all of it has defaults that suit a first run.

    ``concurrency`` and ``timeout``, when given, hold for every target, over a target's own
    setting (as ``-j`` and ``--timeout`` do); ``default_*`` hold for a target that sets none
    (azeval.toml's [settings] give them).
    """

    concurrency: int | None = None
    timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    case_deadline: float | None = 600.0
    repeat: int | None = None
    reports_dir: Path = Path("reports")
    resume: Path | None = None
    retry_errors: bool = False
    seed: int | None = None
    # The length of the quota's "minute": 60 s on Azure; shorter only against a fake server.
    quota_window: float = 60.0
    cache: CachePolicy = field(default_factory=CachePolicy)
    # --stream: every case was streamed (recorded so that a resume streams the rest too).
    stream: bool = False
    default_concurrency: int = 4
    default_timeout: float = 60.0
    # Texts in one embeddings request to the embedder ([settings] embed_batch; 1 sends
    # each text alone).
    embed_batch: int = MAX_INPUTS
    # Which targets run as Global Batch jobs besides those of mode "batch", and how.
    batch: BatchSettings = field(default_factory=BatchSettings)
    # Cases the HTML report shows in full ([settings] report_full_cases).
    report_full_cases: int = DEFAULT_FULL_CASES

    @property
    def overrides(self) -> dict[str, Any]:
        """The concurrency and timeout given over every target's own (-j, --timeout):
        recorded so that a plain --resume runs the rest of the run the way it started."""
        given = (("concurrency", self.concurrency), ("timeout", self.timeout))
        return {name: value for name, value in given if value is not None}

    def timeout_for(self, target: TargetConfig) -> float:
        """Seconds per request to ``target``: the caller's, else the target's, else default."""
        return self.timeout or target.timeout or self.default_timeout

    def concurrency_for(self, target: TargetConfig) -> int:
        """Requests at once to ``target``: the caller's, else the target's, else default."""
        return self.concurrency or target.concurrency or self.default_concurrency

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RunOptions:
        """The options azeval.toml's [settings] give, before any command-line override."""
        return cls(
            default_concurrency=settings.get("concurrency", 4),
            default_timeout=settings.get("timeout", 60.0),
            retry=RetryPolicy(
                max_retries=settings.get("max_retries", 6),
                max_retry_after=settings.get("max_retry_after", RetryPolicy.max_retry_after),
            ),
            case_deadline=settings.get("case_deadline", 600.0),
            reports_dir=Path(settings.get("reports_dir", "reports")),
            embed_batch=settings.get("embed_batch", MAX_INPUTS),
            report_full_cases=settings.get("report_full_cases", DEFAULT_FULL_CASES),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency or self.default_concurrency,
            "timeout": self.timeout or self.default_timeout,
            "max_retries": self.retry.max_retries,
            "case_deadline": self.case_deadline,
            "repeat": self.repeat,
            "cache": self.cache.to_json(),
            "overrides": self.overrides,
            "stream": self.stream,
            "batch": self.batch.to_json(),
        }


@dataclass
class RunOutcome:
    """A finished (or interrupted) run and what it found about the targets."""

    run: Run
    dead_targets: dict[str, str]
    interrupted: bool = False
    # What the response cache has to say: an old format rebuilt, a deployment's new model.
    cache_notes: tuple[str, ...] = ()


async def execute(
    suites: list[Suite],
    configs: list[TargetConfig],
    options: RunOptions,
    *,
    items: WorkItems | None = None,
    progress: Progress | None = None,
    check_model: TargetConfig | None = None,
    answers: AnswersFor | None = None,
    record_extra: Mapping[str, Any] | None = None,
    open_with: Callable[[TargetConfig], Awaitable[Target]] | None = None,
    judging: JudgeSetup | None = None,
    embedder: TargetConfig | None = None,
    kept: Kept | None = None,
) -> RunOutcome:
    """Run the work items (default: every case on every target, with no plan); always
    writes the record, also when interrupted (Ctrl-C, cancel).

    A run stopped by an error (raised from a case or the progress callback) is recorded
    with status "interrupted", so it is resumable and bless refuses it; the error propagates.
    ``check_model``: the target checks that need a model ask, through a sender of its own.
    Every request is first asked of the response cache (``options.cache``), or of
    ``answers`` when given (a rescore's stored replies; judge calls still use the cache);
    ``options.cache.replay`` opens no target at all. ``open_with`` opens the targets instead
    of the usual way; ``record_extra`` goes into run.json as it is. ``judging``: the judges
    of model-graded checks, each sent to through its own sender (the run target's, when
    the judge is also a target under test). ``embedder``: whose embeddings ``similar``
    compares, sent to (never from the cache) through a sender of its own. ``kept``: a
    resume's kept results when already read (else its journal is read here).
    """
    judge_configs = (
        [c for c in judging.configs if c.name not in {t.name for t in configs}] if judging else []
    )
    keyed = [*configs, *filter(None, [check_model, embedder]), *judge_configs]
    redact = Redactor.for_targets(keyed)
    if options.resume is not None:
        check_unchanged(options.resume, suites)
    # The cache file is checked before any target is opened: a bad one is exit 2, unsent.
    store = open_store(options.cache, redact)
    targets: dict[str, Target] = {}
    opened: list[Target] = []
    try:
        for config in configs:
            opening = open_with(config) if open_with is not None else _open(config, options)
            targets[config.name] = await opening
            opened.append(targets[config.name])
        judge_targets: dict[str, Target] = {}
        for config in judge_configs:
            judge_targets[config.name] = await _open(config, options)
            opened.append(judge_targets[config.name])
        judge: tuple[Target, TargetConfig] | None = None
        if check_model is not None:
            judge = (await _open(check_model, options), check_model)
            opened.append(judge[0])
        # A replay sends nothing, embeddings included: its similar checks say so.
        if embedder is not None and not options.cache.replay:
            run_embedder = (await open_embedder(embedder), embedder)
            opened.append(run_embedder[0])
        if items is None:
            items = work_items(suites, list(targets), options.repeat)
        run = _Run(configs, targets, options, redact, progress, judge, answers, record_extra, store)
        run.batched = batch_targets(configs, options.batch)
        run.judging, run.judge_targets = judging, judge_targets
        run.embedder = run_embedder if embedder is not None and not options.cache.replay else None
        run.kept = kept
        return await run.all(suites, items)
    finally:
        if store is not None:
            store.close()
        for target in opened:
            with contextlib.suppress(Exception):
                await target.aclose()


async def _open(config: TargetConfig, options: RunOptions) -> Target:
    """The target to send to (a pool of its members); for a replay, one that cannot send
    and needs no key."""
    if options.cache.replay:
        return ReplayTarget(target_info(config))
    return await open_for_run(config, options)


@dataclass
class _Run:
    """What ``execute`` hands on to the run itself, once its targets are open."""

    configs: list[TargetConfig]
    targets: dict[str, Target]
    options: RunOptions
    redact: Redactor
    progress: Progress | None
    judge: tuple[Target, TargetConfig] | None
    answers: AnswersFor | None
    record_extra: Mapping[str, Any] | None

    store: ResponseCache | None
    judging: JudgeSetup | None = None
    judge_targets: Mapping[str, Target] = field(default_factory=dict)
    embedder: tuple[Target, TargetConfig] | None = None
    # The batch jobs of the run's batch targets, saved in run.json (None: no batch target).
    ledger: Ledger | None = None
    # The targets sent to as Global Batch jobs.
    batched: set[str] = field(default_factory=set)
    # A resume's kept results, read before the run by its caller (None: read them here).
    kept: Kept | None = None

    def items_of(self, items: WorkItems, target: str) -> Iterator[WorkItem]:
        """A target's work items as they are drawn; a batch target's tokens cost the
        Global Batch price."""
        return batch_priced(items.of_target(target), self.batched)

    async def all(self, suites: list[Suite], all_items: WorkItems) -> RunOutcome:
        # The price each target's turns are costed at (its model's), recorded on its entry:
        # every item of a target has the same, so its first says it.
        prices = {}
        for name in self.targets:
            first = next(self.items_of(all_items, name), None)
            if first is not None and first.spec is not None:
                prices[name] = first.spec.price
        extra = self.record_extra or {}
        run_dir, meta, done = _open_run_dir(
            suites, self.targets, self.options, self.redact, prices, extra, self.kept
        )
        cache = None
        if self.store is not None:
            cache = RunCache(self.store, self.options.cache, meta["run_id"])
        return await _run_all(run_dir, meta, done, all_items, self, cache)


async def _run_all(
    run_dir: Path,
    meta: dict[str, Any],
    done: Collection[str],
    all_items: WorkItems,
    run: _Run,
    cache: RunCache | None,
) -> RunOutcome:
    targets, options, redact, progress = run.targets, run.options, run.redact, run.progress
    journal = Journal(run_dir)
    dead: dict[str, str] = {}
    by_name = {c.name: c for c in run.configs}
    rng = random.Random(options.seed)

    def answers_of(target: Target, *, judge: bool = False) -> Answers | None:
        if run.answers is not None and not judge:
            return run.answers(target.info)
        return cache.for_target(target.info) if cache is not None else None

    senders = {
        name: _sender(target, by_name[name], run, dead, rng, answers_of(target), (run_dir, meta))
        for name, target in targets.items()
    }
    services = NO_SERVICES
    judge_sender: TargetSender | None = None
    if run.judge is not None:
        # Judge calls go through the same cache, with a sender (and quota) of their own.
        judge, judge_config = run.judge
        judge_sender = TargetSender(
            judge, judge_config, options, {}, redact, None, answers_of(judge, judge=True)
        )
        services = Services(check_model=SenderModel(judge_sender))
    judge_senders: dict[str, TargetSender] = {}
    if run.judging is not None:
        # A judge that is also a target under test is the same deployment and quota: it
        # shares that target's sender. Either way a dead judge is in ``dead`` (exit 3), and
        # its calls go through the response cache as the targets' do.
        for config in run.judging.configs:
            name = config.name
            target = targets.get(name) or run.judge_targets[name]
            judge_senders[name] = senders.get(name) or TargetSender(
                target, config, options, dead, redact, rng, answers_of(target, judge=True)
            )
        judges = run.judging.judges(judge_senders)
        services = replace(services, judges=judges)
        meta["judges"] = [
            {**judge_senders[name].target.info.to_json(), "answer_mode": model.answer_mode}
            for name, model in judges.models.items()
        ]
    embeddings: Embeddings | None = None
    if run.embedder is not None:
        target, config = run.embedder
        embed_sender = TargetSender(target, config, options, dead, redact, rng)
        model = embedding_model(config)
        assert model is not None  # embedder_for refused a chat model
        embeddings = Embeddings(embed_sender, model, max_inputs=options.embed_batch)
        services = replace(services, embeddings=embeddings)
    interrupted = crashed = False

    def record(result: CaseResult) -> None:
        # Values first (each spelling as the service wrote it), then the line (a secret
        # that only JSON escaping produced).
        journal.append_line(redact(json_text(redact.scrub(result.to_json()))))
        if progress is not None:
            progress(result)

    # Each result with an answer from the cache: its key, and the models that answered
    # (one set of them for all the results they answered, not one per result).
    served: list[tuple[str, str, frozenset[str | None]]] = []
    answered_by: dict[frozenset[str | None], frozenset[str | None]] = {}

    async def one(item: WorkItem) -> None:
        ran = await run_item(item, senders[item.target], services)
        record(ran.result)
        if cache is not None and (models := cached_models(ran.result)):
            served.append((item.key, item.target, answered_by.setdefault(models, models)))

    def pending(target: str, wanted: Callable[[str], bool]) -> Iterator[WorkItem]:
        return (item for item in run.items_of(all_items, target) if wanted(item.key))

    def missing(key: str) -> bool:
        return key not in done

    # Only a batch lane's width depends on how many items it has (it holds them all at
    # once); counting them is a pass over every case, made for batch targets alone.
    counts = Counter({t: sum(1 for _ in pending(t, missing)) for t in run.batched & set(targets)})

    def width(target: str) -> int:
        return senders[target].lane_width(counts[target])

    # A run that stops early for any reason is recorded "interrupted", never "complete":
    # Ctrl-C (the outcome says interrupted) or an error (it propagates, e.g. a progress
    # callback writing to a closed pipe), so bless refuses it and --resume finishes it.
    tasks = start_lanes({t: pending(t, missing) for t in targets}, width, one)
    try:
        await asyncio.gather(*tasks)
        if cache is not None:
            # Hits are served at once, before a live answer can show that the deployment
            # moved to another model: those of the old model run again, and their new
            # result replaces the first in the record (the latest line of a key counts).
            again = {key for key, target, models in served if cache.stale(target, models)}
            stale = {t: pending(t, again.__contains__) for t in targets}
            tasks = start_lanes(stale, width, one) if again else []
            await asyncio.gather(*tasks)
    except (asyncio.CancelledError, KeyboardInterrupt):
        interrupted = True
        await _cancel(tasks)
    except BaseException:
        await _cancel(tasks)
        crashed = True
        raise
    finally:
        journal.close()
        meta["scheduler"] = {name: scheduling_of(s) for name, s in senders.items()}
        meta["scheduler"].update({f"judge {n}": scheduling_of(s) for n, s in judge_senders.items()})
        if dead:
            meta["dead_targets"] = dict(dead)
        if embeddings is not None:
            # Apart from the targets' schedulers: what the run sent its embedder.
            meta["embedder"] = {
                **embeddings.sender.target.info.to_json(),
                **embeddings.to_json(),
                "scheduler": embeddings.sender.scheduler.snapshot(),
            }
        if judge_sender is not None:
            # Apart from the targets' numbers: what checks spent asking their model.
            name = judge_sender.config.name
            meta["check_model"] = {
                "target": name,
                "scheduler": judge_sender.scheduler.snapshot(),
                "dead": judge_sender.dead.get(name),
            }
        notes: tuple[str, ...] = ()
        if cache is not None:
            notes = (*cache.notices, *(d.message() for d in cache.drift))
            meta["cache"] = {
                **options.cache.to_json(),
                "drift": [
                    *meta.get("cache", {}).get("drift", []),
                    *(d.to_json() for d in cache.drift),
                ],
            }
        finished = _finish(run_dir, meta, interrupted or crashed, redact)
    return RunOutcome(run=finished, dead_targets=dead, interrupted=interrupted, cache_notes=notes)


def _sender(
    target: Target,
    config: TargetConfig,
    run: _Run,
    dead: dict[str, str],
    rng: random.Random,
    answers: Answers | None,
    record: tuple[Path, dict[str, Any]],
) -> TargetSender:
    """A target's sender: live, or as Global Batch jobs (not when replaying: nothing is sent)."""
    options, redact = run.options, run.redact
    if config.name in batch_targets([config], options.batch) and hasattr(target, "batch_client"):
        from harness.batch.ledger import Ledger
        from harness.batch.sender import BatchSender

        run_dir, meta = record
        if run.ledger is None:
            run.ledger = Ledger(run_dir, meta, partial(_write_scrubbed, run_dir, meta, redact))
        return BatchSender(target, config, options, dead, redact, run.ledger, answers)
    return TargetSender(target, config, options, dead, redact, rng, answers)


async def _cancel(tasks: Sequence[asyncio.Future[None]]) -> None:
    """Cancel the cases still under way and wait until each has stopped."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _open_run_dir(
    suites: list[Suite],
    targets: dict[str, Target],
    options: RunOptions,
    redact: Redactor,
    prices: Mapping[str, Price | None],
    extra: Mapping[str, Any],
    kept: Kept | None = None,
) -> tuple[Path, dict[str, Any], Collection[str]]:
    """The run's folder and metadata (``extra`` in it from its first write, so a run killed
    at once still says what it is), and the keys of the results it already has (a resume's
    ``kept``, when its caller has read them)."""
    if options.resume is not None:
        meta = {**read_meta(options.resume), **extra}
        meta["resumed_at"] = [*meta.get("resumed_at", []), now_iso()]
        meta["status"] = "running"
        # What this resume asked for is what the next plain --resume should finish.
        old = meta.get("options") or {}
        meta["options"] = {
            **old,
            "repeat": options.repeat,
            "overrides": {**(old.get("overrides") or {}), **options.overrides},
            "stream": options.stream,
            "batch": options.batch.to_json(),
        }
        _add_new_inputs(meta, suites, targets, prices)
        if kept is None:
            kept = read_kept(options.resume, options.retry_errors)
        kept.tidy()
        _write_scrubbed(options.resume, meta, redact)
        return options.resume, meta, kept
    run_id = new_run_id()
    run_dir = options.reports_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    entries = [target_entry(t.info, prices.get(name)) for name, t in targets.items()]
    meta = {**run_meta(run_id, suites, entries, options.to_json()), **extra}
    _write_scrubbed(run_dir, meta, redact)
    return run_dir, meta, set()


def _add_new_inputs(
    meta: dict[str, Any],
    suites: list[Suite],
    targets: dict[str, Target],
    prices: Mapping[str, Price | None],
) -> None:
    """A resume that names more suites or targets records them beside the original ones."""
    known_targets = {t["name"] for t in meta.get("targets", [])}
    meta["targets"] = [
        *meta.get("targets", []),
        *(
            target_entry(t.info, prices.get(name))
            for name, t in targets.items()
            if name not in known_targets
        ),
    ]
    known_suites = {s["id"] for s in meta.get("suites", [])}
    meta["suites"] = [
        *meta.get("suites", []),
        *(suite_meta(s) for s in suites if s.id not in known_suites),
    ]


def _finish(run_dir: Path, meta: dict[str, Any], interrupted: bool, redact: Redactor) -> Run:
    """Write the final run.json; the Run returned is what was written, secrets scrubbed.

    The journal is read twice whatever its size: once for which line of each key counts,
    once to summarise those results; no result is kept.
    """
    results = stored_results(index_journal(run_dir))
    tally = RunTally(t["name"] for t in meta["targets"])
    judging = judge_summary(_tallied(results, tally))
    summary = tally.summary()
    meta["finished_at"] = now_iso()
    meta["status"] = "interrupted" if interrupted else "complete"
    meta["summary"] = summary.to_json()
    if judging:  # the judges' tokens and cost, apart from the targets'
        meta["judging"] = judging
    written = _write_scrubbed(run_dir, meta, redact)
    run = Run(path=run_dir, meta=RunMeta.from_json(written, run_dir.name), results=results)
    run.summary = summary
    return run


def _tallied(results: Iterable[CaseResult], tally: RunTally) -> Iterator[CaseResult]:
    """``results``, each counted into ``tally`` as it passes: one pass feeds two readers."""
    for result in results:
        tally.add(result)
        yield result


def _write_scrubbed(run_dir: Path, meta: dict[str, Any], redact: Redactor) -> dict[str, Any]:
    """Write run.json without secrets (an endpoint may carry a token); return what was written.

    Every write, not only the last: a run that is killed leaves the first one on disk.
    """
    scrubbed: dict[str, Any] = json.loads(redact(json.dumps(redact.scrub(meta), default=str)))
    write_meta(run_dir, scrubbed)
    return scrubbed
