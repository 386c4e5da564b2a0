"""The HTML report in a real headless Chromium: it renders, filters, pages, and runs no model text.

Chromium comes from Debian (``scripts/install-chromium``). Without it the tests skip, except
under CI, where a missing browser is a failure rather than a silent pass.
"""

from __future__ import annotations

import dataclasses
import html as markup
import itertools
import json
import re
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness import api
from harness.outputs import Outputs, write_outputs
from harness.report import write_report
from harness.results.record import CaseResult, CheckResult, ErrorInfo, Truncation, TurnResult
from harness.results.store import Run, load_run
from harness.runner.engine import RunOptions
from harness.runner.retry import RetryPolicy
from harness.streamed import StreamStats
from harness.testing import Action, Deployment, FakeAzure, Match, Rule
from harness.testing.runs import LargeRun, write_large_run
from tests.conftest import SCRIPT_PAYLOAD, run_chromium
from tests.factories import browser_result, conversation, write_records

pytestmark = pytest.mark.browser

IMG_PAYLOAD = "<img src=x onerror=\"document.title='pwned'\">"
BREAKOUT_PAYLOAD = "</script><script>document.title='pwned'</script>"
LINK_PAYLOAD = "<a href=\"javascript:document.title='pwned'\">click</a>"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-target run with one case of each kind, model-text attacks, and two pages of passes."""
    path = tmp_path_factory.mktemp("browser") / "run-browser"
    results = []
    for t in ("gpt35", "gpt4o"):
        results += [
            browser_result("xss-script", t, "fail", SCRIPT_PAYLOAD + " " + BREAKOUT_PAYLOAD),
            browser_result("xss-img", t, "fail", IMG_PAYLOAD + " " + LINK_PAYLOAD),
            browser_result(
                "boom",
                t,
                "error",
                None,
                error=ErrorInfo("timeout", "no answer in 30 s"),
            ),
            browser_result("wobbly", t, "pass", "sometimes", repeat=0),
            browser_result(
                "wobbly", t, "fail" if t == "gpt4o" else "pass", "sometimes not", repeat=1
            ),
        ]
        results += [
            browser_result(f"fine-{i:02d}", t, "pass", f"All good number {i}.") for i in range(60)
        ]
    results.append(browser_result("slipped", "gpt35", "pass", "Refund approved for order 1234."))
    results.append(browser_result("slipped", "gpt4o", "fail", "Refund denied for order 1234."))
    meta = {
        "run_id": "run-browser",
        "started_at": "2025-03-01T10:00:00Z",
        "azeval_version": "0.1.0",
        "git_commit": "abc123",
        "suites": [{"id": "demo", "path": "suites/demo.yaml", "cases": 65}],
        "targets": [{"name": "gpt35"}, {"name": "gpt4o"}],
        "status": "complete",
    }
    return write_report(write_records(path, results, meta), path / "report.html")


@pytest.fixture(scope="module")
def dom(chromium: Path, report: Path) -> dict[str, str]:
    """The DOM after the page's script ran, for each view (the URL hash picks the view)."""
    views = {
        "all": "",
        "failures": "#filter=failures",
        "differs": "#filter=differs",
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
    """The script ran: the first page holds 50 rows, problems above plain passes: errors,
    then cases the two targets did not fare the same on, then the other failures."""
    cases = shown_cases(dom["all"])
    assert len(cases) == 50
    assert cases[:5] == [
        "demo/boom",
        "demo/slipped",
        "demo/wobbly",
        "demo/xss-img",
        "demo/xss-script",
    ]
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
        # wobbly held on gpt35 and is flaky on gpt4o: the two peers did not fare the same.
        ("differs", {"demo/slipped", "demo/wobbly"}),
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


def test_peer_targets_are_compared_not_ordered(dom: dict[str, str]) -> None:
    """Two targets of one run are peers: a comparison ("gpt35 vs gpt4o", "only gpt35
    passed"), no regression badge or filter, which only a baseline can give."""
    html = dom["all"]
    assert "gpt35 vs gpt4o" in html
    assert re.search(r"only gpt35 passed <strong>1</strong>", html)
    assert re.search(r"flaky on either <strong>1</strong>", html)
    assert "gpt35 → gpt4o" not in html
    assert 'data-filter="regressions"' not in html
    assert "badge b-regressed" not in html
    assert '<span class="badge b-differs">targets differ</span>' in html


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


def screenshot(chromium: Path, report: Path, name: str, view: str, size: str) -> bytes:
    """A screenshot of ``report`` at ``view`` (a URL hash), saved beside it as ``name``."""
    shot = report.parent / name
    run_chromium(
        chromium,
        report.parent / "profile-shot",
        f"--screenshot={shot}",
        f"--window-size={size}",
        report.as_uri() + view,
    )
    return shot.read_bytes()


def test_screenshot(chromium: Path, report: Path) -> None:
    """A full-window screenshot of the expanded failures view is a real, non-trivial PNG."""
    data = screenshot(chromium, report, "report.png", "#filter=failures&expand=1", "1400,1000")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 30_000


# --- word diffs, computed by the page when a row opens ------------------------------------

LONG = "word " * 4000  # the CLI's cap is 4,000 tokens a side; past it, remove-all/add-all
DIFF_PAIRS = [
    ("Refund denied for order 1234.", "Refund approved for order 1234."),
    (
        "The refund for order 1234 was approved, thanks.",
        "The refund for order 1235 was declined; sorry.\nCall us.",
    ),
    ("Überweisung fällig", "Überweisung nicht fällig"),
    ("<b>old</b> text & more", SCRIPT_PAYLOAD + " text & more"),
    (LONG + "end", LONG + "word finish"),
    ("", "From nothing."),
]


def diff_boxes(dom: str) -> list[str]:
    """The inner HTML of each word-diff box, in page order."""
    return re.findall(r'<div class="diff">(.*?)</div>', dom, re.S)


def side(box: str, drop: str) -> str:
    """One side of a diff box as text: drop ``ins`` (before) or ``del`` (after) runs."""
    kept = re.sub(rf"<{drop}>.*?</{drop}>", "", box, flags=re.S)
    return markup.unescape(re.sub(r"</?(ins|del)>", "", kept))


def expanded(chromium: Path, path: Path, results: list[CaseResult]) -> str:
    """The DOM of the report of ``results`` (on gpt35 and gpt4o) with every row opened."""
    meta = {"run_id": path.name, "targets": [{"name": "gpt35"}, {"name": "gpt4o"}]}
    report = write_report(write_records(path, results, meta), path / "report.html")
    return run_chromium(chromium, path / "profile", "--dump-dom", report.as_uri() + "#expand=1")


@pytest.fixture(scope="module")
def diff_dom(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every row of a two-target run expanded: the page has word-diffed each pair of replies."""
    path = tmp_path_factory.mktemp("diffs") / "run-diffs"
    results = []
    for i, (before, after) in enumerate([*DIFF_PAIRS, ("Same words.", "Same words.")]):
        results.append(browser_result(f"pair-{i}", "gpt35", "pass", before))
        results.append(browser_result(f"pair-{i}", "gpt4o", "pass", after))
    return expanded(chromium, path, results)


def test_page_word_diff_marks_the_changed_words(diff_dom: str) -> None:
    """Only the changed words are marked: removed ones in <del>, added ones in <ins>."""
    boxes = diff_boxes(diff_dom)
    assert boxes[0] == "Refund <del>denied </del><ins>approved </ins>for order 1234."
    assert boxes[2] == "Überweisung <ins>nicht </ins>fällig"
    assert boxes[5] == "<ins>From nothing.</ins>"


def test_page_word_diff_rebuilds_both_replies(diff_dom: str) -> None:
    """Dropping <ins> gives the first reply's words, dropping <del> the second reply exactly."""
    boxes = diff_boxes(diff_dom)
    assert len(boxes) == len(DIFF_PAIRS)
    for box, (before, after) in zip(boxes, DIFF_PAIRS, strict=True):
        assert side(box, "del") == after
        assert side(box, "ins").split() == before.split()


def test_page_word_diff_keeps_model_text_as_text(diff_dom: str) -> None:
    """Markup in replies is diffed as text: no element but <ins>/<del> appears in a diff."""
    box = diff_boxes(diff_dom)[3]
    assert set(re.findall(r"<(\w+)", box)) <= {"ins", "del"}
    assert "&lt;<del>b</del><ins>script</ins>&gt;" in box
    assert side(box, "del").startswith(SCRIPT_PAYLOAD)
    assert "pwned</title>" not in diff_dom


def test_page_word_diff_past_the_token_cap_is_remove_all_add_all(diff_dom: str) -> None:
    """Over 4,000 tokens a side the page does not diff word by word: one <del>, one <ins>."""
    box = diff_boxes(diff_dom)[4]
    assert box.count("<del>") == 1
    assert box.count("<ins>") == 1
    assert box.startswith("<del>word word")


def test_identical_replies_say_so(diff_dom: str) -> None:
    """Equal replies get no diff box, just a note that they are identical."""
    page = diff_dom.split("<script", 1)[0]  # the script's own text names the note too
    assert page.count('<div class="muted">identical replies</div>') == 1


# --- two fake deployments that answer differently: the done-criterion ------------

SUITE = """
suite: geo
cases:
  - id: france
    prompt: "The capital of France is Paris."
    expect: {contains: Paris}
  - id: italy
    prompt: "The capital of Italy is Rome."
    expect: {contains: Rome}
"""
KEY = "sk-report-0123456789abcdef"


def run_on(root: Path, endpoint: str, deployment: str) -> Run:
    """Run the geo suite on target ``assistant``, pointed at ``deployment``."""
    project = root / deployment
    (project / "suites").mkdir(parents=True)
    (project / "suites" / "geo.yaml").write_text(SUITE)
    config = textwrap.dedent(
        f"""
        [targets.assistant]
        kind = "azure"
        endpoint = "{endpoint}"
        deployment = "{deployment}"
        model = "gpt-4o"
        """
    )
    (project / "azeval.toml").write_text(config)
    prepared = api.prepare([project / "suites"], (), project / "azeval.toml")
    options = RunOptions(reports_dir=project / "reports", retry=RetryPolicy(max_retries=0))
    return api.run(prepared, options).run


@pytest.fixture(scope="module")
def drifted(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A baseline run on one fake deployment, a run on another that answers differently."""
    root = tmp_path_factory.mktemp("drift")
    deployments = [
        Deployment("v0513", model="gpt-4o-2024-05-13"),
        Deployment("v0806", model="gpt-4o-2024-08-06"),
    ]
    rules = [
        Rule(Match(deployment="v0806", last_user="Italy"), Action(content="I cannot say.")),
        Rule(
            Match(deployment="v0806", last_user="France"),
            Action(content="Sure: the capital of France is Paris."),
        ),
    ]
    with (
        pytest.MonkeyPatch.context() as env,
        FakeAzure(deployments, rules=rules, api_keys=(KEY,)) as fake,
    ):
        env.setenv("AZURE_OPENAI_API_KEY", KEY)
        baseline = run_on(root, fake.endpoint, "v0513")
        run = run_on(root, fake.endpoint, "v0806")
    return write_report(run, root / "report.html", baseline=baseline)


def test_changed_deployment_report_in_the_browser(chromium: Path, drifted: Path) -> None:
    """Regression badge, drift notice and word diffs are in the DOM after the page's script ran."""
    dom = run_chromium(
        chromium, drifted.parent / "profile", "--dump-dom", drifted.as_uri() + "#expand=1"
    )
    assert shown_cases(dom) == ["geo/italy", "geo/france"]  # the regression sorts first
    italy = dom.split('<tr class="case open">')[1]
    assert '<span class="badge b-regressed">regression</span>' in italy.split("</tr>")[0]
    assert dom.count('class="badge b-regressed"') == 1
    drift = re.search(r'<section class="notice drift" role="alert">(.*?)</section>', dom, re.S)
    assert drift
    # The gate's own sentence (harness/results/drift.py).
    assert (
        "target 'assistant' reported model was gpt-4o-2024-05-13 in the baseline, "
        "now gpt-4o-2024-08-06" in drift.group(1)
    )
    assert "reported system_fingerprint" in drift.group(1)
    boxes = diff_boxes(dom)
    assert boxes[0] == "<del>Echo: The capital of Italy is Rome</del><ins>I cannot say</ins>."
    assert boxes[1] == (
        "<del>Echo</del><ins>Sure</ins>: <del>The </del><ins>the </ins>capital of France is Paris."
    )


def test_changed_deployment_screenshot(chromium: Path, drifted: Path) -> None:
    """The expanded regressions view screenshots as a real page (look at drift.png to judge)."""
    data = screenshot(chromium, drifted, "drift.png", "#expand=1", "1400,1300")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 30_000


# --- a conversation, an unchecked case and an errored one, opened -------------------------


@pytest.fixture(scope="module")
def opened(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every row expanded: a conversation on two targets, an unchecked case, an errored one."""
    path = tmp_path_factory.mktemp("opened") / "run-opened"
    results = [
        truncated(
            conversation("gpt35", ["Hello Ada!", "Your name is Ada.", "Ada, you live in Lisbon."])
        ),
        conversation("gpt4o", ["Nice to meet you.", None], error="no answer in 30 s"),
    ]
    for t in ("gpt35", "gpt4o"):
        results.append(browser_result("quiet", t, "unchecked", "Nothing to check here."))
    return expanded(chromium, path, results)


def truncated(result: CaseResult) -> CaseResult:
    """The conversation with its last turn sent without the first exchange (drop_oldest)."""
    cut = Truncation(((1, "user"), (2, "assistant")), tokens=14, budget=60)
    last = dataclasses.replace(result.turns[-1], truncated=cut)
    return dataclasses.replace(result, turns=(*result.turns[:-1], last))


def test_a_dropped_history_is_said_under_the_card(opened: str) -> None:
    """The card of a conversation whose last turn went without its oldest messages says
    which were dropped and how many tokens they took; the other target's card does not."""
    detail = opened.split("<span>chat/name </span>", 1)[1].split('<tr class="case', 1)[0]
    notes = re.findall(r'<div class="meta history">(.*?)</div>', detail)
    assert [markup.unescape(n) for n in notes] == [
        "turn 3: history truncated (drop_oldest): 2 message(s) dropped (#2 user, "
        "#3 assistant), 14 tokens, to fit the budget of 60"
    ]


def card_texts(dom: str, case: str) -> list[str]:
    """The visible text of each reply card of an expanded case, in column order."""
    detail = dom.split(f"<span>{case} </span>", 1)[1].split('<tr class="case', 1)[0]
    cards = re.findall(r'<div class="card[^"]*">(.*?)<div class="meta">', detail, re.S)
    return [markup.unescape(re.sub(r"<[^>]+>", " ", c)) for c in cards]


def test_a_conversation_shows_each_turn_of_each_target(opened: str) -> None:
    """Each card lists every turn: what the user asked, then that target's own reply."""
    gpt35, gpt4o = card_texts(opened, "chat/name")
    assert re.search(
        r"turn 1 .*Hello Ada!.*turn 2 · user .*What is my name\? .*"
        r"Your name is Ada\..*turn 3 · user .*Where do I live\? .*Lisbon",
        gpt35,
        re.S,
    )
    assert "Nice to meet you." in gpt4o
    assert "Hello Ada!" not in gpt4o  # another target's reply never stands in for this one's
    messages = opened.split(">Messages<", 1)[1].split(">Replies<", 1)[0]
    assert "Hi, my name is Ada." in messages
    assert "What is my name?" not in messages  # later turns are in the cards


def test_an_errored_turn_shows_its_error_and_no_reply(opened: str) -> None:
    """The turn that timed out says 'no reply', and the error is spelled out."""
    gpt4o = card_texts(opened, "chat/name")[1]
    assert re.search(r"turn 2 · user .*What is my name\? .*no reply", gpt4o, re.S)
    assert "timeout: no answer in 30 s" in gpt4o
    assert "error" in gpt4o.split("turn 1", 1)[0]  # the card's verdict badge


def test_an_unchecked_case_is_not_shown_as_passed(opened: str) -> None:
    """A case whose checks were all n/a is 'unchecked', with each check marked n/a."""
    row = opened.split("<span>demo/quiet </span>", 1)[1].split("</tr>", 1)[0]
    assert row.count('<span class="badge b-unchecked">unchecked</span>') == 2
    assert "b-pass" not in row
    for card in card_texts(opened, "demo/quiet"):
        assert "Nothing to check here." in card
        assert "n/a contains" in " ".join(card.split())


LINES_SCRIPT = """<script>
document.body.setAttribute("data-key-lines", Array.from(
  document.querySelectorAll(".key-cell > span:first-child"),
  function (span) { return span.getClientRects().length; }).join(","));
</script>"""


def test_case_keys_are_not_broken_mid_name(chromium: Path, report: Path) -> None:
    """In a narrow window, with replies crowding the row, a case key stays on one line.

    The key column broke anywhere, so a 10,000-case report read "suite-0/case-001" + "80".
    The page's own CSP forbids our measuring script, so a copy without it is measured.
    """
    page = report.read_text(encoding="utf-8")
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    probe = report.parent / "lines.html"
    probe.write_text(page.replace("</body>", LINES_SCRIPT + "</body>"), encoding="utf-8")
    dom = run_chromium(
        chromium,
        report.parent / "profile-lines",
        "--window-size=500,800",
        "--dump-dom",
        probe.as_uri() + "#expand=1",
    )
    lines = re.search(r'data-key-lines="([\d,]+)"', dom)
    assert lines
    assert set(lines.group(1).split(",")) == {"1"}


# --- everything a reply is: tool calls, message fields, repeats, errors, case order ------

WEATHER_ARGS = '{"city": "Paris", "unit": "celsius", "days": [1, 2]}'


def tool_call_result(target: str) -> CaseResult:
    """A reply that only called a tool, after few-shot turns that show name, tool_calls and
    tool_call_id, as the runner records it: the reply text is None, the calls are in the
    response body."""
    messages = [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "name": "ada_lovelace", "content": "Weather in Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_fewshot_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_fewshot_1", "content": '{"temp": 21}'},
        {"role": "user", "content": "And in Paris?"},
    ]
    call = {
        "id": "call_42",
        "type": "function",
        "function": {"name": "get_weather", "arguments": WEATHER_ARGS},
    }
    response = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
            }
        ]
    }
    turn = TurnResult(
        request={"messages": messages},
        response=response,
        reply=None,
        finish_reason="tool_calls",
        usage={"prompt_tokens": 40, "completion_tokens": 12},
        latency_ms=300.0,
        checks=(CheckResult("tool_calls", "pass", "called get_weather"),),
    )
    return CaseResult("tools", "weather", target, 0, "pass", (turn,))


def repeated_error(target: str) -> CaseResult:
    """A case whose one turn failed: the turn and the case carry the same error."""
    error = ErrorInfo("server_error", "the server had an error", status=500)
    turn = TurnResult(
        request={"messages": [{"role": "user", "content": "Hi"}]},
        response=None,
        reply=None,
        finish_reason=None,
        usage={},
        latency_ms=None,
        checks=(),
        error=error,
    )
    return CaseResult("demo", "broken", target, 0, "error", (turn,), error=error)


def streamed_result(target: str) -> CaseResult:
    """A streamed case the asynchronous content filter ended after 67 characters."""
    stats = StreamStats(
        ttft_ms=312.4,
        total_ms=900.0,
        chunks=30,
        first_content_ms=312.4,
        gap_p50_ms=20.2,
        gap_p95_ms=24.9,
        gap_max_ms=41.0,
        output_tokens=24,
        tokens_from="usage",
        tokens_per_s=41.3,
        shown_before_block=67,
    )
    turn = TurnResult(
        request={"messages": [{"role": "user", "content": "Tell me a story."}], "stream": True},
        response=None,
        reply="Once upon a time",
        finish_reason="content_filter",
        usage={"prompt_tokens": 9, "completion_tokens": 24},
        latency_ms=900.0,
        checks=(CheckResult("max_ttft_ms", "pass", "first token after 312 ms ≤ 500 ms"),),
        stream=stats,
    )
    return CaseResult("demo", "streamed", target, 0, "pass", (turn,))


@pytest.fixture(scope="module")
def shows_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with tool calls, message fields, 5 repeats, an error and numbered cases."""
    path = tmp_path_factory.mktemp("shows") / "run-shows"
    results = []
    for t in ("gpt35", "gpt4o"):
        results.append(tool_call_result(t))
        results.append(repeated_error(t))
        results.append(streamed_result(t))
        for i in range(5):
            verdict = "pass" if i < 3 or t == "gpt35" else "fail"
            results.append(browser_result("repeated", t, verdict, f"reply {i}", repeat=i))
        for n in (10, 2, 1):
            results.append(browser_result(f"row-{n}", t, "pass", f"row {n}"))
    meta = {"run_id": path.name, "targets": [{"name": "gpt35"}, {"name": "gpt4o"}]}
    return write_report(write_records(path, results, meta), path / "report.html")


@pytest.fixture(scope="module")
def shows_all(chromium: Path, shows_report: Path) -> str:
    """The DOM of that report with every row opened."""
    return run_chromium(
        chromium, shows_report.parent / "profile", "--dump-dom", shows_report.as_uri() + "#expand=1"
    )


def test_a_tool_call_reply_shows_the_function_and_its_arguments(shows_all: str) -> None:
    """A reply that only called tools shows each call's name and pretty JSON arguments,
    not "no reply"; the case row's snippet names the function."""
    gpt35, gpt4o = card_texts(shows_all, "tools/weather")
    for card in (gpt35, gpt4o):
        assert "no reply" not in card
        assert "get_weather" in card
        assert "call_42" in card
        assert '"city": "Paris",\n  "unit": "celsius"' in card  # indented, one key a line
    row = shows_all.split("<span>tools/weather </span>", 1)[1].split("</tr>", 1)[0]
    assert "calls get_weather" in row


def test_messages_show_name_tool_calls_and_tool_call_id(shows_all: str) -> None:
    """The conversation shows a message's name, an assistant turn's tool calls, and the
    tool_call_id a tool message answers."""
    detail = shows_all.split("<span>tools/weather </span>", 1)[1].split('<tr class="case', 1)[0]
    messages = markup.unescape(
        re.sub(r"<[^>]+>", " ", detail.split(">Messages<", 1)[1].split(">Replies<", 1)[0])
    )
    assert re.search(r"user\s+ada_lovelace\s+Weather in Rome\?", messages)
    assert re.search(r"assistant\s+tool call\s+get_weather\s+call_fewshot_1", messages)
    assert '"city": "Rome"' in messages
    assert re.search(r"tool\s+answers call_fewshot_1\s+\{\"temp\": 21\}", messages)


def test_repeats_show_their_wilson_interval(shows_all: str) -> None:
    """A repeated case shows its pass count and Wilson 95% interval: 3 of 5 is 23%–88%, 5 of
    5 is 57%–100%."""
    gpt35, gpt4o = card_texts(shows_all, "demo/repeated")
    assert "5/5 repeats passed, 95% CI 57%–100%" in gpt35
    assert "3/5 repeats passed, 95% CI 23%–88%" in gpt4o
    assert 'title="3 of 5 repeats passed · 95% CI 23%–88%"' in shows_all


def test_an_error_on_the_turn_and_the_case_is_shown_once(shows_all: str) -> None:
    """The same error on a case and its turn makes one error box, not two."""
    for card in card_texts(shows_all, "demo/broken"):
        assert card.count("server_error (HTTP 500): the server had an error") == 1


def test_a_streamed_case_says_how_it_arrived(shows_all: str) -> None:
    """An opened streamed case shows its TTFT, rate, gaps and what the filter let through;
    the target table has the TTFT and tokens/s columns."""
    detail = shows_all.split("<span>demo/streamed </span>", 1)[1].split('<tr class="case', 1)[0]
    lines = re.findall(r'<div class="meta stream">(.*?)</div>', detail)
    assert len(lines) == 2  # one per target's card
    assert markup.unescape(lines[0]) == (
        "streamed: TTFT 312 ms, 41.3 tokens/s (usage), gaps p50/p95/max 20 / 25 / 41 ms, "
        "67 characters shown before the filter's block"
    )
    assert "TTFT p50 / p95" in shows_all


def test_cases_are_in_natural_order(shows_all: str) -> None:
    """Numbered cases sort as numbers: row-1, row-2, row-10 (not row-1, row-10, row-2)."""
    rows = [c for c in shown_cases(shows_all) if c.startswith("demo/row-")]
    assert rows == ["demo/row-1", "demo/row-2", "demo/row-10"]


def test_shows_all_screenshot(chromium: Path, shows_report: Path) -> None:
    """The expanded page screenshots as a real page (look at shows.png to judge)."""
    data = screenshot(chromium, shows_report, "shows.png", "#expand=1", "1400,1600")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 30_000


def test_the_trend_renders_in_the_browser(chromium: Path, tmp_path: Path) -> None:
    """The trend of earlier runs of the same suites is drawn in the page: a line per
    target, a dot per run, the page's script still running under its CSP."""
    from tests.test_history import stored

    for day, passes in ((1, 1), (2, 2), (3, 4)):
        last = stored(tmp_path, f"run-{day}", f"2026-01-0{day}T10:00:00Z", passes)
    report = write_report(load_run(last), last / "report.html")
    dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", report.as_uri())
    assert 'data-ready="1"' in dom
    block = dom.split('<div class="trend">', 1)[1].split("</div>", 1)[0]
    assert block.count('class="spark-line"') == 2
    assert block.count("<circle") == 6
    data = screenshot(chromium, report, "trend.png", "", "1200,700")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")


# --- scores: a case's weighted score and threshold, each check's score, weight, metric ----


@pytest.fixture(scope="module")
def scored(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every row expanded: a case scored against a threshold on two targets, whose metric
    name is a markup attack (the suite's author writes it, but it is shown as text)."""
    path = tmp_path_factory.mktemp("scored") / "run-scored"
    results = []
    for target, f1, verdict in (("gpt35", 0.8, "pass"), ("gpt4o", 0.2, "fail")):
        checks = (
            CheckResult("contains", "pass", "found Paris", metric=IMG_PAYLOAD),
            CheckResult("f1", "pass" if f1 > 0.5 else "fail", f"token f1 {f1}", score=f1, weight=3),
        )
        score = round((1 + 3 * f1) / 4, 6)
        turn = TurnResult({"messages": []}, None, "Paris.", "stop", {}, 10.0, checks)
        results.append(
            CaseResult("geo", "capital", target, 0, verdict, (turn,), score=score, threshold=0.7)
        )
    return expanded(chromium, path, results)


def test_scores_show_per_case_and_per_check(scored: str) -> None:
    """The case row shows each target's score; the card says score against threshold; a
    check's row shows its score, its weight and its metric, all as text."""
    row = scored.split("<span>geo/capital </span>", 1)[1].split("</tr>", 1)[0]
    assert re.findall(r'<span class="cell-score"> ([0-9.]+)</span>', row) == ["0.85", "0.40"]
    gpt35, gpt4o = card_texts(scored, "geo/capital")
    assert "score 0.850 ≥ threshold 0.7" in gpt35
    assert "score 0.400 < threshold 0.7" in gpt4o
    scores = re.findall(r'<td class="n score">([^<]*)</td>', scored)
    assert "0.800 ×3" in scores and "0.200 ×3" in scores
    assert markup.escape(IMG_PAYLOAD, quote=False) in scores
    assert "pwned</title>" not in scored
    # The Targets table: each target's mean score and its metric, the name as text.
    metric = markup.escape(IMG_PAYLOAD, quote=False)
    assert f'<td class="score">0.850 over 1 result(s) · {metric} 1.000</td>' in scored


def test_a_pool_case_says_which_member_answered(
    chromium: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A deployment pool's case, opened in Chromium, names the member that answered it."""
    path = tmp_path_factory.mktemp("pool") / "run-pool"
    results = []
    for i, member in enumerate(("east", "sweden")):
        plain = browser_result(f"pooled-{i}", "gpt35", "pass", "Paris.")
        turn = dataclasses.replace(plain.turns[0], member=member)
        results.append(dataclasses.replace(plain, turns=(turn,)))
    shown = expanded(chromium, path, results)
    for member in ("east", "sweden"):
        assert f'<div class="meta pool">answered by pool member {member}</div>' in shown


# --- 100,000 cases: a report that still opens ------------------------------------------


@pytest.fixture(scope="module")
def large_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[LargeRun, Path]:
    """A 100,000-case run (its journal written line by line, not run) and its report."""
    big = write_large_run(tmp_path_factory.mktemp("large") / "run-100k", 100_000)
    return big, write_report(load_run(big.path), big.path / "report.html")


@pytest.fixture(scope="module")
def large_dom(chromium: Path, large_run: tuple[LargeRun, Path]) -> dict[str, str]:
    """The 100,000-case report's DOM: its failures opened, and a search for a passing id."""
    _, report = large_run
    views = {"failures": "#filter=failures&expand=1", "search": "#q=ticket-77777&expand=1"}

    def dump(name: str) -> tuple[str, str]:
        url = report.as_uri() + views[name]
        return name, run_chromium(chromium, report.parent / f"profile-{name}", "--dump-dom", url)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(dump, views))


def test_a_100000_case_report_shows_failures_in_full(
    large_run: tuple[LargeRun, Path], large_dom: dict[str, str]
) -> None:
    """The page is under 25 MB and its script ran: the failures view holds every failing,
    erroring and flaky case, each opened to its checks and reply."""
    big, report = large_run
    assert report.stat().st_size < 25_000_000
    dom = large_dom["failures"]
    assert 'data-ready="1"' in dom
    not_passed = len(big.failed) + len(big.errored) + len(big.flaky)
    assert f"of {not_passed}" in dom  # "showing 1–50 of 130"
    failed = card_texts(dom, "scale/ticket-3")[0]
    assert "✗ fail" in failed
    assert "Case 3 it is: your order arrived damaged" in failed
    assert "timeout: no answer in 30 s" in card_texts(dom, "scale/ticket-7")[0]
    assert "1/2 repeats passed" in card_texts(dom, "scale/ticket-5")[0]


def test_a_100000_case_report_finds_a_passing_id_and_links_its_line(
    large_run: tuple[LargeRun, Path], large_dom: dict[str, str]
) -> None:
    """Searching a passing case's id finds its listed row, whose link opens results.jsonl
    beside the report at the line that holds that case's result."""
    big, report = large_run
    dom = large_dom["search"]
    assert shown_cases(dom) == ["scale/ticket-77777"]
    links = re.findall(r'<a class="line" href="([^"]+)"[^>]*>results\.jsonl line (\d+)</a>', dom)
    assert links
    href, line = links[0]
    assert (report.parent / href).resolve() == (big.path / "results.jsonl").resolve()
    assert int(line) == big.line_of("ticket-77777")
    with (big.path / "results.jsonl").open(encoding="utf-8") as journal:
        record = json.loads(next(itertools.islice(journal, int(line) - 1, None)))
    assert (record["case"], record["verdict"]) == ("ticket-77777", "pass")
    assert f"sed -n '{line}p' results.jsonl" in dom


def test_the_latest_copy_links_to_the_runs_journal(chromium: Path, tmp_path: Path) -> None:
    """reports/latest.html, the report's copy, links a listed case to
    runs/<id>/results.jsonl: the page picks the links made for its own name."""
    big = write_large_run(tmp_path / "reports" / "runs" / "run-small", 40, fail_every=10)
    latest = tmp_path / "reports" / "latest.html"
    formats = Outputs(html=big.path / "report.html", latest=latest, full_cases=10)
    write_outputs(load_run(big.path), None, formats)
    dom = run_chromium(
        chromium, tmp_path / "profile", "--dump-dom", latest.as_uri() + "#q=ticket-11"
    )
    assert shown_cases(dom) == ["scale/ticket-11"]
    href = re.search(r'<a class="line" href="([^"]+)"', dom)
    assert href and href.group(1) == "runs/run-small/results.jsonl"
    assert (latest.parent / href.group(1)).is_file()
