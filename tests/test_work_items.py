"""The one-way flow from the plan to the runner: work items carry what the plan found, one
function runs a work item, and the preflight stands without the runner."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from types import SimpleNamespace

import pytest

from harness import api
from harness.config import TargetConfig
from harness.models import load_catalogue
from harness.preflight import plan
from harness.redact import Redactor
from harness.runner.engine import RunOptions
from harness.runner.sender import TargetSender
from harness.runner.work import run_item, work_items
from harness.suite.loader import load_suite
from harness.targets import open_target
from harness.testing import Action, Deployment, FakeAzure, Match, Rule


def test_the_preflight_imports_nothing_of_the_runner():
    """Quota facts (the default completion charge, the RPM a TPM grants) live where the
    preflight and the runner both read them: planning loads no runner module."""
    code = (
        "import sys, harness.preflight\n"
        "print(sorted(m for m in sys.modules if m.startswith('harness.runner')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


SUITE = """
suite: flow
defaults:
  params: {max_tokens: 20}
cases:
  - id: fine
    prompt: Say hello.
    expect: {contains: hello}
  - id: huge
    prompt: Say hello.
    params: {max_tokens: 100000}
    expect: {contains: hello}
"""


@pytest.fixture
def flow(tmp_path, write, monkeypatch):
    """A suite, its plan on one fake Azure target, and that target's sender."""
    monkeypatch.setenv("FLOW_KEY", "test-key")
    suite = load_suite(write("flow.yaml", SUITE))
    with FakeAzure([Deployment("gpt35")], rules=[Rule(Match(), Action(content="hello"))]) as fake:
        config = TargetConfig(
            name="gpt35",
            kind="azure",
            model="gpt-35-turbo",
            model_version="0125",
            deployment="gpt35",
            endpoint=fake.endpoint,
            api_key_env="FLOW_KEY",
        )
        checked = plan(suite.cases, [config], load_catalogue())
        yield fake, suite, config, checked


async def _ran(config, items):
    target = await open_target(config)
    try:
        sender = TargetSender(target, config, RunOptions(), {}, Redactor([]))
        return [await run_item(item, sender) for item in items], sender
    finally:
        await target.aclose()


def test_a_work_item_carries_its_plan_row_and_the_model_spec(flow):
    """work_items hands each item the plan's row of its case on its target (prompt tokens,
    problems) and the model that target runs."""
    _, suite, _, checked = flow
    fine, huge = work_items([suite], ["gpt35"], None, checked)
    assert fine.plan is not None and fine.plan.key == "flow/fine"
    assert fine.plan.turn_tokens == checked.rows[0].turn_tokens
    assert fine.spec is checked.specs["gpt35"]
    assert fine.spec.name == "gpt-35-turbo"
    assert huge.plan is not None and huge.plan.fatal
    bare = work_items([suite], ["gpt35"], None)
    assert [(i.plan, i.spec) for i in bare] == [(None, None), (None, None)]


def test_work_items_are_made_on_each_pass_and_counted_without_a_list(flow):
    """The work items are iterable again and again, give the same items each time, count
    case x target x repeat, and a target's own lane draws only its items, in order."""
    _, suite, _, checked = flow
    items = work_items([suite], ["gpt35", "gpt4"], 2, checked)
    keys = [i.key for i in items]
    assert keys == [i.key for i in items] and len(items) == len(keys) == 8
    assert keys[:2] == ["flow/fine@gpt35#0", "flow/fine@gpt4#0"]
    assert [i.key for i in items.of_target("gpt4")] == [k for k in keys if "@gpt4" in k]


def test_a_work_item_finds_its_plan_row_when_the_plan_lists_other_cases(flow):
    """A plan made of other cases or in another order still hands each item its own row
    (by key), and none to a case the plan lacks."""
    _, suite, _, checked = flow
    backwards = dataclasses.replace(checked, rows=checked.rows[::-1])
    fine, huge = work_items([suite], ["gpt35"], None, backwards)
    assert fine.plan == checked.rows[0] and huge.plan == checked.rows[1]
    only_huge = dataclasses.replace(checked, rows=checked.rows[1:])
    fine, huge = work_items([suite], ["gpt35"], None, only_huge)
    assert fine.plan is None and huge.plan == checked.rows[1]


def test_run_item_sends_what_the_plan_allows_and_charges_its_prompt_tokens(flow):
    """The item the plan refuses is recorded as a preflight error and never sent; the other
    is sent, checked, and charged to the quota with the plan's prompt tokens."""
    fake, suite, config, checked = flow
    fine, huge = work_items([suite], ["gpt35"], None, checked)
    (ran_fine, ran_huge), sender = asyncio.run(_ran(config, [fine, huge]))
    assert ran_fine.not_sent is None and ran_fine.result.verdict == "pass"
    assert ran_huge.not_sent is None
    assert ran_huge.result.error.kind == "preflight"
    assert "max_tokens is too large: 100000" in ran_huge.result.error.message
    assert len(fake.requests) == 1
    charged = sender.scheduler.snapshot()["tokens_charged"]
    assert charged == fine.plan.turn_tokens[0] + 20


def test_run_item_on_a_dead_target_says_why_it_was_not_sent(flow, monkeypatch):
    """A target found dead (here: a wrong key, 401) ends its first item as an error; the
    items after it are not sent, and run_item says why in a typed field, not in an error
    dict a caller must read back."""
    fake, suite, config, checked = flow
    fine, _ = work_items([suite], ["gpt35"], None, checked)
    again = list(work_items([suite], ["gpt35"], 2, checked))[1]
    assert (again.case.id, again.repeat) == ("fine", 1)
    monkeypatch.setenv("WRONG_KEY", "wrong-key")
    wrong = dataclasses.replace(config, api_key_env="WRONG_KEY")
    (first, second), _ = asyncio.run(_ran(wrong, [fine, again]))
    assert first.not_sent is None and first.result.error.kind == "auth"
    assert second.not_sent is not None and second.not_sent.startswith("auth (HTTP 401)")
    assert second.result.error.kind == "target_unavailable"
    assert second.result.attempts == 0
    assert len(fake.requests) == 1


def test_a_runs_count_is_read_from_its_plan_without_building_a_case(flow):
    """Given the preflight, what a run will add is counted from its rows (each case on each
    target, each repeat), equal to the count of its work items, and builds no case."""
    _, suite, _, checked = flow
    options = RunOptions(repeat=3)
    counted = len(work_items([suite], ["gpt35"], 3))
    # No suite to read: a count that read cases would find none.
    prepared = SimpleNamespace(
        suites=[], targets=[SimpleNamespace(name="gpt35")], results_left=None
    )
    assert api.pending(prepared, options, (), checked) == counted == 6
    assert api.pending(prepared, options, {"flow/fine@gpt35#1"}, checked) == 5
