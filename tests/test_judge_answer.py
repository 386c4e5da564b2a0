"""Reading a judge's answer: structured, JSON object or last line, always validated."""

from __future__ import annotations

import json

import pytest

from harness.judge.answer import AnswerError, answer_mode, parse_answer, response_format
from harness.judge.verdicts import SHAPES, JudgeVerdict
from harness.models import load_catalogue
from harness.preflight.params import _api_version_rejects

RUBRIC, SCORE, FACT, PAIR = (SHAPES[k] for k in ("rubric", "score", "factuality", "pairwise"))


def test_schemas_are_strict_structured_output_schemas() -> None:
    """Every verdict schema requires all its properties and allows no others (strict mode)."""
    for shape in SHAPES.values():
        schema = shape.schema
        assert schema["additionalProperties"] is False
        assert sorted(schema["required"]) == sorted(schema["properties"])
        assert schema["properties"]["reasoning"] == {"type": "string"}
    assert SCORE.schema["properties"]["score"] == {"type": "integer", "enum": [1, 2, 3, 4, 5]}
    assert FACT.schema["properties"]["choice"]["enum"] == ["A", "B", "C", "D", "E"]
    assert PAIR.schema["properties"]["winner"]["enum"] == ["A", "B", "tie"]


@pytest.mark.parametrize(
    ("model", "version", "kind", "api_version", "mode"),
    [
        ("gpt-4o", "2024-08-06", "azure", "2024-10-21", "json_schema"),
        ("gpt-4o", "2024-08-06", "azure", "2024-08-01-preview", "json_schema"),
        ("gpt-4o", "2024-08-06", "azure", "2024-06-01", "json_object"),
        ("gpt-35-turbo", "0125", "azure", "2024-10-21", "json_object"),
        ("gpt-35-turbo", "0125", "azure", "2023-05-15", "last_line"),
        ("gpt-4o", "2024-08-06", "openai", "", "json_schema"),
        ("local", "", "local", "", "json_schema"),
    ],
)
def test_answer_mode_follows_the_catalogue(
    model: str, version: str, kind: str, api_version: str, mode: str
) -> None:
    """json_schema where model and api-version accept it, else json_object, else last line."""
    catalogue = load_catalogue()
    spec, _ = catalogue.lookup(model, version)
    assert answer_mode(spec, kind, api_version, catalogue) == mode


def test_the_chosen_response_format_passes_preflight() -> None:
    """The response_format chosen for a judge is one preflight accepts on its api-version."""
    catalogue = load_catalogue()
    spec, _ = catalogue.lookup("gpt-4o", "2024-08-06")
    for api_version in ("2024-06-01", "2024-10-21"):
        mode = answer_mode(spec, "azure", api_version, catalogue)
        params = {"response_format": response_format(RUBRIC, mode)}
        assert _api_version_rejects(params, "judge", api_version, spec, catalogue, "p") == []


def test_response_formats() -> None:
    """json_schema sends the kind's schema, strict and validly named; last line sends none."""
    body = response_format(SCORE, "json_schema")
    assert body == {
        "type": "json_schema",
        "json_schema": {"name": "azeval_score_verdict", "schema": SCORE.schema, "strict": True},
    }
    assert response_format(SCORE, "json_object") == {"type": "json_object"}
    assert response_format(SCORE, "last_line") is None


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "last_line"])
def test_a_valid_object_parses_in_every_mode(mode: str) -> None:
    """The verdict object is read in any mode, a ```json fence allowed."""
    text = '```json\n{"reasoning": "fine", "verdict": "pass"}\n```'
    assert parse_answer(RUBRIC, text, mode) == JudgeVerdict("rubric", "pass", "fine")  # type: ignore[arg-type]


def test_values_are_normalised_not_guessed() -> None:
    """ "Pass" is pass and 4.0 is 4; true is not a score and 7 is out of range."""
    upper = '{"reasoning": "", "verdict": "Pass"}'
    assert parse_answer(RUBRIC, upper, "json_object").value == "pass"
    assert parse_answer(SCORE, '{"reasoning": "", "score": 4.0}', "json_object").value == 4
    for bad in ('{"reasoning": "", "score": true}', '{"reasoning": "", "score": 7}'):
        with pytest.raises(AnswerError, match=r"\$\.score"):
            parse_answer(SCORE, bad, "json_object")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"verdict": "pass"}', "reasoning"),  # promptfoo's llm-rubric passes this kind
        ('{"reasoning": "x"}', "verdict"),
        ('{"reasoning": "x", "verdict": "maybe"}', "maybe"),
        ('{"reasoning": "x", "verdict": "pass", "score": 0}', "score"),
        ('{"reasoning": 3, "verdict": "pass"}', "reasoning"),
        ('["pass"]', "object"),
        ("", "no text"),
        (None, "no text"),
    ],
)
def test_anything_that_does_not_validate_is_an_error(text: str | None, why: str) -> None:
    """A missing, extra or wrong field is an AnswerError naming it, never a verdict."""
    with pytest.raises(AnswerError, match=why):
        parse_answer(RUBRIC, text, "json_schema")


def test_json_modes_do_not_fall_back_to_the_last_line() -> None:
    """In a JSON mode, prose with a verdict at the end is still not a valid answer."""
    with pytest.raises(AnswerError, match="not JSON"):
        parse_answer(RUBRIC, "It looks good.\npass", "json_object")


@pytest.mark.parametrize(
    ("shape", "text", "value", "reasoning"),
    [
        (RUBRIC, "The reply names Paris.\nVerdict: PASS", "pass", "The reply names Paris."),
        (RUBRIC, "Wrong city.\n\n**fail**", "fail", "Wrong city."),
        (SCORE, "Mostly grounded.\nScore: 4/5", 4, "Mostly grounded."),
        (SCORE, "ok\n3", 3, "ok"),
        (FACT, "Adds details.\nAnswer: B.", "B", "Adds details."),
        (PAIR, "Both fine.\nwinner = tie", "tie", "Both fine."),
        (RUBRIC, 'Thinking.\n{"verdict": "fail"}', "fail", "Thinking."),
        (RUBRIC, 'Step one.\n{"reasoning": "own", "verdict": "pass"}', "pass", "own"),
    ],
)
def test_last_line_answers(shape, text: str, value: object, reasoning: str) -> None:  # type: ignore[no-untyped-def]
    """Reasoning first, the decision (bare, labelled or as JSON) on the last line."""
    verdict = parse_answer(shape, text, "last_line")
    assert (verdict.value, verdict.reasoning) == (value, reasoning)


@pytest.mark.parametrize(
    ("shape", "text"),
    [
        (RUBRIC, "The reply is good, so it passes."),
        (SCORE, "Rated.\nScore: 6"),
        (SCORE, "Rated.\nfour"),
        (FACT, "Close.\nF"),
        (RUBRIC, 'Thinking.\n{"verdict": "pass", "confidence": 0.9}'),
        (RUBRIC, "Thinking.\n{not json"),
    ],
)
def test_last_line_without_a_valid_decision_is_an_error(shape, text: str) -> None:  # type: ignore[no-untyped-def]
    """A last line that is no allowed value, or a broken or over-full object, is an error."""
    with pytest.raises(AnswerError):
        parse_answer(shape, text, "last_line")


def test_an_error_quotes_a_long_answer_briefly() -> None:
    """The error quotes at most a few hundred characters of the judge's answer."""
    with pytest.raises(AnswerError) as caught:
        parse_answer(RUBRIC, "x" * 5000, "json_object")
    assert len(str(caught.value)) < 400


def test_verdict_to_json_round_trips() -> None:
    """A verdict's JSON is the object of its schema, read back to the same verdict."""
    verdict = JudgeVerdict("score", 5, "great")
    assert parse_answer(SCORE, json.dumps(verdict.to_json()), "json_schema") == verdict
