"""pytest plugin: suite files as test items, one per case × target.

``pytest suites/`` collects every suite file below a path named on the command line (or
listed in the ``azeval_suites`` ini option) — a ``*.yaml``/``*.yml`` file whose top level
has a ``suite:`` key — so a project's other YAML is left alone. Each item,
``suite/case[target]``, runs its case on its target through the same configuration,
preflight, quota, retries and checks as ``azeval run`` (``harness.runner.sender``);
a failing check fails the item with the check's own message. Targets come from
``--azeval-target NAME`` (repeatable) or the ``azeval_targets`` ini option, else every
configured target, else the embedded local model.

Each process (each pytest-xdist worker too) opens a target on its first item and closes it
when the session ends; requests run on one event loop in a background thread, so the
plugin works whether or not the test session itself runs an event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from harness.checks import Services
    from harness.config import Config
    from harness.models import Catalogue, ModelSpec
    from harness.redact import Redactor
    from harness.results.record import CaseResult
    from harness.runner.cached import RunCache
    from harness.runner.embeddings import Embeddings
    from harness.runner.sender import TargetSender
    from harness.suite.model import Case

_SUITE_KEY = re.compile(rb"^suite\s*:", re.MULTILINE)
_SUFFIXES = (".yaml", ".yml")
_SKIPPED_DIRS = frozenset({"data", "schemas", "fixtures"})
_ROOTS_KEY = "azeval_roots"
_STATE = pytest.StashKey["_Session"]()
T = TypeVar("T")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("azeval", "azeval prompt suites")
    group.addoption(
        "--azeval-target",
        action="append",
        dest="azeval_targets",
        default=[],
        metavar="NAME",
        help="Target to run suite cases on (repeatable; default: every configured target).",
    )
    group.addoption(
        "--azeval-config",
        dest="azeval_config",
        default=None,
        metavar="PATH",
        help="azeval.toml to use (default: found from the root folder up).",
    )
    group.addoption(
        "--azeval-cache",
        dest="azeval_cache",
        action="store_true",
        help="Answer repeated requests from azeval's response cache and store new answers "
        "(shared safely by -n workers).",
    )
    group.addoption(
        "--azeval-cache-mode",
        dest="azeval_cache_mode",
        default=None,
        choices=["readwrite", "read", "write", "refresh", "off"],
        help="As azeval run --cache-mode.",
    )
    group.addoption(
        "--azeval-replay",
        dest="azeval_replay",
        action="store_true",
        help="Answer only from the response cache and send nothing (no key needed).",
    )
    parser.addini("azeval_targets", "azeval targets to run suite cases on", type="linelist")
    parser.addini("azeval_config", "azeval.toml to use", default="")
    parser.addini(
        "azeval_suites",
        "folders whose suite files are collected without naming them on the command line",
        type="linelist",
    )


def _explicit_roots(config: pytest.Config) -> list[str]:
    roots: list[Path] = []
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        base = config.invocation_params.dir
        roots += [base / arg.split("::", 1)[0] for arg in config.args]
    roots += [config.rootpath / p for p in config.getini("azeval_suites")]
    return [str(p.resolve()) for p in roots]


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and _ROOTS_KEY in workerinput:
        # An xdist worker is given explicit args even when the controller used testpaths,
        # so it takes the controller's roots and collects exactly what the controller did.
        roots = list(workerinput[_ROOTS_KEY])
    else:
        roots = _explicit_roots(config)
    config.stash[_STATE] = _Session(config, [Path(r) for r in roots])
    config.add_cleanup(config.stash[_STATE].close)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: hand each worker the controller's suite roots."""
    node.workerinput[_ROOTS_KEY] = [str(r) for r in node.config.stash[_STATE].roots]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in _SUFFIXES:
        return None
    state = parent.config.stash.get(_STATE, None)
    if state is None or not state.is_suite_file(file_path):
        return None
    file: SuiteFile = SuiteFile.from_parent(parent, path=file_path)
    return file


class CaseFailed(AssertionError):
    """A case's checks did not hold; the message says which and what came back."""


class SuiteFile(pytest.File):
    """A suite file: one item per case × target."""

    def collect(self) -> Iterator[pytest.Item]:
        from harness.errors import AzevalError
        from harness.runner.check_model import check_model_for
        from harness.runner.embedder import embedder_for
        from harness.suite.loader import load_suite

        state = self.config.stash[_STATE]
        try:
            suite = load_suite(self.path)
            targets = state.target_names()
            # A check that needs a model while none is configured fails collection, as
            # `azeval run` refuses it before sending.
            check_model_for(state.azeval_config(), [suite], sending=False)
            embedder_for(state.azeval_config(), [suite], sending=False)
        except AzevalError as exc:
            raise self.CollectError(exc.format_message()) from None
        for case in suite.cases:
            for target in targets:
                name = f"{suite.id}/{case.id}[{target}]"
                # Given as text, the id is parsed as pytest parses the ids it stores for
                # --lf/--ff ("[target]" as parameters); the default would keep it in the name,
                # so a stored failure never matched its item again.
                item: CaseItem = CaseItem.from_parent(
                    self, name=name, nodeid=f"{self.nodeid}::{name}", case=case, target=target
                )
                yield item


class CaseItem(pytest.Item):
    """One case on one target; its repeats all run and all must pass."""

    def __init__(self, *, case: Case, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.target = target
        # So -k selects by suite id, case id, target and tag, not only by file name.
        self.extra_keyword_matches.update({case.suite, case.id, target, *case.tags})
        self.user_properties.append(("azeval.target", target))

    def runtest(self) -> None:
        state = self.config.stash[_STATE]
        results = [state.run(self.case, self.target, n) for n in range(self.case.repeat)]
        for result in results:
            self.user_properties.append((f"azeval.verdict.{result.repeat}", result.verdict))
        if all(r.verdict == "unchecked" for r in results):
            pytest.skip("no check applied to this case, so nothing verified it")
        bad = [r for r in results if r.verdict != "pass"]
        if bad:
            raise CaseFailed(failure_message(results))

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        if isinstance(excinfo.value, (CaseFailed, _TargetProblem)):
            # The service's error messages are quoted here: scrubbed like the journal.
            return self.config.stash[_STATE].redact(str(excinfo.value))
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.case.suite}/{self.case.id}[{self.target}]"


class _TargetProblem(Exception):
    """A target could not be opened or was found unavailable; shown without a traceback."""


def _check_line(check: Any) -> str:
    line = f"check {check.check}: {check.message}"
    if check.expected is not None or check.actual is not None:
        line += f" (expected {_short(check.expected)}, got {_short(check.actual)})"
    return line


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failure_message(results: list[CaseResult]) -> str:
    """What a failed item shows: the pass count, each failing check, the reply."""
    n, passed = len(results), sum(r.verdict == "pass" for r in results)
    lines = []
    if n > 1:
        lines.append(f"passed {passed}/{n} repeats")
    for r in results:
        if r.verdict == "pass":
            continue
        prefix = f"repeat {r.repeat}: " if n > 1 else ""
        if r.error is not None:
            lines.append(f"{prefix}{r.error.kind}: {r.error.message}")
        bad = [c for c in r.checks if c.status in ("fail", "error")]
        lines += [prefix + _check_line(c) for c in bad]
        if r.verdict == "unchecked":
            lines.append(f"{prefix}no check verified this repeat")
        if r.reply is not None and bad:
            lines.append(f"{prefix}reply: {_short(r.reply, 500)}")
    return "\n".join(lines)


class _Session:
    """Per-process state: which files are suites, the config, the open targets, the loop."""

    def __init__(self, config: pytest.Config, roots: list[Path]) -> None:
        self.pytest_config = config
        self.roots = roots
        self._config: Config | None = None
        self._senders: dict[str, TargetSender] = {}
        self._dead: dict[str, str] = {}
        self._specs: dict[str, ModelSpec] = {}
        self._lent: Services | None = None
        self._catalogue: Catalogue | None = None
        self._redactor: Redactor | None = None
        self._cache: RunCache | None = None
        self._cache_opened = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def is_suite_file(self, path: Path) -> bool:
        resolved = path.resolve()
        for root in self.roots:
            if resolved == root:
                return _has_suite_key(resolved)
            if root in resolved.parents:
                inner = resolved.relative_to(root).parts[:-1]
                if any(p in _SKIPPED_DIRS or p.startswith((".", "_")) for p in inner):
                    return False
                return _has_suite_key(resolved)
        return False

    def azeval_config(self) -> Config:
        from harness.config import load_config

        if self._config is None:
            option = self.pytest_config.getoption("azeval_config") or self.pytest_config.getini(
                "azeval_config"
            )
            path = Path(option) if option else None
            if path is not None and not path.is_absolute():
                path = self.pytest_config.invocation_params.dir / path
            self._config = load_config(path, start=self.pytest_config.rootpath)
        return self._config

    def redactor(self) -> Redactor:
        """Masks every configured target's key, in failure messages and dead-target notes."""
        from harness.redact import Redactor

        if self._redactor is None:
            self._redactor = Redactor.for_targets(self.azeval_config().targets.values())
        return self._redactor

    def redact(self, text: str) -> str:
        return self.redactor()(text)

    def catalogue(self) -> Catalogue:
        """The model catalogue with the config's [models] tables, as `azeval run` loads it."""
        from harness.models import load_catalogue

        if self._catalogue is None:
            config = self.azeval_config()
            self._catalogue = load_catalogue(config.models, source=config.path or "azeval.toml")
        return self._catalogue

    def cache(self) -> RunCache | None:
        """The response cache as [settings] and --azeval-cache* ask (None: off), opened once
        per process; a bad cache file makes the items that would use it fail saying so."""
        from harness.errors import AzevalError
        from harness.runner.cached import CachePolicy, RunCache
        from harness.runner.meta import new_run_id

        if not self._cache_opened:
            self._cache_opened = True
            option = self.pytest_config.getoption
            try:
                policy = CachePolicy.resolve(
                    self.azeval_config().settings,
                    cache=bool(option("azeval_cache")),
                    mode=option("azeval_cache_mode"),
                    replay=bool(option("azeval_replay")),
                )
                self._cache = RunCache.open(policy, f"pytest-{new_run_id()}", self.redactor())
            except AzevalError as exc:
                raise _TargetProblem(f"response cache: {exc.format_message()}") from None
        return self._cache

    def target_names(self) -> list[str]:
        from harness.config import CONFIG_FILE
        from harness.errors import ConfigError

        config = self.azeval_config()
        names = list(self.pytest_config.getoption("azeval_targets") or []) or list(
            self.pytest_config.getini("azeval_targets")
        )
        if not names:
            return list(config.targets) or ["local"]
        for name in names:
            if name not in config.targets and name != "local":
                known = ", ".join(sorted(config.targets)) or "none configured"
                raise ConfigError(
                    config.path or CONFIG_FILE, "", f"unknown target '{name}' (targets: {known})"
                )
        return names

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="azeval-targets", daemon=True
                )
                self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def run(self, case: Case, target: str, repeat: int) -> CaseResult:
        """Send the case's turns to the target (opened on first use) and check the replies."""
        return self._call(self._run(case, target, repeat))

    async def _sender(
        self, name: str, dead: dict[str, str] | None = None, *, embedder: bool = False
    ) -> TargetSender:
        """The target's sender, opened on first use; ``dead``: a check model's own;
        ``embedder``: the target opened to embed (never answered from the cache)."""
        from harness.errors import AzevalError
        from harness.preflight import spec_for
        from harness.runner.cached import ReplayTarget
        from harness.runner.engine import RunOptions
        from harness.runner.pool import open_for_run
        from harness.runner.sender import TargetSender
        from harness.targets import Target, open_embedder, target_info

        key = name if dead is None else f"{'embedder' if embedder else 'check model'} {name}"
        if key not in self._senders:
            config = self.azeval_config()
            cache = self.cache()
            options = RunOptions.from_settings(config.settings)
            try:
                chosen = config.select([name])[0]
                target: Target
                if embedder:
                    target = await open_embedder(chosen)
                elif cache is not None and cache.policy.replay:
                    target = ReplayTarget(target_info(chosen))
                else:
                    target = await open_for_run(chosen, options)
            except AzevalError as exc:
                raise _TargetProblem(f"target '{name}': {exc.format_message()}") from None
            registry = self._dead if dead is None else dead
            cached = cache is not None and not embedder
            answers = cache.for_target(target.info) if cached and cache is not None else None
            self._senders[key] = TargetSender(
                target, chosen, options, registry, self.redactor(), answers=answers
            )
            self._specs[key], _ = spec_for(chosen, self.catalogue())
        return self._senders[key]

    async def _services(self) -> Services:
        """What checks are lent: the [settings] check_model target, with a sender of its own."""
        from harness.checks import Services
        from harness.runner.check_model import SenderModel

        if self._lent is None:
            settings = self.azeval_config().settings
            name = settings.get("check_model")
            model = None if name is None else SenderModel(await self._sender(str(name), {}))
            self._lent = Services(check_model=model, embeddings=await self._embeddings())
        return self._lent

    async def _embeddings(self) -> Embeddings | None:
        """The [settings] embedder, as a run lends it to similar; None when none is named."""
        from harness.runner.embedder import MAX_INPUTS, embedding_model
        from harness.runner.embeddings import Embeddings

        settings = self.azeval_config().settings
        name = settings.get("embedder")
        if name is None:
            return None
        sender = await self._sender(str(name), {}, embedder=True)
        model = embedding_model(sender.config)
        if model is None:  # refused at collection, as run refuses it
            return None
        return Embeddings(sender, model, max_inputs=settings.get("embed_batch", MAX_INPUTS))

    async def _run(self, case: Case, name: str, repeat: int) -> CaseResult:
        """As a run does (``run_item``): preflight (a case the service would refuse is not
        sent), the target's quota, retries, and a target found dead stops the items still
        to come."""
        from harness.preflight import plan_case
        from harness.runner.work import WorkItem, run_item

        if name in self._dead:
            raise self._not_sent(name, self._dead[name])
        sender = await self._sender(name)
        spec = self._specs[name]
        row = plan_case(case, sender.config, self.catalogue(), spec=spec)
        ran = await run_item(
            WorkItem(case, name, repeat, row, spec), sender, await self._services()
        )
        if ran.not_sent is not None:
            raise self._not_sent(name, ran.not_sent)
        return ran.result

    def _not_sent(self, name: str, why: str) -> _TargetProblem:
        return _TargetProblem(f"target '{name}' is unavailable, not sent: {why}")

    def close(self) -> None:
        """Close every opened target and stop the loop (at session end)."""
        if self._cache is not None:
            self._cache.close()
        self._cache, self._cache_opened = None, False
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def close_all() -> None:
            for sender in self._senders.values():
                with contextlib.suppress(Exception):
                    await sender.target.aclose()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        self._loop = self._thread = None
        self._senders.clear()


def _has_suite_key(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return False
    return bool(_SUITE_KEY.search(head))
