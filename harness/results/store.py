"""Reading and writing run directories: ``run.json`` plus an append-only ``results.jsonl``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.results.record import CaseResult

RUN_FILE = "run.json"
RESULTS_FILE = "results.jsonl"


@dataclass
class Run:
    """A stored run: its metadata and every case result, in the order they finished."""

    path: Path
    meta: dict[str, Any]
    results: list[CaseResult]

    @property
    def id(self) -> str:
        return str(self.meta.get("run_id", self.path.name))

    @property
    def targets(self) -> list[str]:
        return [t["name"] for t in self.meta.get("targets", [])]


def read_results(path: Path) -> Iterator[CaseResult]:
    """Every complete line of a results journal; a torn last line (a killed run) is skipped."""
    file = path / RESULTS_FILE
    if not file.exists():
        return
    with file.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            try:
                yield CaseResult.from_json(json.loads(line))
            except (json.JSONDecodeError, TypeError, KeyError):
                continue


def load_run(path: Path) -> Run:
    """Load a run directory (raises FileNotFoundError when it is not one)."""
    meta_file = path / RUN_FILE
    if not meta_file.exists():
        raise FileNotFoundError(f"{path}: not a run directory (no {RUN_FILE})")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    return Run(path=path, meta=meta, results=latest_results(read_results(path)))


def latest_results(results: Iterable[CaseResult]) -> list[CaseResult]:
    """One result per key, the last written, in the order of those last writes.

    A journal can hold a key twice when a resumed run ran it again.
    """
    last: dict[str, CaseResult] = {}
    for result in results:
        last.pop(result.key, None)
        last[result.key] = result
    return list(last.values())


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
        self._file: IO[str] = (path / RESULTS_FILE).open("a", encoding="utf-8")

    def append(self, result: CaseResult) -> None:
        self.append_line(json.dumps(result.to_json(), ensure_ascii=False, default=str))

    def append_line(self, line: str) -> None:
        """One serialised result; on disk before this returns, so a crash loses none."""
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
