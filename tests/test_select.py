"""Choosing cases: -k expressions over suite/case ids and tags, --tag, and file::case."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError, SuiteError
from harness.suite.select import (
    KeywordError,
    Selection,
    load_selected,
    parse_keyword,
    split_case_path,
)

SUITES = {
    "tax.yaml": """
        suite: tax
        cases:
          - {id: tax-deadline, prompt: When?, tags: [smoke], expect: {contains: April}}
          - {id: tax-refund, prompt: Refund?, tags: [slow], expect: {contains: weeks}}
          - {id: vat-rate, prompt: VAT?, expect: {contains: "%"}}
        """,
    "qa.yaml": """
        suite: qa
        cases:
          - {id: capital-of-france, prompt: Capital?, tags: [smoke, geo], expect: {contains: Paris}}
          - {id: refund-policy, prompt: Refunds?, expect: {contains: days}}
        """,
}


@pytest.fixture
def folder(write) -> Path:
    for name, text in SUITES.items():
        path = write(f"suites/{name}", text)
    return path.parent


def keys(suites) -> list[str]:
    return [case.key for suite in suites for case in suite.cases]


def test_k_matches_words_of_ids_with_and_or_not(folder: Path) -> None:
    """-k "tax and not refund": substrings of suite/case ids, combined like pytest's -k."""
    chosen = load_selected([folder], Selection(keyword="tax and not refund"))
    assert keys(chosen) == ["tax/tax-deadline", "tax/vat-rate"]
    assert keys(load_selected([folder], Selection(keyword="refund"))) == [
        "qa/refund-policy",
        "tax/tax-refund",
    ]
    either = load_selected([folder], Selection(keyword="(France or VAT) and not deadline"))
    assert keys(either) == ["qa/capital-of-france", "tax/vat-rate"]


def test_k_matches_tags_and_whole_ids(folder: Path) -> None:
    """A -k word also matches a case's tags, and an id with its suite and dashes."""
    assert keys(load_selected([folder], Selection(keyword="smoke"))) == [
        "qa/capital-of-france",
        "tax/tax-deadline",
    ]
    assert keys(load_selected([folder], Selection(keyword="qa/capital-of-france"))) == [
        "qa/capital-of-france"
    ]


def test_a_suite_keeps_its_identity_when_narrowed(folder: Path) -> None:
    """A narrowed suite is the same suite (id, path, content hash) with fewer cases."""
    (whole,) = [s for s in load_selected([folder]) if s.id == "qa"]
    (narrowed,) = load_selected([folder], Selection(keyword="france"))
    assert (narrowed.id, narrowed.path, narrowed.sha256) == (whole.id, whole.path, whole.sha256)
    assert len(narrowed.cases) == 1 and len(whole.cases) == 2


def test_tags_keep_cases_with_any_of_them_and_combine_with_k(folder: Path) -> None:
    """--tag is repeatable (any of them, exact names) and narrows -k further."""
    assert keys(load_selected([folder], Selection(tags=("slow", "geo")))) == [
        "qa/capital-of-france",
        "tax/tax-refund",
    ]
    assert keys(load_selected([folder], Selection(keyword="tax", tags=("smoke",)))) == [
        "tax/tax-deadline"
    ]
    # Tags are names, not substrings: "smok" is no tag.
    with pytest.raises(InputError):
        load_selected([folder], Selection(tags=("smok",)))


def test_file_and_case_names_one_case(folder: Path) -> None:
    """suites/qa.yaml::capital-of-france runs that case only; several may be named."""
    chosen = load_selected([f"{folder}/qa.yaml::capital-of-france"])
    assert keys(chosen) == ["qa/capital-of-france"]
    both = load_selected([f"{folder}/qa.yaml::refund-policy", f"{folder}/tax.yaml::vat-rate"])
    assert keys(both) == ["qa/refund-policy", "tax/vat-rate"]
    assert split_case_path("a/b.yaml::c") == ("a/b.yaml", "c")
    assert split_case_path("a/b.yaml") == ("a/b.yaml", None)


def test_naming_many_cases_of_a_for_each_builds_none_of_them(write, monkeypatch) -> None:
    """A resumed selection names each of its cases (file::case, maybe 100,000 of them): the
    ids are found from each row's id alone, and the cases kept are those named, in the
    suite's order, however the names are ordered or repeated; their checks are read
    without building them either."""
    import json

    from harness.suite.build import CaseWriting

    rows = "".join(json.dumps({"n": n}) + "\n" for n in range(300))
    write("suites/data/rows.jsonl", rows)
    suite = write(
        "suites/many.yaml",
        """
        suite: many
        cases:
          - {id: first, prompt: Hello?, expect: {contains: hi}}
          - id: "row-{{ row.n }}"
            for_each: {row: data/rows.jsonl}
            prompt: "Row {{ row.n }}?"
            expect: {contains: "{{ row.n }}"}
        """,
    )
    from harness.suite.loader import load_suite

    loaded = load_suite(suite)
    built: list[str] = []
    case = CaseWriting.case

    def counted(self, place, variables, *, checks=True):
        made = case(self, place, variables, checks=checks)
        built.append(made.id)
        return made

    monkeypatch.setattr(CaseWriting, "case", counted)
    from harness.suite.select import CasePaths, narrow

    names = [f"row-{n}" for n in range(299, 0, -3)] + ["first", "row-299"]
    wanted = CasePaths.parse([f"{suite}::{name}" for name in names])
    (chosen,) = narrow([loaded], wanted, Selection())
    assert built == []  # the ids were found, and the cases kept, without building one
    assert len(chosen.cases) == 101
    assert [c.id for c in chosen.cases] == ["first", *(f"row-{n}" for n in range(2, 300, 3))]
    # What checks the selection holds (does one need a model, a judge?), asked of its cases
    # without building one: the first row picked stands for the rest of its for_each.
    built.clear()
    assert [(e.check, e.arg) for e in chosen.checks()] == [
        ("contains", ("hi",)),
        ("contains", ("2",)),
    ]
    assert built == []
    with pytest.raises(SuiteError, match=r"no case 'row-300' .*did you mean 'row-30"):
        narrow([loaded], CasePaths.parse([f"{suite}::row-300"]), Selection())


def test_an_unknown_case_names_the_file_and_a_close_id(folder: Path) -> None:
    """file::case with a typo: a SuiteError naming the file, with a did-you-mean."""
    with pytest.raises(
        SuiteError, match=r"qa\.yaml: no case 'capital-of-franc' .*did you mean 'capital-of-france'"
    ):
        load_selected([f"{folder}/qa.yaml::capital-of-franc"])
    with pytest.raises(InputError, match="after '::'"):
        load_selected([f"{folder}/qa.yaml::"])


def test_a_selection_matching_nothing_is_exit_2_saying_so(folder: Path) -> None:
    """No case matched: exit 2, saying what was asked and how many cases there were."""
    with pytest.raises(InputError) as caught:
        load_selected([folder], Selection(keyword="nothing-like-this", tags=("smoke",)))
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "-k 'nothing-like-this' --tag smoke" in message
    assert "none of the 5 case(s) in 2 suite(s)" in message


@pytest.mark.parametrize(
    ("expression", "where"),
    [
        ("tax and", "column 8: expected a word"),
        ("(tax or vat", "column 12: expected ')'"),
        ("tax vat", "column 5: expected 'and' or 'or'"),
        ("and tax", "column 1: expected a word"),
        ("tax & vat", "column 5: unexpected character '&'"),
    ],
)
def test_a_broken_expression_says_where(expression: str, where: str) -> None:
    """A -k expression that does not parse is exit 2 with the column of the problem."""
    with pytest.raises(KeywordError) as caught:
        parse_keyword(expression)
    assert caught.value.exit_code == 2
    assert where in str(caught.value)


def test_an_empty_expression_keeps_everything(folder: Path) -> None:
    """-k '' (as a CI variable left empty writes it) selects every case."""
    assert len(keys(load_selected([folder], Selection(keyword="  ")))) == 5
