"""Markdown summary: per-target table, gate lines, regressions and no injectable model text."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from harness.gate import evaluate
from harness.report.markdown import append_step_summary, code, render_markdown
from tests.factories import failing, result, run_of


def test_table_has_a_row_per_target_with_interval() -> None:
    """Each target gets a row with counts and its pass rate with a Wilson interval."""
    run = run_of(
        [result("a"), failing("b"), result("a", target="gpt4"), result("b", target="gpt4")],
        targets=("gpt35", "gpt4"),
    )
    text = render_markdown(run)
    rows = [line for line in text.splitlines() if line.startswith("| `gpt")]
    assert len(rows) == 2
    assert "| 2 | 1 | 1 | 0 | 0 | 50% (9%–91%) |" in rows[0]
    assert text.startswith("## ❌ azeval: not every case passed")


def test_gate_reasons_and_regressions_are_listed() -> None:
    """A failed gate shows its reasons and a table of changed cases with deltas."""
    baseline = run_of([result("a"), result("b")])
    run = run_of([result("a"), failing("b", reply="Lyon", latency=150.0)])
    gate = evaluate(run, baseline=baseline, fail_on_regression=True)
    text = render_markdown(run, gate)
    assert text.startswith("## ❌ azeval: gate failed (exit 1)")
    assert "`regression: geo/b @gpt35 held in the baseline`" in text
    assert "| regression | `geo/b` | `gpt35` | 1/1 passed | 0/1 passed | 0.0 | +50 ms |" in text
    assert "- Paris\n+ Lyon" in text


def test_passing_gate_is_green() -> None:
    """A gate that held shows a pass mark."""
    run = run_of([result("a")])
    assert render_markdown(run, evaluate(run)).startswith("## ✅ azeval: gate passed")


def test_model_text_cannot_inject_markup() -> None:
    """HTML, links, pipes and backticks from a reply stay inside code spans or fences."""
    nasty = "<img src=x onerror=alert(1)> [click](https://evil) | `` ` ``\n# heading"
    run = run_of([failing("b", message=nasty, reply=nasty)])
    text = render_markdown(run)
    outside_code = re.sub(r"(`+).*?\1", "", text)
    assert "<img" not in outside_code
    assert "](https://evil)" not in outside_code
    assert "\n# heading" not in text


def test_code_span_survives_backticks_and_pipes() -> None:
    """A code span's fence outgrows the text's backticks; in a table, pipes are escaped."""
    assert code("a `b` c") == "`` a `b` c ``"
    assert code("x | y", in_table=True) == "`x \\| y`"
    assert code("line1\nline2") == "`line1 line2`"


def test_regression_summary_escapes_names_as_html() -> None:
    """Names shown inside the HTML <details> block are HTML-escaped."""
    baseline = run_of([result("<b>x</b>")])
    run = run_of([failing("<b>x</b>")])
    text = render_markdown(run, evaluate(run, baseline=baseline, fail_on_regression=True))
    assert "Reply of geo/&lt;b&gt;x&lt;/b&gt;" in text


def test_flaky_cases_are_listed_with_their_interval() -> None:
    """A case mixed across repeats appears under Flaky with its interval."""
    run = run_of([result("a"), dataclasses.replace(failing("a"), repeat=1)])
    assert "| `geo/a` | `gpt35` | 1/2 | 9%–91% |" in render_markdown(run)


def test_not_passed_is_listed_case_by_case_not_in_completion_order() -> None:
    """Results that finished out of order are listed by case, target and repeat."""
    finished = [failing("b", repeat=1), failing("a", repeat=2), failing("a", repeat=1)]
    text = render_markdown(run_of(finished), evaluate(run_of(finished)))
    listed = re.findall(r"`geo/(\w)@gpt35#(\d)`", text)
    assert listed == [("a", "1"), ("a", "2"), ("b", "1")]


def test_step_summary_appends_when_set(tmp_path: Path) -> None:
    """The summary is appended to $GITHUB_STEP_SUMMARY, and nothing happens when unset."""
    file = tmp_path / "summary.md"
    file.write_text("earlier\n", encoding="utf-8")
    assert append_step_summary("# hi", {"GITHUB_STEP_SUMMARY": str(file)}) == file
    assert file.read_text(encoding="utf-8") == "earlier\n# hi\n"
    assert append_step_summary("# hi", {}) is None
