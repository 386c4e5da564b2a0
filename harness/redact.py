"""Keeping secrets out of everything azeval writes: journals, run records, reports, logs."""

from __future__ import annotations

import os
from collections.abc import Iterable

MASK = "***"
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")
_MIN_LENGTH = 6


class Redactor:
    """Replaces every known secret value in text with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= _MIN_LENGTH}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    @classmethod
    def from_environment(cls, names: Iterable[str] = ()) -> Redactor:
        """Secrets: the named variables, plus any variable whose name says it holds one."""
        wanted = set(names)
        values = [
            value
            for name, value in os.environ.items()
            if name in wanted or any(word in name.upper() for word in _SECRET_WORDS)
        ]
        return cls(values)
