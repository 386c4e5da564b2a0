"""The plan's rows held compactly: the same rows, totals and problems as a row per case."""

from __future__ import annotations

import dataclasses
import gc
import tracemalloc

from harness.config import TargetConfig
from harness.models import load_catalogue
from harness.preflight import plan, plan_case, problem_lines, spec_for
from harness.preflight.rows import PlanRows, Texts
from harness.report.plan import format_table, to_json
from harness.suite.model import Case, Message, Turn

SYSTEM = Message("system", "Answer briefly.")


def _case(index: int, *turns: str, suite: str = "s", **extra: object) -> Case:
    params = extra.pop("params", {"max_tokens": 50})
    return Case(
        suite=suite,
        id=f"c{index}",
        path=f"suites/{suite}.yaml",
        place=f"cases[{index}]",
        turns=tuple(
            Turn(
                messages=(SYSTEM, Message("user", text)) if k == 0 else (Message("user", text),),
                expectations=(),
            )
            for k, text in enumerate(turns or (f"Question {index}?",))
        ),
        params=params,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def _mixed() -> list[Case]:
    """Plain cases, a conversation, a repeat, no max_tokens, a refused one, a warned one."""
    return [
        _case(0),
        _case(1, "First?", "Second?", "Third?"),
        _case(2, repeat=3),
        _case(3, params={}),
        _case(4, "<|im_start|>user"),  # special tokens: refused (fatal)
        _case(5, params={"max_tokens": 100_000}),  # over the model's output: refused
        _case(6, "Long " * 5000, params={"max_tokens": 10}),  # over the context: refused
        _case(7, "Hi?", "A turn that will not fit " * 100, budget=300, history="stop"),  # warned
        _case(8, suite="other"),
        _case(9, "Ünïcödé \ud800 case?", suite="other"),
    ]


TARGETS = [
    TargetConfig("known", "azure", "gpt-35-turbo", "0613", tpm=2000, rpm=12),
    TargetConfig("unknown", "azure", "not-a-model"),
]


def _row_per_case(cases: list[Case]) -> list:
    catalogue = load_catalogue()
    specs = [spec_for(t, catalogue)[0] for t in TARGETS]
    return [
        plan_case(case, target, catalogue, spec=spec)
        for target, spec in zip(TARGETS, specs, strict=True)
        for case in cases
    ]


def test_the_compact_plan_gives_every_row_as_plan_case_made_it():
    """On a mixed suite (conversations, repeats, no max_tokens, errors and warnings, two
    suites, a known and an unknown model) the plan's rows, read by index, by iteration and
    by slice, equal plan_case's row of each case on each target, target by target."""
    cases = _mixed()
    expected = _row_per_case(cases)
    checked = plan(cases, TARGETS, load_catalogue())
    assert isinstance(checked.rows, PlanRows)
    assert list(checked.rows) == expected
    assert [checked.rows[i] for i in range(len(expected))] == expected
    assert checked.rows[-1] == expected[-1] and checked.rows[3:7] == tuple(expected[3:7])
    assert checked.rows == expected  # a sequence of rows compares by its rows
    assert any(row.fatal for row in expected) and any(
        row.problems and not row.fatal for row in expected
    )


def test_the_compact_plan_has_the_totals_problems_and_table_of_a_row_per_case():
    """Totals per target (cases, requests, tokens, cost, time under quota, unknown
    completions), fatal rows, problem lines, the `azeval plan` table and its JSON are those
    of the same plan holding a row per case."""
    cases = _mixed()
    expected = _row_per_case(cases)
    checked = plan(cases, TARGETS, load_catalogue())
    whole = dataclasses.replace(checked, rows=tuple(expected))
    assert checked.fatal_rows == whole.fatal_rows == tuple(r for r in expected if r.fatal)
    assert problem_lines(checked) == problem_lines(whole)
    assert problem_lines(checked, fatal_only=True) == problem_lines(whole, fatal_only=True)
    assert format_table(checked) == format_table(whole)
    assert to_json(checked) == to_json(whole)
    for totals in checked.targets:
        sent = [r for r in expected if r.target == totals.target and not r.fatal]
        assert totals.cases == len(sent)
        assert totals.requests == sum(r.requests for r in sent)
        assert totals.prompt_tokens == sum(sum(r.turn_tokens) * r.repeat for r in sent)
        assert totals.charged_tokens == sum(r.charged_tokens for r in sent)
        assert totals.completion_unknown == sum(r.completion_unknown for r in sent)
        costs = [r.est_cost for r in sent]
        assert totals.est_cost == (
            None if None in costs else sum(c or 0.0 for c in costs)  # type: ignore[misc]
        )
    assert checked.targets[0].duration_s is not None and checked.targets[0].duration_s > 0


def test_a_compact_plan_holds_far_less_than_a_row_per_case():
    """3,000 cases on two targets: the plan's rows hold under 200 bytes a row (a PlanRow
    per case and target held about 750)."""
    cases = [_case(n) for n in range(3000)]
    catalogue = load_catalogue()
    plan(cases, TARGETS, catalogue)  # the encoding loaded, each message's count cached
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        checked = plan(cases, TARGETS, catalogue)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(checked.rows) == 6000
    assert held / len(checked.rows) < 200


def test_texts_hold_strings_as_utf8_and_give_them_back():
    """Texts gives back each string as it was added, a lone surrogate included, by index
    (negative from the end) and slice, and refuses an index past its end."""
    texts = Texts()
    words = ["case-1", "", "ünï", "\ud800x", "cases[0][row 7]"]
    for word in words:
        texts.append(word)
    assert list(texts) == words and texts[-1] == words[-1] and texts[1:3] == words[1:3]
    try:
        texts[len(words)]
    except IndexError:
        pass
    else:
        raise AssertionError("an index past the end was answered")


def test_a_plans_keys_are_its_rows_keys_targets_and_repeats():
    """Plan.row_keys() gives each row's case key, target and repeat in the rows' order, for the
    compact plan and a plan holding a row per case alike."""
    checked = plan(_mixed(), TARGETS, load_catalogue())
    expected = [(row.key, row.target, row.repeat) for row in _row_per_case(_mixed())]
    assert list(checked.row_keys()) == expected
    whole = dataclasses.replace(checked, rows=tuple(checked.rows))
    assert list(whole.row_keys()) == expected
    assert ("other/c9", "unknown", 1) in expected and ("s/c2", "known", 3) in expected
