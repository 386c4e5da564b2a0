"""azeval calibrate: a judge against labels, over the fake server; the shipped labels load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.judge.calibrate import read_labels
from harness.testing import Action, FakeAzure, Match, Rule
from tests.conftest import azeval
from tests.test_judged_checks import CONFIG, KEY, deployments

SHIPPED = Path(__file__).resolve().parent.parent / "docs" / "calibration" / "labels.jsonl"


def line(reply: str, label: str) -> str:
    messages = [{"role": "user", "content": "Capital of France?"}]
    check = {"rubric": "Names Paris."}
    return json.dumps({"messages": messages, "reply": reply, "check": check, "label": label})


LABELS = "\n".join(
    [
        line("Paris.", "pass"),
        line("It is Paris.", "pass"),
        line("Lyon.", "fail"),
        line("Marseille.", "fail"),
        line("Paris, I think?", "fail"),  # people were strict; this judge is not
        json.dumps(
            {
                "messages": [{"role": "user", "content": "Best city?"}],
                "answer_a": "Paris",
                "answer_b": "Lyon",
                "winner": "A",
            }
        ),
    ]
)
RULES = [
    Rule(
        Match(judged={"reply": "Paris"}), Action(verdict={"verdict": "pass", "reasoning": "Paris."})
    ),
    Rule(
        Match(judged={"reply": "."}), Action(verdict={"verdict": "fail", "reasoning": "Not Paris."})
    ),
    Rule(Match(judged={"answer_a": "Paris"}), Action(verdict={"winner": "A"})),
    Rule(Match(judged={"answer_b": "Paris"}), Action(verdict={"winner": "B"})),
]


@pytest.fixture
def project(make_project):
    with FakeAzure(deployments(), rules=RULES, api_keys=(KEY,)) as server:
        make_project(server, KEY, CONFIG, {"labels.jsonl": LABELS + "\n"})
        yield server


def test_calibrate_prints_accuracy_kappa_confusion_and_disagreements(project, capsys):
    """Per kind: accuracy, Cohen's κ, the confusion matrix and the lines judge and label
    disagree on; every pairwise line is judged in both orders."""
    assert azeval("calibrate", "labels.jsonl", "--judge", "judge") == 0
    out = capsys.readouterr().out
    assert "labels.jsonl: 6 labelled line(s), judge judge" in out
    assert "rubric: 5 line(s), 5 judged" in out
    # 4 of 5 agree; κ = (0.8 − 0.48) / (1 − 0.48)
    assert f"accuracy 80% · Cohen's κ {(0.8 - 0.48) / 0.52:.2f}" in out
    assert "    pass     2     0" in out and "    fail     1     2" in out  # rows: labels
    assert "line 5: label fail, judge pass — Paris." in out
    assert "pairwise: 1 line(s), 1 judged" in out
    judged = [r for r in project.requests if r.deployment == "judge"]
    assert len(judged) == 5 + 2


def test_calibrate_tells_each_line_as_it_is_judged(project, capsys):
    """A judge on a CPU takes minutes over a labels file: each line's verdict is told on
    stderr as it comes, numbered, so a user sees the work go on."""
    assert azeval("calibrate", "labels.jsonl", "--judge", "judge") == 0
    err = capsys.readouterr().err.splitlines()
    told = [line for line in err if line.startswith("[")]
    assert len(told) == 6 and told[-1].startswith("[6/6] line ")
    assert any(" (rubric): judge pass, label fail" in line for line in told)
    assert any(" (pairwise): judge " in line for line in told)


def test_min_kappa_is_a_gate(project, write, capsys):
    """--min-kappa above the judge's κ exits 1; at or below it, 0; an undefined κ (one
    pairwise line, all one label) is no evidence of agreement and fails the gate too."""
    assert azeval("calibrate", "labels.jsonl", "--judge", "judge", "--min-kappa", "0.5") == 1
    write("labels.jsonl", "\n".join(LABELS.splitlines()[:5]) + "\n")
    assert azeval("calibrate", "labels.jsonl", "--judge", "judge", "--min-kappa", "0.9") == 1
    assert "κ below --min-kappa 0.9" in capsys.readouterr().err
    assert azeval("calibrate", "labels.jsonl", "--judge", "judge", "--min-kappa", "0.5") == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "labels.jsonl:1: not JSON"),
        (
            '{"messages": [], "reply": "x", "check": {"rubric": "y"}, "label": "maybe"}',
            "labels.jsonl:1: label must be one of pass | fail",
        ),
        (
            '{"messages": [], "reply": "x", "check": {"score": {"metric": "nope"}}, "label": 3}',
            "labels.jsonl:1: unknown metric 'nope'",
        ),
        ('{"messages": [], "answer_a": "x", "winner": "A"}', "needs answer_a and answer_b"),
        (
            '{"messages": "hi", "reply": "x", "check": {"rubric": "y"}, "label": "pass"}',
            "messages must be a list",
        ),
    ],
)
def test_a_bad_line_is_exit_2_naming_it(project, write, text, message, capsys):
    """A bad labels line is exit 2 naming the file and line; nothing is sent."""
    write("labels.jsonl", text + "\n")
    assert azeval("calibrate", "labels.jsonl", "--judge", "judge") == 2
    assert message in capsys.readouterr().err
    assert project.requests == []


def test_calibrate_needs_a_configured_judge(project, capsys):
    """--judge naming no target is exit 2 naming the option."""
    assert azeval("calibrate", "labels.jsonl", "--judge", "nobody") == 2
    assert "--judge" in capsys.readouterr().err


def test_the_shipped_labels_are_valid_and_cover_every_kind() -> None:
    """docs/calibration/labels.jsonl loads: a few dozen lines of every kind and both labels."""
    lines = read_labels(SHIPPED, "local")
    assert len(lines) >= 36
    kinds = {line.kind for line in lines}
    assert kinds == {"rubric", "score", "factuality", "pairwise"}
    rubric = [line.label for line in lines if line.kind == "rubric"]
    assert rubric.count("pass") >= 10 and rubric.count("fail") >= 10
