"""The HTML report: self-contained, escaped, complete."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

from harness.gate import evaluate
from harness.report import render_html, write_report
from harness.results.record import CaseResult, CheckResult, ErrorInfo, TurnResult
from harness.results.store import Run
from tests.conftest import embedded_data, raw_data
from tests.factories import report_case, report_run

PAYLOADS = (
    "<script>document.title='pwned'</script>",
    "<img src=x onerror=\"document.title='pwned'\">",
    '[click](javascript:alert(1)) <a href="javascript:alert(1)">x</a>',
    "</script><script>document.title='pwned'</script>",
    "<!-- </script> -->",
)


def two_target_run(path: Path) -> Run:
    results = []
    for t in ("gpt35", "gpt4o"):
        results += [
            report_case("ok", "pass", target=t, reply="Refund approved for order 1234."),
            report_case(
                "xss", "fail", target=t, reply=PAYLOADS[0] + PAYLOADS[1], statuses=("fail", "n/a")
            ),
            report_case(
                "boom",
                "error",
                target=t,
                reply=None,
                statuses=(),
                error=ErrorInfo("rate_limited", "429 <b>slow</b>", status=429),
            ),
        ]
    results[0] = report_case("ok", "pass", target="gpt35", reply="Refund denied for order 1234.")
    targets = [
        {"name": "gpt35", "kind": "azure", "model": "gpt-35-turbo", "api_key": "sk-SECRET"},
        {"name": "gpt4o", "kind": "azure", "model": "gpt-4o"},
    ]
    return report_run(path, results, targets)


def test_no_outside_resource(tmp_path: Path) -> None:
    """The page references no URL: no http(s) resource, no <link>, no <script src>."""
    html = render_html(two_target_run(tmp_path / "run"))
    assert "http://" not in html
    assert "https://" not in html
    assert "<link" not in html
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"\b(src|href)=\"(?!#)", html)


def test_model_text_cannot_break_out_of_the_data_block(tmp_path: Path) -> None:
    """Replies with markup land in the JSON data with every < > & escaped, and parse back intact."""
    run = report_run(
        tmp_path / "run",
        [report_case(f"p{i}", "pass", reply=p) for i, p in enumerate(PAYLOADS)],
        [{"name": "gpt35"}],
    )
    html = render_html(run)
    data_block = html.split('id="azeval-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data_block
    assert ">" not in data_block
    replies = {row["c"][0]["r"] for row in embedded_data(html)["rows"]}
    assert replies == set(PAYLOADS)
    # Only our own two script elements exist; none came from a reply.
    assert html.count("<script") == 2


def test_header_and_summary_are_escaped(tmp_path: Path) -> None:
    """Run-controlled text in the server-rendered part goes through autoescape."""
    results = [report_case("a", "pass", model="<img src=x onerror=alert(1)>")]
    run = report_run(tmp_path / "run", results, [{"name": "gpt35", "model": "<b>m</b>"}])
    html = render_html(run)
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>m</b>" not in html


def test_content_security_policy_allows_only_our_script(tmp_path: Path) -> None:
    """The CSP names the page script's own hash, and no 'unsafe-inline' for scripts."""
    html = render_html(two_target_run(tmp_path / "run"))
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', html)
    assert policy
    script = html.rsplit("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy.group(1)
    assert "default-src 'none'" in policy.group(1)


def test_no_secret_from_target_config(tmp_path: Path) -> None:
    """Only whitelisted target fields reach the page; an api key in meta never does."""
    html = render_html(two_target_run(tmp_path / "run"))
    assert "sk-SECRET" not in html


def test_summary_rows_and_charts(tmp_path: Path) -> None:
    """Each target gets a summary row, pass rates, and inline SVG charts."""
    html = render_html(two_target_run(tmp_path / "run"))
    assert html.count("<svg") == 3
    assert "33.3%" in html  # 1 of 3 passed on each target
    assert "rate_limited 1" in html
    assert "abc123def456" in html
    assert "refunds · 3 cases" in html


def test_rows_put_failures_first_and_pair_targets_for_diffs(tmp_path: Path) -> None:
    """Failing rows sort first; a row names the column pairs the page word-diffs, no diff text."""
    data = embedded_data(render_html(two_target_run(tmp_path / "run")))
    keys = [row["k"] for row in data["rows"]]
    assert keys[-1] == "refunds/ok"
    assert [c["label"] for c in data["columns"]] == ["gpt35", "gpt4o"]
    ok = data["rows"][-1]
    assert ok["d"] == [[0, 1]]
    assert [c["r"] for c in ok["c"]] == [
        "Refund denied for order 1234.",
        "Refund approved for order 1234.",
    ]
    assert "regressed" not in ok["f"]
    boom = next(r for r in data["rows"] if r["k"] == "refunds/boom")
    assert boom["d"] == []  # neither target replied: nothing to diff
    assert "errored" in boom["f"]
    assert boom["c"][0]["e"] == ["rate_limited (HTTP 429): 429 <b>slow</b>"]
    xss = next(r for r in data["rows"] if r["k"] == "refunds/xss")
    assert [c[1] for c in xss["c"][0]["ck"]] == ["fail", "n/a"]


def test_baseline_column_regressions_and_drift(tmp_path: Path) -> None:
    """A baseline adds its column, marks held→broke cases, and names a changed model."""
    base = report_run(
        tmp_path / "base",
        [
            report_case("a", "pass", model="gpt-35-turbo-0613"),
            report_case("b", "pass", model="gpt-35-turbo-0613"),
        ],
        [{"name": "gpt35"}],
    )
    run = report_run(
        tmp_path / "run",
        [
            report_case("a", "fail", model="gpt-35-turbo-0125"),
            report_case("b", "pass", model="gpt-35-turbo-0125"),
        ],
        [{"name": "gpt35"}],
    )
    html = render_html(run, baseline=base)
    data = embedded_data(html)
    assert [c["label"] for c in data["columns"]] == ["gpt35", "baseline · gpt35"]
    first = data["rows"][0]
    assert first["k"] == "refunds/a"
    assert "regressed" in first["f"]
    assert first["d"] == [[1, 0]]
    assert "Model drift" in html
    # The gate's and diff's own sentence (harness/results/drift.py), HTML-escaped.
    assert (
        "target &#39;gpt35&#39; reported model was gpt-35-turbo-0613 in the baseline, "
        "now gpt-35-turbo-0125" in html
    )


def test_baseline_pairs_targets_as_the_gate_does(tmp_path: Path) -> None:
    """A run target the baseline lacks is new, as the gate says: no regression, no diff.

    The baseline has one target; the run adds a second. Judging that second target against
    the baseline's only one would flag regressions the gate does not count.
    """
    base = report_run(
        tmp_path / "base", [report_case("a", "pass"), report_case("b", "pass")], [{"name": "gpt35"}]
    )
    run = report_run(
        tmp_path / "run",
        [
            report_case("a", "pass"),
            report_case("b", "pass"),
            report_case("a", "pass", target="gpt4o"),
            report_case("b", "fail", target="gpt4o", reply="no"),
        ],
        [{"name": "gpt35"}, {"name": "gpt4o"}],
    )
    gate = evaluate(run, baseline=base, fail_on_regression=True)
    assert gate.comparison is not None and not gate.comparison.regressions
    html = render_html(run, baseline=base)
    data = embedded_data(html)
    assert [(c["label"], c["ref"]) for c in data["columns"]] == [
        ("gpt35", 2),
        ("gpt4o", None),
        ("baseline · gpt35", None),
    ]
    b = next(row for row in data["rows"] if row["k"] == "refunds/b")
    assert "regressed" not in b["f"]
    assert b["d"] == [[2, 0]]
    assert "baseline · gpt35 → gpt4o" not in html


def test_pass_to_flaky_against_the_baseline_is_flagged_a_regression(tmp_path: Path) -> None:
    """A case that held in the baseline and is now flaky blocks the gate; the report says so."""
    base = report_run(tmp_path / "base", [report_case("a", "pass")], [{"name": "gpt35"}])
    run = report_run(
        tmp_path / "run",
        [report_case("a", "pass"), dataclasses.replace(report_case("a", "fail"), repeat=1)],
        [{"name": "gpt35"}],
    )
    gate = evaluate(run, baseline=base, fail_on_regression=True)
    assert gate.reasons == ["regression: refunds/a @gpt35 held in the baseline, now flaky (1/2)"]
    row = embedded_data(render_html(run, baseline=base))["rows"][0]
    assert row["f"] == ["regressed", "failed", "flaky"]


def test_a_partial_run_is_compared_with_its_part_of_the_baseline(tmp_path: Path) -> None:
    """One suite and one target run against a baseline of more: the rest was not run, not
    removed. A case deleted from a suite that did run is still removed."""
    other_suite = dataclasses.replace(report_case("z", "pass"), suite="billing")
    base = report_run(
        tmp_path / "base",
        [
            report_case("a", "pass"),
            report_case("gone", "pass"),
            other_suite,
            report_case("a", "pass", target="gpt4o"),
        ],
        [{"name": "gpt35"}, {"name": "gpt4o"}],
    )
    run = report_run(tmp_path / "run", [report_case("a", "pass")], [{"name": "gpt35"}])
    gate = evaluate(run, baseline=base, fail_on_regression=True)
    assert gate.comparison is not None
    removed = [d.case_key for d in gate.comparison.by_status("removed")]
    assert removed == ["refunds/gone"]
    assert "baseline not compared: suite 'billing' (not run), target 'gpt4o' (not run)" in (
        gate.notes
    )
    html = render_html(run, baseline=base)
    assert [row["k"] for row in embedded_data(html)["rows"]] == ["refunds/a", "refunds/gone"]
    assert "Baseline not compared: suite &#39;billing&#39; (not run)" in html


def test_several_models_in_one_run_is_drift(tmp_path: Path) -> None:
    """One target answering as two models is called out even without a baseline."""
    run = report_run(
        tmp_path / "run",
        [
            report_case("a", "pass", model="gpt-4o-2024-05-13"),
            report_case("b", "pass", model="gpt-4o-2024-08-06"),
        ],
        [{"name": "gpt35"}],
    )
    assert "reported more than one model in this run" in render_html(run)


def conversation(target: str, first_reply: str, second_reply: str | None) -> CaseResult:
    """A two-turn conversation as the runner records it: turn 2 resends the history."""
    opening = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi, my name is Ada."},
    ]

    def turn(messages: list[dict[str, str]], reply: str | None, **fields: Any) -> TurnResult:
        checks = (CheckResult("icontains", "pass", "has 'Ada'"),) if reply else ()
        return TurnResult(
            {"messages": messages},
            None,
            reply,
            "stop" if reply else None,
            {},
            10.0,
            checks,
            **fields,
        )

    second = [
        *opening,
        {"role": "assistant", "content": first_reply},
        {"role": "user", "content": "What is my name?"},
    ]
    turns = (
        turn(opening, first_reply),
        turn(second, second_reply, error=None if second_reply else ErrorInfo("timeout", "")),
    )
    verdict = "pass" if second_reply else "error"
    return CaseResult("chat", "name", target, 0, verdict, turns)


def test_a_conversation_shows_every_turn_of_every_target(tmp_path: Path) -> None:
    """The opening messages once, then each target's own reply to each turn.

    The messages used to be the first target's last request, so the other target's reply to
    turn 1 was nowhere on the page, and the first target's stood in for it.
    """
    run = report_run(
        tmp_path / "run",
        [
            conversation("gpt35", "Hello Ada!", "Your name is Ada."),
            conversation("gpt4o", "Nice to meet you.", None),
        ],
        [{"name": "gpt35"}, {"name": "gpt4o"}],
    )
    row = embedded_data(render_html(run))["rows"][0]
    assert row["m"] == [["system", "Be brief."], ["user", "Hi, my name is Ada."]]
    first, second = row["c"]
    assert first["t"] == [
        ["Hi, my name is Ada.", "Hello Ada!"],
        ["What is my name?", "Your name is Ada."],
    ]
    assert second["t"] == [["Hi, my name is Ada.", "Nice to meet you."], ["What is my name?", None]]
    assert first["r"] == "Your name is Ada."
    assert [c[3] for c in first["ck"]] == ["turn 1", "turn 2"]


def test_repeated_texts_and_checks_are_embedded_once(tmp_path: Path) -> None:
    """A reply, message or check outcome that recurs across rows and columns is stored once."""
    results = [
        report_case(f"c{i}", "pass", target=t, reply="Same reply.")
        for i in range(3)
        for t in ("gpt35", "gpt4o")
    ]
    run = report_run(tmp_path / "run", results, [{"name": "gpt35"}, {"name": "gpt4o"}])
    data = raw_data(render_html(run))
    assert data["texts"].count("Same reply.") == 1
    assert data["checks"] == [["contains", "pass", "check said pass", ""]]
    reply = data["cell"].index("r")
    assert {cell[reply] for row in data["rows"] for cell in row["c"]} == {
        data["texts"].index("Same reply.")
    }


def test_write_report_into_a_directory(tmp_path: Path) -> None:
    """Given a directory, write_report writes report.html inside it."""
    run = two_target_run(tmp_path / "run")
    out = write_report(run, tmp_path / "run")
    assert out == tmp_path / "run" / "report.html"
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")


SCHEDULER = {
    "gpt35": {
        "requests": 15,
        "tokens_charged": 46500,
        "refunded": 5,
        "rate_limited": 5,
        "paused_s": 0.801,
        "queued_s": 7.346,
        "min_concurrency": 1,
        "max_in_flight": 4,
        "tpm": 1000000,
        "rpm": 6001,
        "tpm_source": "learned",
        "concurrency": 4,
        "max_concurrency": 8,
    },
    "gpt4o": {
        "requests": 3,
        "tokens_charged": 900,
        "refunded": 0,
        "rate_limited": 0,
        "paused_s": 0.0,
        "queued_s": 0.0,
        "min_concurrency": 8,
        "max_in_flight": 3,
        "tpm": 30000,
        "rpm": 180,
        "tpm_source": "config",
        "concurrency": 8,
        "max_concurrency": 8,
    },
}


def scheduling_table(html: str) -> str:
    match = re.search(r'<details class="scheduling"[^>]*>(.*?)</details>', html, re.S)
    assert match, "no Scheduling block"
    return match.group(1)


def test_waits_and_429s_per_target_in_the_summary(tmp_path: Path) -> None:
    """The summary table shows each target's retries, 429s and seconds waited."""
    results = [
        report_case("a", "pass", retries=2, rate_limited=1, waited_s=2.5),
        report_case("b", "pass", retries=1, rate_limited=1, waited_s=1.25),
        report_case("a", "pass", target="gpt4o"),
    ]
    run = report_run(tmp_path / "run", results, [{"name": "gpt35"}, {"name": "gpt4o"}])
    cells = re.findall(r"<td[^>]*retried requests[^>]*>([^<]*)</td>", render_html(run))
    assert cells == ["3 / 2 / 3.8 s", "0 / 0 / 0.0 s"]


def test_scheduling_block_per_target(tmp_path: Path) -> None:
    """Each target's scheduling shows: quota used, limits learned or configured, pauses, -j."""
    run = report_run(
        tmp_path / "run",
        [report_case("a", "pass"), report_case("a", "pass", target="gpt4o")],
        [{"name": "gpt35"}, {"name": "gpt4o"}],
        scheduler=SCHEDULER,
    )
    block = scheduling_table(render_html(run))
    assert (
        "gpt35</strong> 15 requests (5 refunded) · 46,500 tokens charged · 5 × 429 · "
        "paused 0.8 s · concurrency ≥ 1" in block
    )
    rows = re.findall(r'<tr>\s*<th scope="row">(\w+)</th>(.*?)</tr>', block, re.S)
    cells = {name: re.findall(r"<td[^>]*>([^<]*)</td>", row) for name, row in rows}
    assert cells["gpt35"] == [
        "15", "46,500", "5", "5", "0.8 s", "7.3 s", "1 / 4 / 8", "4",
        "1,000,000 learned", "6,001 learned",
    ]  # fmt: skip
    assert cells["gpt4o"][-2:] == ["30,000 configured", "180 configured"]


def test_scheduling_block_opens_only_when_a_target_was_held_back(tmp_path: Path) -> None:
    """The block starts open after a 429, a pause or a lowered -j; closed on a quiet run."""
    busy = report_run(
        tmp_path / "busy", [report_case("a", "pass")], [{"name": "gpt35"}], scheduler=SCHEDULER
    )
    quiet = report_run(
        tmp_path / "quiet",
        [report_case("a", "pass", target="gpt4o")],
        [{"name": "gpt4o"}],
        scheduler={"gpt4o": SCHEDULER["gpt4o"]},
    )
    assert '<details class="scheduling" open>' in render_html(busy)
    assert '<details class="scheduling">' in render_html(quiet)


def test_no_learned_limit_and_unknown_shapes_still_render(tmp_path: Path) -> None:
    """No rate-limit header seen reads "none seen"; junk in the record reads as zeros."""
    scheduler = {
        "gpt35": {"tpm": None, "rpm": None, "tpm_source": "learned", "requests": "many"},
        "gpt4o": "not a mapping",
    }
    run = report_run(
        tmp_path / "run", [report_case("a", "pass")], [{"name": "gpt35"}], scheduler=scheduler
    )
    block = scheduling_table(render_html(run))
    assert block.count("none seen") == 2
    assert "gpt35</strong> 0 requests" in block
    assert "gpt4o" not in block


def test_run_without_scheduler_record_has_no_block(tmp_path: Path) -> None:
    """Runs recorded before the scheduler existed render without a Scheduling block."""
    assert 'class="scheduling"' not in render_html(two_target_run(tmp_path / "run"))


def test_dead_target_notice_says_why_and_what_was_not_sent(tmp_path: Path) -> None:
    """A dead target gets a plain notice: the reason, and how many cases were never sent."""
    unavailable = ErrorInfo("target_unavailable", "not sent: auth")
    results = [
        report_case("a", "error", error=ErrorInfo("auth", "bad key", status=401)),
        report_case("b", "error", error=unavailable, attempts=0),
        report_case("c", "error", error=unavailable, attempts=0),
    ]
    run = report_run(
        tmp_path / "run",
        results,
        [{"name": "gpt35"}],
        dead_targets={"gpt35": "auth (HTTP 401): bad <key>"},
    )
    html = render_html(run)
    assert "Target unavailable." in html
    assert (
        "Target gpt35 was unavailable: auth (HTTP 401): bad &lt;key&gt;. After that, its "
        "remaining 2 case(s) were not sent (recorded as target_unavailable)." in html
    )
    assert "Target unavailable." not in render_html(two_target_run(tmp_path / "other"))


def test_peer_targets_are_a_comparison_and_a_baseline_is_before_after(tmp_path: Path) -> None:
    """Two targets of one run get a "Comparison" (a vs b, no regression flag); only a
    baseline gives "Changes" (before → after) and regressions."""
    peers = render_html(
        report_run(
            tmp_path / "peers",
            [
                report_case("a", "pass"),
                report_case("a", "fail", target="gpt4o", statuses=("fail",)),
            ],
            [{"name": "gpt35"}, {"name": "gpt4o"}],
        )
    )
    assert "<h2>Comparison</h2>" in peers
    assert "gpt35 vs gpt4o" in peers
    assert "<h2>Changes</h2>" not in peers
    assert "gpt35 → gpt4o" not in peers
    (row,) = embedded_data(peers)["rows"]
    assert "differs" in row["f"]
    assert "regressed" not in row["f"]

    base = report_run(tmp_path / "base", [report_case("a", "pass")], [{"name": "gpt35"}])
    run = report_run(
        tmp_path / "run", [report_case("a", "fail", statuses=("fail",))], [{"name": "gpt35"}]
    )
    judged = render_html(run, baseline=base)
    assert "<h2>Changes</h2>" in judged
    assert "baseline · gpt35 → gpt35" in judged
    assert "<h2>Comparison</h2>" not in judged
    assert "regressed" in embedded_data(judged)["rows"][0]["f"]


def test_rows_in_natural_case_order(tmp_path: Path) -> None:
    """Within a severity, cases sort with numbers read as numbers: row-2 before row-10."""
    names = ["row-10", "row-2", "row-1", "Row-3", "row-2b"]
    run = report_run(tmp_path / "run", [report_case(n, "pass") for n in names], [{"name": "gpt35"}])
    keys = [r["k"] for r in embedded_data(render_html(run))["rows"]]
    assert keys == [f"refunds/{n}" for n in ("row-1", "row-2", "row-2b", "Row-3", "row-10")]


def test_drift_sentences_are_the_gates_own(tmp_path: Path) -> None:
    """The report states drift in the very words the gate (and so `azeval diff`) prints,
    a changed configured model version included."""
    base = report_run(
        tmp_path / "base", [report_case("a", "pass")], [{"name": "gpt35", "model_version": "0613"}]
    )
    run = report_run(
        tmp_path / "run",
        [report_case("a", "pass", model="gpt-35-turbo-0125")],
        [{"name": "gpt35", "model_version": "0125"}],
    )
    warnings = evaluate(run, baseline=base).warnings
    assert "drift: target 'gpt35' model version changed from 0613 to 0125" in warnings
    html = render_html(run, baseline=base)
    for warning in warnings:
        sentence = warning.removeprefix("drift: ").replace("'", "&#39;")
        assert f"<li>{sentence}</li>" in html
