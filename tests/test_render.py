"""Suite text rendering: plain ``{{ row.key }}`` text is filled in directly, exactly as Jinja
would fill it, and everything else still goes through Jinja's sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from harness.suite import render
from harness.suite.render import render_text

VARIABLES: dict[str, Any] = {
    "row": {"id": 7, "text": "a {brace} and }} close", "nested": {"deep": "down"},
            "flag": True, "ratio": 0.5, "none": None, "items": "an items key"},
    "name": "Ada",
}  # fmt: skip
TEXTS = [
    "ticket-{{ row.id }}",
    "{{row.text}}!",
    "{{ name }} says {{ row.nested.deep }} at { {x} }",
    "{{ row.flag }} {{ row.ratio }} {{ row.none }}",
    "{{ row.items }}",  # a dict method name: Jinja's attribute rules decide
    "{{ row.keys }}",
    "{{ row.text | upper }}",
    "{% for n in range(2) %}{{ n }}{% endfor %}",
    "{# a comment #}{{ name }}",
    "line one\r\n{{ name }}",
    "{{ name }}\n",
]


@pytest.mark.parametrize("text", TEXTS)
def test_direct_filling_matches_jinja(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether or not a text takes the direct path, it renders to what Jinja renders."""
    direct = render_text(text, VARIABLES)
    monkeypatch.setattr(render, "_lookups", lambda _text: None)  # Jinja for everything
    assert direct == render_text(text, VARIABLES)


def test_plain_lookups_skip_jinja(monkeypatch: pytest.MonkeyPatch) -> None:
    """``{{ row.key }}`` text never compiles a Jinja template (the per-case cost of for_each)."""
    monkeypatch.setattr(render, "_template", None)  # calling it would raise TypeError
    assert render_text("ticket-{{ row.id }}: {{ row.nested.deep }}", VARIABLES) == (
        "ticket-7: down"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ row.missing }}", "template variable is undefined: 'dict object' has no attribute"),
        ("{{ nobody }}", "template variable is undefined: 'nobody' is undefined"),
        ("{{ row.id.more }}", "template variable is undefined"),
    ],
)
def test_a_name_that_does_not_resolve_is_still_jinjas_error(text: str, message: str) -> None:
    """An undefined name falls back to Jinja, so the message is the one users know."""
    with pytest.raises(ValueError, match=message):
        render_text(text, VARIABLES)


def test_a_value_past_the_size_budget_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The direct path keeps the character budget."""
    monkeypatch.setattr(render, "MAX_CHARS", 10)
    with pytest.raises(ValueError, match="template too costly"):
        render_text("{{ row.text }}", VARIABLES)
