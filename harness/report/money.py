"""How every output writes an amount of US dollars, so the console, Markdown, JUnit and the
HTML page say a cost the same way."""

from __future__ import annotations

UNKNOWN = "unknown"


def usd(value: float | None) -> str:
    """``$0.0123``; a cent or less keeps six decimals (a case costs fractions of a cent).

    None is a cost nobody priced (the model has no price): "unknown", never "$0".
    """
    if value is None:
        return UNKNOWN
    if value == 0:
        return "$0.00"
    return f"${value:,.4f}" if abs(value) >= 0.01 else f"${value:.6f}"


def usd_delta(value: float | None) -> str:
    """A signed change in dollars (``+$0.0012``, ``-$0.000040``); "–" when a side is unknown."""
    if value is None:
        return "–"
    sign = "-" if value < 0 else "+"
    return sign + usd(abs(value))
