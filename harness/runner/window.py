"""One of the scheduler's budgets: a limit on tokens or on requests over a sliding window.

Both budgets of a target book the same ``Charge`` (a request: its tokens, one request); each
reads its own amount of it. A window can change length while a run learns it, so the
charges that left it are kept a while (``keep_s``) to take back in when it grows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# Charges are kept this share of the window longer than the service keeps them.
EDGE = 0.01


@dataclass(frozen=True)
class Mark:
    """A budget's running totals at one moment (just before a request was admitted)."""

    admitted: float
    settled: float


@dataclass(eq=False, slots=True)
class Charge:
    """One admitted request as the budgets count it."""

    seq: int  # admission order, from 1
    admitted_at: float
    stamp: float  # when the service counted it (about): moved to the answer, see RESTAMP_S
    tokens: float
    requests: int = 1
    ended_at: float = float("inf")  # when its request was answered, refused or dropped

    @property
    def ended(self) -> bool:
        return self.ended_at != float("inf")

    def counted_by(self, now: float) -> float:
        """The latest the service can have counted it: its answer, or now if none yet."""
        return min(self.ended_at, now)


def tokens_of(charge: Charge) -> float:
    return charge.tokens


def requests_of(charge: Charge) -> float:
    return charge.requests


class Window:
    """A limit (``None``: none known) on one amount of the charges over ``window_s``."""

    def __init__(
        self,
        amount: Callable[[Charge], float],
        limit: float | None,
        window_s: float,
        *,
        keep_s: float = 0.0,
    ) -> None:
        self.amount = amount
        self.limit = limit
        self.window_s = window_s
        self.keep_s = keep_s
        self.charges: deque[Charge] = deque()  # in the window, in admission order
        self.gone: deque[Charge] = deque()  # left it, within keep_s
        self.used = 0.0
        # Running totals over the run (refunds taken off), so what had been admitted or
        # answered by some moment is a subtraction away.
        self.admitted = 0.0
        self.settled = 0.0  # of charges whose request was answered
        self.expired = 0.0
        self._gone_seq = 0  # charges up to this seq have left the window
        # Kept on top of EDGE when the service was seen to count charges longer than we
        # did (its clock, or requests reaching it late): learned from its 429s.
        self.margin_s = 0.0

    @property
    def horizon_s(self) -> float:
        return self.window_s * (1 + EDGE) + self.margin_s

    def expire(self, now: float) -> None:
        # The service stamps a charge when the request reaches it, a little after we did:
        # keep ours a little longer so the two windows do not disagree at the edge.
        horizon = now - self.horizon_s
        charges, gone = self.charges, self.gone
        while charges and charges[0].stamp <= horizon:
            charge = charges.popleft()
            amount = self.amount(charge)
            self.used -= amount
            self.expired += amount
            self._gone_seq = charge.seq
            if self.keep_s > 0:
                gone.append(charge)
        kept = now - max(self.keep_s, self.horizon_s)
        while gone and gone[0].admitted_at <= kept:
            gone.popleft()

    def mark(self) -> Mark:
        """The running totals now, to tell later what had been admitted and answered."""
        return Mark(self.admitted, self.settled)

    def add(self, charge: Charge) -> None:
        amount = self.amount(charge)
        self.charges.append(charge)
        self.used += amount
        self.admitted += amount

    def settle(self, charge: Charge) -> None:
        """The charge's request was answered (so the service had counted it by then)."""
        self.settled += self.amount(charge)

    def refund(self, charge: Charge) -> None:
        """Take the charge off, as if never admitted (call before its amounts are zeroed)."""
        amount = self.amount(charge)
        self.admitted -= amount
        if charge.seq > self._gone_seq:
            self.used -= amount
        else:
            self.expired -= amount

    def resize(self, window_s: float, now: float) -> None:
        """A new window length: charges it takes back in come back from ``gone``."""
        self.window_s = window_s
        horizon = now - self.horizon_s
        while self.gone and self.gone[-1].stamp > horizon:
            charge = self.gone.pop()
            amount = self.amount(charge)
            self.charges.appendleft(charge)
            self.used += amount
            self.expired -= amount
        self._gone_seq = self.charges[0].seq - 1 if self.charges else self._gone_seq
        self.expire(now)

    def wait(self, now: float, cost: float) -> float:
        """Seconds until ``cost`` more fits (0: it fits now; an over-sized one goes alone)."""
        limit = self.limit
        if limit is None or self.used + cost <= limit or self.used <= 0:
            return 0.0
        need = min(cost, limit)
        used = self.used
        latest = float("-inf")
        # Restamped entries may be a little out of order: the latest of those that must
        # expire decides.
        for charge in self.charges:
            used -= self.amount(charge)
            latest = max(latest, charge.stamp)
            if used + need <= limit:
                return max(0.0, latest + self.horizon_s - now)
        return self.horizon_s

    # --- what the books say about the service's, for learning ------------------------------

    def surely_counted(self, now: float, mark: Mark, before: float) -> float:
        """What of ours the service surely counted at a request admitted at ``before``
        (``mark``: our totals then): answered by then, and admitted within the window.

        Our window keeps charges a little longer than the service's (``EDGE``, the move to
        the answer); those at its old end may be forgotten there already, so they are left
        out here.
        """
        counted = mark.settled - self.expired
        horizon = now - self.window_s
        for charge in self.charges:
            if charge.admitted_at > horizon:
                break
            if charge.ended_at <= before:
                counted -= self.amount(charge)
        return max(0.0, counted)

    def maybe_counted(self, now: float, at: float) -> float:
        """What of ours the service may have counted when it answered a request admitted at
        ``at``: all in the window, and those that left it whose answer came less than a
        window before then (the service counted each by its answer at the latest)."""
        total = self.used
        oldest = at - self.window_s
        for charge in reversed(self.gone):
            # counted_by(now) > oldest, as now > oldest always (a hot loop: once per answer
            # over every charge of the last two windows).
            if charge.ended_at > oldest:
                total += self.amount(charge)
            elif charge.admitted_at <= oldest - self.window_s:
                break  # answered long before: none older is still counted either
        return total

    def admitted_after(self, seq: int) -> float:
        """What of ours admitted after ``seq`` still counts (refunds taken off)."""
        total = 0.0
        for queue in (self.charges, self.gone):
            for charge in reversed(queue):
                if charge.seq <= seq:
                    return total
                total += self.amount(charge)
        return total

    def racing(self, seq: int, in_flight: int) -> float:
        """What of ours admitted before ``seq`` is still unanswered (``in_flight`` in all):
        the service may or may not have counted it when it answered ``seq``."""
        total = 0.0
        for charge in reversed(self.charges):
            if in_flight <= 0:
                break
            if not charge.ended:
                in_flight -= 1
                if charge.seq < seq:
                    total += self.amount(charge)
        return total

    def newest_before(self, seq: int) -> Charge | None:
        """The newest charge admitted before ``seq`` that still counts, in or out of the window."""
        for queue in (self.charges, self.gone):
            for charge in reversed(queue):
                if charge.seq < seq and self.amount(charge) > 0:
                    return charge
        return None

    def oldest_reaching(self, amount: float) -> Charge | None:
        """The charge at which the oldest ones in the window add up to ``amount``."""
        total = 0.0
        for charge in self.charges:
            total += self.amount(charge)
            if total >= amount:
                return charge
        return None

    def newest_gone_reaching(self, amount: float) -> Charge | None:
        """The charge at which the ones that left most recently add up to ``amount``."""
        total = 0.0
        for charge in reversed(self.gone):
            total += self.amount(charge)
            if total >= amount:
                return charge
        return None
