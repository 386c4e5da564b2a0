"""A target's limits as its answers reveal them, when its config sets none.

Azure's answers say how much is left (``x-ratelimit-remaining-requests`` / ``-tokens``) but
not over what period: tokens count over a minute, requests over "typically 1 or 10
seconds", so a 60 RPM deployment may say "10 left". A ``LearnedLimit`` infers, for one of
the two, both the limit and the window it is counted over:

- every answer bounds the limit: what it says is left, plus what of ours the service
  surely counted (answered before this request was sent, still in the window: a lower
  bound) or may have counted (an upper bound). The limit used is the highest lower bound
  since the window last moved or an answer contradicted it;
- the window starts as Azure documents it (a minute for tokens; for requests the shortest,
  1 s: a window assumed too long holds requests back with no answer coming to show it
  wrong, one too short shows itself at once) and moves on evidence: a 429 on this limit
  whose Retry-After outlasts our newest charge shows the window is longer (by how much);
  answers whose bounds drift up show the service forgot charges we still count (shorter),
  bounds drifting down that it still counts ones we let go (longer);
  ``x-ratelimit-reset-*``, when sent, says when the window empties (about its length);
  ``x-ratelimit-limit-*``, when sent, is the limit itself;
- a window or limit not yet confirmed by the service is probed, not trusted: while the
  last answer said nothing is left, requests that only our window thinks would fit go one
  at a time, until one of them is answered without a 429 (the scheduler does this).

A found window is snapped to the nearest of Azure's documented ones (1 s, 10 s, a minute,
on the scheduler's time scale) when within ``SNAP`` of it, so a run settles on it exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from harness.runner.window import Charge, Mark, Window

# Azure's windows, as shares of a minute: requests per 1 or 10 s, tokens per minute.
AZURE_WINDOWS = (1 / 60, 10 / 60, 1.0)
# A bound within this share of one of Azure's windows is taken to be that window.
SNAP = 0.05
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


class LearnedLimit:
    """One limit (requests or tokens) and its window, learned from the service's answers."""

    def __init__(
        self, window: Window, *, minute_s: float, name: str, shortest: bool = False
    ) -> None:
        self.window = window  # the budget this sets: its limit and its length
        self.name = name  # "requests" or "tokens", as in the headers' names
        self.candidates = tuple(minute_s * share for share in AZURE_WINDOWS)
        window.resize(self.candidates[0 if shortest else -1], 0.0)
        window.keep_s = max(window.keep_s, self.candidates[-1])
        window.limit = None
        self.limit_from: str | None = None  # "remaining" or "limit header"; None: not seen
        self.window_from = "assumed"  # then "retry-after", "refill" or "reset header"
        self.confirmed = False
        self.revisions = 0
        # The highest lower bound and the lowest upper bound on the limit since the window
        # last moved or an answer contradicted them (None: none yet).
        self._floor: float | None = None
        self._ceiling: float | None = None
        self._header_limit: float | None = None
        # What the service last said was left (less ours that may reach it after), as of
        # which of our requests.
        self._hint: float | None = None
        self._hint_seq = 0
        self._since = 0.0  # what we admitted after that request (refunds taken off)
        self._margin_at = 0.0  # when the window's margin last changed

    # --- what the scheduler asks -----------------------------------------------------------

    def left(self) -> float | None:
        """What the service's latest answer said was left, less what we admitted since."""
        if self._hint is None:
            return None
        return self._hint - self._since

    def admitted(self, charge: Charge) -> None:
        """A request was let through (after its charge was booked)."""
        self._since += self.window.amount(charge)

    def refunded(self, charge: Charge) -> None:
        """A request's charge is taken back (call before its amounts are zeroed)."""
        if charge.seq > self._hint_seq:
            self._since -= self.window.amount(charge)

    def snapshot(self, minute_s: float) -> dict[str, Any]:
        limit, window_s = self.window.limit, self.window.window_s
        return {
            "limit": None if limit is None else int(limit),
            "window_s": round(window_s, 3),
            "per_minute": None if limit is None else int(limit * minute_s / window_s),
            "limit_from": self.limit_from,
            "window_from": self.window_from,
            "window_revisions": self.revisions,
        }

    # --- what the service said -----------------------------------------------------------

    def observe(
        self,
        now: float,
        charge: Charge,
        mark: Mark,
        headers: Mapping[str, str],
        *,
        need: float,
        rate_limited: bool = False,
        in_flight: int = 0,
    ) -> None:
        """One answer to the request of ``charge`` (already refunded if it was refused)."""
        remaining = _number(headers.get(f"x-ratelimit-remaining-{self.name}"))
        if remaining is None:
            return
        window = self.window
        window.expire(now)
        own = window.amount(charge)  # 0 if refused: the service did not count it either
        if charge.seq >= self._hint_seq:
            # Ours sent before this one and not answered yet may reach the service after it
            # counted what is left: they are taken off too, so the room is never overstated.
            racing = window.racing(charge.seq, in_flight)
            self._hint, self._hint_seq = remaining - racing, charge.seq
            self._since = window.admitted_after(charge.seq)
        header_limit = _number(headers.get(f"x-ratelimit-limit-{self.name}"))
        if header_limit is not None and header_limit > 0:
            self._header_limit, self.limit_from = header_limit, "limit header"
        elif self.limit_from is None:
            self.limit_from = "remaining"
        if not rate_limited and window.margin_s and now - self._margin_at > window.window_s:
            # A whole window without being refused: halve the margin, so a lag that has
            # passed stops costing throughput (a 429 puts it back).
            window.margin_s /= 2
            self._margin_at = now
        if rate_limited and remaining < need:
            self.confirmed = False  # the window we trusted did not hold: probe it again
            self._after_refusal(now, charge, headers)
        reset = _duration(headers.get(f"x-ratelimit-reset-{self.name}"))
        if reset is not None and not rate_limited and reset > 0:
            # The window empties when the newest charge the service counted leaves it: this
            # one's or a later one's, stamped between our admitting it and now.
            self._place(reset, now + reset - charge.admitted_at, now, "reset header")
        low, high = self._bounds(now, charge, mark, remaining, own)
        if self._check(now, charge, low, high):
            low, high = self._bounds(now, charge, mark, remaining, own)  # the new window's
        self._floor = low if self._floor is None else max(self._floor, low)
        self._ceiling = high if self._ceiling is None else min(self._ceiling, high)
        window.limit = self._header_limit if self._header_limit is not None else self._floor

    def _bounds(
        self, now: float, charge: Charge, mark: Mark, remaining: float, own: float
    ) -> tuple[float, float]:
        """The limit this answer implies, at least and at most, under the current window."""
        window = self.window
        low = remaining + window.surely_counted(now, mark, charge.admitted_at) + own
        return low, remaining + window.maybe_counted(now, charge.admitted_at)

    def _after_refusal(self, now: float, charge: Charge, headers: Mapping[str, str]) -> None:
        """A 429 on this limit: nothing frees before Retry-After, so the window is at least
        as long as from our newest counted charge to then."""
        retry_after = _retry_after_floor(headers)
        newest = self.window.newest_before(charge.seq)
        if retry_after is None or newest is None:
            return
        # The service counted it by its answer at the latest, so the bound is never longer
        # than the truth.
        bound = now + retry_after - newest.counted_by(now)
        window = self.window
        if bound > window.window_s * (1 + SNAP):
            self._move(self._snap_up(bound), now, "retry-after")
        else:
            # The window is right, but the service still counted a charge our books had let
            # go: it stamps later than we think (requests reach it late). Keep charges that
            # much longer, up to a tenth of the window.
            window.margin_s = min(max(window.margin_s, retry_after), 0.1 * window.window_s)
            self._margin_at = now

    def _check(self, now: float, charge: Charge, low: float, high: float) -> bool:
        """Whether this answer's bounds agree with the recent ones under this window; if
        not, move the window where they show it is (True) or start the limit over."""
        if self._floor is None or self._ceiling is None:
            return False
        limit = self._header_limit
        floor = limit if limit is not None else self._floor
        ceiling = limit if limit is not None else self._ceiling
        slack = max(0.5, 0.01 * floor)
        # Under the right window no answer's upper bound is below an earlier lower bound,
        # nor its lower bound above an earlier upper bound.
        if high < floor - slack:
            # Less left than our window allows: the service still counted ones we let go.
            counted = self.window.newest_gone_reaching(floor - high)
            if counted is not None:
                bound = charge.admitted_at - counted.counted_by(now)
                if bound > self.window.window_s * (1 + SNAP):
                    self._move(self._snap_up(bound), now, "refill")
                    return True
            # Not the window: the limit fell (or others share the quota). Our lower
            # bounds no longer hold.
            self._floor = None
        elif low > ceiling + slack:
            # More left than our window allows: the service forgot the oldest of ours, so
            # its window ended before now for them. (Only ever to a shorter one of Azure's:
            # a window too short makes the same drift once the service's own refills.)
            forgotten = self.window.oldest_reaching(low - ceiling)
            if forgotten is not None:
                shorter = self._snap_down(now - forgotten.admitted_at)
                if shorter < self.window.window_s * (1 - SNAP):
                    self._move(shorter, now, "refill")
                    return True
            # Not the window: the limit rose, or the service forgot early what our window
            # keeps a little longer. Our upper bounds no longer hold.
            self._ceiling = None
        return False

    def _place(self, low: float, high: float, now: float, source: str) -> None:
        """The window is between ``low`` and ``high`` (seconds)."""
        current = self.window.window_s
        if low * (1 - SNAP) <= current <= high * (1 + SNAP):
            if self.window_from == "assumed":
                self.window_from = source
            return
        inside = [c for c in self.candidates if low * (1 - SNAP) <= c <= high * (1 + SNAP)]
        self._move(inside[-1] if inside else high, now, source)

    def _snap_up(self, bound: float) -> float:
        return next((c for c in self.candidates if c >= bound * (1 - SNAP)), bound)

    def _snap_down(self, bound: float) -> float:
        """The longest of Azure's windows within the bound (never below the shortest)."""
        candidates = self.candidates
        return next((c for c in reversed(candidates) if c <= bound * (1 + SNAP)), candidates[0])

    def _move(self, window_s: float, now: float, source: str) -> None:
        if abs(window_s - self.window.window_s) <= 1e-9:
            return
        self.window.keep_s = max(self.window.keep_s, window_s)
        self.window.resize(window_s, now)
        self.window_from = source
        self.revisions += 1
        self.confirmed = False
        # Bounds taken under the old window do not hold under the new one.
        self._floor = self._ceiling = None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 and number == number and number != float("inf") else None


def _duration(value: str | None) -> float | None:
    """A reset header in seconds: "20ms", "1.5s", "6m0s", or a bare number of seconds."""
    if value is None:
        return None
    text = value.strip().lower()
    plain = _number(text)
    if plain is not None:
        return plain
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def _retry_after_floor(headers: Mapping[str, str]) -> float | None:
    """The least the wait can be: retry-after-ms, else Retry-After less its rounding up."""
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    seconds = _number(headers.get("retry-after"))
    return None if seconds is None else max(0.0, seconds - 1)
