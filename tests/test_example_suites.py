"""The example suites in suites/: they load, validate and show every feature they promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.suite import Case, Suite, find_suite_files, load_suite, load_suites

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
SUITE_FILES = sorted(SUITES_DIR.glob("*.yaml"))


def _cases() -> list[Case]:
    return [case for suite in load_suites([SUITES_DIR]) for case in suite.cases]


def _checks(case: Case) -> set[str]:
    return {e.check for turn in case.turns for e in turn.expectations}


def test_the_folder_holds_the_example_suites() -> None:
    """suites/ holds 6-8 suite files and its data/ and schemas/ are not taken for suites."""
    found = find_suite_files([SUITES_DIR])
    assert 6 <= len(found) <= 8
    assert sorted(found) == SUITE_FILES


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: p.stem)
def test_each_example_suite_loads_and_validates(path: Path) -> None:
    """Every example suite passes the loader's schema, rendering and check validation."""
    suite: Suite = load_suite(path)
    assert suite.id == path.stem
    assert suite.description
    assert suite.cases
    for case in suite.cases:
        assert any(turn.expectations for turn in case.turns), case.key


def test_cases_are_few_enough_for_a_quick_run() -> None:
    """25-40 cases with small max_tokens keep `azeval run suites/` well under two minutes."""
    cases = _cases()
    assert 25 <= len(cases) <= 40
    assert len({case.key for case in cases}) == len(cases)
    for case in cases:
        limit = case.params.get("max_tokens") or case.params.get("max_completion_tokens")
        assert limit is not None and limit <= 80, case.key


def test_examples_cover_how_people_use_chat_models() -> None:
    """System message, grounding, few-shot, JSON schema, multi-turn, length, data rows,
    streaming."""
    cases = _cases()
    by_suite = {case.suite for case in cases}
    assert {"qa-basics", "guardrails-tax", "grounding", "few-shot", "extraction"} <= by_suite
    assert all(case.messages[0].role == "system" for case in cases)
    few_shot = [c for c in cases if any(m.role == "assistant" for m in c.messages)]
    assert few_shot
    assert any(len(case.turns) > 2 for case in cases)
    assert any(case.budget for case in cases)
    schema_formats = [
        c for c in cases if c.params.get("response_format", {}).get("type") == "json_schema"
    ]
    assert schema_formats
    assert all(
        isinstance(c.params["response_format"]["json_schema"]["schema"], dict)
        for c in schema_formats
    )
    assert any(c.params.get("response_format", {}).get("type") == "json_object" for c in cases)
    length_cases = [
        c
        for c in cases
        for e in c.turns[0].expectations
        if e.check == "finish_reason" and "length" in str(e.arg)
    ]
    assert length_cases
    assert sum(c.id.startswith("tax-") for c in cases) >= 5
    used = set().union(*(_checks(c) for c in cases))
    assert {"json_schema", "content_filter", "finish_reason", "icontains", "regex"} <= used
    assert any(c.params.get("stream") is True for c in cases)  # a streamed, timed case
    assert {"max_ttft_ms", "min_tokens_per_s"} <= used
