"""Rows for ``for_each``: JSONL, CSV, YAML or JSON files, or a list written inline.

A JSONL file of 100,000 rows is kept as its bytes and where each row starts and ends, and a
row is parsed when its case is built: a dict per row would hold several times the file.
"""

from __future__ import annotations

import csv
import json
import os
import re
import weakref
import zlib
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from harness.checks.registry import LoadContext
from harness.suite.yamlfile import YamlProblem, parse_yaml

Row = dict[str, Any]
# A line of a JSONL file, ended by \n, \r\n or \r (as bytes.splitlines); blank ones are skipped.
_LINE = re.compile(rb"[^\r\n]+")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


class JsonlRows(Sequence[Row]):
    """The rows of a JSONL file, each parsed when read. Iterating checks every row: the
    loader does so once, so a bad row is an error at its line before anything is built.

    The file's bytes are held until every row has been read once in order (the loader's
    pass); later reads take a row from the file, by where it starts, through a descriptor
    opened at load (so a file replaced since, as editors save, is still read as loaded).
    Each row's CRC-32 is kept: a row that changed in place since is an error naming it,
    never another row's data."""

    def __init__(self, data: bytes, source: str, path: Path | None = None) -> None:
        self._data: bytes | None = data
        self._source = source
        self._starts = array("q")
        self._ends = array("q")
        self._crcs = array("I")
        view = memoryview(data)
        for line in _LINE.finditer(data):
            if line.group().strip():
                self._starts.append(line.start())
                self._ends.append(line.end())
                self._crcs.append(zlib.crc32(view[line.start() : line.end()]))
        self._read_in_order = 0  # rows read so far in order, from the first
        self._fd: int | None = None
        if path is not None:
            self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            weakref.finalize(self, os.close, self._fd)
            if os.fstat(self._fd).st_size != len(data):
                raise ValueError(f"{source}: changed while it was read")

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, index: int) -> Row: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Row]: ...
    def __getitem__(self, index: int | slice) -> Row | Sequence[Row]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]
        start, end = self._starts[index], self._ends[index]
        text = self._line(index, start, end)
        try:
            row = json.loads(text.decode("utf-8"))  # as text, as before
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self._where(start)}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise ValueError(f"{self._where(start)}: JSON nested too deep") from None
        if not isinstance(row, dict):
            raise ValueError(f"{self._where(start)}: a row must be a mapping")
        return row

    def _line(self, index: int, start: int, end: int) -> bytes:
        """A row's bytes: from the file's bytes while held, else from the file."""
        if self._data is not None:
            text = self._data[start:end]
            if index == self._read_in_order:
                self._read_in_order += 1
                if self._read_in_order == len(self) and self._fd is not None:
                    self._data = None  # every row read once: the file has them
            return text
        assert self._fd is not None  # bytes are let go only when the file is open
        text = os.pread(self._fd, end - start, start)
        if len(text) != end - start or zlib.crc32(text) != self._crcs[index]:
            raise ValueError(
                f"{self._source}: row {index + 1} changed since the suite was loaded "
                "(load it again: run the command again)"
            )
        return text

    def __iter__(self) -> Iterator[Row]:
        return (self[i] for i in range(len(self)))

    def _where(self, start: int) -> str:
        """``data/rows.jsonl:12``: the line a row starts at (only when it is wrong)."""
        if self._data is None:
            return self._source
        return f"{self._source}:{len(_LINE_BREAK.findall(self._data, 0, start)) + 1}"


def read_rows(source: str | list[Any], context: LoadContext) -> Sequence[Row]:
    """Every row as a mapping; raises ValueError naming the file and line when one is bad
    (for JSONL, when the row is read: see JsonlRows)."""
    if isinstance(source, list):
        return [_as_row(row, f"item {i}") for i, row in enumerate(source)]
    suffix = Path(source).suffix.lower()
    # Inside the suite's project, bounded; recorded, so a resume refuses data changed since.
    data = context.read_noted(source, "data file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{source}: not UTF-8 text") from None
    if suffix == ".jsonl":
        return JsonlRows(data, source, context.file(source, "data file"))
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


def _csv_rows(text: str, source: str) -> list[Row]:
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


def _as_row(row: Any, where: str) -> Row:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a row must be a mapping")
    return row
