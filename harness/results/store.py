"""Reading and writing run directories: ``run.json`` plus an append-only ``results.jsonl``."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import IO, Any

import jsonschema
import orjson

from harness.errors import ConfigError
from harness.results.record import FORMAT, VERDICTS, CaseResult
from harness.results.runmeta import RunMeta
from harness.results.summary import RunSummary, summarize
from harness.suite.yamlfile import place_of
from harness.writable import json_text

RUN_FILE = "run.json"
RESULTS_FILE = "results.jsonl"
# A run of more results than this is read from its journal on each pass instead of being
# held: a CaseResult takes about 14 KB in memory, so 100,000 of them would be 1.4 GB.
HELD_RESULTS = 2000
_TEXT_OR_NULL = {"type": ["string", "null"]}
# The parts of run.json that resume, report, diff and bless read: a hand-edited or foreign
# file that breaks them is named here (exit 2) instead of failing deep inside a reader.
_META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "format": {"type": "integer", "minimum": 1},
        "run_id": {"type": "string"},
        "status": {"type": "string"},
        "started_at": _TEXT_OR_NULL,
        "finished_at": _TEXT_OR_NULL,
        "git_commit": _TEXT_OR_NULL,
        "azeval_version": _TEXT_OR_NULL,
        "suites": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string"}, "path": {"type": "string"}},
            },
        },
        "targets": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
        },
        "options": {
            "type": ["object", "null"],
            "properties": {"repeat": {"type": ["integer", "null"], "minimum": 1}},
        },
        "summary": {"type": "object"},
        "scheduler": {"type": "object"},
        "dead_targets": {"type": "object", "additionalProperties": {"type": "string"}},
        "resumed_at": {"type": "array", "items": {"type": "string"}},
    },
}


@dataclass
class Run:
    """A stored run: its metadata and every case result, in the order they finished.

    ``results`` is a list for a small run; a large one's are a :class:`JournalResults`,
    read from its journal on each pass. Either may be iterated any number of times.
    """

    path: Path
    meta: RunMeta
    results: Collection[CaseResult]

    @property
    def id(self) -> str:
        return self.meta.run_id or self.path.name

    @property
    def targets(self) -> list[str]:
        return self.meta.target_names

    @cached_property
    def summary(self) -> RunSummary:
        """Each target's figures, computed once from the results for every reader."""
        return summarize(self.results, self.targets)


class JournalResults(Collection[CaseResult]):
    """A run's results as its journal holds them, read and parsed again on each pass:
    each key's latest line, in the order of those lines. Nothing is held between passes
    but which lines those are."""

    def __init__(self, index: JournalIndex) -> None:
        self.path = index.path
        self._lines = index.lines
        self._count = len(index.latest)
        # A journal that holds each key once (as nearly every one does) needs no list.
        self._kept: bytearray | None = None
        if self._count != self._lines:
            self._kept = bytearray(self._lines + 1)
            for number, _ in index.latest.values():
                self._kept[number] = 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[CaseResult]:
        for _, result in self.numbered():
            yield result

    def __contains__(self, item: object) -> bool:
        return any(result == item for result in self)

    def numbered(self) -> Iterator[tuple[int, CaseResult]]:
        """Each result with its line number in the journal (counted from 1)."""
        file = self.path / RESULTS_FILE
        kept = self._kept
        with file.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if number > self._lines:
                    break
                if kept is None or kept[number]:
                    yield number, _result_of(line, f"{file}:{number}")


def read_results(path: Path) -> Iterator[CaseResult]:
    """Every result in a journal. A torn last line (a killed run) is skipped; a damaged line
    before it is a ConfigError naming the line, since skipping it would lose a case."""
    file = path / RESULTS_FILE
    if not file.exists():
        return
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith("\n"):
                break
            yield _result_of(line, f"{file}:{number}")


# Fields every result of a run repeats: one string each, not one per parsed line.
_SHARED_TEXT = ("suite", "target", "verdict", "model", "system_fingerprint", "path")


def _result_of(line: str, where: str) -> CaseResult:
    """One journal line as a result; a ConfigError naming ``where`` when it is not one."""
    try:
        data = _parsed(line)
        newer = _newer_format(data)
        if not newer:
            for name in _SHARED_TEXT:
                if isinstance(text := data.get(name), str):
                    data[name] = sys.intern(text)
        result = None if newer else CaseResult.from_json(data)
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError):
        raise ConfigError(where, "", "not a result record") from None
    if result is None:
        raise ConfigError(where, "", newer)
    if result.verdict not in VERDICTS:
        # Counted nowhere, it let a run with a damaged journal exit 0.
        raise ConfigError(where, "", f"not a result record (verdict {result.verdict!r:.40})")
    return result


def read_meta(path: Path) -> dict[str, Any]:
    """A run directory's run.json; one that is missing or damaged is a ConfigError (exit 2)."""
    meta_file = path / RUN_FILE
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "", f"not a run directory (no {RUN_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(str(meta_file), "", f"cannot be read: {exc}") from None
    if not isinstance(meta, dict):
        raise ConfigError(str(meta_file), "", "does not hold a run's metadata (an object)")
    error = jsonschema.exceptions.best_match(_meta_validator().iter_errors(meta))
    if error is not None:
        raise ConfigError(str(meta_file), place_of(tuple(error.absolute_path)), error.message)
    newer = _newer_format(meta)
    if newer:
        raise ConfigError(str(meta_file), "format", newer)
    return meta


def _newer_format(data: Any) -> str:
    """Why a record cannot be read: written by a newer azeval (empty when it can be)."""
    written = data.get("format", 1) if isinstance(data, dict) else 1
    if isinstance(written, int) and written > FORMAT:
        return (
            f"written in record format {written} by a newer azeval; this one reads up to "
            f"format {FORMAT} (upgrade azeval)"
        )
    return ""


@cache
def _meta_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_META_SCHEMA)


def load_run(path: Path) -> Run:
    """A run directory's metadata and results (see read_meta and read_results for errors)."""
    meta = RunMeta.from_json(read_meta(path), default_id=path.name)
    return Run(path=path, meta=meta, results=stored_results(index_journal(path)))


def stored_results(index: JournalIndex) -> Collection[CaseResult]:
    """The results of an indexed journal: a list when there are HELD_RESULTS or fewer,
    else read from the journal on each pass (JournalResults)."""
    if len(index.latest) > HELD_RESULTS:
        return JournalResults(index)
    return latest_results(read_results(index.path))


def latest_results(results: Iterable[CaseResult]) -> list[CaseResult]:
    """One result per key, the last written, in the order of those last writes.

    A journal can hold a key twice when a resumed run ran it again.
    """
    last: dict[str, CaseResult] = {}
    for result in results:
        last.pop(result.key, None)
        last[result.key] = result
    return list(last.values())


@dataclass(frozen=True)
class JournalIndex:
    """Each key's latest line in a journal and its verdict, read without building results:
    what a resume needs to know before it sends, in one pass over 100,000 lines."""

    path: Path
    lines: int  # complete lines in the file
    latest: dict[str, tuple[int, str]]  # key -> (line number, verdict)

    def kept(self, retry_errors: bool = False) -> dict[str, int]:
        """What a resume keeps: each key's latest line, less errors when retried."""
        return {
            key: number
            for key, (number, verdict) in self.latest.items()
            if not (retry_errors and verdict == "error")
        }

    def keep_only(self, numbers: Iterable[int]) -> None:
        """Rewrite the journal atomically with just these lines, in their order."""
        wanted = set(numbers)
        file = self.path / RESULTS_FILE
        tmp = self.path / (RESULTS_FILE + ".tmp")
        with file.open(encoding="utf-8") as source, tmp.open("w", encoding="utf-8") as out:
            for number, line in enumerate(source, start=1):
                if number in wanted:
                    out.write(line)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(file)


def index_journal(path: Path) -> JournalIndex:
    """The JournalIndex of a run directory; a damaged line before the last is a ConfigError
    naming it, as read_results says."""
    file = path / RESULTS_FILE
    latest: dict[str, tuple[int, str]] = {}
    lines = 0
    if not file.exists():
        return JournalIndex(path, 0, latest)
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith("\n"):
                break
            key, verdict = _key_of(line, f"{file}:{number}")
            latest.pop(key, None)  # order of last writes, as latest_results keeps
            latest[key] = (number, verdict)
            lines = number
    return JournalIndex(path, lines, latest)


# 19 digits in a row may be an integer past 64 bits, which orjson reads as a float.
_LONG_DIGITS = re.compile(r"\d{19}")


def _parsed(line: str, exact: bool = True) -> Any:
    """A journal line's JSON, as json.loads reads it. orjson parses a 3 KB result line
    about 3x as fast (the parse is most of a pass over 100,000 lines); json reads the rest:
    what orjson refuses but json writes (NaN, an escaped lone surrogate), what is not JSON
    (it raises) and, when ``exact``, a line that may hold a huge integer. Looking for one
    costs about as much as orjson's parse, so the resume index, which reads no number but
    the repeat, does not."""
    if not (exact and _LONG_DIGITS.search(line)):
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
    return json.loads(line)


def _key_of(line: str, where: str) -> tuple[str, str]:
    try:
        data = _parsed(line, exact=False)
    except json.JSONDecodeError:
        raise ConfigError(where, "", "not a result record") from None
    newer = _newer_format(data)
    if newer:
        raise ConfigError(where, "", newer)
    fields = (
        [data.get(name) for name in ("suite", "case", "target")] if isinstance(data, dict) else []
    )
    repeat, verdict = (data.get("repeat"), data.get("verdict")) if fields else (None, None)
    shaped = fields and all(isinstance(f, str) for f in fields) and isinstance(repeat, int)
    if not shaped or not isinstance(data.get("turns"), list):
        raise ConfigError(where, "", "not a result record")
    if verdict not in VERDICTS:
        raise ConfigError(where, "", f"not a result record (verdict {verdict!r:.40})")
    suite, case, target = fields
    # One string per verdict, not one per line: 100,000 of them were 5 MB of an index.
    return f"{suite}/{case}@{target}#{repeat}", sys.intern(str(verdict))


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Replace run.json atomically, so a reader never sees half of it."""
    tmp = path / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str), encoding="utf-8")
    tmp.replace(path / RUN_FILE)


class Journal:
    """Append-only results file, flushed after every case.

    A flushed line is in the operating system's hands, so it survives the process being
    killed (even with SIGKILL); the file is synced to disk when the journal closes.
    """

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(path / RESULTS_FILE)
        self._file: IO[str] = (path / RESULTS_FILE).open("a", encoding="utf-8")

    def append(self, result: CaseResult) -> None:
        self.append_line(json_text(result.to_json()))

    def append_line(self, line: str) -> None:
        """One serialised result; on disk before this returns, so a crash loses none."""
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def _drop_torn_tail(file: Path) -> None:
    """Cut a last line a killed run left half-written, so the next append starts clean.

    Read back from the end a block at a time, to the last line break: a resumed journal
    of 100,000 results is over 300 MB, which reading whole held in memory at once.
    """
    if not file.exists():
        return
    with file.open("rb+") as handle:
        end = size = handle.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - (1 << 16))
            handle.seek(start)
            block = handle.read(end - start)
            if end == size and block.endswith(b"\n"):
                return
            cut = block.rfind(b"\n")
            if cut >= 0:
                handle.truncate(start + cut + 1)
                return
            end = start
        handle.truncate(0)
