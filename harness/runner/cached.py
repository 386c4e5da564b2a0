"""How a run uses the response cache: which mode, what a hit and a miss do, model drift.

The cache sits before the scheduler: a hit is answered without a quota charge or a slot.
Modes: ``readwrite`` (``--cache``: serve hits, store what is sent), ``read`` (serve hits,
store nothing), ``write`` (send everything, store answers not stored yet), ``refresh``
(send everything, replace what is stored), ``off``. ``--replay`` reads only: a miss is the
error ``not_in_cache`` on its case and nothing is ever sent.

A live answer reporting another model than the target's stored entries means the
deployment moved (Azure upgrades a deployment's model version in place): those entries are
retired, the run says so (``RunCache.drift``), and they are not served again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from harness.errors import InputError
from harness.results.record import CaseResult
from harness.runner.cache import (
    CACHE_MODES,
    DEFAULT_CACHE_PATH,
    CachedAnswer,
    CacheMode,
    ResponseCache,
    TargetIdentity,
    parse_age,
)
from harness.targets.base import Completion, TargetError, TargetInfo

NOT_IN_CACHE = "not_in_cache"


class Answers(Protocol):
    """Answers a target's sender asks for before sending: the response cache, or a
    stored run's replies (rescore)."""

    def lookup(self, body: Mapping[str, Any], repeat: int) -> Completion | None:
        """The answer to use instead of sending, or None to send; may raise TargetError."""
        ...

    def keep(self, body: Mapping[str, Any], repeat: int, completion: Completion) -> None:
        """A live answer to this request came back."""
        ...


# The answers each target's sender asks first, by the target's info.
AnswersFor = Callable[[TargetInfo], Answers]


@dataclass(frozen=True)
class CachePolicy:
    """What the command line and ``[settings]`` ask of the cache for one run."""

    mode: CacheMode = "off"
    path: Path = DEFAULT_CACHE_PATH
    ttl_s: float | None = None
    replay: bool = False

    @property
    def active(self) -> bool:
        return self.mode != "off"

    @property
    def reads(self) -> bool:
        return self.mode in ("readwrite", "read")

    @property
    def writes(self) -> bool:
        return self.mode in ("readwrite", "write", "refresh")

    @classmethod
    def resolve(
        cls,
        settings: Mapping[str, Any],
        *,
        cache: bool = False,
        mode: str | None = None,
        ttl: str | None = None,
        path: Path | None = None,
        replay: bool = False,
    ) -> CachePolicy:
        """The policy from options over settings; contradictions are an InputError (exit 2)."""
        chosen = mode or ("readwrite" if cache else None)
        if replay:
            if chosen not in (None, "read", "readwrite"):
                raise InputError(
                    f"--replay reads only from the cache; it cannot go with --cache-mode "
                    f"{chosen} (a replay sends nothing, so there is nothing to write)"
                )
            chosen = "read"
        if chosen is None:
            chosen = settings.get("cache_mode") or ("readwrite" if settings.get("cache") else "off")
        if chosen not in CACHE_MODES:
            raise InputError(f"cache mode {chosen!r}: must be one of {', '.join(CACHE_MODES)}")
        if chosen == "off" and (ttl is not None or path is not None):
            option = "--cache-ttl" if ttl is not None else "--cache-path"
            raise InputError(f"{option} goes with --cache (or --cache-mode, --replay)")
        ttl_text = ttl if ttl is not None else settings.get("cache_ttl")
        where = "--cache-ttl" if ttl is not None else "settings.cache_ttl"
        return cls(
            mode=cast(CacheMode, chosen),
            path=Path(path or settings.get("cache_path") or DEFAULT_CACHE_PATH),
            ttl_s=parse_age(ttl_text, where) if ttl_text is not None else None,
            replay=replay,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "path": str(self.path),
            "ttl_s": self.ttl_s,
            "replay": self.replay,
        }


@dataclass
class Drift:
    """A target whose live answers report another model than its stored entries."""

    target: str
    live_model: str
    stored_models: tuple[str, ...]
    # Entries retired in the file; None in read mode, which leaves the file as it is.
    retired: int | None

    def message(self) -> str:
        stored = ", ".join(self.stored_models)
        head = (
            f"target '{self.target}' now reports model {self.live_model} (the cache held "
            f"answers from {stored}): "
        )
        if self.retired is None:
            return head + "those answers are not served in this run"
        return head + f"{self.retired} stored answer(s) retired, not served again"

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "live_model": self.live_model,
            "stored_models": list(self.stored_models),
            "retired": self.retired,
        }


@dataclass
class TargetCache:
    """One target's view of the cache during a run."""

    store: ResponseCache
    policy: CachePolicy
    info: TargetInfo
    run_id: str
    on_drift: Callable[[Drift], None]
    identity: TargetIdentity = field(init=False)
    _stored_models: set[str] | None = field(default=None, init=False)
    _live_model: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.identity = TargetIdentity.of(self.info)

    def lookup(self, body: Mapping[str, Any], repeat: int) -> Completion | None:
        """The answer to serve, or None to send; in a replay a miss raises not_in_cache."""
        hit = self.find(body, repeat)
        return hit.completion() if hit is not None else None

    def find(self, body: Mapping[str, Any], repeat: int) -> CachedAnswer | None:
        """The stored answer to serve, or None; in a replay a miss raises not_in_cache."""
        hit = (
            self.store.get(self.identity, body, repeat, ttl_s=self.policy.ttl_s)
            if self.policy.reads
            else None
        )
        if (
            hit is not None
            and self._live_model
            and hit.reported_model not in (None, self._live_model)
        ):
            hit = None  # an answer of the model the deployment ran before (read mode)
        if hit is None and self.policy.replay:
            raise TargetError(
                NOT_IN_CACHE,
                f"--replay: no answer in the cache {self.store.path} for this request "
                f"on target '{self.info.name}' (repeat {repeat}); nothing was sent",
            )
        return hit

    def keep(self, body: Mapping[str, Any], repeat: int, completion: Completion) -> None:
        """A live, successful answer: note the model it reports, and store it if writing."""
        self._notice_model(completion.body.get("model"))
        if self.policy.writes:
            self.store.put(
                self.identity,
                body,
                repeat,
                completion,
                target_name=self.info.name,
                run_id=self.run_id,
                replace=self.policy.mode != "write",
            )

    def _notice_model(self, model: Any) -> None:
        if not isinstance(model, str) or not model:
            return
        self._live_model = model
        if self._stored_models is None:
            self._stored_models = self.store.reported_models(self.identity)
        others = self._stored_models - {model}
        if not others:
            self._stored_models.add(model)
            return
        retired = self.store.retire(self.identity, model) if self.policy.writes else None
        self._stored_models = {model}
        self.on_drift(Drift(self.info.name, model, tuple(sorted(others)), retired))


@dataclass
class RunCache:
    """The cache for one run: a TargetCache per target, the drift found, the notices."""

    store: ResponseCache
    policy: CachePolicy
    run_id: str
    drift: list[Drift] = field(default_factory=list)

    @classmethod
    def open(
        cls, policy: CachePolicy, run_id: str, redact: Callable[[str], str]
    ) -> RunCache | None:
        """The run's cache, or None when the policy is off; a bad file is a CacheError."""
        store = open_store(policy, redact)
        return cls(store, policy, run_id) if store is not None else None

    @property
    def notices(self) -> tuple[str, ...]:
        return self.store.notices

    def served_stale(self, result: CaseResult) -> bool:
        """The result used a cached answer of a model its target no longer reports."""
        return self.stale(result.target, cached_models(result))

    def stale(self, target: str, models: Iterable[str | None]) -> bool:
        """Cached answers of these models are stale: ``target`` now reports another."""
        live = {d.target: d.live_model for d in self.drift}.get(target)
        return live is not None and any(model not in (None, live) for model in models)

    def for_target(self, info: TargetInfo) -> TargetCache:
        return TargetCache(self.store, self.policy, info, self.run_id, self.drift.append)

    def close(self) -> None:
        self.store.close()


def cached_models(result: CaseResult) -> frozenset[str | None]:
    """The models that gave the result's answers from the cache (empty: none did)."""
    return frozenset(
        (turn.response or {}).get("model") for turn in result.turns if turn.cached is not None
    )


def open_store(policy: CachePolicy, redact: Callable[[str], str]) -> ResponseCache | None:
    """The cache file a policy uses, or None when it is off; a bad file is a CacheError."""
    if not policy.active:
        return None
    return ResponseCache.open(policy.path, redact=redact)


class ReplayTarget:
    """A target that sends nothing, for ``--replay``: built without a key or a client, so
    a run that replays cannot reach a service; every answer comes from the cache."""

    def __init__(self, info: TargetInfo) -> None:
        self.info = info

    async def complete(self, body: Mapping[str, Any], *, timeout: float) -> Completion:
        raise TargetError(NOT_IN_CACHE, "--replay sends nothing")

    async def aclose(self) -> None:
        return None
