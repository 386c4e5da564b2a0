"""A large run's report: past the limit, cases that did not pass are in full and the rest
are listed by id, each pointing at its line of results.jsonl."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_config
from harness.errors import ConfigError
from harness.outputs import Outputs, write_outputs
from harness.report import render_html, write_report
from harness.report.rows import build_rows, columns_for, comparisons
from harness.results.baseline import load_reference
from harness.results.record import CaseResult
from harness.results.store import RESULTS_FILE, load_run
from harness.testing.runs import LargeRun, case_id, write_large_run
from tests.conftest import azeval, embedded_data, raw_data
from tests.factories import browser_result, write_records

# 40 cases: 3, 13, 23, 33 fail; 7, 27 error; 5, 20, 35 are flaky (two repeats).
FAILED = ["ticket-3", "ticket-13", "ticket-23", "ticket-33"]
ERRORED = ["ticket-7", "ticket-27"]
FLAKY = ["ticket-5", "ticket-20", "ticket-35"]


@pytest.fixture
def large(tmp_path: Path) -> LargeRun:
    """A 40-case run (9 of them not passing), written as a large one is."""
    written = write_large_run(
        tmp_path / "runs" / "run-large", 40, fail_every=10, error_every=20, flaky_every=15
    )
    assert list(written.failed) == FAILED
    assert list(written.errored) == ERRORED
    assert list(written.flaky) == FLAKY
    return written


def journal_line(run_dir: Path, number: int) -> dict[str, Any]:
    """Line ``number`` (from 1) of a run's results.jsonl, parsed."""
    lines = (run_dir / RESULTS_FILE).read_text(encoding="utf-8").splitlines()
    return json.loads(lines[number - 1])


def brief(html: str) -> dict[str, Any]:
    """The page's listed cases: the journal links (in its data) and the rows (in a block of
    their own)."""
    match = re.search(r'<script type="application/json" id="azeval-brief">(.*?)</script>', html)
    assert match
    return {**raw_data(html)["brief"], "rows": json.loads(match.group(1))}


def test_within_the_limit_the_page_is_as_it_always_was(large: LargeRun) -> None:
    """A run of no more cases than the limit renders exactly as with no limit at all."""
    run = load_run(large.path)
    assert render_html(run, full_cases=40) == render_html(run, full_cases=10_000)
    assert "brief" not in raw_data(render_html(run, full_cases=40))
    assert 'id="summarised"' not in render_html(run, full_cases=40)


def test_past_the_limit_failures_are_in_full_and_passes_listed(large: LargeRun) -> None:
    """Past the limit each failing, erroring and flaky case is a full row, worst first; each
    other case is listed by id, its verdict and its journal line, in case order."""
    html = render_html(load_run(large.path), full_cases=10)
    data = raw_data(html)
    full = [row["k"].removeprefix("scale/") for row in data["rows"]]
    # Errors first; a flaky case is also a failure: the failures in case order after.
    assert full == ERRORED + sorted(FAILED + FLAKY, key=lambda c: int(c.split("-")[1]))
    listed = brief(html)["rows"]
    assert len(listed) == 31
    assert listed[0] == ["scale/ticket-0", [["pass", 1, 1, 1]]]
    assert [row[0] for row in listed[:3]] == ["scale/ticket-0", "scale/ticket-1", "scale/ticket-2"]
    for key, cells in listed:
        (verdict, passed, repeats, line) = cells[0]
        case = key.removeprefix("scale/")
        assert (verdict, passed, repeats) == ("pass", 1, 1)
        assert line == large.line_of(case)
        assert journal_line(large.path, line)["case"] == case


def test_the_page_says_what_is_listed_and_where_the_full_records_are(large: LargeRun) -> None:
    """The note above the cases names the counts, the limit's setting and option, the
    journal, and what a browser can and cannot do with it."""
    html = render_html(load_run(large.path), full_cases=10)
    note = html.split('id="summarised">', 1)[1].split("</p>", 1)[0]
    text = " ".join(note.split())
    assert "This run has 40 cases, more than the 10 a report shows in full" in text
    assert "<code>report_full_cases</code>" in text
    assert "<code>--report-full-cases</code>" in text
    assert "Shown in full: the 9 cases that did not pass or changed." in text
    assert "Listed by id and verdict: the 31 that passed every repeat unchanged." in text
    assert "a browser opens that file as text but cannot scroll it to a line" in text
    assert "sed -n" in text
    assert "run-large" in text


def test_more_failures_than_the_limit_lists_the_rest_after_them(large: LargeRun) -> None:
    """With fewer places than failures, the worst are in full; the others are listed first,
    with their flags, so the failures filter still finds them."""
    html = render_html(load_run(large.path), full_cases=4)
    data = raw_data(html)
    assert [row["k"] for row in data["rows"]] == [
        "scale/ticket-7",
        "scale/ticket-27",
        "scale/ticket-3",
        "scale/ticket-5",
    ]
    listed = brief(html)["rows"]
    assert [(row[0], row[2]) for row in listed[:5]] == [
        ("scale/ticket-13", ["failed"]),
        ("scale/ticket-20", ["failed", "flaky"]),
        ("scale/ticket-23", ["failed"]),
        ("scale/ticket-33", ["failed"]),
        ("scale/ticket-35", ["failed", "flaky"]),
    ]
    flaky = listed[1][1][0]
    assert flaky == ["flaky", 1, 2, large.line_of("ticket-20"), large.line_of("ticket-20", 1)]
    assert all(len(row) == 2 for row in listed[5:])  # no flags: passed
    text = " ".join(html.split('id="summarised">', 1)[1].split("</p>", 1)[0].split())
    assert "Shown in full: the worst 4 of the 9 cases that did not pass or changed." in text
    assert "Listed by id and verdict: the other 5 of them, then the 31 that passed" in text


def test_links_are_relative_to_each_page_the_report_is_written_as(large: LargeRun) -> None:
    """report.html in the run's folder links to results.jsonl beside it; its copy at
    reports/latest.html to runs/<id>/results.jsonl."""
    reports = large.path.parent.parent
    formats = Outputs(html=large.path / "report.html", latest=reports / "latest.html", full_cases=5)
    write_outputs(load_run(large.path), None, formats)
    html = (reports / "latest.html").read_text(encoding="utf-8")
    assert html == (large.path / "report.html").read_text(encoding="utf-8")
    assert brief(html)["journals"] == {
        "report.html": ["results.jsonl"],
        "latest.html": ["runs/run-large/results.jsonl"],
    }


def two_sided(path: Path, target_of: dict[str, str]) -> list[CaseResult]:
    """Cases c0..c19 on gpt35; ``target_of`` gives some another verdict."""
    return [
        browser_result(f"c{i}", "gpt35", target_of.get(f"c{i}", "pass"), f"reply {i}")  # type: ignore[arg-type]
        for i in range(20)
    ]


def test_against_a_baseline_changed_cases_are_in_full(tmp_path: Path) -> None:
    """Against a baseline, a regression and a fix are in full, the unchanged passes listed
    with the baseline's verdict and its own journal's line, linked from the run's page."""
    meta = {"run_id": "x", "targets": [{"name": "gpt35"}]}
    base_results = two_sided(tmp_path, {"c4": "fail"})
    baseline = write_records(tmp_path / "base", base_results, {**meta, "run_id": "base"})
    run = write_records(tmp_path / "run", two_sided(tmp_path, {"c2": "fail"}), meta)
    html = render_html(run, baseline=baseline, full_cases=5)
    data = raw_data(html)
    assert [c["label"] for c in data["columns"]] == ["gpt35", "baseline · gpt35"]
    assert [row["k"] for row in data["rows"]] == ["demo/c2", "demo/c4"]
    assert "regressed" in data["rows"][0]["f"]
    listed = brief(html)["rows"]
    assert len(listed) == 18
    key, cells = listed[0]
    assert key == "demo/c0"
    assert cells == [["pass", 1, 1, 1], ["pass", 1, 1, 1]]
    assert brief(html)["journals"] == {"report.html": ["results.jsonl", "../base/results.jsonl"]}


def test_a_baseline_file_lists_its_verdicts_without_lines(tmp_path: Path) -> None:
    """A baseline file (blessed) has no journal: listed cases show its verdict, no line."""
    meta = {"run_id": "x", "targets": [{"name": "gpt35"}]}
    base = write_records(tmp_path / "base", two_sided(tmp_path, {}), {**meta, "run_id": "b"})
    assert azeval("bless", str(base.path), "-o", str(tmp_path / "baseline.json")) == 0
    blessed = load_reference(tmp_path / "baseline.json")
    run = write_records(tmp_path / "run", two_sided(tmp_path, {"c2": "fail"}), meta)
    html = render_html(run, baseline=blessed, full_cases=5)
    listed = brief(html)["rows"]
    assert listed[0] == ["demo/c0", [["pass", 1, 1, 1], ["pass", 1, 1]]]
    assert brief(html)["journals"] == {"report.html": ["results.jsonl", None]}


def test_a_case_id_with_an_at_sign_is_read_back_whole(tmp_path: Path) -> None:
    """A key is suite/case@target#repeat; a case id holding "@" still finds its target."""
    results = [browser_result(f"mail@{i}", t, "pass", "ok") for i in range(6) for t in ("a", "b")]
    meta = {"run_id": "at", "targets": [{"name": "a"}, {"name": "b"}]}
    run = write_records(tmp_path / "at", results, meta)
    listed = brief(render_html(run, full_cases=3))["rows"]
    assert listed[0] == ["demo/mail@0", [["pass", 1, 1, 1], ["pass", 1, 1, 2]]]


def test_a_run_where_every_case_passed_says_so(tmp_path: Path) -> None:
    """Past the limit with nothing failing, the note says every case passed and is listed."""
    results = [browser_result(f"c{i}", "gpt35", "pass", "fine") for i in range(30)]
    run = write_records(tmp_path / "all-pass", results, {"targets": [{"name": "gpt35"}]})
    html = render_html(run, full_cases=10)
    text = " ".join(html.split('id="summarised">', 1)[1].split("</p>", 1)[0].split())
    assert "Every case passed every repeat unchanged: each is listed by id and verdict." in text
    assert "Shown in full" not in text
    assert raw_data(html)["rows"] == []
    assert len(brief(html)["rows"]) == 30


def test_results_that_are_not_the_journals_are_all_in_full(large: LargeRun) -> None:
    """A run whose results differ from its journal (no line to point at) is shown whole."""
    run = load_run(large.path)
    run.results = run.results[:-1]
    assert "brief" not in raw_data(render_html(run, full_cases=10))


def test_write_report_streams_the_same_page(large: LargeRun) -> None:
    """The file written is the page render_html returns."""
    run = load_run(large.path)
    out = write_report(run, large.path / "report.html", full_cases=10)
    assert out.read_text(encoding="utf-8") == render_html(run, full_cases=10)


@pytest.mark.parametrize("value", ["0", "-5", '"many"', "2.5"])
def test_report_full_cases_setting_is_validated(tmp_path: Path, value: str) -> None:
    """[settings] report_full_cases must be a positive whole number: a ConfigError naming
    the file and the key."""
    config = tmp_path / "azeval.toml"
    config.write_text(f"[settings]\nreport_full_cases = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert f"{config}: settings.report_full_cases: must be a positive whole number" in str(
        err.value
    )


def test_report_command_takes_the_limit_from_settings_and_option(
    large: LargeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """azeval report lists passes past [settings] report_full_cases, and --report-full-cases
    overrides it; 0 is refused with exit 2, naming the option."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "azeval.toml").write_text("[settings]\nreport_full_cases = 10\n")
    page = large.path / "report.html"
    assert azeval("report", str(large.path)) == 0
    assert len(brief(page.read_text())["rows"]) == 31
    assert azeval("report", str(large.path), "--report-full-cases", "100") == 0
    assert "brief" not in raw_data(page.read_text())
    assert azeval("report", str(large.path), "--report-full-cases", "0") == 2
    assert "--report-full-cases" in capsys.readouterr().err


def test_case_ids_are_written_in_order(large: LargeRun) -> None:
    """The journal the synthetic run writes has case n at line_of(case n)."""
    for n in (0, 5, 6, 39):
        assert journal_line(large.path, large.line_of(case_id(n)))["case"] == case_id(n)
    assert journal_line(large.path, large.line_of("ticket-5", 1))["repeat"] == 1


def test_a_large_reports_judges_are_the_runs_own_figures(large: LargeRun) -> None:
    """Past the limit only the cases in full are read, so the judges' table is the one the
    run recorded in run.json when it finished (over every result)."""
    meta = json.loads((large.path / "run.json").read_text())
    meta["judging"] = {
        "grader": {
            "model": "gpt-4o",
            "model_version": "2024-08-06",
            "checks": 40,
            "requests": 120,
            "prompt_tokens": 9000,
            "completion_tokens": 800,
            "cost": 0.25,
            "uncertain": 2,
            "errors": 1,
            "self_agreement": 0.9,
            "templates": {},
        }
    }
    (large.path / "run.json").write_text(json.dumps(meta))
    html = render_html(load_run(large.path), full_cases=10)
    table = html.split('<table class="summary judges">', 1)[1].split("</table>", 1)[0]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table)
    assert cells[:4] == ["gpt-4o 2024-08-06", "40", "120", "9,000 / 800"]
    assert "90%" in cells


def test_cells_made_as_results_pass_show_what_held_results_show(tmp_path: Path) -> None:
    """A run of one repeat per case has its cells made as its results pass, keeping none:
    the rows, messages, cells and diffs are those made from the results held together."""
    results = [
        browser_result(f"c{i}", t, "fail" if (i + len(t)) % 3 == 0 else "pass", f"{t} says {i}")
        for i in range(12)
        for t in ("gpt35", "gpt4o")
    ]
    results.append(browser_result("only-one", "gpt4o", "error", None))
    base_results = [browser_result(f"c{i}", "gpt35", "pass", f"before {i}") for i in range(14)]
    meta = {"run_id": "x", "targets": [{"name": "gpt35"}, {"name": "gpt4o"}]}
    run = write_records(tmp_path / "run", results, meta)
    base = write_records(tmp_path / "base", base_results, {**meta, "targets": [{"name": "gpt35"}]})
    cols = columns_for(run, base)
    compared = comparisons(run, base, cols)

    def shown(repeated: tuple[bool, bool]) -> dict[str, Any]:
        data = build_rows(run.results, base.results, cols, compared, repeated=repeated)
        return embedded_data(f'<script type="application/json" id="azeval-data">'
                             f"{json.dumps(data)}</script>")  # fmt: skip

    held, made = shown((True, True)), shown((False, False))
    assert made["rows"] == held["rows"]
    flags = {row["k"]: row["f"] for row in made["rows"]}
    assert "regressed" in flags["demo/c1"]
    assert "errored" in flags["demo/only-one"]
    assert flags["demo/c13"] == []  # the baseline's alone: removed
    assert made["rows"][0]["m"] == [["user", "Tell me about c1."]]
