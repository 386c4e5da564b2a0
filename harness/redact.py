"""Keeping secrets out of everything azeval writes: journals, run records, reports, logs."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")
_MIN_LENGTH = 6
# An Entra ID access token is a JWT that no variable holds (azure-identity fetches it), so
# it is known by its shape: base64url header and claims, both JSON objects ("eyJ" = '{"').
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


class Redactor:
    """Replaces every known secret value in text with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        kept = {form for s in secrets if len(s) >= _MIN_LENGTH for form in _written_forms(s)}
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(kept, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _JWT.sub(MASK, text)

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


def _written_forms(secret: str) -> set[str]:
    """The secret as it is, and as it reads inside JSON text (journal lines and run.json
    are scrubbed after serialising, where a quote, backslash or é is escaped)."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


def public_url(url: str, *, query: bool = True) -> str:
    """A URL as azeval records or prints it: never its user-info (a password), and without
    its query when ``query`` is false (a URL someone else chose may carry a signature)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query if query else "", ""))
