"""The model catalogue: encoding, context window, output limit, prices, accepted parameters.

The catalogue ships as ``models_catalogue.toml`` next to this module; a user's config adds
or overrides entries with ``[models."name"]`` tables of the same keys. Look a model up by
the model a deployment runs and its version (never by the deployment's name)::

    catalogue = load_catalogue(config.models)
    spec, warning = catalogue.lookup("gpt-35-turbo", "0613")
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, Literal

from harness.errors import ConfigError
from harness.tokens import encoding_name_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CATALOGUE_FILE = "models_catalogue.toml"
FEATURES = frozenset(
    {
        "sampling",
        "max_tokens",
        "max_completion_tokens",
        "tools",
        "parallel_tool_calls",
        "json_object",
        "json_schema",
        "logprobs",
        "seed",
        "stream_usage",
    }
)
ENCODINGS = ("cl100k_base", "o200k_base")
FALLBACK_ENCODING = "cl100k_base"
FALLBACK_CONTEXT = 8192
FALLBACK_MAX_OUTPUT = 4096

_MODEL_KEYS: Mapping[str, type | tuple[type, ...]] = {
    "encoding": str,
    "context_window": int,
    "max_output": int,
    "price_in_per_1k": (int, float),
    "price_out_per_1k": (int, float),
    "price_cached_in_per_1k": (int, float),
    "accepts": list,
    "o_series": bool,
    "message_format": str,
    "min_api_version": str,
    "approximate": bool,
    "default_version": str,
    "aliases": list,
    "versions": dict,
}
_VERSION_KEYS = {k: v for k, v in _MODEL_KEYS.items() if k not in ("versions", "aliases")}
_PRICE_KEYS = frozenset({"price_in_per_1k", "price_out_per_1k", "price_cached_in_per_1k"})
# Set by load_catalogue on a model or version whose prices a user's [models."x"] table gave.
_PRICED_BY_CONFIG = "priced_by_config"
_API_VERSION = re.compile(r"^(\d{4}-\d{2}-\d{2})(-preview)?$")
# A dated or numbered version glued to a model name: gpt-4o-2024-08-06, gpt-35-turbo-0125.
# Reasoning models are named o1, o3-mini, o4-mini …
_O_SERIES = re.compile(r"^o\d", re.IGNORECASE)
_NAME_WITH_VERSION = re.compile(r"^(?P<model>.+?)-(?P<version>\d{4}-\d{2}-\d{2}|\d{4})$")


PriceSource = Literal["catalogue", "config"]
# Azure's Global Batch deployments cost this share of Global Standard's price, on every
# model that offers them ("Cost 50% of Global Standard").
BATCH_SHARE = 0.5


@dataclass(frozen=True)
class Price:
    """USD per 1,000 tokens of one model version, and whether azeval.toml set them."""

    input_per_1k: float
    output_per_1k: float
    # Prompt tokens read from Azure's prompt cache; None: the model has no discount for them.
    cached_input_per_1k: float | None = None
    source: PriceSource = "catalogue"
    # The Global Batch price (BATCH_SHARE of the live one), which a batch run is costed at.
    batch: bool = False

    def for_batch(self) -> Price:
        """This price as a Global Batch deployment charges it."""
        if self.batch:
            return self
        cached = self.cached_input_per_1k
        return Price(
            input_per_1k=self.input_per_1k * BATCH_SHARE,
            output_per_1k=self.output_per_1k * BATCH_SHARE,
            cached_input_per_1k=cached * BATCH_SHARE if cached is not None else None,
            source=self.source,
            batch=True,
        )

    def cost(self, usage: Mapping[str, Any]) -> float:
        """USD for one answer's ``usage`` (prompt, cached prompt and completion tokens).

        The one place azeval prices tokens: the runner prices each turn with it, the plan its
        estimate. Cached tokens are part of ``prompt_tokens``; only they get the discount.
        """
        prompt = _tokens(usage.get("prompt_tokens"))
        completion = _tokens(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details")
        cached = _tokens(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
        cached = min(cached, prompt) if self.cached_input_per_1k is not None else 0
        return (
            (prompt - cached) * self.input_per_1k
            + cached * (self.cached_input_per_1k or 0.0)
            + completion * self.output_per_1k
        ) / 1000

    def to_json(self) -> dict[str, Any]:
        return {
            "input_per_1k": self.input_per_1k,
            "output_per_1k": self.output_per_1k,
            "cached_input_per_1k": self.cached_input_per_1k,
            "source": self.source,
            # Only on a batch price: the records of live runs stay as they were.
            **({"batch": True} if self.batch else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Price:
        return cls(
            input_per_1k=float(data["input_per_1k"]),
            output_per_1k=float(data["output_per_1k"]),
            cached_input_per_1k=_maybe_float(data.get("cached_input_per_1k")),
            source="config" if data.get("source") == "config" else "catalogue",
            batch=data.get("batch") is True,
        )


def _tokens(value: Any) -> int:
    """A token count from a service's usage; anything but a non-negative int counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _maybe_float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class ModelSpec:
    """What azeval knows about one model version."""

    name: str
    version: str
    encoding: str
    context_window: int
    max_output: int
    price_in_per_1k: float | None
    price_out_per_1k: float | None
    accepts: frozenset[str] = FEATURES
    price_cached_in_per_1k: float | None = None
    priced_by_config: bool = False
    o_series: bool = False
    message_format: str = "standard"
    min_api_version: str = ""
    approximate: bool = False
    known: bool = True
    # Sent through the Global Batch API: ``price`` is the batch price.
    batch: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name

    @property
    def price(self) -> Price | None:
        """What the model's tokens cost; None when the catalogue (and config) give no price."""
        if self.price_in_per_1k is None or self.price_out_per_1k is None:
            return None
        price = Price(
            input_per_1k=self.price_in_per_1k,
            output_per_1k=self.price_out_per_1k,
            cached_input_per_1k=self.price_cached_in_per_1k,
            source="config" if self.priced_by_config else "catalogue",
        )
        return price.for_batch() if self.batch else price

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Estimated USD for these tokens (none cached); None when the model has no price."""
        price = self.price
        if price is None:
            return None
        return price.cost({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens})


def api_version_key(api_version: str) -> tuple[str, int] | None:
    """Sort key of an Azure api-version: by date, a preview just before the same date's GA.

    ``v1``, ``latest`` and ``preview`` (the v1 API) sort after every dated version; an
    unrecognised string gives None.
    """
    if api_version in ("v1", "latest", "preview"):
        return ("9999-12-31", 1)
    match = _API_VERSION.match(api_version)
    if match is None:
        return None
    return (match.group(1), 0 if match.group(2) else 1)


@dataclass(frozen=True)
class Catalogue:
    """Models by name (with their versions), and the api-version feature table."""

    models: Mapping[str, Mapping[str, Any]]
    api_versions: Mapping[str, str]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def lookup(self, model: str, version: str = "") -> tuple[ModelSpec, str | None]:
        """The spec of ``model`` at ``version``, and a warning when azeval had to guess."""
        return _lookup(self, model, version)

    def api_version_accepts(self, api_version: str, feature: str) -> bool:
        """Whether ``api_version`` accepts ``feature``; unknown versions are given the benefit."""
        first = self.api_versions.get(feature)
        if not first or not api_version:
            return True
        have, need = api_version_key(api_version), api_version_key(first)
        if have is None or need is None:
            return True
        return have >= need

    def first_api_version(self, feature: str) -> str:
        return self.api_versions.get(feature, "")


@functools.cache
def _builtin() -> Mapping[str, Any]:
    text = resources.files("harness").joinpath(CATALOGUE_FILE).read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_catalogue(
    overrides: Mapping[str, Any] | None = None, *, source: str = "azeval.toml"
) -> Catalogue:
    """The shipped catalogue with a user's ``[models."name"]`` tables merged over it.

    An override of a known model replaces the keys it names, for each of its versions too
    (versions the override names merge one by one); an unknown model is added. A wrong key
    or type is a ConfigError naming ``source``.
    """
    data = _builtin()
    models: dict[str, dict[str, Any]] = {
        name: {**body, "versions": {v: dict(b) for v, b in body.get("versions", {}).items()}}
        for name, body in data["models"].items()
    }
    for name, body in (overrides or {}).items():
        _validate(name, body, source)
        target = models.setdefault(name, {"versions": {}})
        for key, value in body.items():
            if key != "versions":
                target[key] = value
                # The user's value holds for every version, over what the catalogue says
                # of one (gpt-35-turbo 0613's own context_window, say).
                for fields in target["versions"].values():
                    fields.pop(key, None)
        if _PRICE_KEYS & body.keys():
            target[_PRICED_BY_CONFIG] = True
        for version, fields in body.get("versions", {}).items():
            chosen = target["versions"].setdefault(version, {})
            chosen.update(fields)
            if _PRICE_KEYS & fields.keys():
                chosen[_PRICED_BY_CONFIG] = True
    aliases: dict[str, str] = {}
    for name, body in models.items():
        for alias in body.get("aliases", []):
            aliases[alias.lower()] = name
    return Catalogue(models=models, api_versions=dict(data["api_versions"]), aliases=aliases)


def _validate(name: str, body: Any, source: str) -> None:
    place = f"models.{name}"
    if not isinstance(body, Mapping):
        raise ConfigError(source, place, "must be a table of model settings")
    _validate_keys(body, _MODEL_KEYS, source, place)
    for version, fields in body.get("versions", {}).items():
        if not isinstance(fields, Mapping):
            raise ConfigError(source, f"{place}.versions.{version}", "must be a table")
        _validate_keys(fields, _VERSION_KEYS, source, f"{place}.versions.{version}")


def _validate_keys(
    body: Mapping[str, Any], allowed: Mapping[str, Any], source: str, place: str
) -> None:
    for key, value in body.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(source, f"{place}.{key}", f"unknown key (known: {known})")
        expected = allowed[key]
        if isinstance(value, bool) and expected is not bool:
            raise ConfigError(source, f"{place}.{key}", "must not be true/false")
        if not isinstance(value, expected):
            raise ConfigError(source, f"{place}.{key}", f"has the wrong type ({value!r})")
    if "encoding" in body and body["encoding"] not in ENCODINGS:
        raise ConfigError(source, f"{place}.encoding", f"must be one of {', '.join(ENCODINGS)}")
    if not all(isinstance(a, str) for a in body.get("aliases", [])):
        raise ConfigError(source, f"{place}.aliases", "must be a list of model names")
    unknown = set(body.get("accepts", [])) - FEATURES
    if unknown:
        known = ", ".join(sorted(FEATURES))
        raise ConfigError(
            source, f"{place}.accepts", f"unknown feature(s) {sorted(unknown)} (known: {known})"
        )


def _lookup(catalogue: Catalogue, model: str, version: str) -> tuple[ModelSpec, str | None]:
    name = _canonical(catalogue, model)
    if name is None:
        match = _NAME_WITH_VERSION.match(model)
        if match and _canonical(catalogue, match.group("model")):
            name = _canonical(catalogue, match.group("model"))
            version = version or match.group("version")
    if name is None:
        spec = _fallback(model, version)
        kind = ", a reasoning model" if spec.o_series else ""
        return spec, (
            f"unknown model '{model}': assuming {spec.encoding}{kind}, "
            f"{FALLBACK_CONTEXT:,}-token context, no prices"
        )
    body = catalogue.models[name]
    versions: Mapping[str, Mapping[str, Any]] = body.get("versions", {})
    by_lower = {v.lower(): v for v in versions}
    warning = None
    chosen = by_lower.get(version.lower()) if version else None
    if chosen is None:
        chosen = body.get("default_version", "")
        if version and versions:
            warning = (
                f"unknown version '{version}' of {name}: using the values of "
                f"{chosen or 'the model'}"
            )
    fields = {k: v for k, v in body.items() if k not in ("versions", "aliases", "default_version")}
    fields.update(versions.get(chosen, {}))
    spec = ModelSpec(
        name=name,
        version=chosen,
        encoding=fields.get("encoding", FALLBACK_ENCODING),
        context_window=fields.get("context_window", FALLBACK_CONTEXT),
        max_output=fields.get("max_output", FALLBACK_MAX_OUTPUT),
        price_in_per_1k=fields.get("price_in_per_1k"),
        price_out_per_1k=fields.get("price_out_per_1k"),
        price_cached_in_per_1k=fields.get("price_cached_in_per_1k"),
        priced_by_config=fields.get(_PRICED_BY_CONFIG, False),
        accepts=frozenset(fields["accepts"]) if "accepts" in fields else FEATURES,
        o_series=fields.get("o_series", False),
        message_format=fields.get("message_format", "standard"),
        min_api_version=fields.get("min_api_version", ""),
        approximate=fields.get("approximate", False),
    )
    return spec, warning


def _canonical(catalogue: Catalogue, model: str) -> str | None:
    if model in catalogue.models:
        return model
    lowered = model.lower()
    if lowered in catalogue.models:
        return lowered
    return catalogue.aliases.get(lowered)


def _fallback(model: str, version: str) -> ModelSpec:
    # The family a name belongs to (o1-mini, gpt-4o-audio-preview) gives its encoding, as
    # tiktoken and the fake server see it; only the limits are truly unknown.
    encoding = encoding_name_for(model)
    return ModelSpec(
        name=model,
        version=version,
        encoding=encoding if encoding in ENCODINGS else FALLBACK_ENCODING,
        context_window=FALLBACK_CONTEXT,
        max_output=FALLBACK_MAX_OUTPUT,
        price_in_per_1k=None,
        price_out_per_1k=None,
        o_series=_O_SERIES.match(model) is not None,
        known=False,
    )


def local_spec(catalogue: Catalogue, n_ctx: int | None = None) -> ModelSpec:
    """The embedded llama.cpp model: context from the target, counts approximate."""
    spec, _ = catalogue.lookup("local")
    if n_ctx:
        spec = replace(spec, context_window=n_ctx, max_output=min(spec.max_output, n_ctx))
    return spec
