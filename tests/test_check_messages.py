"""Failure messages say what was expected and what came back, in every output alike."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.checks.text import char_diff, difference
from harness.testing import Action, Deployment, FakeAzure, Match, Rule
from tests.conftest import azeval
from tests.factories import GPT35_CONFIG
from tests.test_checks import outcome, text

KEY = "sk-test-messages-0123"


def test_equals_shows_both_texts_and_a_character_diff() -> None:
    """A short equals failure shows the expected text, the reply and where they differ."""
    result = outcome("equals", "42", text("42."))
    assert result.status == "fail"
    assert result.message == (
        "reply differs from the expected text: expected '42', got '42.' (diff: '42{+.+}')"
    )


def test_iequals_ignores_case_but_shows_the_real_texts() -> None:
    """iequals compares ignoring case, and its failure shows both texts as written."""
    assert outcome("iequals", "PARIS", text("paris")).status == "pass"
    result = outcome("iequals", "Paris", text("Lyon"))
    assert "expected 'Paris', got 'Lyon'" in result.message
    assert "(any case)" in result.message


def test_char_diff_marks_removed_and_added_characters() -> None:
    """Removed characters read [-x-], added ones {+y+}, common ones as they are."""
    assert char_diff("colour", "color") == "colo[-u-]r"
    assert char_diff("Paris", "Lyon") == "[-Paris-]{+Lyon+}"
    assert char_diff("cat", "cats") == "cat{+s+}"


def test_long_texts_show_the_first_difference_with_its_line_and_column() -> None:
    """Past the short limit, the message says where the texts first differ (character,
    line, column) and shows a little of each around it, not both texts whole."""
    expected = "Dear customer,\n" + "thank you for writing. " * 6 + "We refund in 5 days."
    actual = expected.replace("5 days", "7 days")
    message = difference(expected, actual)
    at = expected.index("5 days")
    assert f"first difference at character {at + 1} (line 2, column {at - 14}) of" in message
    assert "expected …'you for writing. We refund in 5 days.'" in message
    assert "got …'you for writing. We refund in 7 days.'" in message
    assert len(message) < 250


def test_regex_failure_shows_the_reply() -> None:
    """A regex that matched nothing says so with the reply it was tried on."""
    result = outcome("regex", r"\b100\b", text("Water boils at 212 F."))
    assert result.message == "no match for ['\\\\b100\\\\b'] in the reply 'Water boils at 212 F.'"


def test_substring_failures_show_the_reply() -> None:
    """contains_any and not_contains failures show the reply (not_contains: around the hit)."""
    assert (
        "the reply: 'About a week.'"
        in outcome("contains_any", ["5 days", "five days"], text("About a week.")).message
    )
    message = outcome("inot_contains", "sorry", text("I am SORRY, I cannot help.")).message
    assert message == "reply contains ['sorry'], which it must not: 'I am SORRY, I cannot help.'"


def test_not_json_shows_the_reply() -> None:
    """A reply that is not JSON is shown with the parse error."""
    message = outcome("is_json", True, text("Sure! Here it is.")).message
    assert message == "reply is not JSON (Expecting value at line 1 column 1): 'Sure! Here it is.'"


def test_a_reply_is_quoted_as_written_so_secrets_keep_their_spelling() -> None:
    """Backslashes and quotes in a reply are not re-spelled (a repr would double them), so
    the redactor still finds a secret the model echoed; line ends show as ⏎."""
    message = outcome("contains", "ok", text('key sk"a\\b-1\nbye')).message
    assert 'sk"a\\b-1⏎bye' in message


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write):
    """A suite whose equals check fails on the fake Azure server's reply."""
    rules = [Rule(Match(last_user="answer"), Action(content="The answer is 41."))]
    with FakeAzure(
        [Deployment("gpt35", model="gpt-35-turbo")], rules=rules, api_keys=(KEY,)
    ) as fake:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("FAKE_AZURE_ENDPOINT", fake.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        write("azeval.toml", GPT35_CONFIG)
        write(
            "suites/math.yaml",
            """
            suite: math
            cases:
              - id: sum
                prompt: What is the answer?
                expect: {equals: The answer is 42.}
            """,
        )
        yield tmp_path


def test_the_same_message_in_cli_junit_markdown_and_html(project: Path, capsys) -> None:
    """The equals failure reads the same, with both texts and the diff, on the console, in
    JUnit, in the Markdown summary and in the HTML report's data."""
    wanted = (
        "expected 'The answer is 42.', got 'The answer is 41.' (diff: 'The answer is 4[-2-]{+1+}.')"
    )
    assert azeval("run", "suites", "--junit", "junit.xml", "--markdown", "summary.md") == 1
    console = capsys.readouterr()
    assert wanted in console.out + console.err
    failure = ET.parse(project / "junit.xml").getroot().find(".//failure")
    assert failure is not None
    assert wanted in (failure.get("message") or "") + (failure.text or "")
    assert wanted in (project / "summary.md").read_text()
    html = (project / "reports" / "latest.html").read_text()
    data = re.search(r'<script type="application/json" id="azeval-data">(.*?)</script>', html, re.S)
    assert data
    assert any(wanted in check[2] for check in json.loads(data.group(1))["checks"])
