"""The fake resource's embeddings: deterministic vectors, so tests can assert exact
similarities.

A text's vector is its bag of words hashed into ``dimensions`` slots (each lower-cased
word adds 1 to the slot sha256 picks for it), normalised to length 1. The cosine of two
texts is then their shared words' counts multiplied, over the product of their lengths,
as long as no two of their words share a slot (with 1,536 slots, rare; ``vector_of`` lets a
test check). An empty text (no words) is the zero vector.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8191
_WORD = re.compile(r"\w+")
# Native dimensions per model; others get text-embedding-3-small's.
DIMENSIONS = {"text-embedding-3-large": 3072}
DEFAULT_DIMENSIONS = 1536


def dimensions_for(model: str) -> int:
    return DIMENSIONS.get(model, DEFAULT_DIMENSIONS)


def vector_of(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The fake's embedding of ``text``."""
    slots: Counter[int] = Counter()
    for word in _WORD.findall(text.lower()):
        slots[int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big") % dimensions] += 1
    norm = math.sqrt(sum(n * n for n in slots.values()))
    vector = [0.0] * dimensions
    for slot, n in slots.items():
        vector[slot] = n / norm
    return vector


def inputs_of(body: Mapping[str, Any]) -> list[str] | str:
    """The request's inputs, or why they are not valid (a message for a 400)."""
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        return "'input' is a required property: a string or an array of strings"
    if len(inputs) > MAX_INPUTS:
        return f"Too many inputs. The max number of inputs is {MAX_INPUTS}."
    if not all(isinstance(i, str) for i in inputs):
        return "'input' must be a string or an array of strings"
    return inputs


def embeddings_body(
    model: str, inputs: list[str], dimensions: int, prompt_tokens: int
) -> dict[str, Any]:
    return {
        "object": "list",
        "model": model,
        "data": [
            {"object": "embedding", "index": i, "embedding": vector_of(text, dimensions)}
            for i, text in enumerate(inputs)
        ],
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
