"""The fake Azure server answers judge requests by rules, over real HTTP with the SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from harness.judge.answer import parse_answer, response_format
from harness.judge.prompts import load_template
from harness.judge.verdicts import SHAPES
from harness.testing import Action, FakeAzure, Match, Rule
from harness.testing.config import options_from_dict


def judge_messages(kind: str, **values: Any) -> list[dict[str, str]]:
    shape = SHAPES[kind]  # type: ignore[index]
    variables: dict[str, Any] = {
        "shape": {"field": shape.field, "values": list(shape.values)},
        "answer_mode": values.pop("answer_mode", "json_schema"),
        "conversation": [{"role": "user", "content": "Capital of France?"}],
        "criteria": "Names the capital.",
        **values,
    }
    return list(load_template(kind).render(variables))  # type: ignore[arg-type]


RULES = [
    Rule(Match(judged="(?i)paris"), Action(verdict={"verdict": "pass", "reasoning": "Right."})),
    Rule(Match(judged={"reply": "."}), Action(verdict={"verdict": "fail"})),
    Rule(Match(judged={"answer_a": "Paris"}), Action(verdict={"winner": "A"})),
    Rule(Match(judged={"answer_b": "Paris"}), Action(verdict={"winner": "B"})),
]


async def ask(server: FakeAzure, messages: list[dict[str, str]], fmt: Any = None) -> str:
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=server.endpoint, api_key="test-key", api_version="2024-10-21"
    )
    extra = {"response_format": fmt} if fmt else {}
    async with client:
        reply = await client.chat.completions.create(
            model="judge",
            messages=messages,
            temperature=0,
            seed=1,
            **extra,  # type: ignore[arg-type]
        )
    return reply.choices[0].message.content or ""


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "last_line"])
async def test_a_judge_rule_answers_in_the_format_asked(mode: str) -> None:
    """A verdict rule answers JSON for a JSON response_format, else reasoning + last line;
    either way azeval's parser reads the same verdict back."""
    shape = SHAPES["rubric"]
    with FakeAzure(["judge"], rules=RULES) as server:
        messages = judge_messages("rubric", reply="It is Paris.", answer_mode=mode)
        text = await ask(server, messages, response_format(shape, mode))  # type: ignore[arg-type]
        verdict = parse_answer(shape, text, mode)  # type: ignore[arg-type]
        assert (verdict.value, verdict.reasoning) == ("pass", "Right.")
        other = await ask(server, judge_messages("rubric", reply="Lyon."), None)
        assert parse_answer(shape, other, "last_line").value == "fail"
    if mode == "last_line":
        assert not text.lstrip().startswith("{")


async def test_rules_match_sections_of_a_pairwise_prompt() -> None:
    """judged: {answer_a: …} matches the reply shown as A, so a rule can follow the content
    whichever position it is in."""
    shape = SHAPES["pairwise"]
    with FakeAzure(["judge"], rules=RULES) as server:
        forward = judge_messages("pairwise", answer_a="Paris.", answer_b="Lyon.")
        backward = judge_messages("pairwise", answer_a="Lyon.", answer_b="Paris.")
        first = parse_answer(shape, await ask(server, forward), "last_line").value
        second = parse_answer(shape, await ask(server, backward), "last_line").value
    assert (first, second) == ("A", "B")


async def test_judged_rules_do_not_match_ordinary_requests() -> None:
    """A request without judge sections is not taken by a judged rule: the default echo."""
    with FakeAzure(["judge"], rules=RULES) as server:
        text = await ask(server, [{"role": "user", "content": "Paris"}])
    assert text == "Echo: Paris"


def test_judge_rules_from_a_config_file() -> None:
    """``judged`` and ``verdict`` load from YAML/JSON rules like the other fields."""
    options = options_from_dict(
        {"rules": [{"match": {"judged": {"answer_a": "x"}}, "reply": {"verdict": {"winner": "A"}}}]}
    )
    rule = options["rules"][0]
    assert rule.match.judged == {"answer_a": "x"}
    assert rule.reply.verdict == {"winner": "A"}


def test_a_verdict_must_be_a_mapping() -> None:
    """verdict: pass (not an object) is refused with the shape expected."""
    with pytest.raises(ValueError, match="mapping"):
        Action(verdict="pass")  # type: ignore[arg-type]
