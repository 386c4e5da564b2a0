"""run.json as one typed value: what ran where, when, how, and what the run found.

``RunMeta.from_json`` reads every record format azeval has written: format 1 (azeval 0.1.0,
no ``format`` key, no prices or scheduler books) and format 2. What this version does not
model (a newer azeval's key, a key a colleague's tool added) is kept in ``extra`` and
written back by ``to_json``, so reading and writing a run.json loses nothing.

The judge's own parts (``judges``, ``judging``, ``check_model``, ``pairwise``) stay JSON
objects here: they are written and read by harness/judge alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from harness.results.record import FORMAT
from harness.results.scheduling import Scheduling, scheduling
from harness.results.summary import RunSummary
from harness.targets.base import TargetInfo


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _rest(data: Mapping[str, Any], known: set[str]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in known}


@dataclass(frozen=True)
class SuiteEntry:
    """A suite as the run recorded it: id, file, hash, case count, files its checks read,
    and the cases a selection kept (None when the whole suite ran)."""

    id: str
    path: str | None = None
    sha256: str | None = None
    cases: int | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    selected: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        for key in ("path", "sha256", "cases"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.files:
            out["files"] = dict(self.files)
        if self.selected is not None:
            out["selected"] = list(self.selected)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SuiteEntry:
        selected = data.get("selected")
        return cls(
            id=str(data.get("id", "")),
            path=_text(data.get("path")),
            sha256=_text(data.get("sha256")),
            cases=_int(data.get("cases")),
            files={str(k): str(v) for k, v in _object(data.get("files")).items()},
            selected=tuple(map(str, selected)) if isinstance(selected, list) else None,
        )


_INFO_KEYS = {"name", "kind", "model", "model_version", "deployment", "api_version", "endpoint"}


@dataclass(frozen=True)
class TargetEntry(TargetInfo):
    """A target as run.json records it: what it is, and the price its turns were costed at
    (None: no price known, so its cost is unknown)."""

    price: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "price": dict(self.price) if self.price else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TargetEntry:
        price = data.get("price")
        return cls(
            name=str(data.get("name", "")),
            kind=str(data.get("kind") or ""),
            model=str(data.get("model") or ""),
            model_version=str(data.get("model_version") or ""),
            deployment=str(data.get("deployment") or ""),
            api_version=str(data.get("api_version") or ""),
            endpoint=str(data.get("endpoint") or ""),
            extra=_rest(data, _INFO_KEYS | {"price"}),
            price=price if isinstance(price, Mapping) else None,
        )


@dataclass(frozen=True)
class RecordedOptions:
    """How the run was run: -j, timeout, retries, repeat, the cache, the command-line
    overrides (what a resume restores) and whether replies were streamed."""

    concurrency: int | None = None
    timeout: float | None = None
    max_retries: int | None = None
    case_deadline: float | None = None
    repeat: int | None = None
    cache: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cache_mode(self) -> str:
        return str(self.cache.get("mode") or "off")

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**out, "cache": dict(self.cache), "overrides": dict(self.overrides), **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordedOptions:
        known = {f.name for f in fields(cls)}
        return cls(
            concurrency=_int(data.get("concurrency")),
            timeout=_float(data.get("timeout")),
            max_retries=_int(data.get("max_retries")),
            case_deadline=_float(data.get("case_deadline")),
            repeat=_int(data.get("repeat")),
            cache=_object(data.get("cache")),
            overrides=_object(data.get("overrides")),
            stream=data.get("stream") is True,
            extra=_rest(data, known),
        )


@dataclass(frozen=True)
class RescoredFrom:
    """The stored run whose replies a re-scored run checked again."""

    run_id: str
    path: str = ""


# Keys RunMeta models; anything else in run.json goes to ``extra``.
_MODELLED = {
    "format",
    "run_id",
    "azeval_version",
    "git_commit",
    "started_at",
    "finished_at",
    "status",
    "suites",
    "targets",
    "options",
    "summary",
    "scheduler",
    "dead_targets",
    "resumed_at",
    "rescored_from",
    "baseline",
    "cache",
    "judges",
    "judging",
    "check_model",
    "pairwise",
    "shard",
    "embedder",
}


@dataclass(frozen=True)
class RunMeta:
    """run.json: the run's identity, inputs, options, and what it found about its targets."""

    run_id: str
    format: int = FORMAT
    # running, complete or interrupted; None in a record that does not say.
    status: str | None = None
    azeval_version: str | None = None
    git_commit: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    suites: tuple[SuiteEntry, ...] = ()
    targets: tuple[TargetEntry, ...] = ()
    options: RecordedOptions = field(default_factory=RecordedOptions)
    # The summary as stored at the end of the run (None while it runs); Run.summary is
    # the one readers use, computed from the results.
    summary: RunSummary | None = None
    # The scheduler's books per target, as written (Run.scheduling reads them typed).
    scheduler: Mapping[str, Any] = field(default_factory=dict)
    dead_targets: Mapping[str, str] = field(default_factory=dict)
    resumed_at: tuple[str, ...] = ()
    rescored_from: RescoredFrom | None = None
    # A baseline file read as a run: its path.
    baseline: str | None = None
    # The response cache's mode and path, and the deployments it found had moved.
    cache: Mapping[str, Any] = field(default_factory=dict)
    judges: tuple[Mapping[str, Any], ...] = ()
    judging: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    check_model: Mapping[str, Any] | None = None
    pairwise: Mapping[str, Any] | None = None
    # A CI shard's index, count and content, or a merge's shards (harness/results/merge.py).
    shard: Mapping[str, Any] | None = None
    # What the run sent its embedder (harness.runner.embeddings.Embeddings.to_json).
    embedder: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    def target(self, name: str | None) -> TargetEntry | None:
        """The recorded target of that name, if the run had one."""
        return next((t for t in self.targets if t.name == name), None)

    def suite(self, suite_id: str) -> SuiteEntry | None:
        return next((s for s in self.suites if s.id == suite_id), None)

    @property
    def scheduling(self) -> dict[str, Scheduling]:
        return scheduling(self.scheduler)

    @property
    def cache_drift(self) -> list[Mapping[str, Any]]:
        drift = self.cache.get("drift")
        return [d for d in drift if isinstance(d, Mapping)] if isinstance(drift, list) else []

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": self.format,
            "run_id": self.run_id,
            "azeval_version": self.azeval_version,
            "git_commit": self.git_commit,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "suites": [s.to_json() for s in self.suites],
            "targets": [t.to_json() for t in self.targets],
            "options": self.options.to_json(),
            "summary": self.summary.to_json() if self.summary is not None else {},
        }
        optional: dict[str, Any] = {
            "scheduler": dict(self.scheduler),
            "dead_targets": dict(self.dead_targets),
            "resumed_at": list(self.resumed_at),
            "cache": dict(self.cache),
            "judges": [dict(j) for j in self.judges],
            "judging": {k: dict(v) for k, v in self.judging.items()},
        }
        out.update({k: v for k, v in optional.items() if v})
        if self.rescored_from is not None:
            out["rescored_from"] = {
                "run_id": self.rescored_from.run_id,
                "path": self.rescored_from.path,
            }
        for key in ("status", "baseline", "check_model", "pairwise", "shard", "embedder"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], default_id: str = "") -> RunMeta:
        """Any recorded run.json (format 1 or 2), already checked by store.read_meta's schema."""
        source = _object(data.get("rescored_from"))
        rescored = RescoredFrom(str(source.get("run_id") or ""), str(source.get("path") or ""))
        summary = data.get("summary")
        check_model, pairwise, shard, embedder = (
            data.get(k) for k in ("check_model", "pairwise", "shard", "embedder")
        )
        fmt = _int(data.get("format"))
        return cls(
            run_id=str(data.get("run_id") or default_id),
            format=fmt if fmt is not None else 1,
            status=_text(data.get("status")),
            azeval_version=_text(data.get("azeval_version")),
            git_commit=_text(data.get("git_commit")),
            started_at=_text(data.get("started_at")),
            finished_at=_text(data.get("finished_at")),
            suites=tuple(
                SuiteEntry.from_json(s) for s in data.get("suites") or [] if isinstance(s, Mapping)
            ),
            targets=tuple(
                TargetEntry.from_json(t)
                for t in data.get("targets") or []
                if isinstance(t, Mapping)
            ),
            options=RecordedOptions.from_json(_object(data.get("options"))),
            summary=RunSummary.from_json(summary) if summary else None,
            scheduler=_object(data.get("scheduler")),
            dead_targets={str(k): str(v) for k, v in _object(data.get("dead_targets")).items()},
            resumed_at=tuple(map(str, data.get("resumed_at") or [])),
            rescored_from=rescored if source else None,
            baseline=_text(data.get("baseline")),
            cache=_object(data.get("cache")),
            judges=tuple(j for j in data.get("judges") or [] if isinstance(j, Mapping)),
            judging={
                str(k): v for k, v in _object(data.get("judging")).items() if isinstance(v, Mapping)
            },
            check_model=check_model if isinstance(check_model, Mapping) else None,
            pairwise=pairwise if isinstance(pairwise, Mapping) else None,
            shard=shard if isinstance(shard, Mapping) else None,
            embedder=embedder if isinstance(embedder, Mapping) else None,
            extra=_rest(data, _MODELLED),
        )
