"""A for_each's cases are built from their row when read, equal to the cases written out;
a bad row is still an error at its file and line, found at load, before anything is sent."""

from __future__ import annotations

import gc
import json
from dataclasses import replace

import pytest

from harness.errors import SuiteError
from harness.preflight import plan
from harness.suite import Case, load_suite
from harness.suite.cases import Changed, Picked, key_at, without_checks
from harness.suite.model import streamed
from harness.suite.select import CasePaths, Selection, narrow
from harness.suite.shard import Shard, cut
from harness.testing import Deployment, FakeAzure
from tests.conftest import azeval

ROWS = [{"id": n, "q": f"question {n}", "kw": f"word{n}"} for n in range(1, 301)]
HEAD = """
suite: s
defaults:
  system: You answer tax questions.
  params: {max_tokens: 20, temperature: 0}
  expect: {not_regex: "^$"}
cases:
  - id: first
    prompt: Hello
"""
FOR_EACH = (
    HEAD
    + """\
  - id: "tax-{{ row.id }}"
    for_each: {row: data/q.jsonl}
    prompt: "Q: {{ row.q }}"
    tags: [tax]
    expect:
      icontains: "{{ row.kw }}"
      not_contains: sorry
  - id: last
    prompt: Bye
"""
)
# One row's case written out by hand, as the for_each renders it, at the same index.
WRITTEN_OUT = (
    HEAD
    + """\
  - id: "tax-{id}"
    prompt: "Q: question {id}"
    tags: [tax]
    expect:
      icontains: "word{id}"
      not_contains: sorry
"""
)


@pytest.fixture
def suite_path(write):
    write("data/q.jsonl", "".join(json.dumps(row) + "\n" for row in ROWS))
    return write("s.yaml", FOR_EACH)


def _live_cases() -> int:
    gc.collect()
    return sum(isinstance(o, Case) for o in gc.get_objects())


def test_a_loaded_for_each_holds_its_rows_not_its_cases(suite_path):
    """Loading a 300-row for_each keeps no Case per row: the two written cases are all."""
    before = _live_cases()
    suite = load_suite(suite_path)
    assert len(suite.cases) == 302
    assert _live_cases() - before == 2


def test_each_read_builds_the_case_anew_and_equal(suite_path):
    """Indexing, negative indexing, slicing and iterating give equal cases, each built
    when read; an index past the end is an IndexError."""
    cases = load_suite(suite_path).cases
    assert cases[5] == cases[5] and cases[5] is not cases[5]
    assert [c.id for c in cases[:3]] == ["first", "tax-1", "tax-2"]
    assert cases[-1].id == "last" and cases[-2].id == "tax-300"
    assert list(cases)[150] == cases[150]
    assert [c.id for c in cases[::100]] == ["first", "tax-100", "tax-200", "tax-300"]
    with pytest.raises(IndexError):
        cases[302]
    assert cases == tuple(cases)


@pytest.mark.parametrize("n", [1, 150, 300])
def test_a_rows_case_equals_the_case_written_out(suite_path, write, n):
    """Row n's case is the case one would write by hand for it, but for where it is."""
    lazy = load_suite(suite_path).cases[n]
    written = load_suite(write(f"one-{n}.yaml", WRITTEN_OUT.replace("{id}", str(n)))).cases[1]
    assert lazy.place == f"cases[1][row {n}]"
    assert replace(lazy, place="", path="") == replace(written, place="", path="")
    assert [m.content for m in lazy.messages] == ["You answer tax questions.", f"Q: question {n}"]


def test_rows_share_what_no_template_changes(suite_path):
    """Params and untemplated checks are one object for every row's case."""
    cases = load_suite(suite_path).cases
    one, two = cases[1], cases[2]
    assert one.params is two.params
    checks = [{e.check: e for e in c.turns[0].expectations} for c in (one, two)]
    assert checks[0]["not_contains"] is checks[1]["not_contains"]
    assert checks[0]["icontains"].arg == ("word1",) and checks[1]["icontains"].arg == ("word2",)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": 7, "q": "x", "kw": ', r"data/q\.jsonl:8: not valid JSON"),
        ("[1, 2]", r"data/q\.jsonl:8: a row must be a mapping"),
    ],
)
def test_a_bad_row_is_an_error_at_its_line_at_load(write, line, message):
    """A broken row among valid ones fails the load naming the data file's line (blank
    lines counted), not later when its case would be read."""
    lines = [json.dumps(row) for row in ROWS[:6]]
    write("data/q.jsonl", "\n".join([*lines, "", line, json.dumps(ROWS[8])]) + "\n")
    with pytest.raises(SuiteError, match=rf"s\.yaml:\d+: cases\[1\]\.for_each\.row: {message}"):
        load_suite(write("s.yaml", FOR_EACH))


def test_a_row_missing_a_key_is_an_error_at_its_place_and_row(write):
    """A row whose template variable is missing fails the load at the template's place."""
    rows = [*ROWS[:4], {"id": 5, "kw": "no question"}, *ROWS[5:9]]
    write("data/q.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(SuiteError, match=r"s\.yaml:11: cases\[1\]\.prompt: template") as err:
        load_suite(write("s.yaml", FOR_EACH))
    assert "(in row 5)" in str(err.value)


def test_a_row_a_templated_check_cannot_render_names_its_row(write):
    """A templated check's argument that a row cannot fill fails the load at the check's
    place, saying which row (as a prompt's does)."""
    rows = [*ROWS[:6], {"id": 7, "q": "no keyword"}, *ROWS[7:9]]
    write("data/q.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(SuiteError, match=r"s\.yaml:14: cases\[1\]\.expect\.icontains: ") as err:
        load_suite(write("s.yaml", FOR_EACH))
    assert str(err.value).endswith("(in row 7)")


def test_a_bad_row_is_exit_2_and_nothing_is_sent(make_project, write, capsys):
    """`azeval run` of a for_each whose 250th row is broken exits 2 naming the file and
    line, and the service gets no request."""
    key = "sk-test-0123456789abcdef"
    config = (
        '[targets.gpt35]\nkind = "azure"\nendpoint = "${FAKE_AZURE_ENDPOINT}"\n'
        'deployment = "gpt35"\nmodel = "gpt-35-turbo"\nmodel_version = "0125"\n'
    )
    with FakeAzure([Deployment("gpt35")], api_keys=(key,)) as server:
        project = make_project(server, key, config, {"suites/s.yaml": FOR_EACH})
        lines = [json.dumps(row) for row in ROWS]
        lines[249] = '{"id": 250, "q": oops}'
        (project / "suites" / "data").mkdir()
        (project / "suites" / "data" / "q.jsonl").write_text("\n".join(lines) + "\n")
        assert azeval("run", "suites") == 2
        assert server.requests == []
    err = capsys.readouterr().err
    assert "suites/s.yaml:" in err and "data/q.jsonl:250: not valid JSON" in err


def test_a_selection_of_a_for_each_holds_indices_and_the_same_cases(suite_path):
    """-k over a for_each keeps the matching rows' cases, built when read, equal to the
    suite's own; a selection matching every case leaves the suite as it was."""
    suite = load_suite(suite_path)
    (picked,) = narrow([suite], CasePaths.parse([suite_path]), Selection("tax-2"))
    assert isinstance(picked.cases, Picked) and picked.narrowed
    ids = [c.id for c in picked.cases]
    assert ids == [
        "tax-2",
        *(f"tax-{n}" for n in range(20, 30)),
        *(f"tax-{n}" for n in range(200, 300)),
    ]
    assert picked.cases[1] == suite.cases[20]  # tax-20
    (same,) = narrow([suite], CasePaths.parse([suite_path]), Selection())
    assert same is suite
    (tagged,) = narrow([suite], CasePaths.parse([suite_path]), Selection(tags=("tax",)))
    assert len(tagged.cases) == 300


def test_a_shard_of_a_for_each_has_its_cases_and_no_other(suite_path):
    """Two shards of a for_each split its cases between them, each case in one."""
    suite = load_suite(suite_path)
    halves = [cut([suite], Shard(k, 2)).suites[0].cases for k in (1, 2)]
    assert sorted(c.id for half in halves for c in half) == sorted(c.id for c in suite.cases)
    assert all(len(half) < len(suite.cases) for half in halves)


def test_checks_of_a_for_each_are_read_without_building_its_cases(suite_path, monkeypatch):
    """Suite.checks gives the for_each's checks as its first row has them, building no
    case (what the look for checks needing a model or embeddings reads)."""
    suite = load_suite(suite_path)
    monkeypatch.setattr("harness.suite.build.CaseWriting.case", None)  # would raise TypeError
    names = [e.check for e in suite.checks()]
    assert names == ["not_regex", "not_regex", "icontains", "not_contains", "not_regex"]


def test_a_templated_check_whose_needs_vary_is_read_for_every_row(write):
    """A content_filter check templated per row is given for every row: what it needs
    depends on its argument."""
    write("data/r.jsonl", '{"n": 1, "level": "safe"}\n{"n": 2, "level": "low"}\n')
    path = write(
        "s.yaml",
        """
        suite: s
        cases:
          - id: "c{{ r.n }}"
            for_each: {r: data/r.jsonl}
            prompt: hi
            expect: {content_filter: {max_severity: "{{ r.level }}"}}
        """,
    )
    assert len(list(load_suite(path).checks())) == 2


def test_plan_names_each_rows_place_for_params_all_rows_share(write):
    """A params problem of a for_each is found once for the rows' shared params yet said
    at each row's own place."""
    write("data/q.jsonl", "".join(json.dumps(row) + "\n" for row in ROWS[:3]))
    path = write("s.yaml", FOR_EACH.replace("temperature: 0", "logprobs: 3"))
    from harness.config import TargetConfig

    target = TargetConfig(name="t", kind="azure", model="gpt-35-turbo", model_version="0125")
    checked = plan(load_suite(path).cases, [target])
    places = [p.place for row in checked.rows for p in row.problems]
    assert places == [
        "cases[0].params.logprobs",
        *(f"cases[1][row {n}].params.logprobs" for n in (1, 2, 3)),
        "cases[2].params.logprobs",
    ]


def test_streaming_a_for_each_changes_each_case_as_it_is_read(suite_path):
    """--stream over a for_each sets stream: true on each case when read, building none
    ahead, and keeps the checks as they were."""
    suite = load_suite(suite_path)
    on = streamed(suite)
    assert isinstance(on.cases, Changed) and len(on.cases) == len(suite.cases)
    assert on.cases[7].params == {**suite.cases[7].params, "stream": True}
    assert replace(on.cases[7], params=suite.cases[7].params) == suite.cases[7]
    assert list(on.checks()) == list(suite.checks())


def test_a_plan_reads_a_for_each_without_its_checks_and_plans_it_the_same(suite_path):
    """A plan builds each row's case without its checks (the load prepared them): the cases
    are the suite's but for the checks (those written out as they are), through a selection
    and --stream too, and the plan
    of the suite is row for row the plan of its cases built in full."""
    from harness.config import TargetConfig

    suite = load_suite(suite_path)
    (picked,) = narrow([streamed(suite)], CasePaths.parse([suite_path]), Selection("tax-2"))
    for cases in (suite.cases, picked.cases):
        bare = without_checks(cases)
        assert len(bare) == len(cases)
        for full, plain in zip(cases, bare, strict=True):
            if "[row " not in full.place:  # a case written out is as it is, already built
                assert plain is full
                continue
            assert plain == replace(
                full, turns=tuple(replace(t, expectations=()) for t in full.turns)
            )
    assert suite.cases[5].turns[0].expectations  # the suite's own cases keep theirs
    targets = [
        TargetConfig(name=name, kind="azure", model="gpt-35-turbo", model_version="0125")
        for name in ("a", "b")
    ]
    assert plan(suite.cases, targets) == plan(list(suite.cases), targets)


def test_a_plan_lists_each_targets_rows_together_in_case_order(suite_path):
    """A plan of two targets gives every case's row on the first target, then on the
    second, each in the suite's order (the cases are read once for both)."""
    from harness.config import TargetConfig

    suite = load_suite(suite_path)
    targets = [
        TargetConfig(name=name, kind="azure", model="gpt-35-turbo", model_version="0125")
        for name in ("a", "b")
    ]
    checked = plan(suite.cases, targets)
    ids = [c.id for c in suite.cases]
    assert [(r.target, r.case) for r in checked.rows] == [(t, i) for t in "ab" for i in ids]
    assert [t.cases for t in checked.targets] == [len(ids), len(ids)]


def test_a_cases_key_is_read_from_its_row_without_building_it(suite_path, monkeypatch):
    """key_at gives each case's key and repeat as the built case has them, through a
    selection and streaming too; a for_each's is rendered from its row's id alone, no case
    built."""
    suite = load_suite(suite_path)
    (picked,) = narrow([streamed(suite)], CasePaths.parse([suite_path]), Selection("tax-2"))
    expected = {
        id(cases): [(case.key, case.repeat) for case in cases]
        for cases in (suite.cases, picked.cases)
    }
    from harness.suite.build import CaseWriting

    def unbuilt(*args, **kwargs):
        raise AssertionError("a case was built for its key")

    monkeypatch.setattr(CaseWriting, "case", unbuilt)
    for cases in (suite.cases, picked.cases):
        keys = [tuple(key_at(cases, i)) for i in range(len(cases))]
        assert keys == expected[id(cases)]
    assert key_at(suite.cases, 1) == ("s/tax-1", 1)
