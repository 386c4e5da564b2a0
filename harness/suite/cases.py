"""A suite's cases as a sequence whose for_each cases are built from their row when read.

A 100,000-row for_each held as Case objects is about 190 MB; held as its rows it is the
data file's size. ``Suite.cases`` is a ``Sequence[Case]`` either way (len, iteration,
indexing), so readers do not know which they have; each read of a lazy case builds a new,
equal Case, so a reader that needs one case many times keeps it.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, NamedTuple, overload

if TYPE_CHECKING:  # model.py imports this module
    from harness.suite.model import Case, Expectation


class CaseKey(NamedTuple):
    """What a result's key says of its case: suite/id, and how many times it runs."""

    key: str
    repeat: int


class LazyCases(Sequence["Case"]):
    """Cases built as they are read: indexing, bounds and slicing (a Picked) over a
    subclass's ``_case``; equality by contents, as tuples of cases compare (a lazy part
    equals its eager cases)."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # a tuple of cases is not hashable either

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self):,} case(s)>"

    @overload
    def __getitem__(self, index: int) -> Case: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Case]: ...
    def __getitem__(self, index: int | slice) -> Case | Sequence[Case]:
        if isinstance(index, slice):
            return Picked(self, range(len(self))[index])
        size = len(self)
        if not -size <= index < size:
            raise IndexError("case index out of range")
        return self._case(index % size)

    def _case(self, index: int) -> Case:
        raise NotImplementedError

    def key_at(self, index: int) -> CaseKey:
        """The key of the case at ``index`` and its repeat (a for_each's says them without
        building the case)."""
        case = self[index]
        return CaseKey(case.key, case.repeat)

    def checks(self) -> Iterator[Expectation]:
        return self.checks_at(range(len(self)))

    def checks_at(self, indices: Sequence[int]) -> Iterator[Expectation]:
        """The checks of the cases at ``indices`` (in order), as ``checks`` gives them."""
        return _each_check(self[i] for i in indices)


class Cases(LazyCases):
    """Parts one after the other: runs of cases written out, and for_each blocks."""

    def __init__(self, parts: Iterable[Sequence[Case]]) -> None:
        self._parts = tuple(parts)
        self._ends = list(accumulate(len(part) for part in self._parts))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __iter__(self) -> Iterator[Case]:
        for part in self._parts:
            yield from part

    def checks(self) -> Iterator[Expectation]:
        for part in self._parts:
            yield from checks_of(part)

    def checks_at(self, indices: Sequence[int]) -> Iterator[Expectation]:
        # Each part asked once, for the indices that fall in it.
        start = 0
        for part, end in zip(self._parts, self._ends, strict=True):
            lo, hi = bisect_left(indices, start), bisect_left(indices, end)
            if lo < hi:
                yield from checks_at(part, [i - start for i in indices[lo:hi]])
            start = end

    def without_checks(self) -> Cases:
        return Cases(without_checks(part) for part in self._parts)

    def key_at(self, index: int) -> CaseKey:
        part = bisect_right(self._ends, index)
        return key_at(self._parts[part], index - (self._ends[part - 1] if part else 0))

    def _case(self, index: int) -> Case:
        part = bisect_right(self._ends, index)
        return self._parts[part][index - (self._ends[part - 1] if part else 0)]


class Picked(LazyCases):
    """Some of a sequence's cases, in order, held as their indices (a selection, a shard)."""

    def __init__(self, cases: Sequence[Case], indices: Iterable[int]) -> None:
        self._cases = cases
        self._indices = array("q", indices)

    def __len__(self) -> int:
        return len(self._indices)

    def __iter__(self) -> Iterator[Case]:
        return (self._cases[i] for i in self._indices)

    def _case(self, index: int) -> Case:
        return self._cases[self._indices[index]]

    def without_checks(self) -> Picked:
        return Picked(without_checks(self._cases), self._indices)

    def checks(self) -> Iterator[Expectation]:
        # A selection of a for_each: the checks of the rows picked, as checks_at gives them
        # (the first picked row's, and later ones' only where their needs vary), none built.
        return checks_at(self._cases, self._indices)

    def checks_at(self, indices: Sequence[int]) -> Iterator[Expectation]:
        return checks_at(self._cases, [self._indices[i] for i in indices])

    def key_at(self, index: int) -> CaseKey:
        return key_at(self._cases, self._indices[index])


class Changed(LazyCases):
    """Every case of a sequence, changed as it is read by a function that keeps its checks,
    id and repeat (``--stream`` sets a parameter)."""

    def __init__(self, cases: Sequence[Case], change: Callable[[Case], Case]) -> None:
        self._cases = cases
        self._change = change

    def __len__(self) -> int:
        return len(self._cases)

    def __iter__(self) -> Iterator[Case]:
        return map(self._change, self._cases)

    def _case(self, index: int) -> Case:
        return self._change(self._cases[index])

    def checks(self) -> Iterator[Expectation]:
        return checks_of(self._cases)

    def checks_at(self, indices: Sequence[int]) -> Iterator[Expectation]:
        return checks_at(self._cases, indices)

    def without_checks(self) -> Changed:
        return Changed(without_checks(self._cases), self._change)

    def key_at(self, index: int) -> CaseKey:
        return key_at(self._cases, index)


def kept(cases: Sequence[Case], keep: Callable[[Case], bool]) -> Sequence[Case]:
    """The cases ``keep`` holds, in order: a tuple of a tuple, else only their indices."""
    if isinstance(cases, tuple):
        return tuple(case for case in cases if keep(case))
    return Picked(cases, (i for i, case in enumerate(cases) if keep(case)))


def picked(cases: Sequence[Case], places: Sequence[int]) -> Sequence[Case]:
    """The cases at ``places`` (ascending): a tuple of a tuple, else only their indices."""
    if isinstance(cases, tuple):
        return tuple(cases[i] for i in places)
    return Picked(cases, places)


def changed(cases: Sequence[Case], change: Callable[[Case], Case]) -> Sequence[Case]:
    """Every case changed: a tuple of a tuple, else changed as each is read."""
    if isinstance(cases, tuple):
        return tuple(change(case) for case in cases)
    return Changed(cases, change)


def checks_of(cases: Sequence[Case]) -> Iterator[Expectation]:
    """The checks of the cases as ``Suite.checks`` gives them (a for_each's as its first
    row has them): a lazy sequence answers without building each case."""
    checks = getattr(cases, "checks", None)
    return checks() if callable(checks) else _each_check(cases)


def checks_at(cases: Sequence[Case], indices: Sequence[int]) -> Iterator[Expectation]:
    """The checks of ``cases`` at ``indices`` (ascending), as ``checks_of`` gives them for
    those cases alone: a lazy sequence answers without building each case."""
    if isinstance(cases, LazyCases):
        return cases.checks_at(indices)
    return _each_check(cases[i] for i in indices)


def key_at(cases: Sequence[Case], index: int) -> CaseKey:
    """The key (suite/id) and repeat of ``cases[index]``; a lazy sequence renders only the
    id of a for_each's row: a resume finds which of 100,000 cases it has finished by key,
    and building each case for it cost about as much as its plan."""
    if isinstance(cases, LazyCases):
        return cases.key_at(index)
    case = cases[index]
    return CaseKey(case.key, case.repeat)


def without_checks(cases: Sequence[Case]) -> Sequence[Case]:
    """The cases as a plan reads them: a for_each's built without their checks, which the
    load has already prepared for every row and a plan does not read (a plan builds each
    row again, and its checks are about half of that cost). Cases written out are as they
    are: they are already built."""
    without = getattr(cases, "without_checks", None)
    return without() if callable(without) else cases


def _each_check(cases: Iterable[Case]) -> Iterator[Expectation]:
    for case in cases:
        for turn in case.turns:
            yield from turn.expectations
