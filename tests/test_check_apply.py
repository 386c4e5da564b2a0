"""How a turn's checks are applied: the context each gets, async checks, and what each
check's declared needs decide (called or not, a model lent or not)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from harness.checks import (
    CheckContext,
    Reply,
    Services,
    expects_block,
    failed,
    get_check,
    passed,
    run_checks,
)
from harness.checks.context import NO_SERVICES
from harness.checks.registry import _REGISTRY, Check, add
from harness.suite.model import Case, Expectation
from harness.targets.base import TargetInfo

CASE = Case(suite="s", id="c", path="s.yaml", place="cases[0]", turns=())
TARGET = TargetInfo(name="t", kind="azure", model="gpt-4o")


class Echo:
    """A CheckModel that answers with the last message it was asked."""

    name = "judge"

    def __init__(self) -> None:
        self.asked: list[Sequence[Mapping[str, Any]]] = []

    async def ask(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Reply:
        self.asked.append(messages)
        return Reply(content=f"echo: {messages[-1]['content']}")


@pytest.fixture
def registered():
    """Register throw-away checks for one test, and forget them after."""
    names: list[str] = []

    def register(name: str, fn: Any, needs: Any = ("reply",)) -> str:
        add(Check(name, fn, lambda arg, ctx: arg, frozenset(needs), ""))
        names.append(name)
        return name

    get_check("contains")  # the built-ins first, so the throw-away names come after
    yield register
    for name in names:
        _REGISTRY.pop(name, None)


def apply(expectations: list[Expectation], reply: Reply, services: Services = NO_SERVICES):
    ctx = CheckContext(reply, CASE, 2, ({"role": "user", "content": "hi"},), TARGET, services)
    return asyncio.run(run_checks(expectations, ctx))


def test_async_and_sync_checks_run_in_the_order_written(registered):
    """A coroutine check is awaited; results keep the suite's order whatever finishes first."""

    async def slow(ctx: CheckContext, arg: Any):
        await asyncio.sleep(0.01)
        return passed(f"slow saw turn {ctx.turn} of {ctx.case.id} on {ctx.target.name}")

    def quick(ctx: CheckContext, arg: Any):
        return failed(f"quick saw {[m['content'] for m in ctx.conversation]}")

    registered("t_slow", slow)
    registered("t_quick", quick)
    results = apply(
        [Expectation("t_slow", None, "a"), Expectation("t_quick", None, "b")], Reply("x")
    )
    assert [(r.check, r.status, r.message, r.place) for r in results] == [
        ("t_slow", "pass", "slow saw turn 2 of c on t", "a"),
        ("t_quick", "fail", "quick saw ['hi']", "b"),
    ]


def test_an_async_check_that_raises_is_a_check_error(registered):
    """An exception inside a coroutine check is data on the result, not a lost case."""

    async def broken(ctx: CheckContext, arg: Any):
        raise RuntimeError("boom")

    registered("t_broken", broken)
    (result,) = apply([Expectation("t_broken", None, "p")], Reply("x"))
    assert (result.status, result.message) == ("error", "the check raised RuntimeError: boom")


def test_a_model_is_lent_only_to_checks_that_declare_they_need_one(registered):
    """A check needing "model" asks it through ctx.services.model; one that did not declare
    it gets no model, and asking is a check error that says how to get one."""

    async def judge(ctx: CheckContext, arg: Any):
        answer = await ctx.services.model.ask([{"role": "user", "content": ctx.reply.text}])
        return passed(f"{ctx.services.model.name} said {answer.text!r}")

    registered("t_judge", judge, needs=("reply", "model"))
    registered("t_sneaky", judge)
    model = Echo()
    judged, sneaky = apply(
        [Expectation("t_judge", None, "a"), Expectation("t_sneaky", None, "b")],
        Reply("the reply"),
        Services(check_model=model),
    )
    assert (judged.status, judged.message) == ("pass", "judge said 'echo: the reply'")
    assert model.asked == [[{"role": "user", "content": "the reply"}]]
    assert sneaky.status == "error"
    assert sneaky.message.startswith("no model to ask: name a configured target as [settings]")


def test_a_blocked_prompt_calls_only_the_checks_that_read_filter_results(registered):
    """With no reply (the prompt was blocked), a check needing the reply is n/a without
    being called; content_filter, which reads the filter results, is called."""
    calls: list[str] = []

    def spy(ctx: CheckContext, arg: Any):
        calls.append("called")
        return passed("saw it")

    registered("t_spy", spy)
    spec = get_check("content_filter").prepare({"prompt_blocked": True}, None)
    blocked = Reply(content=None, error_kind="content_filter", error_body={})
    spied, filtered = apply(
        [Expectation("t_spy", None, "a"), Expectation("content_filter", spec, "b")], blocked
    )
    assert (spied.status, spied.message) == (
        "n/a",
        "the prompt was blocked by the content filter: no reply",
    )
    assert calls == []
    assert filtered.status == "pass"


def test_only_a_check_expecting_the_block_makes_a_refusal_the_answer():
    """The runner asks the checks, not their arguments, whether a 400 content_filter is the
    turn's answer: content_filter says so whatever it expects (prompt_blocked: true passes
    on it, a severity bound fails on it); a turn without one keeps the 400 as its error."""
    prepare = get_check("content_filter").prepare
    block = Expectation("content_filter", prepare({"prompt_blocked": True}, None), "a")
    bound = Expectation("content_filter", prepare({"max_severity": "low"}, None), "b")
    contains = Expectation("contains", get_check("contains").prepare("x", None), "c")
    assert expects_block([contains, block])
    assert expects_block([contains, bound])
    assert not expects_block([contains])


def test_a_check_that_returns_no_outcome_is_a_check_error(registered):
    """A registered check must return an Outcome; anything else says what it returned."""
    registered("t_loose", lambda ctx, arg: "fine")
    (result,) = apply([Expectation("t_loose", None, "p")], Reply("x"))
    assert (result.status, result.message) == (
        "error",
        "the check returned str, not an Outcome",
    )


def test_an_unknown_need_is_refused_when_declared():
    """A check declaring a need that does not exist fails at once, naming the known ones."""
    from harness.checks import user_check

    with pytest.raises(ValueError, match="unknown need 'txt' \\(one of reply, text,"):
        user_check(needs=["txt"])
