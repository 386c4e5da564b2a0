"""The plan's rows, held compactly for the whole run.

A ``PlanRow`` per case and target is about 0.75 KB: 75 MB at 100,000 cases, held from the
preflight to the end of the run. Here a row that has no problem is its case's names (held
once for every target, as UTF-8) and its numbers in arrays, about 60 bytes; a row with a
problem (an error or a warning) is kept whole. Each row read of a compact one is made
afresh: equal to what ``plan_case`` gave, not the same object.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence
from typing import NamedTuple, overload

from harness.models import ModelSpec
from harness.preflight.cases import PlanRow

# What an array of signed 64-bit numbers holds; a row with a number outside it is kept whole.
_BIGGEST = 2**63 - 1
_NO_MAX_TOKENS = -1


class Texts(Sequence[str]):
    """Strings one after the other in one buffer: their UTF-8 bytes and 8 bytes each."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("Q")

    def append(self, text: str) -> None:
        self._data += text.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._data))

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        index = range(len(self))[index]  # bounds, and a negative index from the end
        start = self._ends[index - 1] if index else 0
        return self._data[start : self._ends[index]].decode("utf-8", "surrogatepass")


class Sendable(NamedTuple):
    """What a target's totals read of a row that is sent (not refused by the preflight)."""

    turn_tokens: tuple[int, ...]
    max_tokens: int | None
    repeat: int
    charged_tokens: int
    est_cost: float | None


class _TargetRows:
    """One target's rows: numbers in arrays by the case's place, rows with problems whole."""

    def __init__(self, name: str, spec: ModelSpec) -> None:
        self.name, self.model, self.context_window = name, spec.label, spec.context_window
        self.common = (name, spec.label, spec.context_window)
        self.first = array("q")  # the first request's prompt tokens
        self.max_tokens = array("q")  # _NO_MAX_TOKENS: none set
        self.charged = array("q")
        self.cost = array("d")  # NaN: no price
        self.later: dict[int, tuple[int, ...]] = {}  # every turn's tokens, when more than one
        self.whole: dict[int, PlanRow] = {}  # by the case's place: rows with problems

    def add(self, ordinal: int, row: PlanRow, compact: bool) -> None:
        if not (compact and self._compact(row)):
            self.whole[ordinal] = row
            self.first.append(0)  # unread: the row is kept whole
            self.max_tokens.append(_NO_MAX_TOKENS)
            self.charged.append(0)
            self.cost.append(math.nan)
            return
        if len(row.turn_tokens) > 1:
            self.later[ordinal] = row.turn_tokens
        self.first.append(row.prompt_tokens)
        self.max_tokens.append(_NO_MAX_TOKENS if row.max_tokens is None else row.max_tokens)
        self.charged.append(row.charged_tokens)
        self.cost.append(math.nan if row.est_cost is None else row.est_cost)

    def _compact(self, row: PlanRow) -> bool:
        """The row is what ``row_at`` makes again from the arrays (else it is kept whole)."""
        cost, max_tokens = row.est_cost, row.max_tokens
        return (
            not row.problems
            and row.fits
            and (row.target, row.model, row.context_window) == self.common
            and bool(row.turn_tokens)
            and row.turn_tokens[0] == row.prompt_tokens
            and row.completion_unknown == (max_tokens is None)
            and 0 <= row.prompt_tokens <= _BIGGEST
            and 0 <= row.charged_tokens <= _BIGGEST
            and (max_tokens is None or 0 <= max_tokens <= _BIGGEST)
            and (cost is None or cost == cost)  # NaN stands for no price
        )

    def numbers(self, ordinal: int) -> tuple[tuple[int, ...], int | None, int, float | None]:
        """turn_tokens, max_tokens, charged_tokens and est_cost of a compact row."""
        turns = self.later.get(ordinal) or (self.first[ordinal],)
        max_tokens = self.max_tokens[ordinal]
        cost = self.cost[ordinal]
        return (
            turns,
            None if max_tokens == _NO_MAX_TOKENS else max_tokens,
            self.charged[ordinal],
            None if math.isnan(cost) else cost,
        )


class PlanRows(Sequence[PlanRow]):
    """Every case's row on each target, listed target by target (every case of the first
    target, then of the next), as a plan lists them; see the module's docstring."""

    def __init__(self, targets: Sequence[tuple[str, ModelSpec]]) -> None:
        self._targets = [_TargetRows(name, spec) for name, spec in targets]
        # Each case's names and repeat, once for all targets; suites and paths by number.
        self._shared: dict[str, int] = {}
        self._shared_texts: list[str] = []
        self._suites = array("I")
        self._paths = array("I")
        self._ids = Texts()
        self._places = Texts()
        self._repeats = array("q")

    def add(self, rows: Sequence[PlanRow]) -> None:
        """The next case's rows, one per target in the plan's order of targets."""
        first = rows[0]
        self._suites.append(self._number(first.suite))
        self._paths.append(self._number(first.path))
        self._ids.append(first.case)
        self._places.append(first.place)
        repeat_fits = 0 <= first.repeat <= _BIGGEST
        self._repeats.append(first.repeat if repeat_fits else 0)
        ordinal = len(self._ids) - 1
        names = (first.suite, first.case, first.path, first.place, first.repeat)
        for target, row in zip(self._targets, rows, strict=True):
            same_case = (row.suite, row.case, row.path, row.place, row.repeat) == names
            target.add(ordinal, row, compact=repeat_fits and same_case)

    def _number(self, text: str) -> int:
        number = self._shared.get(text)
        if number is None:
            number = self._shared[text] = len(self._shared_texts)
            self._shared_texts.append(text)
        return number

    @property
    def cases(self) -> int:
        return len(self._ids)

    def __len__(self) -> int:
        return self.cases * len(self._targets)

    @overload
    def __getitem__(self, index: int) -> PlanRow: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[PlanRow]: ...
    def __getitem__(self, index: int | slice) -> PlanRow | Sequence[PlanRow]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(len(self))[index])
        index = range(len(self))[index]
        place, ordinal = divmod(index, self.cases)
        return self.row_at(place, ordinal)

    def __iter__(self) -> Iterator[PlanRow]:
        for place in range(len(self._targets)):
            for ordinal in range(self.cases):
                yield self.row_at(place, ordinal)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # a tuple of rows is not hashable either

    def __repr__(self) -> str:
        whole = sum(len(t.whole) for t in self._targets)
        return f"<PlanRows: {len(self):,} row(s), {whole:,} with problems>"

    def row_at(self, place: int, ordinal: int) -> PlanRow:
        """The row of the case at ``ordinal`` on the target at ``place`` in the plan."""
        target = self._targets[place]
        whole = target.whole.get(ordinal)
        if whole is not None:
            return whole
        turns, max_tokens, charged, cost = target.numbers(ordinal)
        return PlanRow(
            suite=self._shared_texts[self._suites[ordinal]],
            case=self._ids[ordinal],
            target=target.name,
            path=self._shared_texts[self._paths[ordinal]],
            place=self._places[ordinal],
            model=target.model,
            prompt_tokens=turns[0],
            turn_tokens=turns,
            max_tokens=max_tokens,
            context_window=target.context_window,
            fits=True,
            problems=(),
            repeat=self._repeats[ordinal],
            charged_tokens=charged,
            est_cost=cost,
            completion_unknown=max_tokens is None,
        )

    def key_at(self, ordinal: int) -> str:
        """``suite/case`` of the case at ``ordinal`` (PlanRow.key), without making its row."""
        return f"{self._shared_texts[self._suites[ordinal]]}/{self._ids[ordinal]}"

    def row_keys(self) -> Iterator[tuple[str, str, int]]:
        """Each row's case key, target and repeat, in order, without making the rows."""
        for target in self._targets:
            for ordinal in range(self.cases):
                whole = target.whole.get(ordinal)
                if whole is not None:
                    yield whole.key, whole.target, whole.repeat
                else:
                    yield self.key_at(ordinal), target.name, self._repeats[ordinal]

    def with_problems(self) -> Iterator[PlanRow]:
        """The rows that have a problem, an error or a warning, in the plan's order."""
        for target in self._targets:
            for row in target.whole.values():  # added in the cases' order
                if row.problems:
                    yield row

    def sendable(self, place: int) -> Iterator[Sendable]:
        """What the totals read of each row of the target at ``place`` that is sent."""
        target = self._targets[place]
        whole, later, repeats = target.whole, target.later, self._repeats
        first, max_tokens, charged, cost = (
            target.first,
            target.max_tokens,
            target.charged,
            target.cost,
        )
        for ordinal in range(self.cases):
            row = whole.get(ordinal)
            if row is None:
                limit, price = max_tokens[ordinal], cost[ordinal]
                yield Sendable(
                    later.get(ordinal) or (first[ordinal],),
                    None if limit == _NO_MAX_TOKENS else limit,
                    repeats[ordinal],
                    charged[ordinal],
                    None if price != price else price,  # NaN: no price
                )
            elif not row.fatal:
                yield Sendable(
                    row.turn_tokens, row.max_tokens, row.repeat, row.charged_tokens, row.est_cost
                )
