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


# natural_key as one string (see natural_text_key): a text part ends with _END_TEXT (a NUL
# in it written _NUL), a number is its digit count then its digits, and the parts end with
# _END_PARTS, below any number's first character.
_NUL, _END_TEXT, _END_PARTS = "\x00\x01", "\x00\x00", "\x00"


def natural_text_key(text: str) -> str:
    """natural_key as one string that sorts the same: about a fifth of its memory, for
    sorting 100,000 case ids at once (a summarised report's lines)."""
    parts = _DIGITS.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            digits = str(int(part))
            out.append(f"{len(digits):05d}{digits}")
        else:
            out.append(part.casefold().replace("\x00", _NUL) + _END_TEXT)
    out.append(_END_PARTS)
    out.append(text)
    return "".join(out)
