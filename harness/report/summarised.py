"""A large run's report: the cases it shows in full, and one line for each of the others.

In full, 100,000 cases make a page of 25-30 MB that takes 5-6 s to open. Past a limit
(``[settings] report_full_cases``, or ``--report-full-cases``) a report shows in full each
case that did not pass every repeat on every target or changed against its baseline, the
worst first, up to the limit; every other case is a line of its id, its verdicts and the
lines of ``results.jsonl`` that hold its full records. Which cases those are is read from
the journal's index (key, line and verdict of each result: no result is built); then only
the lines of the cases in full are parsed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.report.rows import (
    Column,
    changed_cases,
    flags_of,
    rank_of,
    repeats_verdict,
)
from harness.results.compare import UNCHANGED_PASS, Comparison, Kept
from harness.results.order import natural_key, natural_text_key
from harness.results.record import CaseResult
from harness.results.store import RESULTS_FILE, JournalIndex, JournalResults, Run, index_journal
from harness.writable import script_json

# Cases a report shows in full: up to this many, every case is, as it always was.
DEFAULT_FULL_CASES = 10_000

# A column's repeats of one case: (repeat, verdict, journal line) each; no line for a
# baseline file's (it has no journal).
_Repeats = list[tuple[int, str, int | None]]


@dataclass(frozen=True)
class Summarised:
    """What a large report shows: the keys of the cases in full, and the others' lines.

    A line is the JSON text (safe inside a <script> element) of ``[case key, cells,
    flags]`` (flags only when there are some), in the order the page lists them; a cell is
    null (not run on that column) or ``[verdict, repeats passed, repeats, the journal line
    of each repeat]`` (no lines for a baseline file). Text, not lists: 100,000 of them
    take a fifth of the memory.
    """

    full: frozenset[str]
    lines: list[str]
    cases: int
    notable: int  # cases that did not pass, or changed: in full up to the limit
    limit: int
    # The results of the cases in full, read from just their journal lines; the baseline's
    # are None when it has no journal (a baseline file, held whole anyway).
    results: Collection[CaseResult]
    baseline_results: Collection[CaseResult] | None
    suites: dict[str, int]  # suite -> its place in the report's order


def summarise(
    run: Run,
    baseline: Run | None,
    cols: list[Column],
    compared: dict[int, Comparison],
    limit: int,
) -> Summarised | None:
    """The cases to show in full and the others' lines; None when every case is shown in
    full: the run is within the limit, or it has no journal to point the lines at."""
    if run.summary.cases + (baseline.summary.cases if baseline else 0) <= limit:
        return None
    read = _read_journals(run, baseline, cols, compared)
    if read is None or len(read.cases) <= limit:
        return None
    cases = read.cases
    regressions, differs = changed_cases(cols, compared)
    changed = {d.case_key for c in compared.values() for d in c.cases if d.status != UNCHANGED_PASS}
    # (rank, suite, case id, key, line) of each notable case; sorted as the report orders
    # rows. A plain case is only its place in that order, as one string, and its line: an
    # entry and natural_key for each of 100,000 cases, sorted at once, were about 50 MB.
    notable: list[tuple[int, int, str, str, str]] = []
    plain: list[tuple[int, str, str]] = []
    # Each case's repeats are let go as its line is made (only a notable case's are kept,
    # to read its results): at 100,000 cases the two together were about 20 MB more.
    notable_cells: dict[str, list[Any]] = {}
    for key in list(cases):
        suite, case, *held = cases.pop(key)
        cells = [[cell] if isinstance(cell, tuple) else cell for cell in held]
        shown = [None if c is None else _cell(c) for c in cells]
        counts = [_counts(c) for c, col in zip(cells, cols, strict=True) if c and not col.baseline]
        flags = flags_of(counts, key in regressions, key in differs)
        line = script_json([key, shown, flags] if flags else [key, shown])
        passed = all(c is None or c[1] == c[2] for c in shown)
        entry = (rank_of(flags), suite, case, key, line)
        if flags or not passed or key in changed:
            notable.append(entry)
            notable_cells[key] = cells
        else:
            plain.append((suite, natural_text_key(case), line))
    notable.sort(key=_listed_order)
    full = frozenset(e[3] for e in notable[:limit])
    wanted = _lines_of(notable_cells, full, cols)
    base_lines, suites = read.baseline_lines, read.suites
    results = _read_lines(run.path, read.lines, wanted[False])
    del cases, read  # every case's repeats: what is left is the page's lines
    plain.sort()  # a plain case has no flag (rank 0), and no two have the same place
    return Summarised(
        full=full,
        lines=[e[4] for e in notable[limit:]] + [line for _, _, line in plain],
        cases=len(notable) + len(plain),
        notable=len(notable),
        limit=limit,
        results=results,
        baseline_results=None
        if baseline is None or base_lines is None
        else _read_lines(baseline.path, base_lines, wanted[True]),
        suites=suites,
    )


def _listed_order(entry: tuple[int, int, str, str, str]) -> tuple[Any, ...]:
    """Rank, then suite, then case id read naturally: the order of the report's rows."""
    rank, suite, case, _, _ = entry
    return (rank, (suite, natural_key(case)))


def _lines_of(
    cells: dict[str, list[Any]], full: frozenset[str], cols: list[Column]
) -> dict[bool, dict[str, tuple[int, str]]]:
    """The journal lines of the cases in full (``cells``: their repeats per column), run's
    and baseline's (by is-baseline), as a journal index has them: result key -> (line,
    verdict)."""
    wanted: dict[bool, dict[str, tuple[int, str]]] = {False: {}, True: {}}
    for key in full:
        for col, cell in zip(cols, cells[key], strict=True):
            for repeat, verdict, line in cell or ():
                if line is not None:
                    wanted[col.baseline][f"{key}@{col.target}#{repeat}"] = (line, verdict)
    return wanted


def _read_lines(
    path: Path, lines: int, wanted: dict[str, tuple[int, str]]
) -> Collection[CaseResult]:
    """The results on the ``wanted`` lines of a journal of ``lines`` lines: the others are
    passed over unread, so the pass costs a scan of the file, not a parse of every line."""
    if not wanted:
        return []
    return JournalResults(JournalIndex(path, lines, wanted))


@dataclass(frozen=True)
class _Read:
    """What the journals say of every case (see _read_journals)."""

    cases: dict[str, list[Any]]
    suites: dict[str, int]
    lines: int
    baseline_lines: int | None  # None: the baseline has no journal


def _read_journals(
    run: Run, baseline: Run | None, cols: list[Column], compared: dict[int, Comparison]
) -> _Read | None:
    """Each case as [suite number, case id, its repeats per column...], in the order the
    journals first name them, from the run's journal (and the baseline's); None when the
    run's results are not (all) its journal's."""
    cases: dict[str, list[Any]] = {}
    suites: dict[str, int] = {}
    empty = [None] * len(cols)

    def add(
        suite: str, case: str, column: int, repeat: int, verdict: str, line: int | None
    ) -> None:
        case_key = f"{suite}/{case}"
        entry = cases.get(case_key)
        if entry is None:
            entry = cases[case_key] = [suites.setdefault(suite, len(suites)), case, *empty]
        # A case's one repeat on a column (nearly every case's) is held as it is, not in a
        # list of one: 7 MB fewer at 100,000 cases.
        cell = entry[2 + column]
        if cell is None:
            entry[2 + column] = (repeat, verdict, line)
        elif isinstance(cell, tuple):
            entry[2 + column] = [cell, (repeat, verdict, line)]
        else:
            cell.append((repeat, verdict, line))

    index = index_journal(run.path)
    if len(index.latest) != run.summary.cases:
        return None
    place = {c.target: i for i, c in enumerate(cols) if not c.baseline}
    for key, (line, verdict) in _entries(index.latest, place):
        add(*key, verdict, line)
    lines = index.lines
    del index
    if baseline is None:
        return _Read(cases, suites, lines, None)
    place = {c.target: i for i, c in enumerate(cols) if c.baseline}
    # The baseline as compared: scope_baseline's narrowing of it, when it was narrowed.
    keeps = baseline.results.keeps if isinstance(baseline.results, Kept) else None
    if (baseline.path / RESULTS_FILE).is_file():
        # The journal holds what scope_baseline left out: take only the compared cases.
        base_index = index_journal(baseline.path)
        for (suite, case, column, repeat), (line, verdict) in _entries(base_index.latest, place):
            if keeps is None or keeps(suite, case, cols[column].target):
                add(suite, case, column, repeat, verdict, line)
        return _Read(cases, suites, lines, base_index.lines)
    # A baseline file: its results are held whole, and hold no journal line.
    for r in baseline.results:
        placed = place.get(r.target)
        if placed is not None:
            add(r.suite, r.case, placed, r.repeat, r.verdict, None)
    return _Read(cases, suites, lines, None)


def _entries(
    latest: dict[str, tuple[int, str]], place: dict[str, int]
) -> Iterator[tuple[tuple[str, str, int, int], tuple[int, str]]]:
    """A journal index's entries as ((suite, case, column, repeat), (line, verdict)), for
    the targets ``place`` gives a column; ``latest`` is emptied."""
    names = sorted(place, key=len, reverse=True)  # "a@b" before "b"
    # Emptied as it is read: its keys and the cases made of them are not held at once.
    for key in list(latest):
        entry = latest.pop(key)
        suite, case, target, repeat = _parts(key, names)
        if target in place:
            yield (suite, case, place[target], repeat), entry


def _cell(repeats: _Repeats) -> list[Any]:
    repeats.sort(key=lambda r: r[0])
    verdicts = [v for _, v, _ in repeats]
    lines = [line for _, _, line in repeats if line is not None]
    return [repeats_verdict(verdicts), verdicts.count("pass"), len(verdicts), *lines]


def _counts(repeats: _Repeats) -> tuple[int, int, int]:
    """Repeats passed, repeats, and repeats errored, as a full row's cell counts them."""
    verdicts = [v for _, v, _ in repeats]
    return verdicts.count("pass"), len(verdicts), verdicts.count("error")


def _parts(key: str, targets: Sequence[str]) -> tuple[str, str, str, int]:
    """A result's key (suite/case@target#repeat) as suite, case, target and repeat.

    Suite ids hold no "/" (the suite schema) and the repeat is the last "#" part; a case id
    may hold "@", so the target is the longest of ``targets`` the rest ends with.
    """
    head, _, repeat = key.rpartition("#")
    suite, _, rest = head.partition("/")
    for target in targets:
        if rest.endswith("@" + target):
            return suite, rest[: -len(target) - 1], target, int(repeat)
    case, _, target = rest.rpartition("@")
    return suite, case, target, int(repeat)
