"""The fake server's configuration: deployments, and loading it all from YAML/JSON data."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.testing.faults import Fault, fault_from_dict
from harness.testing.rules import action_from_dict, rule_from_dict
from harness.testing.streaming import FILTER_MODES, FilterMode, Timing


@dataclass(frozen=True)
class Deployment:
    """One deployment the fake resource serves.

    ``model`` is what replies report and what tokens are counted with ("gpt-35-turbo",
    "gpt-4o-2024-08-06"). ``context_window`` makes the server answer 400
    context_length_exceeded. ``tpm``/``rpm`` turn on the quota (rpm defaults to 6 per 1,000
    TPM); a request without max_tokens is charged ``default_max_tokens``.

    ``request_window`` / ``token_window``: the seconds (of Azure's minute of 60) over which
    each limit is evaluated, the per-minute limit scaled to it: ``rpm=60, request_window=10``
    takes 10 requests in any 10 s and says "10" in x-ratelimit-remaining-requests, as Azure
    does. ``limit_headers`` adds x-ratelimit-limit-*, ``reset_headers`` x-ratelimit-reset-*
    (time until the window is empty, written "9.5s"); Azure's standard deployments send
    neither, only remaining-*.

    A streamed answer waits ``first_token_ms`` before its first token and ``token_ms``
    between tokens, and its completion filter runs in ``filter_mode`` ("default" or
    "asynchronous", each annotation covering ``segment_chars`` characters; see
    harness.testing.streaming).

    ``enqueued_tokens``: a Global Batch deployment's enqueued-token quota; a batch whose
    prompt tokens, with those of its batches still enqueued, pass it fails
    token_limit_exceeded.
    """

    name: str
    model: str = "gpt-35-turbo"
    model_version: str = ""
    system_fingerprint: str | None = ""  # "" = a stable fp_… derived from the name
    context_window: int | None = None
    tpm: int | None = None
    rpm: int | None = None
    default_max_tokens: int = 4096
    request_window: float = 60.0
    token_window: float = 60.0
    limit_headers: bool = False
    reset_headers: bool = False
    faults: tuple[Fault, ...] = ()
    first_token_ms: float = 0.0
    token_ms: float = 0.0
    filter_mode: FilterMode = "default"
    segment_chars: int = 200
    # A Global Batch deployment's enqueued-token quota (None: unlimited).
    enqueued_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.filter_mode not in FILTER_MODES:
            raise ValueError(f"filter_mode {self.filter_mode!r}: one of {FILTER_MODES}")
        if self.segment_chars < 1 or min(self.first_token_ms, self.token_ms) < 0:
            raise ValueError("segment_chars must be positive, the delays not negative")
        if self.system_fingerprint == "":
            digest = hashlib.sha1(f"{self.name}/{self.model}".encode()).hexdigest()[:10]
            object.__setattr__(self, "system_fingerprint", f"fp_{digest}")
        object.__setattr__(self, "faults", tuple(self.faults))
        for name in ("request_window", "token_window"):
            if not 0 < getattr(self, name) <= 60:
                raise ValueError(f"{name}: expected seconds in (0, 60], got {getattr(self, name)}")

    @property
    def timing(self) -> Timing:
        return Timing(self.first_token_ms, self.token_ms, self.filter_mode, self.segment_chars)

    @property
    def is_o_series(self) -> bool:
        return self.model[:1] == "o" and self.model[1:2].isdigit()


def deployment_from_dict(data: Mapping[str, Any], where: str = "deployment") -> Deployment:
    known = {f.name for f in dataclasses.fields(Deployment)}
    if not isinstance(data, Mapping) or set(data) - known or "name" not in data:
        raise ValueError(f"{where}: expected a mapping with name and some of {sorted(known)}")
    values = dict(data)
    values["faults"] = tuple(
        fault_from_dict(f, f"{where}.faults[{i}]") for i, f in enumerate(data.get("faults", ()))
    )
    try:
        return Deployment(**values)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def as_deployment(value: Deployment | str | Mapping[str, Any]) -> Deployment:
    if isinstance(value, Deployment):
        return value
    if isinstance(value, str):
        return Deployment(name=value, model=value)
    return deployment_from_dict(value)


def options_from_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """FakeAzure keyword arguments from plain data.

    Keys: ``deployments`` (a list of names or mappings, or a mapping name → settings),
    ``rules``, ``default``, ``api_keys``, ``bearer_tokens``, ``window_s``, ``host``, ``port``,
    ``batch_timing`` (the fields of ``BatchTiming``).
    """
    known = {"deployments", "rules", "default", "api_keys", "bearer_tokens", "window_s"}
    known |= {"host", "port", "record", "batch_timing"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} (expected some of {sorted(known)})")
    options: dict[str, Any] = {
        k: v for k, v in data.items() if k in known - {"rules", "default", "batch_timing"}
    }
    if data.get("batch_timing") is not None:
        from harness.testing.batches import BatchTiming

        try:
            options["batch_timing"] = BatchTiming(**data["batch_timing"])
        except TypeError as e:
            raise ValueError(f"batch_timing: {e}") from None
    deployments = data.get("deployments")
    if isinstance(deployments, Mapping):
        options["deployments"] = [
            deployment_from_dict({"name": name, **(settings or {})}, f"deployments.{name}")
            for name, settings in deployments.items()
        ]
    elif isinstance(deployments, Sequence):
        options["deployments"] = [
            d if isinstance(d, str) else deployment_from_dict(d, f"deployments[{i}]")
            for i, d in enumerate(deployments)
        ]
    options["rules"] = [
        rule_from_dict(r, f"rules[{i}]") for i, r in enumerate(data.get("rules") or ())
    ]
    if data.get("default") is not None:
        options["default"] = action_from_dict(data["default"], "default")
    return options


def load_config(path: str | Path) -> dict[str, Any]:
    """FakeAzure keyword arguments from a YAML or JSON file."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        data = json.loads(text)
    else:
        import yaml  # a dependency of azeval; imported here so the server does not need it

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ValueError(str(e)) from None
    if not isinstance(data, Mapping):
        raise ValueError("expected a mapping at the top level")
    return options_from_dict(data)
