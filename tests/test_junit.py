"""JUnit XML: one testcase per case × target, valid against the JUnit schema CI reads."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from harness.report.junit import write_junit
from harness.results.record import CaseResult
from tests.conftest import JUNIT_SCHEMA
from tests.factories import erroring, failing, result, run_of, unchecked


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(JUNIT_SCHEMA)


def write(tmp_path: Path, results: list[CaseResult], **kw: object) -> ET.Element:
    path = write_junit(run_of(results, **kw), tmp_path / "out" / "junit.xml")  # type: ignore[arg-type]
    return ET.parse(path).getroot()


def test_every_outcome_validates_against_the_schema(
    tmp_path: Path, schema: xmlschema.XMLSchema
) -> None:
    """Passes, failures, errors, skips and repeats together give a schema-valid file."""
    results = [
        result("ok"),
        failing("bad"),
        erroring("down"),
        unchecked("nothing"),
        result("rep", repeat=0),
        failing("rep", repeat=1),
    ]
    path = write_junit(run_of(results), tmp_path / "junit.xml")
    schema.validate(path)


def test_one_testcase_per_case_and_target(tmp_path: Path) -> None:
    """Two targets give two testsuites, each with one testcase per case."""
    results = [result("a"), result("b"), result("a", target="gpt4"), result("b", target="gpt4")]
    root = write(tmp_path, results, targets=("gpt35", "gpt4"))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["geo [gpt35]", "geo [gpt4]"]
    assert [c.get("classname") for c in root.iter("testcase")] == [
        "geo.gpt35",
        "geo.gpt35",
        "geo.gpt4",
        "geo.gpt4",
    ]
    assert root.get("tests") == "4"


def test_failure_message_is_the_first_failing_check(tmp_path: Path) -> None:
    """A failed case's message names the check and what it found; the body lists all checks."""
    root = write(tmp_path, [failing("bad")])
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == "check contains: reply lacks ['Paris']"
    assert "[fail] contains (cases[0].expect.contains)" in (failure.text or "")
    assert root.find("testsuite").get("failures") == "1"  # type: ignore[union-attr]


def test_error_carries_kind_and_message(tmp_path: Path) -> None:
    """An API error is an <error> with its kind as type."""
    root = write(tmp_path, [erroring("down")])
    error = root.find("testsuite/testcase/error")
    assert error is not None
    assert error.get("type") == "timeout"
    assert error.get("message") == "timeout: no answer in 60 s"


def test_unchecked_is_skipped_not_passed(tmp_path: Path) -> None:
    """A case no check verified is reported as skipped."""
    root = write(tmp_path, [unchecked("nothing")])
    skipped = root.find("testsuite/testcase/skipped")
    assert skipped is not None
    assert skipped.get("message") == "no check verified this case"


def test_repeats_fold_into_one_testcase_with_the_pass_count(tmp_path: Path) -> None:
    """Repeats give one testcase that fails unless all passed, stating the count."""
    results = [result("rep", repeat=0), failing("rep", repeat=1), result("rep", repeat=2)]
    root = write(tmp_path, results)
    cases = root.findall("testsuite/testcase")
    assert len(cases) == 1
    failure = cases[0].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("passed 2/3 repeats (Wilson 95% 21%–94%)")


def test_model_text_cannot_break_the_xml(tmp_path: Path, schema: xmlschema.XMLSchema) -> None:
    """Control characters, markup and quotes in a reply still give a valid document."""
    nasty = 'bad \x00\x1b[31m </failure><x a="1"> ]]> \ud800 & "q"'
    path = write_junit(run_of([failing("bad", message=nasty, reply=nasty)]), tmp_path / "j.xml")
    schema.validate(path)
    failure = ET.parse(path).getroot().find("testsuite/testcase/failure")
    assert failure is not None
    assert "</failure>" in failure.get("message", "")


def test_properties_name_the_target_and_reported_model(tmp_path: Path) -> None:
    """Each testsuite records the deployment and the model the service reported."""
    root = write(tmp_path, [result("a")])
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["azeval.deployment"] == "gpt35"
    assert props["azeval.reported_models"] == "gpt-35-turbo"
    assert "endpoint" not in " ".join(props)


def test_the_vendored_schema_rejects_what_ci_would(schema: xmlschema.XMLSchema) -> None:
    """The schema is not vacuous: a count that is no number and an unknown element fail it."""
    assert not schema.is_valid('<testsuites><testsuite name="s" tests="x"/></testsuites>')
    bogus = '<testsuites><testsuite name="s" tests="1"><testcase name="n"><bogus/></testcase>'
    assert not schema.is_valid(bogus + "</testsuite></testsuites>")
