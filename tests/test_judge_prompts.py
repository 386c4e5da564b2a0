"""The judge's prompt templates: shipped, overridable per project and per check, hashed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.judge.metrics import BUILTIN
from harness.judge.prompts import TemplateProblem, load_template
from harness.judge.verdicts import FACT_CHOICES, SHAPES
from harness.testing.rules import ChatRequest


def variables(kind: str, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "shape": {"field": SHAPES[kind].field, "values": list(SHAPES[kind].values)},  # type: ignore[index]
        "answer_mode": "json_schema",
        "conversation": [{"role": "user", "content": "What is the capital of France?"}],
        "reply": "Paris.",
        "criteria": "Names the capital.",
        "metric": BUILTIN["groundedness"],
        "context": "France's capital is Paris.",
        "reference": "Paris",
        "answer_a": "Paris.",
        "answer_b": "Lyon.",
        "fact_choices": FACT_CHOICES,
    }
    values.update(extra)
    return values


@pytest.mark.parametrize("kind", ["rubric", "score", "factuality", "pairwise"])
def test_every_kind_has_a_shipped_template(kind: str) -> None:
    """Each kind renders a system and a user message holding the judged text in tags."""
    template = load_template(kind)  # type: ignore[arg-type]
    assert template.name == f"azeval/{kind}.j2"
    messages = template.render(variables(kind))
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "What is the capital of France?" in user
    assert f'"{SHAPES[kind].field}"' in user  # type: ignore[index]
    assert "JSON" in user  # json_object requires the word in the messages


def test_sections_are_what_the_fake_server_matches_on() -> None:
    """The tags the templates write are the sections the fake server's judge rules read."""
    messages = load_template("pairwise").render(variables("pairwise"))
    request = ChatRequest("judge", {}, tuple(messages))
    assert request.judged["answer_a"] == "Paris."
    assert request.judged["answer_b"] == "Lyon."
    score = load_template("score").render(variables("score"))
    sections = ChatRequest("judge", {}, tuple(score)).judged
    assert sections["context"] == "France's capital is Paris."
    assert sections["reply"] == "Paris."


def test_last_line_mode_asks_for_the_object_on_the_last_line() -> None:
    """Without structured outputs the prompt asks for reasoning, then the object last."""
    text = load_template("rubric").render(variables("rubric", answer_mode="last_line"))[1]
    assert "last line" in text["content"]


def test_score_shows_the_metric_anchors() -> None:
    """A score prompt carries the metric's question and its five anchored levels."""
    user = load_template("score").render(variables("score"))[1]["content"]
    assert BUILTIN["groundedness"].question in user
    for level in range(1, 6):
        assert f"{level}: {BUILTIN['groundedness'].anchors[level]}" in user


def test_a_project_override_replaces_the_packaged_template(tmp_path: Path) -> None:
    """A file of the same name in the project's folder is used, and its hash differs."""
    shipped = load_template("rubric")
    (tmp_path / "rubric.j2").write_text(
        '{% extends "azeval/rubric.j2" %}{% block system %}Be strict.{% endblock %}'
    )
    override = load_template("rubric", project_dir=tmp_path)
    assert override.name == str(tmp_path / "rubric.j2")
    messages = override.render(variables("rubric"))
    assert messages[0] == {"role": "system", "content": "Be strict."}
    assert "<criteria>" in messages[1]["content"]  # the user block is the package's
    assert override.sha256 != shipped.sha256


def test_a_checks_own_template_wins_and_may_be_a_plain_message(tmp_path: Path) -> None:
    """A check's template file is used over the project's; without blocks it is one message."""
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "rubric.j2").write_text("{% block user %}project{% endblock %}")
    own = tmp_path / "suites" / "strict.j2"
    own.parent.mkdir()
    own.write_text("Grade {{ reply }} against {{ criteria }}. Answer JSON.")
    template = load_template("rubric", file=own, project_dir=tmp_path / "project")
    assert template.render(variables("rubric")) == (
        {"role": "user", "content": "Grade Paris. against Names the capital.. Answer JSON."},
    )


def test_the_hash_covers_included_templates(tmp_path: Path) -> None:
    """Changing a template that the used one includes changes the recorded hash."""
    (tmp_path / "rubric.j2").write_text('{% include "part.j2" %}')
    (tmp_path / "part.j2").write_text("one {{ reply }}")
    first = load_template("rubric", project_dir=tmp_path).sha256
    (tmp_path / "part.j2").write_text("two {{ reply }}")
    from harness.judge import prompts

    prompts._environment.cache_clear()  # a new run loads the templates afresh
    assert load_template("rubric", project_dir=tmp_path).sha256 != first


def test_hash_is_stable() -> None:
    """The same template loaded twice has the same hash."""
    assert load_template("score").sha256 == load_template("score").sha256


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("{{ reply ", "rubric.j2:1"),  # a syntax error names the file and line
        ("{{ no_such_variable }}", "undefined"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ('{% include "missing.j2" %}', "missing.j2"),
    ],
)
def test_a_template_that_fails_says_why(tmp_path: Path, source: str, why: str) -> None:
    """Syntax errors, undefined variables, errors raised and missing includes are problems."""
    (tmp_path / "rubric.j2").write_text(source)
    with pytest.raises(TemplateProblem, match=why):
        load_template("rubric", project_dir=tmp_path).render(variables("rubric"))


def test_a_missing_template_file(tmp_path: Path) -> None:
    """A check's template that does not exist is a problem naming it."""
    with pytest.raises(TemplateProblem, match="not found"):
        load_template("rubric", file=tmp_path / "nope.j2")


def test_templates_are_sandboxed(tmp_path: Path) -> None:
    """A shared template cannot reach Python internals."""
    (tmp_path / "rubric.j2").write_text("{{ reply.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateProblem):
        load_template("rubric", project_dir=tmp_path).render(variables("rubric"))
