"""Fitting a conversation into a token budget."""

from __future__ import annotations

import pytest

from harness.conversation import HistoryTooLong, exchanges, fit, fit_case, fit_history
from harness.suite.model import Message
from harness.tokens import count_messages

MODEL = "gpt-35-turbo"
SYSTEM = Message("system", "You are a terse assistant.")


def conversation(pairs: int) -> list[Message]:
    messages = [SYSTEM]
    for i in range(pairs):
        messages.append(Message("user", f"Question number {i}: what is {i} squared?"))
        messages.append(Message("assistant", f"{i} squared is {i * i}."))
    messages.append(Message("user", "And what is 12 squared?"))
    return messages


def test_a_conversation_that_fits_is_unchanged() -> None:
    """Nothing is dropped when the whole history fits."""
    messages = conversation(3)
    kept, dropped = fit_history(messages, 10_000, MODEL)
    assert (kept, dropped) == (messages, 0)


def test_oldest_exchanges_go_first_and_the_system_message_stays() -> None:
    """Dropping removes the oldest user/assistant pairs and keeps system + newest turns."""
    messages = conversation(6)
    full = count_messages(messages, MODEL)
    kept, dropped = fit_history(messages, full - 1, MODEL)
    assert dropped == 2
    assert kept[0] == SYSTEM
    assert kept == [SYSTEM, *messages[3:]]


def test_the_result_fits_and_drops_no_more_than_needed() -> None:
    """The kept messages plus the reserve fit; keeping one more exchange would not."""
    messages = conversation(8)
    budget, reserve = 120, 20
    kept, dropped = fit_history(messages, budget, MODEL, reserve=reserve)
    assert count_messages(kept, MODEL) + reserve <= budget
    one_more = [SYSTEM, *messages[len(messages) - len(kept) - 1 :]]
    assert count_messages(one_more, MODEL) + reserve > budget
    assert dropped == len(messages) - len(kept)


def test_tool_results_stay_with_their_call() -> None:
    """An assistant's tool call and the tool's answer are dropped together with their user turn."""
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        SYSTEM,
        Message("user", "Look it up " * 30),
        Message("assistant", None, tool_calls=(call,)),
        Message("tool", "result " * 30, tool_call_id="c1"),
        Message("assistant", "Done."),
        Message("user", "Thanks, and now?"),
    ]
    system, groups = exchanges(messages)
    assert system == [0]
    assert groups == [[1, 2, 3, 4], [5]]
    kept, dropped = fit_history(messages, 40, MODEL)
    assert (kept, dropped) == ([SYSTEM, messages[5]], 4)


def test_too_long_even_without_history_is_signalled() -> None:
    """When system + the newest turn exceed the budget, HistoryTooLong says how much is needed."""
    messages = [
        SYSTEM,
        Message("user", "old"),
        Message("assistant", "reply"),
        Message("user", "word " * 200),
    ]
    needed = count_messages([SYSTEM, messages[3]], MODEL) + 10
    with pytest.raises(HistoryTooLong) as info:
        fit_history(messages, 100, MODEL, reserve=10)
    assert info.value.needed == needed
    assert info.value.budget == 100
    assert "newest turn" in str(info.value)


def test_stop_policy_refuses_to_drop() -> None:
    """Under the stop policy, history over the budget raises instead of being dropped."""
    messages = conversation(6)
    full = count_messages(messages, MODEL)
    assert fit_history(messages, full, MODEL, policy="stop") == (messages, 0)
    with pytest.raises(HistoryTooLong, match="history: stop"):
        fit_history(messages, full - 1, MODEL, policy="stop")


def test_unknown_policy_is_an_error() -> None:
    """A policy other than drop_oldest or stop is refused."""
    with pytest.raises(ValueError, match="drop_oldest"):
        fit_history(conversation(1), 1000, MODEL, policy="truncate")  # type: ignore[arg-type]


def test_dicts_are_fitted_like_messages() -> None:
    """API-shaped dicts are grouped and dropped the same way as Message objects."""
    messages = [m.to_api() for m in conversation(6)]
    full = count_messages(messages, MODEL)
    kept, dropped = fit_history(messages, full - 1, MODEL)
    assert dropped == 2
    assert kept[0]["role"] == "system"


def test_fit_case_reserves_max_tokens_and_uses_the_case_budget() -> None:
    """fit_case fits to the case's budget, reserving max_completion_tokens or max_tokens."""
    from harness.models import load_catalogue
    from harness.suite.model import Case, Turn

    spec, _ = load_catalogue().lookup(MODEL, "0613")
    messages = conversation(6)
    full = count_messages(messages, MODEL)

    def a_case(**extra: object) -> Case:
        turn = Turn(messages=tuple(messages), expectations=())
        return Case("s", "c", "s.yaml", "cases[0]", (turn,), **extra)  # type: ignore[arg-type]

    assert fit_case(messages, a_case(budget=full), spec) == (messages, 0)
    kept, dropped = fit_case(messages, a_case(budget=full, params={"max_tokens": 1}), spec)
    assert kept[0] == SYSTEM
    assert dropped == 2
    with pytest.raises(HistoryTooLong):
        fit_case(messages, a_case(budget=full, history="stop", params={"max_tokens": 1}), spec)
    assert fit_case(messages, a_case(), spec) == (messages, 0)  # default: the 4,096 window


def test_fit_says_which_messages_were_dropped_and_their_tokens() -> None:
    """fit names each dropped message (index in the history, role) and counts the prompt
    tokens they took with the same tiktoken count the budget was checked with."""
    messages = conversation(6)
    full = count_messages(messages, MODEL)
    fitted = fit(messages, full - 1, MODEL)
    assert fitted.dropped == ((1, "user"), (2, "assistant"))
    assert fitted.tokens_dropped == full - count_messages(fitted.messages, MODEL)
    assert fitted.budget == full - 1
    assert fit(messages, full, MODEL).dropped == ()
