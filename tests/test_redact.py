"""Secrets are masked in every text azeval writes, however that text spells them."""

from __future__ import annotations

import json

from harness.redact import Redactor


def test_a_secret_is_masked_also_where_json_escaped_it():
    """A password with a quote, backslash or non-ASCII letter is masked in serialised JSON."""
    secret = 'pa"ss\\wörd-123'
    redact = Redactor([secret])
    for line in (json.dumps({"m": secret}), json.dumps({"m": secret}, ensure_ascii=False)):
        assert "***" in redact(line)
        assert secret not in json.loads(redact(line))["m"]


def test_an_entra_token_is_masked_by_its_shape():
    """A JWT bearer token (which no variable holds) is masked wherever it is quoted."""
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJjb2duaXRpdmUifQ.c2lnbmF0dXJl"
    text = Redactor([])(f"401: token Bearer {token} has expired")
    assert text == "401: token Bearer *** has expired"
