"""Keeping secrets out of everything azeval writes: journals, run records, reports, logs."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

if TYPE_CHECKING:
    from harness.config import TargetConfig

MASK = "***"
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")
_MIN_LENGTH = 6
# An Entra ID access token is a JWT that no variable holds (azure-identity fetches it), so
# it is known by its shape: base64url header and claims, both JSON objects ("eyJ" = '{"').
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# What JSON text spells otherwise than as written (with ensure_ascii=False).
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')


class Redactor:
    """Replaces every known secret value in text with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.values = tuple(s for s in secrets if len(s.strip()) >= _MIN_LENGTH)
        kept = {form for s in self.values for form in _written_forms(s)}
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(kept, key=len, reverse=True)
        # Every spelling is written as it is in JSON text: a value can be checked whole.
        self._plain = not any(_JSON_ESCAPED.search(s) for s in self._secrets)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _JWT.sub(MASK, text) if "eyJ" in text else text

    def scrub(self, value: Any) -> Any:
        """A JSON-ready value with every string (and key) in it redacted, before it is
        serialised: a secret inside an escaped spelling (an HTML-escaped echo, a repr)
        is escaped once more in JSON text, where no list of spellings can follow it.
        A value with nothing to redact comes back as it is."""
        if self._plain and self._clean(value):
            return value
        return self._scrub(value)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(str(k)): self._scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._scrub(v) for v in value]
        return value

    def _clean(self, value: Any) -> bool:
        """No string or key of ``value`` holds a secret or a token's start: read off its
        JSON text in one C pass instead of a walk (a result has a hundred strings), which
        is exact while every spelling is written as it is (``_plain``)."""
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):  # not JSON as it is: walk it
            return False
        return "eyJ" not in text and not any(secret in text for secret in self._secrets)

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

    @classmethod
    def for_targets(cls, targets: Iterable[TargetConfig]) -> Redactor:
        """Secrets of a run: every target's key variable, any password in a target's URL
        (``https://user:pass@gateway``), and the variables whose names say they hold one."""
        targets = [d for t in targets for d in t.deployments]  # a pool's members send
        names = [t.api_key_env for t in targets if t.api_key_env]
        found = cls.from_environment(names)
        passwords = [p for t in targets for p in url_passwords(t)]
        return cls([*found.values, *passwords])


def url_passwords(target: TargetConfig) -> list[str]:
    """The password in a target's endpoint or base_url, as written and decoded."""
    from harness.config import expand_env
    from harness.errors import ConfigError

    found = []
    for url in (target.endpoint, target.base_url):
        try:
            password = urlsplit(expand_env(url, target.source, target.place)).password
        except (ValueError, ConfigError):  # a URL config will refuse, or a missing variable
            continue
        if password:
            found += [password, unquote(password)]
    return found


def _written_forms(secret: str) -> set[str]:
    """Every spelling of a secret a writer or a service may produce: as it is and trimmed
    (a key pasted with its line end), and each as it reads escaped in JSON (also JSON
    quoted inside JSON), in a Python repr (an exception's message), URL-encoded and in HTML.
    Scrubbing runs on serialised text, so each escaped spelling must be known."""
    forms = set()
    for base in {secret, secret.strip()}:
        json_form = json.dumps(base)[1:-1]
        forms |= {
            base,
            json_form,
            json.dumps(base, ensure_ascii=False)[1:-1],
            json.dumps(json_form)[1:-1],
            repr(base)[1:-1],
            quote(base, safe=""),
            quote_plus(base, safe=""),
            html.escape(base),
        }
    return {form for form in forms if len(form) >= _MIN_LENGTH}


def public_url(url: str, *, query: bool = True) -> str:
    """A URL as azeval records or prints it: never its user-info (a password), and without
    its query when ``query`` is false (a URL someone else chose may carry a signature)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query if query else "", ""))
