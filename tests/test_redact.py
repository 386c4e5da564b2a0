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


def test_scrub_masks_a_secret_anywhere_in_a_nested_value():
    """A secret in a key, deep in a list, in a tuple, or a token in a string: each masked."""
    secret = "sk-live-0123456789"
    token = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2ln"
    redact = Redactor([secret])
    value = {
        "turns": [{"reply": f"the key is {secret}", "usage": {"prompt_tokens": 3}}],
        f"header {secret}": 1,
        "pair": ("plain", f"Bearer {token}"),
    }
    text = json.dumps(redact.scrub(value))
    assert secret not in text and token not in text
    assert text.count("***") == 3


def test_scrub_gives_back_a_value_with_nothing_to_mask_as_it_is():
    """No secret and no token anywhere: the same value, not a copy."""
    redact = Redactor(["sk-live-0123456789"])
    value = {"turns": [{"reply": "nothing secret", "n": 1.5, "ok": True, "none": None}]}
    assert redact.scrub(value) is value


def test_scrub_walks_what_json_would_spell_otherwise():
    """A secret with a quote (JSON escapes it) and a value JSON cannot write (a set) are
    still walked: the secret is masked, the rest kept."""
    quoted = 'pa"ss-0123456'
    redact = Redactor([quoted])
    assert redact.scrub({"m": [f"echo {quoted}"]}) == {"m": ["echo ***"]}
    marker = {1, 2}
    plain = Redactor(["sk-live-0123456789"])
    assert plain.scrub({"m": "sk-live-0123456789", "s": marker}) == {"m": "***", "s": marker}
