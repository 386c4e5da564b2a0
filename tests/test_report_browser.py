"""The HTML report in a real headless Chromium: it renders, filters, pages, and runs no model text.

Chromium comes from Debian (``scripts/install-chromium``). Without it the tests skip, except
under CI, where a missing browser is a failure rather than a silent pass.
"""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from harness.report import write_report
from harness.results.record import CaseResult, CheckResult, TurnResult
from harness.results.store import Journal, load_run, write_meta

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SCRIPT_PAYLOAD = "<script>document.title='pwned'</script>"
IMG_PAYLOAD = "<img src=x onerror=\"document.title='pwned'\">"
BREAKOUT_PAYLOAD = "</script><script>document.title='pwned'</script>"
LINK_PAYLOAD = "<a href=\"javascript:document.title='pwned'\">click</a>"


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing under CI: run scripts/install-chromium")
        pytest.skip(f"{CHROMIUM} not installed (scripts/install-chromium installs it)")
    return CHROMIUM


def result(case: str, target: str, verdict: str, reply: str | None, **fields: Any) -> CaseResult:
    status = {"pass": "pass", "fail": "fail"}.get(verdict, "n/a")
    turn = TurnResult(
        request={"messages": [{"role": "user", "content": f"Tell me about {case}."}]},
        response=None,
        reply=reply,
        finish_reason="stop" if reply is not None else None,
        usage={"prompt_tokens": 20, "completion_tokens": 9},
        latency_ms=400.0,
        checks=(
            CheckResult("contains", status, f"contains said {status}"),
            CheckResult("content_filter", "n/a", "no content filter results from this target"),
        )
        if verdict != "error"
        else (),
    )
    return CaseResult("demo", case, target, fields.pop("repeat", 0), verdict, (turn,), **fields)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-target run with one case of each kind, model-text attacks, and two pages of passes."""
    path = tmp_path_factory.mktemp("browser") / "run-browser"
    results = []
    for t in ("gpt35", "gpt4o"):
        results += [
            result("xss-script", t, "fail", SCRIPT_PAYLOAD + " " + BREAKOUT_PAYLOAD),
            result("xss-img", t, "fail", IMG_PAYLOAD + " " + LINK_PAYLOAD),
            result(
                "boom",
                t,
                "error",
                None,
                error={"kind": "timeout", "message": "no answer in 30 s"},
            ),
            result("wobbly", t, "pass", "sometimes", repeat=0),
            result("wobbly", t, "fail" if t == "gpt4o" else "pass", "sometimes not", repeat=1),
        ]
        results += [result(f"fine-{i:02d}", t, "pass", f"All good number {i}.") for i in range(60)]
    results.append(result("slipped", "gpt35", "pass", "Refund approved for order 1234."))
    results.append(result("slipped", "gpt4o", "fail", "Refund denied for order 1234."))
    journal = Journal(path)
    for r in results:
        journal.append(r)
    journal.close()
    write_meta(
        path,
        {
            "run_id": "run-browser",
            "started_at": "2025-03-01T10:00:00Z",
            "azeval_version": "0.1.0",
            "git_commit": "abc123",
            "suites": [{"id": "demo", "path": "suites/demo.yaml", "cases": 65}],
            "targets": [{"name": "gpt35"}, {"name": "gpt4o"}],
            "status": "complete",
        },
    )
    return write_report(load_run(path), path / "report.html")


def run_chromium(chromium: Path, profile: Path, *args: str) -> str:
    profile.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(chromium), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def dom(chromium: Path, report: Path) -> dict[str, str]:
    """The DOM after the page's script ran, for each view (the URL hash picks the view)."""
    views = {
        "all": "",
        "failures": "#filter=failures",
        "regressions": "#filter=regressions",
        "flaky": "#filter=flaky",
        "errors": "#filter=errors",
        "search": "#q=DENIED",
        "xss": "#filter=failures&expand=1",
        "page2": "#page=2",
    }

    def dump(name: str) -> tuple[str, str]:
        url = report.as_uri() + views[name]
        return name, run_chromium(chromium, report.parent / f"profile-{name}", "--dump-dom", url)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(dump, views))


def shown_cases(html: str) -> list[str]:
    """The case keys of the rows on the current page, in order."""
    return re.findall(r'<tr class="case[^"]*"><td class="tw">.*?<span>([^<]*?) </span>', html)


def test_page_renders_rows_with_failures_first(dom: dict[str, str]) -> None:
    """The script ran: the first page holds 50 rows, problems above plain passes."""
    cases = shown_cases(dom["all"])
    assert len(cases) == 50
    assert cases[0] == "demo/slipped"
    assert set(cases[:5]) == {
        "demo/slipped",
        "demo/boom",
        "demo/xss-script",
        "demo/xss-img",
        "demo/wobbly",
    }
    assert "showing 1–50 of 65" in dom["all"]


def test_second_page(dom: dict[str, str]) -> None:
    """#page=2 shows the remaining 15 rows."""
    assert len(shown_cases(dom["page2"])) == 15
    assert "page 2 of 2" in dom["page2"]


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        (
            "failures",
            {"demo/slipped", "demo/boom", "demo/xss-script", "demo/xss-img", "demo/wobbly"},
        ),
        ("regressions", {"demo/slipped"}),
        ("flaky", {"demo/wobbly"}),
        ("errors", {"demo/boom"}),
        ("search", {"demo/slipped"}),
    ],
)
def test_filters_and_search(dom: dict[str, str], view: str, expected: set[str]) -> None:
    """Each filter (and a case-insensitive search) shows exactly the matching rows."""
    assert set(shown_cases(dom[view])) == expected
    pressed = re.findall(r'data-filter="(\w+)" class="on"', dom[view])
    assert pressed == ["all" if view == "search" else view]


def test_model_text_never_runs(dom: dict[str, str]) -> None:
    """Replies with script, onerror and javascript: payloads show as text and never execute."""
    html = dom["xss"]
    assert re.search(r"<title>azeval · run-browser</title>", html)
    assert "pwned</title>" not in html
    # The payloads are on the page, as escaped text inside the reply boxes.
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=\"document.title='pwned'\"&gt;" in html
    assert "&lt;a href=\"javascript:document.title='pwned'\"&gt;click&lt;/a&gt;" in html
    # No element was made from them.
    assert not re.search(r"<img\b", html)
    assert not re.search(r"<a\b[^>]*javascript:", html)
    assert len(re.findall(r"<script\b", html)) == 2


def test_checks_show_na_apart_from_pass(dom: dict[str, str]) -> None:
    """Expanded rows list each check; n/a has its own look, not a pass's."""
    html = dom["xss"]
    assert '<span class="badge b-na">n/a</span>' in html
    assert '<span class="badge b-fail">✗ fail</span>' in html
    assert "timeout: no answer in 30 s" in html
    assert "<del>denied </del>" in html or "<del>approved </del>" in html


def test_screenshot(chromium: Path, report: Path) -> None:
    """A full-window screenshot of the expanded failures view is a real, non-trivial PNG."""
    shot = report.parent / "report.png"
    run_chromium(
        chromium,
        report.parent / "profile-shot",
        f"--screenshot={shot}",
        "--window-size=1400,1000",
        report.as_uri() + "#filter=failures&expand=1",
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 30_000
