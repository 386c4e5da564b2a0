"""Each check passes when it should, fails when it should, and says why."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from harness.checks import CheckContext, LoadContext, Reply, all_checks, get_check, run_check
from harness.suite.model import Case, Expectation
from harness.targets.base import TargetInfo

CTX = LoadContext(suite_dir=Path())
CASE = Case(suite="s", id="c", path="s.yaml", place="cases[0]", turns=())
TARGET = TargetInfo(name="t", kind="azure", model="gpt-4o")
FILTER_SAFE = {
    c: {"filtered": False, "severity": "safe"} for c in ("hate", "sexual", "violence", "self_harm")
}


def outcome(name, arg, reply):
    spec = get_check(name)
    return applied(name, spec.prepare(arg, CTX), reply)


def applied(name: str, prepared: Any, reply: Reply, place: str = ""):
    """One check applied to a reply as the runner applies it, with a context of its own."""
    ctx = CheckContext(reply, CASE, 0, (), TARGET)
    return asyncio.run(run_check(Expectation(name, prepared, place or f"expect.{name}"), ctx))


def text(content, **kw):
    return Reply(content=content, **kw)


@pytest.mark.parametrize(
    ("name", "arg", "content", "status"),
    [
        ("contains", "Paris", "It is Paris.", "pass"),
        ("contains", "paris", "It is Paris.", "fail"),
        ("contains", ["Paris", "France"], "Paris, France", "pass"),
        ("contains", ["Paris", "Spain"], "Paris, France", "fail"),
        ("icontains", "paris", "It is PARIS.", "pass"),
        ("icontains", "lyon", "It is PARIS.", "fail"),
        ("contains_all", ["a", "b"], "a b", "pass"),
        ("contains_all", ["a", "z"], "a b", "fail"),
        ("icontains_all", ["A", "B"], "a b", "pass"),
        ("icontains_all", ["A", "Z"], "a b", "fail"),
        ("contains_any", ["x", "b"], "a b", "pass"),
        ("contains_any", ["x", "y"], "a b", "fail"),
        ("icontains_any", ["X", "B"], "a b", "pass"),
        ("icontains_any", ["X", "Y"], "a b", "fail"),
        ("not_contains", "sorry", "Sure!", "pass"),
        ("not_contains", ["sorry", "Sure"], "Sure!", "fail"),
        ("inot_contains", "SORRY", "I'm sorry", "fail"),
        ("inot_contains", "SORRY", "Fine", "pass"),
        ("equals", "42", " 42\n", "pass"),
        ("equals", "42", "forty-two", "fail"),
        ("iequals", "Yes", "YES", "pass"),
        ("iequals", "Yes", "No", "fail"),
        ("regex", r"\d{3}-\d{4}", "call 555-1234", "pass"),
        ("regex", [r"\d{3}", r"^call"], "dial 555", "fail"),
        ("not_regex", r"(?i)as an ai", "Hello", "pass"),
        ("not_regex", r"(?i)as an ai", "As an AI model", "fail"),
        ("is_json", True, '{"a": 1}', "pass"),
        ("is_json", True, '```json\n{"a": 1}\n```', "pass"),
        ("is_json", True, '```JSON\n{"a": 1}\n```', "pass"),
        ("is_json", True, '```json\n{"a": 1}```', "pass"),
        ("is_json", True, 'Here it is:\n```json\n{"a": 1}\n```', "fail"),
        ("is_json", True, "{a: 1}", "fail"),
        ("is_json", False, "plain", "pass"),
    ],
)
def test_text_checks(name, arg, content, status):
    """Text and JSON checks give pass or fail as their definition says."""
    assert outcome(name, arg, text(content)).status == status


@pytest.mark.parametrize(
    ("name", "arg", "status"),
    [
        ("contains", "Oslo", "fail"),
        ("equals", "", "fail"),
        ("regex", ".*", "fail"),
        ("is_json", True, "fail"),
        ("not_contains", "sorry", "n/a"),
        ("inot_contains", "sorry", "n/a"),
        ("not_regex", "sorry", "n/a"),
        ("is_json", False, "n/a"),
    ],
)
def test_a_reply_without_text_fails_what_it_must_say_and_cannot_pass_what_it_must_not(
    name, arg, status
):
    """A tool-call-only reply (content null) lacks every text it must contain, and a check
    that a text is absent has nothing to verify: n/a, not a vacuous pass."""
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    result = outcome(name, arg, text(None, tool_calls=(call,), finish_reason="tool_calls"))
    assert result.status == status
    assert result.message == "the reply has no text: it only called tools ['lookup']"


def test_a_tool_call_that_is_not_an_object_is_named_none_not_a_check_error():
    """A reply whose tool_calls list holds something other than an object (a broken
    OpenAI-compatible server) reads as a call without a name, as the tool_calls check reads
    it: a text check says the reply has no text, it does not raise."""
    result = outcome("not_contains", "sorry", text(None, tool_calls=("lookup",)))
    assert result.status == "n/a"
    assert result.message == "the reply has no text: it only called tools [None]"


def test_a_refusal_is_the_text_the_checks_read():
    """message.refusal (content null) is what text checks see, and JSON checks say it."""
    refusal = text(None, refusal="I'm sorry, I can't help with that.")
    assert outcome("not_contains", "I'm sorry", refusal).status == "fail"
    refused = outcome("json_schema", {"type": "object"}, refusal)
    assert refused.status == "fail" and refused.message == "the model refused instead of answering"


@pytest.mark.parametrize(
    ("name", "arg", "content"),
    [
        ("icontains", "istanbul", "Welcome to İSTANBUL."),
        ("icontains", "İstanbul", "welcome to istanbul."),
        ("icontains", "café", "CAFE\u0301 au lait"),
        ("icontains", "straße", "STRASSE 5"),
        ("iequals", "İzmir", "izmir"),
    ],
)
def test_ignoring_case_holds_for_turkish_dotted_i_and_decomposed_accents(name, arg, content):
    """İ (which full case folding turns into i + a combining dot) matches i, and an accent
    written as a combining mark matches the composed letter."""
    assert outcome(name, arg, text(content)).status == "pass"


def test_failure_message_says_expected_and_actual():
    """A failed substring check names what was missing and shows the reply."""
    result = outcome("contains", ["Paris", "Spain"], text("Paris, France"))
    assert result.message == "reply lacks ['Spain']; the reply: 'Paris, France'"
    assert result.actual == "Paris, France"
    assert result.place == "expect.contains"


def test_json_schema_pass_and_fail_with_path():
    """json_schema validates parsed JSON and points at the failing path."""
    schema = {
        "type": "object",
        "required": ["name", "phone"],
        "properties": {
            "name": {"type": "string"},
            "phone": {"type": "string", "pattern": r"^\d+$"},
        },
    }
    good = outcome("json_schema", schema, text('{"name": "Robert", "phone": "555"}'))
    bad = outcome("json_schema", schema, text('{"name": "Robert", "phone": "five"}'))
    broken = outcome("json_schema", schema, text("Robert, 555"))
    assert good.status == "pass"
    assert bad.status == "fail" and bad.message.startswith("at $.phone: 'five' does not match")
    assert broken.status == "fail" and "not JSON" in broken.message


def test_invalid_schema_and_regex_are_rejected_at_prepare():
    """Arguments are validated once, at load: bad schema, bad regex, bad finish reason."""
    with pytest.raises(ValueError, match="invalid JSON Schema"):
        get_check("json_schema").prepare({"type": 5}, CTX)
    with pytest.raises(ValueError, match="invalid regular expression"):
        get_check("regex").prepare("(unclosed", CTX)
    with pytest.raises(ValueError, match="unknown finish reason 'done'"):
        get_check("finish_reason").prepare("done", CTX)
    with pytest.raises(ValueError, match="string or a non-empty list"):
        get_check("contains").prepare([], CTX)


def test_finish_reason_single_and_set():
    """finish_reason accepts one value or a set of them."""
    assert outcome("finish_reason", "stop", text("x", finish_reason="stop")).status == "pass"
    assert (
        outcome("finish_reason", ["stop", "length"], text("x", finish_reason="length")).status
        == "pass"
    )
    failed = outcome("finish_reason", "stop", text("x", finish_reason="length"))
    assert failed.status == "fail" and "'length', expected 'stop'" in failed.message


def test_token_and_latency_limits():
    """Token bounds read the service's usage; latency reads azeval's measurement."""
    reply = text("x", usage={"prompt_tokens": 29, "completion_tokens": 73}, latency_ms=120.0)
    assert outcome("max_completion_tokens", 100, reply).status == "pass"
    assert outcome("max_completion_tokens", 50, reply).status == "fail"
    assert outcome("max_prompt_tokens", 29, reply).status == "pass"
    assert outcome("max_prompt_tokens", 28, reply).status == "fail"
    assert outcome("max_latency_ms", 200, reply).status == "pass"
    assert outcome("max_latency_ms", 100, reply).status == "fail"
    assert outcome("max_completion_tokens", 5, text("x")).status == "n/a"


def test_content_filter_severity_and_detection():
    """Severity above the maximum fails; within it passes; detection flags compare."""
    hot = {**FILTER_SAFE, "violence": {"filtered": False, "severity": "medium"}}
    detected = {**FILTER_SAFE, "protected_material_text": {"filtered": False, "detected": True}}
    assert (
        outcome(
            "content_filter", {"max_severity": "safe"}, text("x", completion_filter=FILTER_SAFE)
        ).status
        == "pass"
    )
    failed = outcome("content_filter", {"max_severity": "low"}, text("x", completion_filter=hot))
    assert (
        failed.status == "fail"
        and "completion violence severity is medium, above low" in failed.message
    )
    assert (
        outcome(
            "content_filter",
            {"categories": {"violence": "medium"}},
            text("x", completion_filter=hot),
        ).status
        == "pass"
    )
    flagged = outcome(
        "content_filter",
        {"detected": {"protected_material_text": False}},
        text("x", completion_filter=detected),
    )
    assert flagged.status == "fail"


def test_content_filter_is_not_applicable_without_annotations():
    """A target without filter results (local model) gives n/a, never a pass."""
    result = outcome("content_filter", {"max_severity": "safe"}, text("x", target_kind="local"))
    assert result.status == "n/a"
    assert "local" in result.message


def test_content_filter_bounds_the_service_did_not_report_are_not_applicable():
    """A filter that did not run (content_filter_error) or a category no side reported is
    n/a, never a pass; a bound that the reported results break still fails."""
    error = {"error": {"code": "content_filter_error", "message": "The contents are not filtered"}}
    not_run = outcome(
        "content_filter",
        {"max_severity": "safe"},
        text("x", prompt_filter=FILTER_SAFE, completion_filter=error),
    )
    assert not_run.status == "n/a"
    assert "the completion filter did not run (content_filter_error: The contents" in (
        not_run.message
    )
    unreported = outcome(
        "content_filter", {"detected": {"jailbreak": False}}, text("x", prompt_filter=FILTER_SAFE)
    )
    assert unreported.status == "n/a" and "no filter result for jailbreak" in unreported.message
    hot = {**FILTER_SAFE, "violence": {"filtered": True, "severity": "high"}}
    broken = outcome(
        "content_filter",
        {"max_severity": "low"},
        text("x", prompt_filter=hot, completion_filter=error),
    )
    assert broken.status == "fail"


def test_content_filter_expected_block():
    """prompt_blocked: true passes on a 400 content_filter and fails on a normal reply."""
    blocked = Reply(content=None, error_kind="content_filter", target_kind="azure")
    assert outcome("content_filter", {"prompt_blocked": True}, blocked).status == "pass"
    assert (
        outcome(
            "content_filter", {"prompt_blocked": True}, text("Sure", prompt_filter=FILTER_SAFE)
        ).status
        == "fail"
    )
    # Checks that need a reply are not applicable when the prompt was blocked.
    assert outcome("contains", "x", blocked).status == "n/a"


def test_tool_calls_name_and_arguments_schema():
    """tool_calls checks the called function and validates its arguments."""
    call = {
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    reply = text(None, tool_calls=(call,), finish_reason="tool_calls")
    schema = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}
    assert outcome("tool_calls", "get_weather", reply).status == "pass"
    assert (
        outcome("tool_calls", {"name": "get_weather", "arguments": schema}, reply).status == "pass"
    )
    wrong = outcome(
        "tool_calls", {"name": "get_weather", "arguments": {**schema, "required": ["date"]}}, reply
    )
    assert wrong.status == "fail" and "'date' is a required property" in wrong.message
    assert outcome("tool_calls", "book_flight", reply).status == "fail"


def test_tool_calls_checks_every_parallel_call_and_counts_repeated_names():
    """With parallel calls, a bad call to a listed function fails even after a good one; a
    function listed twice needs two calls (in any order); a call with no function object is
    a failure, not a crash of the check."""

    def calls(*arguments):
        return text(
            None,
            tool_calls=tuple(
                {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": a}}
                for i, (name, a) in enumerate(arguments)
            ),
        )

    city = {"type": "object", "required": ["city"]}
    spec = {"name": "get_weather", "arguments": city}
    good, bad = ("get_weather", '{"city": "Oslo"}'), ("get_weather", '{"town": "Oslo"}')
    hidden = outcome("tool_calls", spec, calls(good, bad))
    assert hidden.status == "fail"
    assert hidden.message == "get_weather call 2 arguments at $: 'city' is a required property"
    assert outcome("tool_calls", spec, calls(good, ("get_weather", "{oops"))).status == "fail"
    twice = outcome("tool_calls", [spec, spec], calls(good))
    assert twice.status == "fail"
    assert twice.message == "expected 2 calls to 'get_weather', the reply made 1"
    assert outcome("tool_calls", ["lookup", spec], calls(good, ("lookup", "{}"))).status == "pass"
    broken = text(None, tool_calls=({"id": "c", "type": "function", "function": None},))
    assert outcome("tool_calls", "lookup", broken).status == "fail"


def test_a_check_that_raises_becomes_an_error_result():
    """A bug inside a check is recorded as status error, not a crash of the run."""
    result = applied("contains", 12345, text("x"), "p")  # unprepared argument: not iterable
    assert result.status == "error"
    assert "raised TypeError" in result.message


def test_registry_lists_every_documented_check():
    """Every check the README documents is registered, with a docstring."""
    expected = {
        "json_schema",
        "is_json",
        "equals",
        "iequals",
        "contains",
        "icontains",
        "not_contains",
        "inot_contains",
        "contains_any",
        "icontains_any",
        "contains_all",
        "icontains_all",
        "regex",
        "not_regex",
        "finish_reason",
        "content_filter",
        "tool_calls",
        "max_completion_tokens",
        "max_prompt_tokens",
        "max_latency_ms",
    }
    checks = all_checks()
    assert expected <= set(checks)
    assert all(checks[name].doc for name in expected)
