"""JUnit XML for CI systems: one testcase per case × target, read from the run record.

One ``<testsuite>`` per suite × target (named ``suite [target]``), each testcase named by
the case id with ``classname`` ``suite.target``. A case's repeats fold into its testcase:
it passes only when every repeat passed, and a failure states the pass count. Failures
carry the first failing check as their message and every check in their body; an API error
is an ``<error>`` (its kind and message); a case no check verified is ``<skipped>``, never
a pass. The reply goes to the testcase's ``<system-out>``.

Model text can hold anything, so every string is stripped of what XML 1.0 cannot carry.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.results.record import CaseResult
from harness.results.stats import wilson_interval
from harness.results.store import Run
from harness.results.summary import TargetTally

# XML 1.0 allows tab, newline, carriage return and the ranges below; nothing else.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MAX_TEXT_CHARS = 8000
MAX_MESSAGE_CHARS = 1000


def xml_text(value: Any, limit: int = MAX_TEXT_CHARS) -> str:
    """A string XML 1.0 can carry: forbidden characters replaced, length bounded."""
    text = _NOT_XML.sub("\ufffd", str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(results: list[CaseResult]) -> str:
    return f"{sum(r.duration_ms for r in results) / 1000:.3f}"


def _check_lines(result: CaseResult) -> list[str]:
    lines = []
    for check in result.checks:
        where = f" ({check.place})" if check.place else ""
        scoring = f" [{check.scoring()}]" if check.scoring() else ""
        lines.append(f"[{check.status}] {check.check}{where}{scoring}: {check.message}")
    return lines


def _body(results: list[CaseResult]) -> str:
    parts = []
    for r in results:
        head = f"repeat {r.repeat}: {r.verdict}" + (f", {r.scoring()}" if r.scoring() else "")
        if r.error is not None:
            head += f" ({r.error.kind}: {r.error.message})"
        parts.append("\n".join([head, *(f"  {line}" for line in _check_lines(r))]))
    return "\n".join(parts)


def _testcase(results: list[CaseResult]) -> tuple[ET.Element, str]:
    """The testcase element and its outcome: passed, failure, error or skipped."""
    results = sorted(results, key=lambda r: r.repeat)
    first = results[0]
    element = ET.Element(
        "testcase",
        {
            "name": xml_text(first.case),
            "classname": xml_text(f"{first.suite}.{first.target}"),
            "time": _seconds(results),
            "assertions": str(sum(len(r.checks) for r in results)),
        },
    )
    if first.path:
        element.set("file", xml_text(first.path))
    verdicts = [r.verdict for r in results]
    n, passed = len(verdicts), verdicts.count("pass")
    kind = "passed"
    if passed < n:
        if all(v == "unchecked" for v in verdicts):
            kind = "skipped"
        elif "fail" in verdicts or "unchecked" in verdicts:
            kind = "failure"
        else:
            kind = "error"
    if kind != "passed":
        culprit = next(r for r in results if r.verdict != "pass")
        message = culprit.problem()
        if n > 1:
            low, high = wilson_interval(passed, n)
            message = (
                f"passed {passed}/{n} repeats (Wilson 95% {low:.0%}–{high:.0%}); "
                f"repeat {culprit.repeat}: {message}"
            )
        attrs = {"message": xml_text(message, MAX_MESSAGE_CHARS)}
        if kind == "error":
            attrs["type"] = xml_text(culprit.error.kind if culprit.error else "error")
        elif kind == "failure":
            attrs["type"] = "check" if culprit.checks else "unchecked"
        child = ET.SubElement(element, kind, attrs)
        if kind != "skipped":
            child.text = xml_text(_body(results))
    reply = first.reply
    if reply:
        ET.SubElement(element, "system-out").text = xml_text(reply)
    return element, kind


def _cost_text(cost: float | None) -> str:
    return "unknown" if cost is None else f"{cost:.8f}".rstrip("0").rstrip(".")


def _properties(parent: ET.Element, values: dict[str, Any]) -> None:
    props = ET.SubElement(parent, "properties")
    for name, value in values.items():
        if value not in (None, "", []):
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            ET.SubElement(props, "property", {"name": name, "value": xml_text(text, 500)})


def _timestamp(run: Run) -> str:
    raw = run.meta.started_at or ""
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


class _SuiteOnTarget:
    """One ``<testsuite>`` in the making: its testcases, counts, time and summary."""

    def __init__(self, target: str) -> None:
        self.elements: list[ET.Element] = []
        self.counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        self.seconds = 0.0
        self.tally = TargetTally(target)

    def add(self, results: list[CaseResult]) -> None:
        """One case's results (its repeats) as a testcase."""
        element, kind = _testcase(results)
        self.elements.append(element)
        self.seconds += float(element.get("time", "0"))
        self.counts["tests"] += 1
        plural = {"failure": "failures", "error": "errors", "skipped": "skipped"}
        if kind in plural:
            self.counts[plural[kind]] += 1
        for result in results:
            self.tally.add(result)


def _suites(run: Run) -> dict[tuple[str, str], _SuiteOnTarget]:
    """Each suite on each target, in the order their first results came. A run of one
    repeat per case makes each testcase as its result passes and keeps no result."""
    suites: dict[tuple[str, str], _SuiteOnTarget] = {}

    def suite_of(r: CaseResult) -> _SuiteOnTarget:
        if (r.suite, r.target) not in suites:
            suites[(r.suite, r.target)] = _SuiteOnTarget(r.target)
        return suites[(r.suite, r.target)]

    if run.summary.repeats <= 1:
        for r in run.results:
            suite_of(r).add([r])
        return suites
    cases: dict[tuple[str, str, str], list[CaseResult]] = defaultdict(list)
    for r in run.results:
        suite_of(r)
        cases[(r.suite, r.target, r.case)].append(r)
    for (suite, target, _), results in cases.items():
        suites[(suite, target)].add(results)
    return suites


def render_junit(run: Run) -> ET.ElementTree:
    """The JUnit document of a run."""
    timestamp = _timestamp(run)
    root = ET.Element("testsuites", {"name": xml_text(f"azeval {run.id}")})
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    total_time = 0.0
    for index, ((suite, target), made) in enumerate(_suites(run).items()):
        counts, elements, seconds = made.counts, made.elements, made.seconds
        attrs = {
            "name": xml_text(f"{suite} [{target}]"),
            "id": str(index),
            "package": xml_text(suite),
            "hostname": xml_text(socket.gethostname() or "localhost"),
            "time": f"{seconds:.3f}",
            **{k: str(v) for k, v in counts.items()},
        }
        if timestamp:
            attrs["timestamp"] = timestamp
        element = ET.SubElement(root, "testsuite", attrs)
        info = run.meta.target(target)
        stats = made.tally.summary()
        _properties(
            element,
            {
                "azeval.run_id": run.id,
                "azeval.git_commit": run.meta.git_commit,
                "azeval.target": target,
                "azeval.kind": info and info.kind,
                "azeval.deployment": info and info.deployment,
                "azeval.model": info and info.model,
                "azeval.model_version": info and info.model_version,
                "azeval.api_version": info and info.api_version,
                "azeval.reported_models": list(stats.models),
                "azeval.system_fingerprints": list(stats.system_fingerprints),
                # USD this suite cost on the target; "unknown" when its model has no price.
                "azeval.cost_usd": _cost_text(stats.cost_usd),
            },
        )
        element.extend(elements)
        for key in totals:
            totals[key] += counts[key]
        total_time += seconds
    root.set("time", f"{total_time:.3f}")
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(run: Run, path: Path) -> Path:
    """Write the run's JUnit XML to ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    render_junit(run).write(path, encoding="utf-8", xml_declaration=True)
    return path
