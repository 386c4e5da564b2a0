"""Rows for ``for_each``: JSONL, CSV, YAML or JSON files, or a list written inline."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from harness.checks.registry import LoadContext
from harness.suite.yamlfile import YamlProblem, parse_yaml


def read_rows(source: str | list[Any], context: LoadContext) -> list[dict[str, Any]]:
    """Every row as a mapping; raises ValueError naming the file and line when one is bad."""
    if isinstance(source, list):
        return [_as_row(row, f"item {i}") for i, row in enumerate(source)]
    suffix = Path(source).suffix.lower()
    data = context.read(source, "data file")  # inside the suite's project, bounded
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{source}: not UTF-8 text") from None
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(_as_row(json.loads(line), f"{source}:{number}"))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{source}:{number}: not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise ValueError(f"{source}:{number}: JSON nested too deep") from None
        return rows
    if suffix == ".csv":
        return _csv_rows(text, source)
    if suffix in (".yaml", ".yml", ".json"):
        try:
            data = json.loads(text) if suffix == ".json" else parse_yaml(text)[0]
        except (json.JSONDecodeError, YamlProblem) as exc:
            raise ValueError(f"{source}: not valid {suffix[1:].upper()}: {exc}") from None
        except RecursionError:
            raise ValueError(f"{source}: nested too deep") from None
        if not isinstance(data, list):
            raise ValueError(f"{source}: expected a list of rows")
        return [_as_row(row, f"{source} item {i}") for i, row in enumerate(data)]
    raise ValueError(f"{source}: unsupported data file (use .jsonl, .csv, .yaml or .json)")


def _csv_rows(text: str, source: str) -> list[dict[str, Any]]:
    """Rows under the header; a row with fewer or more fields than it is an error at its
    line (DictReader fills a short row with None, which rendered as 'None' in prompts)."""
    reader = csv.DictReader(text.splitlines())
    rows = []
    try:
        for row in reader:
            fields = len(reader.fieldnames or ())
            written = fields + len(row.get(None) or ()) - sum(v is None for v in row.values())
            if written != fields:
                raise ValueError(
                    f"{source}:{reader.line_num}: {written} field(s), the header has {fields}"
                )
            rows.append(dict(row))
    except csv.Error as exc:
        raise ValueError(f"{source}:{reader.line_num}: not valid CSV ({exc})") from None
    return rows


def _as_row(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a row must be a mapping")
    return row
