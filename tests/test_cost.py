"""Cost priced from the service's usage, end to end: the real CLI and SDK against the fake
Azure server, two deployments of different models, every figure checked against the list
prices written out here (never against the code's own arithmetic)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.models import Price, load_catalogue
from harness.testing import Action, Deployment, FakeAzure, Match, Rule
from tests.conftest import MakeProject, azeval, embedded_data

KEY = "sk-test-0123456789abcdef"
# The catalogue's list prices per 1,000 tokens, as the test expects them.
GPT35 = {"in": 0.0005, "out": 0.0015}  # gpt-35-turbo 0125: no prompt-cache discount
GPT4O = {"in": 0.0025, "out": 0.01, "cached": 0.00125}  # gpt-4o 2024-08-06
CACHED = 12  # prompt tokens the fake reports as read from the prompt cache on gpt4o

CONFIG = """
[targets.a]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "gpt35"
model = "gpt-35-turbo"
model_version = "0125"

[targets.b]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "gpt4o"
model = "gpt-4o"
model_version = "2024-08-06"

[targets.custom]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "gpt4o"
model = "my-finetune"
"""

SUITE = """
suite: support
defaults:
  system: You answer customer questions in one sentence.
  params: {temperature: 0, max_tokens: 60}
cases:
  - id: refund
    prompt: How long does a refund take?
    expect: {icontains: days}
  - id: chat
    prompt: Say hello.
    expect: {contains: Hello}
    turns:
      - user: Say hello again, please.
        expect: {contains: Hello}
"""

RULES = [
    Rule(
        Match(last_user="(?i)refund", deployment="gpt4o"),
        Action(content="Refunds take 5 to 7 business days.", cached_tokens=CACHED),
    ),
    Rule(Match(last_user="(?i)refund"), Action(content="Refunds take about 5 days.")),
    Rule(Match(last_user="(?i)hello"), Action(content="Hello! How can I help you today?")),
]


@pytest.fixture
def project(make_project: MakeProject) -> Any:
    deployments = [
        Deployment("gpt35", model="gpt-35-turbo"),
        Deployment("gpt4o", model="gpt-4o-2024-08-06"),
    ]
    with FakeAzure(deployments, rules=RULES, api_keys=(KEY,)) as fake:
        yield make_project(fake, KEY, CONFIG, {"suites/support.yaml": SUITE})


def newest_run(root: Path) -> Path:
    """The run written last (two run ids of the same second do not sort by time)."""
    return max((root / "reports" / "runs").iterdir(), key=lambda p: p.stat().st_mtime_ns)


def only_run(root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run_dir = newest_run(root)
    meta = json.loads((run_dir / "run.json").read_text())
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return meta, [json.loads(line) for line in lines]


def list_price(prices: dict[str, float], usage: dict[str, Any]) -> float:
    """USD for one answer at the list prices above, cached tokens at their discount."""
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    if "cached" not in prices:
        cached = 0
    prompt = usage["prompt_tokens"] - cached
    return (
        prompt * prices["in"]
        + cached * prices.get("cached", 0.0)
        + usage["completion_tokens"] * prices["out"]
    ) / 1000


def test_two_models_record_and_print_a_real_cost_per_target(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each turn's cost is its usage at its model's list price (gpt-4o's cached prompt tokens
    at the cached price); each result and each target totals them; the console says them."""
    assert azeval("run", "suites", "-t", "a", "-t", "b") == 0
    meta, results = only_run(project)
    for r in results:
        prices = GPT35 if r["target"] == "a" else GPT4O
        for turn in r["turns"]:
            assert turn["cost_usd"] == pytest.approx(list_price(prices, turn["usage"]))
            assert turn["cost_usd"] > 0
    refund_b = next(r for r in results if r["case"] == "refund" and r["target"] == "b")
    usage = refund_b["turns"][0]["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == CACHED
    full_price = (usage["prompt_tokens"] * 0.0025 + usage["completion_tokens"] * 0.01) / 1000
    assert refund_b["turns"][0]["cost_usd"] == pytest.approx(full_price - CACHED * 0.00125 / 1000)
    for name in ("a", "b"):
        mine = [t["cost_usd"] for r in results if r["target"] == name for t in r["turns"]]
        assert meta["summary"]["targets"][name]["cost_usd"] == pytest.approx(sum(mine), abs=1e-6)
    a_cost = meta["summary"]["targets"]["a"]["cost_usd"]
    b_cost = meta["summary"]["targets"]["b"]["cost_usd"]
    assert b_cost > a_cost  # gpt-4o's tokens cost five times gpt-35-turbo's
    assert meta["format"] == 2
    assert {t["name"]: t["price"] for t in meta["targets"]} == {
        "a": {
            "input_per_1k": 0.0005,
            "output_per_1k": 0.0015,
            "cached_input_per_1k": None,
            "source": "catalogue",
        },
        "b": {
            "input_per_1k": 0.0025,
            "output_per_1k": 0.01,
            "cached_input_per_1k": 0.00125,
            "source": "catalogue",
        },
    }
    out = capsys.readouterr().out
    assert f"Cost: a ${a_cost:.6f}, b ${b_cost:.6f}" in out


def test_a_model_without_a_price_has_unknown_cost_never_zero(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model the catalogue cannot price records cost None on every turn and target, and the
    console says "unknown"."""
    assert azeval("run", "suites", "-t", "custom") == 0
    meta, results = only_run(project)
    assert all(t["cost_usd"] is None for r in results for t in r["turns"])
    assert meta["summary"]["targets"]["custom"]["cost_usd"] is None
    assert meta["targets"][0]["price"] is None
    assert "Cost: custom unknown" in capsys.readouterr().out


def test_a_price_from_azeval_toml_overrides_the_catalogue_and_is_recorded(
    project: Path, write: Any
) -> None:
    """[models."x"] prices cost the turns and are recorded with source "config"."""
    config = (project / "azeval.toml").read_text()
    write(
        "azeval.toml",
        config + '\n[models."gpt-4o"]\nprice_in_per_1k = 0.1\nprice_out_per_1k = 0.2\n',
    )
    assert azeval("run", "suites", "-t", "b") == 0
    meta, results = only_run(project)
    assert meta["targets"][0]["price"] == {
        "input_per_1k": 0.1,
        "output_per_1k": 0.2,
        "cached_input_per_1k": 0.00125,
        "source": "config",
    }
    prices = {"in": 0.1, "out": 0.2, "cached": 0.00125}
    for r in results:
        for turn in r["turns"]:
            assert turn["cost_usd"] == pytest.approx(list_price(prices, turn["usage"]))


def test_plan_estimate_and_recorded_cost_differ_by_the_completion_length_only(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plan prices each turn's prompt with max_tokens of completion; the run prices the
    real usage. On a model with no cache discount they differ exactly by completion lengths:
    the completion tokens max_tokens left unused, and (for a later turn, whose prompt holds
    the replies so far, which the plan cannot know) the earlier replies' tokens."""
    assert azeval("plan", "suites", "-t", "a", "--json") == 0
    plan = json.loads(capsys.readouterr().out)
    assert azeval("run", "suites", "-t", "a") == 0
    _, results = only_run(project)
    assert {r["case"] for r in results} == {"refund", "chat"}
    for r in results:
        row = next(x for x in plan["rows"] if x["case"] == r["case"])
        completions = [t["usage"]["completion_tokens"] for t in r["turns"]]
        earlier_replies = [sum(completions[:k]) for k in range(len(completions))]
        prompts = [t["usage"]["prompt_tokens"] for t in r["turns"]]
        assert [p - e for p, e in zip(prompts, earlier_replies, strict=True)] == row["turn_tokens"]
        unused = sum(row["max_tokens"] - c for c in completions)
        recorded = sum(t["cost_usd"] for t in r["turns"])
        expected = (unused * GPT35["out"] - sum(earlier_replies) * GPT35["in"]) / 1000
        assert row["est_cost"] - recorded == pytest.approx(expected)


def test_price_reads_cached_tokens_only_where_the_model_discounts_them() -> None:
    """Cached prompt tokens get the cached price where there is one; without one they are
    ordinary prompt tokens; a usage with junk counts costs what its sound counts say."""
    usage = {
        "prompt_tokens": 2000,
        "completion_tokens": 100,
        "prompt_tokens_details": {"cached_tokens": 1024},
    }
    discounted = Price(input_per_1k=0.0025, output_per_1k=0.01, cached_input_per_1k=0.00125)
    assert discounted.cost(usage) == pytest.approx((976 * 0.0025 + 1024 * 0.00125 + 1.0) / 1000)
    plain = Price(input_per_1k=0.0005, output_per_1k=0.0015)
    assert plain.cost(usage) == pytest.approx((2000 * 0.0005 + 100 * 0.0015) / 1000)
    junk = {"prompt_tokens": "many", "completion_tokens": -3, "prompt_tokens_details": [1]}
    assert plain.cost(junk) == 0.0
    more_cached = {**usage, "prompt_tokens_details": {"cached_tokens": 5000}}
    assert discounted.cost(more_cached) == pytest.approx((2000 * 0.00125 + 1.0) / 1000)


def test_a_version_price_override_applies_to_that_version_only() -> None:
    """A price in [models.x.versions."v"] is that version's (source config); others keep the
    catalogue's."""
    catalogue = load_catalogue({"gpt-4o": {"versions": {"2024-08-06": {"price_in_per_1k": 0.003}}}})
    chosen = catalogue.lookup("gpt-4o", "2024-08-06")[0].price
    other = catalogue.lookup("gpt-4o", "2024-11-20")[0].price
    assert chosen == Price(0.003, 0.01, 0.00125, "config")
    assert other == Price(0.0025, 0.01, 0.00125, "catalogue")


def test_every_output_shows_the_recorded_cost(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The HTML report (per target and per case), the Markdown table and the JUnit
    properties show the cost the run recorded, in the same dollars."""
    assert (
        azeval("run", "suites", "-t", "a", "-t", "b", "--junit", "j.xml", "--markdown", "m.md") == 0
    )
    meta, results = only_run(project)
    a_cost = meta["summary"]["targets"]["a"]["cost_usd"]
    html = (project / "reports" / "latest.html").read_text()
    summary_table = html[html.index('<table class="summary">') : html.index("</table>")]
    assert f"${a_cost:.6f}" in summary_table
    refund = next(row for row in embedded_data(html)["rows"] if row["k"] == "support/refund")
    by_target = {r["target"]: r for r in results if r["case"] == "refund"}
    assert [cell["co"] for cell in refund["c"]] == [
        pytest.approx(by_target[name]["turns"][0]["cost_usd"]) for name in ("a", "b")
    ]
    assert 'meta.push("cost " + usd(cell[C.co]))' in html
    markdown = (project / "m.md").read_text()
    assert f"| ${a_cost:.6f} |" in markdown
    junit = (project / "j.xml").read_text()
    assert f'name="azeval.cost_usd" value="{a_cost:.8f}'.rstrip("0") in junit


def test_diff_baseline_and_gate_show_the_cost_delta(
    project: Path, write: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A baseline keeps each case's cost; a later run at a higher price shows the delta in
    `azeval diff` (ΔCOST and the total) and in the gate's comparison with the baseline."""
    assert azeval("run", "suites", "-t", "a") == 0
    first = newest_run(project)
    assert azeval("bless", str(first), "-o", "baseline.json") == 0
    baseline = json.loads((project / "baseline.json").read_text())
    refund = baseline["targets"]["a"]["cases"]["support/refund"]
    assert refund["cost_usd"] > 0
    config = (project / "azeval.toml").read_text()
    write(
        "azeval.toml",
        config + '\n[models."gpt-35-turbo"]\nprice_in_per_1k = 0.001\nprice_out_per_1k = 0.003\n',
    )
    capsys.readouterr()
    assert azeval("run", "suites", "-t", "a", "--baseline", "baseline.json") == 0
    out = capsys.readouterr().out
    before = sum(c["cost_usd"] for c in baseline["targets"]["a"]["cases"].values())
    meta, _ = only_run(project)
    now = meta["summary"]["targets"]["a"]["cost_usd"]
    # Twice the price for the same tokens: twice the cost (the baseline keeps 6 decimals).
    assert now == pytest.approx(2 * before, abs=2e-6)
    line = f"cost vs baseline over 2 paired case(s) (mean per repeat): ${before:.6f} → ${now:.6f}"
    assert f"{line} (+${now - before:.6f})" in out
    second = newest_run(project)
    assert azeval("diff", str(first), str(second)) == 0
    out = capsys.readouterr().out
    assert f"Δ cost +{now - before:,.5f} USD" in out
    assert "ΔCOST" not in out  # no case changed verdict: no per-case table
