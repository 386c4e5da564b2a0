"""Targets and settings from ``azeval.toml`` (or ``[tool.azeval]`` in pyproject.toml).

``${VAR}`` and ``${VAR:-default}`` in string values are expanded from the environment when a
target is chosen for a run, so a missing variable of a target you did not pick is no error.
Secrets are never stored here: a target names the variable that holds its key, and the key
is read only when its client is built.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.errors import ConfigError, InputError
from harness.quota_rules import default_rpm

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_FILE = "azeval.toml"
KINDS = ("azure", "openai", "local")
DEFAULT_API_VERSION = "2024-10-21"
# A local model shares the CPU with everything else on the machine; on a busy CI runner a
# reply can take minutes, which is slow, not broken.
LOCAL_TIMEOUT = 300.0
# What an HTTP header can carry of a key: visible ASCII, no spaces.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")

_COMMON_KEYS = {
    "kind",
    "model",
    "model_version",
    "tpm",
    "rpm",
    "timeout",
    "concurrency",
    "description",
    "max_response_bytes",
    "mode",
}
MODES = ("live", "batch")
_KEYS_BY_KIND = {
    "azure": _COMMON_KEYS
    | {"endpoint", "deployment", "api_version", "auth", "api_key_env", "use_v1"}
    | {"batch_enqueued_tokens"},
    "openai": _COMMON_KEYS | {"base_url", "api_key_env"},
    "local": _COMMON_KEYS | {"model_path", "n_ctx", "parallel", "threads", "seed"},
}
_REQUIRED_BY_KIND = {
    "azure": ("endpoint", "deployment", "model"),
    "openai": ("model",),
    "local": (),
}
_WHY_REQUIRED = {
    "model": ": the model the deployment runs (gpt-35-turbo, gpt-4o, …), for its token "
    "counts, limits and prices",
}


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_name(value: Any) -> bool:
    # TOML writes versions and dates bare (api_version = 2024-10-21, model_version = 613):
    # they are taken as the text they were written as.
    return isinstance(value, (str, int, float, date)) and not isinstance(value, bool)


def _is_flag(value: Any) -> bool:
    return isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_whole(value: Any) -> bool:
    return _is_whole(value) and value > 0


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _is_percent(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 100


def _is_retry_count(value: Any) -> bool:
    # The command line's --max-retries range: more retries only stretch a dying run.
    return _is_whole(value) and 0 <= value <= 50


def _is_folder(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_cache_mode(value: Any) -> bool:
    from harness.runner.cache import CACHE_MODES  # the runner imports this module

    return value in CACHE_MODES


def _is_age(value: Any) -> bool:
    from harness.runner.cache import parse_age

    try:
        parse_age(value, "")
    except InputError:
        return False
    return isinstance(value, str)


def _is_fraction(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def _is_temperature(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 2


def _is_folders(value: Any) -> bool:
    return isinstance(value, list) and all(_is_folder(v) for v in value)


def _is_variable(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value) is not None


def _is_variable_or_none(value: Any) -> bool:
    # "" is a server without auth (an openai target); an azure target is refused it later.
    return value == "" or _is_variable(value)


def _is_embed_batch(value: Any) -> bool:
    return _is_positive_whole(value) and value <= 2048  # Azure's inputs per request


# What each key's value must be, and what the error says when it is not. One table for
# targets and settings, so a wrong type is caught before anything is built from it.
_Rule = tuple[Callable[[Any], bool], str]
_TEXT: _Rule = (_is_text, "must be text")
_NAME: _Rule = (_is_name, "must be text")
_POSITIVE: _Rule = (_is_positive_whole, "must be a positive whole number")
_SECONDS: _Rule = (_is_positive_number, "must be a number of seconds above 0")
_TARGET_RULES: dict[str, _Rule] = {
    "model": _NAME,
    "model_version": _NAME,
    "deployment": _NAME,
    "api_version": _NAME,
    "endpoint": _TEXT,
    "base_url": _TEXT,
    "auth": _TEXT,
    "api_key_env": (_is_variable_or_none, "must be the name of an environment variable"),
    "use_v1": (_is_flag, "must be true or false"),
    "description": _TEXT,
    "model_path": _TEXT,
    "tpm": _POSITIVE,
    "rpm": _POSITIVE,
    "concurrency": _POSITIVE,
    "n_ctx": _POSITIVE,
    "parallel": _POSITIVE,
    "threads": _POSITIVE,
    "seed": (_is_whole, "must be a whole number"),
    "timeout": _SECONDS,
    "max_response_bytes": _POSITIVE,
    "mode": (lambda value: value in MODES, "must be one of live, batch"),
    "batch_enqueued_tokens": _POSITIVE,
}
_SETTING_RULES: dict[str, _Rule] = {
    "concurrency": _POSITIVE,
    "timeout": _SECONDS,
    "case_deadline": _SECONDS,
    "reports_dir": (_is_folder, "must be the name of a folder"),
    "fail_under": (_is_percent, "must be a pass rate in percent, from 0 to 100"),
    "max_retries": (_is_retry_count, "must be a whole number from 0 to 50"),
    "max_retry_after": _SECONDS,
    "check_model": (_is_name, "must be the name of a configured target"),
    # The target whose embeddings `similar` compares, and how many texts go in a request.
    "embedder": (_is_name, "must be the name of a configured target"),
    "embed_batch": (_is_embed_batch, "must be a whole number from 1 to 2048 (inputs per request)"),
    "allow_unverified": (_is_flag, "must be true or false"),
    "cache": (_is_flag, "must be true or false"),
    "cache_mode": (_is_cache_mode, "must be one of readwrite, read, write, refresh, off"),
    "cache_path": (_is_folder, "must be the name of a file"),
    "cache_ttl": (_is_age, "must be an age such as 90s, 15m, 12h, 7d or 2w"),
    # The judge of model-graded checks (a target's name) and how it is asked.
    "judge": (_is_name, "must be the name of a configured target"),
    "judge_templates": (_is_folder, "must be the name of a folder of judge templates"),
    "judge_samples": _POSITIVE,
    "judge_seed": (_is_whole, "must be a whole number"),
    "judge_temperature": (_is_temperature, "must be a number from 0 to 2"),
    "judge_max_tokens": _POSITIVE,
    "judge_min_agreement": (_is_fraction, "must be a share from 0 to 1"),
    # Folders (relative to the config file) whose files suites may name besides the project.
    "suite_files_from": (_is_folders, "must be a list of folder names"),
    # How often a batch run asks the service how its batches are doing.
    "batch_poll_interval": _SECONDS,
    # Past this many cases, the HTML report lists passing cases by id (harness.report).
    "report_full_cases": (_is_positive_whole, "must be a positive whole number of cases"),
}


@dataclass(frozen=True)
class TargetConfig:
    """One configured target; string values may still hold ``${VAR}`` until resolved."""

    name: str
    kind: str
    model: str = ""
    model_version: str = ""
    deployment: str = ""
    api_version: str = DEFAULT_API_VERSION
    endpoint: str = ""
    base_url: str = ""
    auth: str = "key"
    api_key_env: str = ""
    use_v1: bool = False
    tpm: int | None = None
    rpm: int | None = None
    timeout: float | None = None
    concurrency: int | None = None
    model_path: str = ""
    n_ctx: int = 8192
    parallel: int = 4
    threads: int | None = None
    seed: int | None = None
    description: str = ""
    # A reply body (decompressed) larger than this is an invalid_response, never read whole.
    # Generous: a chat answer is kilobytes, a long one with logprobs a few megabytes.
    max_response_bytes: int = 16 * 1024 * 1024
    # "batch": sent through the Global Batch API (a Global Batch deployment), not live.
    mode: str = "live"
    # The deployment's enqueued-token quota: a batch run keeps what it submits under it.
    batch_enqueued_tokens: int | None = None
    source: str = "<default>"
    # A deployment pool (``pool = ["east", "sweden"]``): the member targets it sends to,
    # each an azure target of the pool's model and version (see harness/runner/pool.py).
    members: tuple[TargetConfig, ...] = ()

    @property
    def place(self) -> str:
        return f"targets.{self.name}"

    @property
    def deployments(self) -> tuple[TargetConfig, ...]:
        """The targets requests actually go to: a pool's members, else the target itself
        (what needs a key, and whose secrets are scrubbed)."""
        return self.members or (self,)

    @property
    def uses_key(self) -> bool:
        """Whether requests carry an API key: api_key_env = "" is a server without auth."""
        if self.members:
            return False  # its members do, each its own (``deployments``)
        if self.kind == "openai":
            return bool(self.api_key_env)
        return self.kind == "azure" and self.auth == "key"

    def api_key(self) -> str:
        """The key from the variable this target names; read only when needed, never stored."""
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise ConfigError(
                self.source,
                f"{self.place}.api_key_env",
                f"environment variable {self.api_key_env} is not set (the API key)",
            )
        if not _HEADER_SAFE.fullmatch(key):
            # Never quoted: the value is the secret. A CRLF .env or a pasted key brings a
            # line end, which the HTTP client refused in an error that repeated the key.
            what = "whitespace" if any(c.isspace() for c in key) else "characters"
            raise ConfigError(
                self.source,
                f"{self.place}.api_key_env",
                f"environment variable {self.api_key_env} holds {what} an API key cannot "
                "have (a line end from a CRLF .env file or a paste?); the key is not shown",
            )
        return key

    def resolved(self, only: Container[str] | None = None) -> TargetConfig:
        """This target with every ``${VAR}`` expanded; a missing variable is a ConfigError.

        ``only``: expand just these fields; the others keep their ``${VAR}`` text.
        """
        changes: dict[str, Any] = {}
        for key, value in vars(self).items():
            if isinstance(value, str) and "${" in value and (only is None or key in only):
                changes[key] = expand_env(value, self.source, f"{self.place}.{key}")
        if self.members:
            members = tuple(m.resolved(only) for m in self.members)
            check_pool(self, members)
            return replace(self, **changes, members=members)
        target = replace(self, **changes)
        url_key = {"azure": "endpoint", "openai": "base_url"}.get(self.kind)
        if url_key is not None and (only is None or url_key in only):
            check_url(target, url_key)
        return target


@dataclass(frozen=True)
class Config:
    """Everything the configuration file says."""

    path: str | None
    targets: Mapping[str, TargetConfig]
    settings: Mapping[str, Any] = field(default_factory=dict)
    models: Mapping[str, Any] = field(default_factory=dict)

    def select(
        self, names: tuple[str, ...] | list[str], *, only: Container[str] | None = None
    ) -> list[TargetConfig]:
        """The named targets resolved from the environment (default: see below).

        With no names, every configured target runs; with none configured, the embedded
        local model does. ``only`` limits what is expanded (see TargetConfig.resolved).
        """
        if not names:
            # A pool's members run as the pool, not once more each on their own.
            pooled = {m.name for t in self.targets.values() for m in t.members}
            chosen = [t for t in self.targets.values() if t.name not in pooled]
            return [t.resolved(only) for t in chosen or [default_local_target()]]
        picked = []
        for name in names:
            if name not in self.targets:
                if name == "local":
                    picked.append(default_local_target())
                    continue
                known = ", ".join(sorted(self.targets)) or "none configured"
                raise ConfigError(
                    self.path or CONFIG_FILE,
                    "",
                    f"unknown target '{name}' (targets: {known})",
                )
            picked.append(self.targets[name].resolved(only))
        return picked


def default_local_target() -> TargetConfig:
    """The embedded SmolLM2 model, used when no target is configured."""
    return TargetConfig(name="local", kind="local", model="local", timeout=LOCAL_TIMEOUT)


def check_url(target: TargetConfig, key: str) -> None:
    """An azure endpoint or openai base_url the SDK can send to: http(s), a host, no query;
    an endpoint without the /openai… the SDK appends, a base_url without /chat/completions.
    These mistakes otherwise cost a run of retries (no scheme) or a bare 404, exit 3."""
    value = getattr(target, key)
    if "${" in value or (not value and key == "base_url"):  # unexpanded; or OpenAI's own
        return
    place = f"{target.place}.{key}"
    example = "https://NAME.openai.azure.com" if key == "endpoint" else "https://HOST/v1"
    try:
        url = urlsplit(value)
        _ = url.port  # a port that is not a number raises ValueError
    except ValueError:
        url = urlsplit("")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(target.source, place, f"must be an http(s) URL such as {example}")
    written = url.path.rstrip("/")
    path = written
    if key == "endpoint":
        found = re.search(r"(^|/)openai(/|$)", path)
        path = path[: found.start()] if found else path
        adds = "/openai/…, the deployment and the api-version"
    else:
        path = path.removesuffix("/chat/completions")
        adds = "/chat/completions"
    if path != written or url.query or url.fragment:
        # The query is not repeated: a key or signature pasted there would be.
        raise ConfigError(
            target.source,
            place,
            f"must be the base URL only (azeval adds {adds} itself): "
            f"write {url.scheme}://{url.netloc.rpartition('@')[2]}{path}",
        )


def expand_env(value: str, path: str, place: str) -> str:
    """Expand ``${VAR}`` / ``${VAR:-default}``; a missing variable names file and place."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(path, place, f"environment variable {name} is not set")

    return _ENV_REF.sub(substitute, value)


def find_config(start: Path) -> Path | None:
    """azeval.toml, else a pyproject.toml with [tool.azeval], in start or a parent."""
    for folder in [start, *start.parents]:
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and b"[tool.azeval" in _read(pyproject):
            return pyproject
    return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot be read ({exc.strerror})") from None


def load_config(path: Path | None = None, *, start: Path | None = None) -> Config:
    """Load and validate the configuration; no file means no targets and default settings."""
    if path is None:
        path = find_config(start or Path.cwd())
    if path is None:
        return Config(path=None, targets={})
    source = str(path)
    try:
        data = tomllib.loads(_read(path).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "", f"not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("azeval", {})
    return parse_config(data, source)


def parse_config(data: Mapping[str, Any], source: str) -> Config:
    """Validate a configuration mapping (the TOML document) into a Config."""
    unknown = set(data) - {"targets", "settings", "models"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(source, key, "unknown section (expected targets, settings, models)")
    targets_data = _table(data.get("targets", {}), source, "targets")
    bodies = {name: _table(body, source, f"targets.{name}") for name, body in targets_data.items()}
    targets = {
        name: _parse_target(name, body, source)
        for name, body in bodies.items()
        if "pool" not in body
    }
    for name, body in bodies.items():
        if "pool" in body:
            targets[name] = _parse_pool(name, body, targets, bodies, source)
    targets = {name: targets[name] for name in bodies}  # in the file's order
    settings = _parse_settings(_table(data.get("settings", {}), source, "settings"), source)
    models = _table(data.get("models", {}), source, "models")
    return Config(path=source, targets=targets, settings=settings, models=models)


def _parse_target(name: str, body: Mapping[str, Any], source: str) -> TargetConfig:
    place = f"targets.{name}"
    kind = body.get("kind")
    if kind not in KINDS:
        raise ConfigError(source, f"{place}.kind", f"must be one of {', '.join(KINDS)}")
    allowed = _KEYS_BY_KIND[kind]
    for key in body:
        if key not in allowed:
            raise ConfigError(source, f"{place}.{key}", f"unknown key for a {kind} target")
    _check_values(body, _TARGET_RULES, source, place)
    for key in _REQUIRED_BY_KIND[kind]:
        if not body.get(key):
            why = _WHY_REQUIRED.get(key, "")
            raise ConfigError(source, f"{place}.{key}", f"required for {kind} targets{why}")
    if body.get("mode") == "batch" and kind != "azure":
        raise ConfigError(
            source,
            f"{place}.mode",
            f'"batch" needs an azure target (the Azure Global Batch API); this one is {kind}',
        )
    if kind == "azure" and body.get("auth", "key") not in ("key", "entra"):
        raise ConfigError(source, f"{place}.auth", "must be 'key' or 'entra'")
    if kind == "azure" and body.get("api_key_env") == "":
        raise ConfigError(
            source,
            f"{place}.api_key_env",
            'must be the name of an environment variable (Azure needs a key, or auth = "entra")',
        )
    fields = _with_defaults(kind, dict(body))
    for key in ("model", "model_version", "deployment", "api_version"):
        if key in fields:
            fields[key] = str(fields[key])
    return TargetConfig(name=name, source=source, **fields)


_POOL_KEYS = frozenset({"pool", "kind", "description"})
# What every member of a pool must share: a request fit for one is fit for all, and an
# answer from one stands for the pool (its checks, cache entries and price).
_POOL_SHARED = (("model", "model"), ("model_version", "model version"))


def _parse_pool(
    name: str,
    body: Mapping[str, Any],
    targets: Mapping[str, TargetConfig],
    bodies: Mapping[str, Any],
    source: str,
) -> TargetConfig:
    """A deployment pool: ``pool = ["east", "sweden"]``, each a configured azure target."""
    place = f"targets.{name}"
    for key in body:
        if key not in _POOL_KEYS:
            raise ConfigError(
                source,
                f"{place}.{key}",
                "unknown key for a pool (its members "
                "say where and how to send: set it on each member)",
            )
    if body.get("kind", "azure") != "azure":
        raise ConfigError(source, f"{place}.kind", "a pool is a pool of azure deployments")
    _check_values(body, _TARGET_RULES, source, place)
    names = body["pool"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(source, f"{place}.pool", "must be a list of target names")
    if len(names) < 2:
        raise ConfigError(
            source,
            f"{place}.pool",
            f"a pool of {len(names)} deployment(s) is no pool: name two or more targets "
            "(or use the target itself)",
        )
    members = []
    for i, member in enumerate(names):
        where = f"{place}.pool[{i}]"
        if member in names[:i]:
            raise ConfigError(source, where, f"'{member}' is named twice")
        if member == name or "pool" in (bodies.get(member) or {}):
            raise ConfigError(
                source, where, f"'{member}' is a pool: a pool's members are deployments"
            )
        if member not in targets:
            close = difflib.get_close_matches(member, list(targets), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            known = ", ".join(sorted(targets)) or "none"
            raise ConfigError(
                source, where, f"'{member}' is not a configured target{hint} (targets: {known})"
            )
        config = targets[member]
        if config.kind != "azure":
            raise ConfigError(
                source,
                where,
                f"'{member}' is not an azure target (kind {config.kind}): a pool's members "
                "are azure deployments",
            )
        members.append(config)
    pool = TargetConfig(
        name=name,
        kind="azure",
        model=members[0].model,
        model_version=members[0].model_version,
        api_version=members[0].api_version,
        use_v1=members[0].use_v1,
        description=str(body.get("description") or ""),
        # A request waits as long as its slowest member may take (each member's own timeout
        # bounds the requests it is sent).
        timeout=max((m.timeout for m in members if m.timeout is not None), default=None),
        # The pool's quota is its members' together (what a plan estimates time with).
        tpm=_summed(m.tpm for m in members),
        rpm=_summed(default_rpm(m.tpm, m.rpm) for m in members),
        source=source,
        members=tuple(members),
    )
    check_pool(pool, pool.members)
    return pool


def sent_twice(targets: Iterable[TargetConfig]) -> list[str]:
    """A sentence per chosen target that also runs as a member of a chosen pool: each keeps
    its own books of the one deployment's quota, so together they may go past it."""
    chosen = list(targets)
    names = {t.name for t in chosen}
    return [
        f"target '{member.name}' runs on its own and as a member of pool '{pool.name}': "
        "each keeps its own books of its quota, so together they may exceed it (429s are "
        "retried)"
        for pool in chosen
        for member in pool.members
        if member.name in names
    ]


def _summed(values: Iterable[int | None]) -> int | None:
    counted = list(values)
    return None if None in counted else sum(v for v in counted if v is not None)


def check_pool(pool: TargetConfig, members: tuple[TargetConfig, ...]) -> None:
    """Every member of a pool runs its model and version (a ConfigError naming the first
    that does not): run once as written, and again with ``${VAR}`` expanded."""
    first = members[0]
    for i, member in enumerate(members[1:], start=1):
        for key, what in _POOL_SHARED:
            mine, theirs = getattr(member, key), getattr(first, key)
            if mine != theirs:
                raise ConfigError(
                    pool.source,
                    f"{pool.place}.pool[{i}]",
                    f"'{member.name}' runs {what} '{mine}', but '{first.name}' runs '{theirs}': "
                    "a pool's members are deployments of one model and version",
                )
        if member.api_version != first.api_version:
            raise ConfigError(
                pool.source,
                f"{pool.place}.pool[{i}]",
                f"'{member.name}' uses api_version '{member.api_version}', but '{first.name}' "
                f"'{first.api_version}': a request must be valid on every member",
            )


def _with_defaults(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    if kind == "azure":
        fields.setdefault("api_key_env", "AZURE_OPENAI_API_KEY")
        if fields.get("use_v1"):
            fields.setdefault("api_version", "v1")
    elif kind == "openai":
        fields.setdefault("api_key_env", "OPENAI_API_KEY")
    else:
        fields.setdefault("model", "local")
        fields.setdefault("timeout", LOCAL_TIMEOUT)
    return fields


def _parse_settings(body: Mapping[str, Any], source: str) -> dict[str, Any]:
    for key in body:
        if key not in _SETTING_RULES:
            raise ConfigError(source, f"settings.{key}", "unknown setting")
    _check_values(body, _SETTING_RULES, source, "settings")
    return dict(body)


def _check_values(
    body: Mapping[str, Any], rules: Mapping[str, _Rule], source: str, place: str
) -> None:
    for key, value in body.items():
        rule = rules.get(key)  # kind has no rule: its own check lists the kinds
        # The value is not quoted: a key pasted where its variable's name belongs would be.
        if rule is not None and not rule[0](value):
            raise ConfigError(source, f"{place}.{key}", rule[1])


def _table(value: Any, source: str, place: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(source, place, "must be a table")
    return value
