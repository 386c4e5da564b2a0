"""Writing what a run is read as: the HTML report, JUnit XML, Markdown and the CI step
summary, the same way for ``azeval run``, ``report``, ``gate``, ``rescore`` and ``diff``.

Every one of them reads only the run record (and a baseline and the gate's decision, both
made from records), so rendering a stored run again gives the same files.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.report.junit import write_junit
from harness.report.markdown import append_step_summary, render_markdown
from harness.report.summarised import DEFAULT_FULL_CASES

if TYPE_CHECKING:
    from harness.gate import GateResult
    from harness.results.store import Run


@dataclass(frozen=True)
class Outputs:
    """Which files to write; a None path is not written.

    ``latest``: a copy of the HTML report (``reports/latest.html``). ``step_summary``:
    append the Markdown to ``$GITHUB_STEP_SUMMARY`` when that variable is set.
    ``full_cases``: past this many cases the HTML report lists passing cases by id.
    """

    html: Path | None = None
    full_cases: int = DEFAULT_FULL_CASES
    latest: Path | None = None
    junit: Path | None = None
    markdown: Path | None = None
    step_summary: bool = False


def write_outputs(
    run: Run, gate: GateResult | None, formats: Outputs, *, baseline: Run | None = None
) -> list[tuple[str, Path]]:
    """Write each format asked for; the (name, path) of each file written (the step summary,
    appended to, is not listed)."""
    from harness.report import write_report

    written: list[tuple[str, Path]] = []
    if formats.html is not None:
        html = write_report(
            run,
            formats.html,
            baseline=baseline,
            full_cases=formats.full_cases,
            latest=formats.latest,
        )
        written.append(("Report", html))
        if formats.latest is not None:
            formats.latest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(html, formats.latest)
    if formats.junit is not None:
        written.append(("JUnit", write_junit(run, formats.junit)))
    # The step summary goes only where $GITHUB_STEP_SUMMARY points: elsewhere it is not
    # rendered at all (it reads the run's results).
    step_summary = formats.step_summary and bool(os.environ.get("GITHUB_STEP_SUMMARY"))
    if formats.markdown is not None or step_summary:
        text = render_markdown(run, gate)
        if formats.markdown is not None:
            formats.markdown.parent.mkdir(parents=True, exist_ok=True)
            formats.markdown.write_text(text, encoding="utf-8")
            written.append(("Markdown", formats.markdown))
        if step_summary:
            append_step_summary(text)
    return written
