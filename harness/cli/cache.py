"""``azeval cache info|clear|prune``: look at and tidy the response cache file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.options import config_option
from harness.config import load_config
from harness.runner.cache import DEFAULT_CACHE_PATH, CacheInfo, ResponseCache, parse_age

path_option = click.option(
    "--cache-path",
    "cache_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help=f"The cache file (default: [settings] cache_path, else {DEFAULT_CACHE_PATH}).",
)


@click.group()
def cache() -> None:
    """The response cache (see `azeval run --cache`)."""


def _path(cache_path: Path | None, config_path: Path | None) -> Path:
    if cache_path is not None:
        return cache_path
    settings = load_config(config_path).settings
    return Path(settings.get("cache_path") or DEFAULT_CACHE_PATH)


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return ""  # pragma: no cover


def info_lines(info: CacheInfo) -> list[str]:
    lines = [f"{info.path}: {info.entries} answer(s), {_size(info.size_bytes)}"]
    for t in info.by_target:
        identity = t.identity
        where = " ".join(
            part
            for part in (
                identity.kind,
                identity.host,
                identity.deployment and f"deployment {identity.deployment}",
                identity.api_version and f"api-version {identity.api_version}",
            )
            if part
        )
        version = f" {identity.model_version}" if identity.model_version else ""
        retired = f", {t.retired} retired" if t.retired else ""
        lines.append(
            f"  {t.target_name}: {identity.model}{version} ({where}), reported model "
            f"{t.reported_model or '-'}: {t.entries} answer(s){retired}, "
            f"stored {t.oldest} … {t.newest}"
        )
    return lines


@cache.command()
@path_option
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info(cache_path: Path | None, config_path: Path | None, as_json: bool) -> int:
    """Entries, size, and answers by target and model version."""
    path = _path(cache_path, config_path)
    if not path.exists():
        # Looking must not create the file.
        click.echo(
            json.dumps({"path": str(path), "entries": 0}) if as_json else f"{path}: no cache"
        )
        return 0
    with ResponseCache.open(path) as store:
        for notice in store.notices:
            click.echo(f"Note: {notice}", err=True)
        found = store.info()
    click.echo(json.dumps(found.to_json(), indent=2) if as_json else "\n".join(info_lines(found)))
    return 0


@cache.command()
@path_option
@config_option
def clear(cache_path: Path | None, config_path: Path | None) -> int:
    """Remove every stored answer."""
    path = _path(cache_path, config_path)
    if not path.exists():
        click.echo(f"{path}: no cache")
        return 0
    with ResponseCache.open(path) as store:
        removed = store.clear()
    click.echo(f"{path}: removed {removed} answer(s)")
    return 0


@cache.command()
@path_option
@config_option
@click.option(
    "--older-than",
    "older_than",
    metavar="AGE",
    help="Remove answers stored longer ago than this (30d, 12h, 2w).",
)
def prune(cache_path: Path | None, config_path: Path | None, older_than: str | None) -> int:
    """Remove old answers, and those of a model a deployment no longer runs."""
    age = parse_age(older_than, "--older-than") if older_than is not None else None
    path = _path(cache_path, config_path)
    if not path.exists():
        click.echo(f"{path}: no cache")
        return 0
    with ResponseCache.open(path) as store:
        removed = store.prune(age)
        left = store.info().entries
    click.echo(f"{path}: removed {removed} answer(s), {left} left")
    return 0
