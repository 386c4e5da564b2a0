"""Preflight: tokens, limits, refused parameters and totals, before anything is sent."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from harness.errors import PreflightError
from harness.preflight import PlanRow, plan, plan_case, raise_for_fatal
from harness.preflight.plan import last_admission
from harness.quota_rules import DEFAULT_COMPLETION_CHARGE
from harness.report.plan import format_table, to_json
from harness.runner.sender import request_cost
from harness.suite import load_suite
from harness.suite.model import Case, Message, Turn

SYSTEM = Message("system", "Assistant is a large language model trained by OpenAI.")
QUESTION = Message("user", "Who were the founders of Microsoft?")


@dataclass(frozen=True)
class Target:
    name: str = "t"
    kind: str = "azure"
    model: str = "gpt-35-turbo"
    model_version: str = "0613"
    api_version: str = "2024-10-21"
    tpm: int | None = None
    rpm: int | None = None


def case(
    *messages: Message,
    params: Mapping[str, Any] | None = None,
    index: int = 0,
    turns: tuple[tuple[Message, ...], ...] = (),
    **extra: Any,
) -> Case:
    all_turns = (messages or (SYSTEM, QUESTION), *turns)
    return Case(
        suite="s",
        id=f"c{index}",
        path="suites/s.yaml",
        place=f"cases[{index}]",
        turns=tuple(Turn(messages=t, expectations=()) for t in all_turns),
        params=params or {},
        **extra,
    )


def problems(row: PlanRow, *, fatal: bool = True) -> list[str]:
    return [p.message for p in row.problems if p.fatal is fatal]


def test_a_plain_case_fits_with_its_exact_count() -> None:
    """The founders prompt is 29 tokens; with max_tokens 300 it fits gpt-35-turbo 0613."""
    row = plan_case(case(params={"max_tokens": 300}), Target())
    assert (row.prompt_tokens, row.max_tokens, row.context_window) == (29, 300, 4096)
    assert row.fits
    assert row.problems == ()
    assert row.charged_tokens == 329


def test_too_long_gives_the_services_numbers() -> None:
    """prompt + max_tokens over the window is fatal, worded as context_length_exceeded."""
    row = plan_case(case(params={"max_tokens": 4068}), Target())
    assert not row.fits
    assert problems(row) == [
        "This model's maximum context length is 4096 tokens. However, you requested 4097 "
        "tokens (29 in the messages, 4068 in the completion)."
    ]
    assert row.problems[0].fix == "lower max_tokens to 4067 or less, or shorten the messages"
    assert plan_case(case(params={"max_tokens": 4067}), Target()).fits


def test_too_long_without_max_tokens_uses_the_messages_wording() -> None:
    """With no max_tokens, only a prompt that fills the window is refused."""
    big = Message("user", "word " * 5000)
    row = plan_case(case(big), Target())
    assert not row.fits
    assert problems(row)[0].startswith(
        "This model's maximum context length is 4096 tokens. However, your messages resulted in"
    )


def test_max_tokens_over_the_models_output_limit_is_fatal() -> None:
    """max_tokens above the model's max output is refused, naming the limit."""
    target = Target(model="gpt-4o", model_version="2024-05-13")
    row = plan_case(case(params={"max_tokens": 5000}), target)
    assert any("supports at most 4096 completion tokens" in m for m in problems(row))


def test_chatml_tokens_are_found_with_their_place() -> None:
    """Legacy ChatML markers in a message are fatal and point at that message."""
    bad = Message("user", "<|im_start|>user\nHi<|im_end|>")
    row = plan_case(case(SYSTEM, bad, index=3), Target())
    [problem] = row.problems
    assert problem.fatal
    assert problem.place == "cases[3].messages[1]"
    assert "<|im_start|>, <|im_end|>" in problem.message
    assert row.error_message().startswith("suites/s.yaml: cases[3].messages[1]: special token")


@pytest.mark.parametrize("key", ["best_of", "echo"])
def test_completion_era_parameters_are_refused(key: str) -> None:
    """best_of and echo belong to the completions API and are fatal on chat."""
    row = plan_case(case(params={key: 1}), Target())
    assert problems(row) == [f"'{key}' is a completions-API parameter; chat completions reject it"]
    assert row.problems[0].fix == "remove it"


def test_integer_logprobs_gets_the_chat_form_as_fix() -> None:
    """logprobs: 5 (completions form) is fatal with the fix logprobs: true, top_logprobs: 5."""
    row = plan_case(case(params={"logprobs": 5}), Target())
    assert row.problems[0].fix == "use logprobs: true and top_logprobs: 5"


def test_logprobs_needs_api_version_2024_06_01() -> None:
    """Chat logprobs are refused on 2024-02-01 and accepted from 2024-06-01."""
    params = {"logprobs": True, "top_logprobs": 2}
    old = plan_case(case(params=params), Target(api_version="2024-02-01"))
    assert old.fatal
    assert "2024-06-01 or later" in old.problems[0].fix
    assert not plan_case(case(params=params), Target(api_version="2024-06-01")).problems


def test_o_series_rejects_max_tokens_and_temperature() -> None:
    """On o3-mini max_tokens is fatal (fix: max_completion_tokens), so is temperature 0."""
    target = Target(model="o3-mini", model_version="", api_version="2024-12-01-preview")
    row = plan_case(case(params={"max_tokens": 500, "temperature": 0}), target)
    fixes = {p.place: p.fix for p in row.problems if p.fatal}
    assert fixes["cases[0].params.max_tokens"].startswith("use max_completion_tokens")
    assert fixes["cases[0].params.temperature"] == "remove temperature"
    ok = plan_case(case(params={"max_completion_tokens": 500, "temperature": 1}), target)
    assert ok.problems == ()
    assert ok.max_tokens == 500


def test_o_series_needs_a_recent_api_version() -> None:
    """o3-mini on api-version 2024-10-21 is refused with the version to use."""
    target = Target(model="o3-mini", model_version="", api_version="2024-10-21")
    row = plan_case(case(params={"max_completion_tokens": 100}), target)
    assert row.fatal
    assert any("2024-12-01-preview" in p.fix for p in row.problems)


def test_json_schema_needs_model_and_api_version_support() -> None:
    """json_schema is refused before 2024-08-01-preview and on models without it."""
    params = {
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": {}}}
    }
    gpt4o = Target(model="gpt-4o", model_version="2024-08-06")
    assert not plan_case(case(params=params), gpt4o).problems
    assert not plan_case(
        case(params=params), Target(model="gpt-4o", api_version="2024-08-01-preview")
    ).problems
    old = plan_case(case(params=params), Target(model="gpt-4o", api_version="2024-06-01"))
    assert [p.place for p in old.problems] == ["cases[0].params.response_format"]
    assert "2024-08-01-preview or later" in old.problems[0].fix
    gpt35 = plan_case(case(params=params), Target())
    assert problems(gpt35) == ["gpt-35-turbo 0613 does not support json schema"]


def test_json_schema_name_must_be_valid() -> None:
    """A json_schema name with spaces or over 64 characters is fatal."""
    params = {"response_format": {"type": "json_schema", "json_schema": {"name": "my schema"}}}
    row = plan_case(case(params=params), Target(model="gpt-4o"))
    assert [p.place for p in row.problems] == ["cases[0].params.response_format.json_schema.name"]


def test_json_object_needs_the_word_json_in_the_messages() -> None:
    """json_object mode without 'json' in any message is refused, as the service does."""
    params = {"response_format": {"type": "json_object"}}
    row = plan_case(case(params=params), Target(model="gpt-4o"))
    assert row.fatal
    asking = Message("user", "Answer in JSON: who founded Microsoft?")
    assert not plan_case(case(SYSTEM, asking, params=params), Target(model="gpt-4o")).problems


def test_max_completion_tokens_on_an_old_api_version_suggests_max_tokens() -> None:
    """max_completion_tokens before 2024-09-01-preview is fatal; non-o-series may use max_tokens."""
    row = plan_case(
        case(params={"max_completion_tokens": 100}), Target(api_version="2024-08-01-preview")
    )
    assert row.fatal
    assert row.problems[0].fix.startswith("use max_tokens, or set the target's api_version")


def test_unsupported_seed_is_only_a_warning() -> None:
    """A seed on a model without reproducible output is reported but not fatal."""
    row = plan_case(case(params={"seed": 1}), Target())
    assert not row.fatal
    assert problems(row, fatal=False) == [
        "gpt-35-turbo 0613 does not support seed; replies will not be reproducible"
    ]


def test_openai_targets_skip_azure_api_version_checks() -> None:
    """api-version limits apply only to azure targets."""
    params = {"logprobs": True}
    assert (
        plan_case(case(params=params), Target(kind="openai", api_version="2024-02-01")).problems
        == ()
    )


def test_out_of_range_values_are_fatal() -> None:
    """temperature 3 and five stop sequences are refused."""
    row = plan_case(case(params={"temperature": 3, "stop": list("abcde")}), Target())
    assert [p.place for p in row.problems] == [
        "cases[0].params.temperature",
        "cases[0].params.stop",
    ]


def test_tools_are_counted_in_the_prompt() -> None:
    """Tool definitions add the cookbook's estimate to the prompt tokens."""
    tool = {
        "type": "function",
        "function": {"name": "lookup", "description": "Look it up", "parameters": {}},
    }
    plain = plan_case(case(), Target())
    with_tools = plan_case(case(params={"tools": [tool]}), Target())
    # 10 per function + "lookup:Look it up" (5 tokens) + 12 at the end
    assert with_tools.prompt_tokens - plain.prompt_tokens == 27


def test_later_turns_are_lower_bounds() -> None:
    """A second turn counts the first, an empty reply (4 tokens) and its own message."""
    follow_up = Message("user", "And when?")
    row = plan_case(case(turns=((follow_up,),), params={"max_tokens": 100}), Target())
    # 29 + empty assistant (3 + 1) + follow-up (3 + 1 + 3)
    assert row.turn_tokens == (29, 29 + 4 + 7)
    assert row.requests == 2
    assert row.charged_tokens == 29 + 40 + 2 * 100


def test_history_over_budget_drops_oldest_or_warns_under_stop() -> None:
    """Past the budget, drop_oldest keeps the count down; stop warns the case will end."""
    long_turn = (Message("user", "word " * 100),)
    turns = (long_turn, long_turn, long_turn)
    dropping = plan_case(case(turns=turns, budget=300, params={"max_tokens": 50}), Target())
    assert not dropping.problems
    assert max(dropping.turn_tokens) + 50 <= 300
    stopping = plan_case(
        case(turns=turns, budget=300, history="stop", params={"max_tokens": 50}), Target()
    )
    assert not stopping.fatal
    [warning] = stopping.problems
    # requests need 29, 137, 245 and 353 tokens (+50 reserved): the fourth is over 300; it
    # is the file's turns[2], since the first request is the case's own messages
    assert warning.place == "cases[0].turns[2]"
    assert "will stop at this turn" in warning.message


def test_a_loaded_turn_is_named_as_the_file_writes_it(write) -> None:
    """The turn over the budget is named by its index in the suite's turns: list."""
    path = write(
        "s.yaml",
        """
suite: s
cases:
  - id: chat
    prompt: Hi
    turns:
      - user: "{{ 'word ' * 10 }}"
      - user: "{{ 'word ' * 400 }}"
    history: {policy: stop, budget: 300}
""",
    )
    [loaded] = load_suite(path).cases
    [warning] = plan_case(loaded, Target()).problems
    assert warning.place == "cases[0].turns[1]"


def test_a_first_request_over_the_budget_is_refused() -> None:
    """The runner fits the first request of a multi-turn case too: over the budget, the
    case stops before sending anything, so the plan refuses it (under either policy)."""
    long = Message("user", "word " * 400)
    follow_up = (Message("user", "And?"),)
    for policy in ("stop", "drop_oldest"):
        row = plan_case(
            case(SYSTEM, long, turns=(follow_up,), budget=300, history=policy), Target()
        )
        assert row.fatal
        [problem] = row.problems
        assert problem.place == "cases[0].messages"
        assert "stops before its first request" in problem.message


def test_a_first_request_is_counted_as_the_runner_fits_it() -> None:
    """Under drop_oldest, few-shot exchanges the budget cannot hold are left out of the first
    request, by the runner and by the plan's count alike."""
    shots = [Message("user", "word " * 150), Message("assistant", "word " * 150)]
    follow_up = (Message("user", "And?"),)
    row = plan_case(case(SYSTEM, *shots, QUESTION, turns=(follow_up,), budget=300), Target())
    assert not row.problems
    assert row.prompt_tokens == 29  # the system message and the question: the shots dropped


def test_quota_charge_without_max_tokens_is_the_runners() -> None:
    """A request without max_tokens is charged what the runner's scheduler charges it
    (prompt + DEFAULT_COMPLETION_CHARGE), so the plan's time under TPM is the run's: at
    8,300 TPM two such requests fit a minute, so the tenth is admitted after 4 minutes
    (charged its prompt alone, all ten would fit the first minute)."""
    cases = [case(index=i) for i in range(10)]
    [totals] = plan(cases, [Target(tpm=120_000, rpm=6000)]).targets
    assert totals.charged_tokens == 10 * request_cost({"messages": []}, 29)
    assert totals.duration_s == 0  # 120,000 TPM: all ten within the first minute's budget
    [tight] = plan(cases, [Target(tpm=8_300, rpm=6000)]).targets
    assert 2 * (29 + DEFAULT_COMPLETION_CHARGE) <= 8_300 < 3 * (29 + DEFAULT_COMPLETION_CHARGE)
    assert tight.duration_s == pytest.approx(240)


def test_unknown_model_is_a_warning_on_the_plan() -> None:
    """An unknown model gives one plan warning naming the fallback and no fatal problems."""
    result = plan([case()], [Target(name="mine", model="my-model", model_version="")])
    assert result.warnings == (
        "target 'mine': unknown model 'my-model': assuming cl100k_base, 8,192-token "
        "context, no prices",
    )
    assert not result.rows[0].fatal
    assert result.est_cost is None


def test_unknown_models_assumed_limits_warn_but_do_not_refuse() -> None:
    """Over an unknown model's assumed context or output limit is a warning: the case is sent.

    The service's real limits are not known, so the plan cannot say it would reject the case.
    """
    long = Message("user", "word " * 10_000)
    row = plan_case(
        case(long, params={"max_tokens": 5000}), Target(model="gpt-9-ultra", model_version="")
    )
    assert not row.fatal
    assert not row.fits
    assert [p.place for p in row.problems] == ["cases[0].messages", "cases[0].params.max_tokens"]
    assert all("gpt-9-ultra is not in the model catalogue" in p.message for p in row.problems)
    assert all('[models."gpt-9-ultra"]' in p.fix for p in row.problems)
    known = plan_case(case(long, params={"max_tokens": 5000}), Target())
    assert known.fatal


def test_totals_and_duration_under_quota() -> None:
    """Duration is when the last request is admitted under a sliding minute, by tokens or
    by requests (RPM 6 per 1,000 TPM): the first minute's budget is there at once."""
    cases = [case(index=i, params={"max_tokens": 71}) for i in range(60)]  # 100 tokens each
    result = plan(cases, [Target(tpm=1000)])
    [totals] = result.targets
    assert (totals.requests, totals.charged_tokens, totals.rpm) == (60, 6000, 6)
    # 60 requests at 6 RPM: 6 a minute, the last ones admitted at the start of minute 10.
    assert totals.duration_s == pytest.approx(540)
    # 100 tokens each at 1,000 TPM: 10 a minute, the last ones at the start of minute 6.
    assert plan(cases, [Target(tpm=1000, rpm=600)]).duration_s == pytest.approx(300)
    assert totals.est_cost == pytest.approx(60 * (29 * 0.0015 + 71 * 0.002) / 1000)


def test_a_tiny_tpm_still_limits_requests_as_the_scheduler_does() -> None:
    """Under 167 TPM, 6 per 1,000 rounds to 0: the plan, like the scheduler, keeps 1 RPM
    rather than treating the request limit as absent."""
    cases = [case(index=i, params={"max_tokens": 1}) for i in range(3)]
    [totals] = plan(cases, [Target(tpm=100)]).targets
    assert totals.rpm == 1
    assert totals.duration_s == pytest.approx(120)  # 3 requests at 1 RPM: at 0, 60 and 120 s


def test_rejected_cases_are_not_in_the_totals() -> None:
    """A case that would be refused adds nothing to tokens, cost or requests."""
    result = plan([case(), case(index=1, params={"best_of": 2})], [Target()])
    assert len(result.fatal_rows) == 1
    assert result.targets[0].requests == 1
    with pytest.raises(PreflightError) as info:
        raise_for_fatal(result)
    assert "[t] suites/s.yaml: cases[1].params.best_of" in info.value.problems[0]


def test_every_case_runs_on_every_target() -> None:
    """plan gives one row per case and target, in target order."""
    result = plan(
        [case(index=0), case(index=1)], [Target(name="a"), Target(name="b", model="gpt-4o")]
    )
    assert [(r.target, r.case) for r in result.rows] == [
        ("a", "c0"),
        ("a", "c1"),
        ("b", "c0"),
        ("b", "c1"),
    ]
    assert [t.model for t in result.targets] == ["gpt-35-turbo 0613", "gpt-4o 2024-11-20"]


def test_local_targets_use_their_n_ctx() -> None:
    """A local target's window is its n_ctx and its counts are flagged approximate."""

    @dataclass(frozen=True)
    class Local(Target):
        n_ctx: int = 2048

    result = plan(
        [case(params={"max_tokens": 2030})], [Local(name="local", kind="local", model="local")]
    )
    assert result.rows[0].context_window == 2048
    assert not result.rows[0].fits
    assert "approximate" in result.warnings[0]


def test_table_and_json_show_rows_problems_and_totals() -> None:
    """The table lists each row, each problem with its fix, and totals; the JSON is serialisable."""
    result = plan([case(), case(index=1, params={"echo": True})], [Target(tpm=120_000)])
    table = format_table(result)
    assert "s/c0" in table and "s/c1" in table
    assert "error [t] suites/s.yaml: cases[1].params.echo" in table
    assert "(fix: remove it)" in table
    assert "120,000 TPM / 720 RPM" in table
    data = json.loads(json.dumps(to_json(result)))
    assert data["rows"][0]["prompt_tokens"] == 29
    assert data["rows"][1]["problems"][0]["fatal"] is True
    assert data["totals"]["rejected"] == 1
    assert data["targets"][0]["rpm"] == 720


def test_time_under_tpm_is_a_sliding_minute_not_a_rate() -> None:
    """1.77 minutes' worth of tokens: the first minute's budget admits at once and the rest
    a minute later, so the last request goes at 60 s (a rate would say 106 s, for a run
    that took 63 s); the table says what the figure is."""
    cases = [case(index=i, params={"max_tokens": 71}) for i in range(177)]  # 100 tokens each
    result = plan(cases, [Target(tpm=10_000, rpm=100_000)])
    assert result.duration_s == pytest.approx(60)
    table = format_table(result)
    assert "last request admitted after ~1m 00s at 10,000 TPM" in table
    assert "sliding minute" in table and "the replies' own time on top" in table
    assert "no wait for quota" in format_table(plan(cases[:100], [Target(tpm=10_000, rpm=100_000)]))


def test_last_admission_follows_the_schedulers_books() -> None:
    """Each request is admitted in order as soon as the minute has room, and one larger
    than the whole budget goes alone into an empty window."""
    assert last_admission([], 100, None) == 0
    assert last_admission([60, 60, 60], 100, None) == 120
    assert last_admission([50, 50, 50], 100, None) == 60
    assert last_admission([500, 10], 100, None) == 60
    assert last_admission([1, 1, 1, 1], None, 2) == 60
    assert last_admission([1, 1, 1, 1], 1000, 1) == 180


def test_cost_without_max_tokens_says_the_completion_is_unknown() -> None:
    """With max_tokens the cost is an upper bound (completions at max_tokens); without it
    the completion is unknown and said so, never counted as $0."""
    capped = plan([case(params={"max_tokens": 71})], [Target()])
    assert "≤ $" in format_table(capped)
    open_ended = plan([case(index=i) for i in range(3)], [Target()])
    (totals,) = open_ended.targets
    assert totals.completion_unknown == 3
    assert "+ the completions of 3 case(s) without max_tokens (unknown)" in format_table(open_ended)
    data = to_json(open_ended)
    assert data["targets"][0]["completion_unknown"] == 3
    assert data["rows"][0]["completion_unknown"] is True


def test_a_problem_shared_by_many_cases_is_listed_once_with_a_count() -> None:
    """The same problem on 5 cases is one line naming how many and the first places, in
    the table and in the refusal."""
    cases = [case(index=i, params={"best_of": 2}) for i in range(5)]
    result = plan(cases, [Target()])
    lines = [
        line for line in format_table(result).splitlines() if "best_of" in line and "error" in line
    ]
    assert len(lines) == 1
    assert (
        "— 5 cases: cases[0].params.best_of, cases[1].params.best_of, "
        "cases[2].params.best_of, and 2 more" in lines[0]
    )
    with pytest.raises(PreflightError) as refused:
        raise_for_fatal(result)
    assert len(refused.value.problems) == 1


# --- cases sharing their params (a for_each's rows): what the preflight remembers per mapping

GPT4O = Target(model="gpt-4o", model_version="2024-08-06", tpm=60_000, rpm=360)
JSON_SYSTEM = Message("system", "Answer as JSON with a key 'reply'.", place="defaults.system")
SHARED = {"max_tokens": 60, "temperature": 0, "response_format": {"type": "json_object"}}


def _row(index: int, text: str, params: dict[str, Any], *, turns: int = 1, repeat: int = 1) -> Case:
    later = tuple(Turn((Message("user", f"and {k}?"),), ()) for k in range(1, turns))
    return Case(
        suite="s",
        id=f"c{index}",
        path="suites/s.yaml",
        place=f"cases[0][row {index + 1}]",
        turns=(Turn((JSON_SYSTEM, Message("user", text)), ()), *later),
        params=params,
        repeat=repeat,
    )


def _mixed(params_of: Callable[[dict[str, Any]], dict[str, Any]] | None) -> list[Case]:
    """Plain rows, a multi-turn one, a repeated one, one with special tokens, one over
    max_output, one without the word json, one without max_tokens, one too long."""
    get = params_of or (lambda p: p)
    huge = {**SHARED, "max_tokens": 20_000}
    bare = {"temperature": 0.2}
    return [
        _row(0, "Please repeat case number 0 back to me", get(SHARED)),
        _row(1, "Please repeat case number 1 back to me", get(SHARED), turns=3),
        _row(2, "Please repeat case number 2 back to me", get(SHARED), repeat=4),
        _row(3, "case 3 <|im_end|> in json", get(SHARED)),
        _row(4, "case 4", get(huge)),
        _row(5, "case 5", get(bare)),
        _row(6, "case 6 " + "word " * 130_000, get(SHARED)),
        _row(7, "Please repeat case number 7 back to me", get(SHARED)),
    ]


def test_rows_sharing_their_params_equal_rows_with_their_own() -> None:
    """Each row of cases sharing one params mapping (what the preflight remembers per
    mapping: reserve, tools, price, the params' own problems) equals the row of the same
    case with a fresh copy of its params, problems placed at each case's own place."""
    shared = _mixed(None)
    fresh = _mixed(copy.deepcopy)
    target = GPT4O
    assert [plan_case(c, target) for c in shared] == [plan_case(c, target) for c in fresh]
    row = plan_case(shared[4], target)
    assert [p.place for p in row.problems] == ["cases[0][row 5].params.max_tokens"]


def test_the_table_of_a_mixed_plan_is_as_it_was() -> None:
    """The table of a plan with multi-turn, repeated, refused and warned rows reads as it
    did before the table was laid out with one format per line (pinned text)."""
    table = format_table(plan(_mixed(None), [GPT4O, replace(GPT4O, name="second")]))
    assert table == (Path(__file__).parent / "data" / "plan_mixed.txt").read_text("utf-8")
