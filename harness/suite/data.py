"""Rows for ``for_each``: JSONL, CSV, YAML or JSON files, or a list written inline."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml


def read_rows(source: str | list[Any], suite_dir: Path) -> list[dict[str, Any]]:
    """Every row as a mapping; raises ValueError naming the file and line when one is bad."""
    if isinstance(source, list):
        return [_as_row(row, f"item {i}") for i, row in enumerate(source)]
    path = suite_dir / source
    if not path.is_file():
        raise ValueError(f"data file not found: {source}")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{source}: not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"{source}: cannot be read ({exc.strerror})") from None
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(_as_row(json.loads(line), f"{source}:{number}"))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{source}:{number}: not valid JSON ({exc.msg})") from None
        return rows
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        try:
            return [dict(row) for row in reader]
        except csv.Error as exc:
            raise ValueError(f"{source}:{reader.line_num}: not valid CSV ({exc})") from None
    if suffix in (".yaml", ".yml", ".json"):
        try:
            data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"{source}: not valid {suffix[1:].upper()}: {exc}") from None
        if not isinstance(data, list):
            raise ValueError(f"{source}: expected a list of rows")
        return [_as_row(row, f"{source} item {i}") for i, row in enumerate(data)]
    raise ValueError(f"{source}: unsupported data file (use .jsonl, .csv, .yaml or .json)")


def _as_row(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a row must be a mapping")
    return row
