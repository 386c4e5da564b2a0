"""Overlap checks (rouge, bleu, chrf, levenshtein, f1) score the reply against a reference
with hand-computed values, pass at min, record the score, and refuse bad arguments."""

from __future__ import annotations

import json

import pytest

from harness.checks import get_check
from harness.results.record import CheckResult
from harness.testing import Action, Deployment, FakeAzure, Match, Rule
from tests.conftest import azeval
from tests.test_checks import CTX, outcome, text

KEY = "sk-test-0123456789abcdef"


@pytest.mark.parametrize(
    ("name", "arg", "reply", "score"),
    [
        # rouge1: 5 of 6 unigrams shared each way, F = 5/6.
        ("rouge", {"type": "rouge1"}, "the cat lay on the mat", 5 / 6),
        # rouge2: bigrams the cat, on the, the mat shared of 5 each, F = 3/5.
        ("rouge", {"type": "rouge2"}, "the cat lay on the mat", 3 / 5),
        # rougeL (default): LCS "the cat on the mat" is 5 of 6, F = 5/6.
        ("rouge", {}, "the cat lay on the mat", 5 / 6),
        # bleu: precisions 5/6, 3/5, 2/4, 1/3, brevity 1: (1/12) ** (1/4).
        ("bleu", {}, "the cat sat on the mat", (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25),
        # levenshtein: kitten → sitting is 3 edits of 7 characters, 1 - 3/7.
        ("levenshtein", {}, "sitting", 1 - 3 / 7),
        # f1: "the" dropped as an article, punctuation dropped; 2 of 3 predicted tokens
        # (eiffel tower paris), 2 of 2 true: P = 2/3, R = 1, F1 = 0.8.
        ("f1", {}, "The Eiffel tower, Paris!", 2 * (2 / 3) / (2 / 3 + 1)),
    ],
)
def test_each_overlap_check_scores_as_computed_by_hand(name, arg, reply, score):
    """Each metric's score equals the value computed by hand, and is recorded."""
    references = {
        "rouge": "the cat sat on the mat",
        "bleu": "the cat sat on a mat",
        "levenshtein": "kitten",
        "f1": "eiffel tower",
    }
    result = outcome(name, {"reference": references[name], "min": 0, **arg}, text(reply))
    assert result.status == "pass"
    assert result.score == pytest.approx(score)


def test_chrf_averages_character_ngram_precision_and_recall():
    """chrF of abc against abd: 1-grams 2/3, 2-grams 1/2, 3-grams 0 both ways; the mean
    over the three orders is 7/18 for precision and recall, so F = 7/18."""
    result = outcome("chrf", {"reference": "abd", "min": 0.5}, text("abc"))
    assert result.score == pytest.approx(7 / 18)
    assert result.status == "fail"
    assert "chrf 0.389 < min 0.5" in result.message


def test_min_decides_pass_and_fail():
    """A score at min passes, below it fails; identical texts score 1 on every metric."""
    for name in ("rouge", "bleu", "chrf", "levenshtein", "f1"):
        same = outcome(
            name, {"reference": "The answer is 42.", "min": 1}, text("The answer is 42.")
        )
        assert (same.status, same.score) == ("pass", pytest.approx(1.0)), name
    below = outcome("f1", {"reference": "eiffel tower", "min": 0.81}, text("Eiffel tower, Paris"))
    assert below.status == "fail"
    at = outcome("levenshtein", {"reference": "abcd", "min": 0.75}, text("abcx"))
    assert at.status == "pass"


def test_levenshtein_max_distance_counts_edits():
    """With max_distance the check passes when the reply is at most that many edits away,
    and still records the normalised similarity as its score."""
    near = outcome("levenshtein", {"reference": "kitten", "max_distance": 3}, text("sitting"))
    far = outcome("levenshtein", {"reference": "kitten", "max_distance": 2}, text("sitting"))
    assert near.status == "pass" and far.status == "fail"
    assert "3 edits" in far.message and "> max_distance 2" in far.message
    assert far.score == pytest.approx(4 / 7)


def test_f1_with_no_tokens_on_one_side_is_zero():
    """SQuAD's rule: a reply of only articles and punctuation shares nothing, F1 = 0."""
    assert outcome("f1", {"reference": "Paris"}, text("The.")).score == 0


def test_a_reply_without_text_fails_without_a_score():
    """A reply that only called tools has nothing to measure: fail, no score."""
    reply = text(None, tool_calls=({"function": {"name": "f"}},))
    result = outcome("rouge", {"reference": "x"}, reply)
    assert result.status == "fail" and result.score is None


@pytest.mark.parametrize(
    ("arg", "says"),
    [
        ({"min": 0.5}, "needs a reference"),
        ({"reference": "  "}, "needs a reference"),
        ({"reference": "x", "min": 1.5}, "min must be a number in [0, 1]"),
        ({"reference": "x", "min": -0.1}, "min must be a number in [0, 1]"),
        ({"reference": "x", "min": True}, "min must be a number in [0, 1]"),
        ({"reference": "x", "mni": 0.5}, "unknown key 'mni'"),
        ("just text", "expects a mapping"),
    ],
)
def test_bad_arguments_are_refused_at_load(arg, says):
    """A missing reference, min outside [0, 1] or an unknown key is refused when the suite
    loads, saying which."""
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("]", r"\]")):
        get_check("bleu").prepare(arg, CTX)


def test_bad_rouge_type_and_distance_are_refused():
    """rouge's type is one of rouge1, rouge2, rougeL; max_distance is a whole number ≥ 0."""
    with pytest.raises(ValueError, match="type must be one of"):
        get_check("rouge").prepare({"reference": "x", "type": "rouge3"}, CTX)
    with pytest.raises(ValueError, match="max_distance must be"):
        get_check("levenshtein").prepare({"reference": "x", "max_distance": -1}, CTX)


def test_a_record_without_scores_still_loads():
    """A check line written before scores existed loads with no score, and a check with
    no score writes no score key (its line stays as it was)."""
    old = {"check": "contains", "status": "pass", "message": "m", "place": "", "expected": 1}
    loaded = CheckResult.from_json({**old, "actual": None})
    assert loaded.score is None
    assert "score" not in loaded.to_json()
    scored = CheckResult("f1", "pass", "m", score=0.5)
    assert CheckResult.from_json(scored.to_json()).score == 0.5


CONFIG = """
[settings]
max_retries = 0

[targets.gpt35]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "gpt35"
model = "gpt-35-turbo"
"""

SUITE = """
suite: golden
cases:
  - id: "{{ row.city }}"
    for_each: {row: golden.jsonl}
    prompt: "What is the capital of {{ row.city }}?"
    expect:
      f1: {reference: "{{ row.answer }}", min: 0.9}
      levenshtein: {reference: "{{ row.answer }}", max_distance: 5}
"""


@pytest.fixture
def project(make_project):
    """A suite with golden answers per row, against the fake Azure server."""
    rules = [Rule(Match(last_user=""), Action(content="The capital of France is Paris."))]
    rows = (
        '{"city": "Paris", "answer": "The capital of France is Paris."}\n'
        '{"city": "Rome", "answer": "The capital of Italy is Rome."}\n'
    )
    with FakeAzure([Deployment("gpt35")], rules=rules, api_keys=(KEY,)) as fake:
        files = {"suites/golden.yaml": SUITE, "suites/golden.jsonl": rows}
        yield make_project(fake, KEY, CONFIG, files)


def test_references_render_from_rows_and_scores_reach_the_record(project):
    """The reference renders from the for_each row; the run records each check's score,
    and the case whose reply differs from its reference fails."""
    assert azeval("run", "suites", "-t", "gpt35") == 1
    (run_dir,) = sorted((project / "reports" / "runs").iterdir())
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    by_case = {r["case"]: r for r in map(json.loads, lines)}
    paris = by_case["Paris"]["turns"][0]["checks"]
    rome = by_case["Rome"]["turns"][0]["checks"]
    assert [(c["check"], c["status"], c["score"]) for c in paris] == [
        ("f1", "pass", 1.0),
        ("levenshtein", "pass", 1.0),
    ]
    # capital of France/Paris vs Italy/Rome: 3 of 5 tokens shared each way.
    assert rome[0]["status"] == "fail" and rome[0]["score"] == pytest.approx(0.6)
    assert by_case["Paris"]["verdict"] == "pass" and by_case["Rome"]["verdict"] == "fail"


def test_a_bad_min_in_a_suite_is_exit_2_naming_the_place(project, write, capsys):
    """min outside [0, 1] in a suite file: exit 2 naming the file, line and key."""
    write("suites/golden.yaml", SUITE.replace("min: 0.9", "min: 9"))
    assert azeval("run", "suites", "-t", "gpt35") == 2
    err = capsys.readouterr().err
    assert "golden.yaml" in err and "expect.f1.min" in err and "[0, 1]" in err
