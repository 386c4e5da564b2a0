"""The order cases are listed in: ids read as people read them, row-2 before row-10."""

from __future__ import annotations

import re
from typing import Any

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[Any, ...], str]:
    """Sort key that reads numbers as numbers: ``row-2`` before ``row-10``.

    Splitting on digit runs alternates text and digits, so two keys compare text with text
    and number with number at every position.
    """
    parts = _DIGITS.split(text)
    # The text itself last breaks ties (``a01`` and ``a1``) so the order is total.
    return (tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), text)
