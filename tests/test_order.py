"""The order cases are listed in, as a tuple key and as one string."""

from __future__ import annotations

import random

from harness.results.order import natural_key, natural_text_key


def test_the_one_string_key_sorts_as_the_natural_key():
    """natural_text_key orders ids exactly as natural_key does: numbers as numbers (row-2
    before row-10, 07 next to 7), case folded (ß and SS), Unicode digits, NUL and control
    characters, ties broken by the text; over 50,000 random ids."""
    alphabet = ["a", "B", "b", "0", "1", "9", "07", "10", "\x00", "\x01", "-", "ß", "SS"]
    alphabet += ["٣", "²", "é", "z", "/", "@", " ", "row-"]
    rng = random.Random(14)
    ids = list(
        {"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) for _ in range(50_000)}
    )
    assert sorted(ids, key=natural_text_key) == sorted(ids, key=natural_key)
    assert sorted(["row-10", "row-2", "Row-1"], key=natural_text_key) == [
        "Row-1",
        "row-2",
        "row-10",
    ]
