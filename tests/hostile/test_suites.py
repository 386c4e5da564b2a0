"""Suites from strangers: every hostile file is exit 2 naming the file and the place, in
bounded time and memory, nothing sent, and nothing outside the project read or quoted."""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path

import pytest

from tests.conftest import azeval
from tests.hostile.server import HostileServer, config_text

SENTINEL = "S3NTINEL-environ-0451"
BOMB = """suite: bomb
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
cases: [{id: x, prompt: hi, expect: {contains: *i}}]
"""
ONE_CASE = "suite: s\ncases:\n  - id: c\n    prompt: hi\n    expect: {{{expect}}}\n"
OUTSIDE = '{"type": "object", "description": "OUTSIDE-SECRET-7781"}'


def case_with(expect: str) -> str:
    return ONE_CASE.format(expect=expect)


def for_each(source: str, case_id: str = "r{{ r.n }}") -> str:
    return (
        f"suite: s\ncases:\n  - id: '{case_id}'\n    for_each: {{r: {source}}}\n"
        "    prompt: '{{ r.q }}'\n    expect: {contains: ok}\n"
    )


# name → (files below the project, suite text, what the error must say)
HOSTILE: dict[str, tuple[dict[str, str], str, str]] = {
    "duplicate-cases": (
        {},
        "suite: s\ncases:\n  - {id: a, prompt: hi, expect: {contains: ok}}\n"
        "cases:\n  - {id: b, prompt: hi, expect: {contains: ok}}\n",
        "line 4, column 1: key 'cases' is written twice in one mapping (first at line 2)",
    ),
    "duplicate-expect": (
        {},
        "suite: s\ncases:\n  - id: a\n    prompt: hi\n    expect: {contains: ok}\n"
        "    expect: {not_contains: sorry}\n",
        "line 6, column 5: key 'expect' is written twice",
    ),
    "duplicate-in-flow-mapping": (
        {},
        case_with("contains: ok, contains: sorry"),
        "key 'contains' is written twice",
    ),
    "alias-bomb": ({}, BOMB, "refused as an alias bomb"),
    "deep-nesting": ({}, "suite: s\ncases: " + "[" * 5000 + "]" * 5000 + "\n", "line"),
    "schema-dev-zero": ({}, case_with("json_schema: /dev/zero"), "outside the suite's project"),
    "schema-etc-passwd": ({}, case_with("json_schema: /etc/passwd"), "outside"),
    "schema-proc-environ": ({}, case_with("json_schema: /proc/self/environ"), "outside"),
    "schema-dot-dot": (
        {},
        case_with("json_schema: ../../other/secret.json"),
        "schema file ../../other/secret.json is outside the suite's project",
    ),
    "schema-symlink-out": (
        {"link": "->../../other/secret.json"},
        case_with("json_schema: ../link"),
        "outside the suite's project",
    ),
    "schema-fifo": ({"pipe.json": "|fifo"}, case_with("json_schema: ../pipe.json"), "regular"),
    "schema-folder": ({"folder/x": "{}"}, case_with("json_schema: ../folder"), "regular"),
    "schema-yaml-duplicate": (
        {"schema.yaml": "type: object\ntype: string\n"},
        case_with("json_schema: ../schema.yaml"),
        "key 'type' is written twice",
    ),
    "schema-yaml-bomb": (
        {"schema.yaml": BOMB.replace("suite: bomb\n", "").split("cases:")[0]},
        case_with("json_schema: ../schema.yaml"),
        "alias bomb",
    ),
    "python-check-outside": (
        {},
        case_with("python: ../../other/evil.py:check"),
        "outside the suite's project",
    ),
    "data-etc-passwd": ({}, for_each("/etc/passwd"), "outside the suite's project"),
    "data-dot-dot": ({}, for_each("../../other/rows.jsonl"), "outside the suite's project"),
    "data-fifo": ({"rows.csv": "|fifo"}, for_each("../rows.csv"), "regular"),
    "data-yaml-bomb": (
        {"rows.yaml": BOMB.replace("suite: bomb\n", "").split("cases:")[0] + "- *i\n"},
        for_each("../rows.yaml"),
        "",
    ),
    "csv-too-few-fields": (
        {"rows.csv": "n,q\n1,hello\n2\n"},
        for_each("../rows.csv"),
        "rows.csv:3: 1 field(s), the header has 2",
    ),
    "csv-too-many-fields": (
        {"rows.csv": "n,q\n1,hello,extra\n"},
        for_each("../rows.csv"),
        "rows.csv:2: 3 field(s), the header has 2",
    ),
    "empty-case-id": ({}, case_with("contains: ok").replace("id: c", "id: '{{ \"\" }}'"), "empty"),
    "empty-case-id-from-row": (
        {"rows.jsonl": '{"n": "", "q": "hi"}\n'},
        for_each("../rows.jsonl", case_id="{{ r.n }}"),
        "the case id renders empty",
    ),
    "jinja-nested-loops": (
        {},
        case_with("contains: ok").replace(
            "prompt: hi",
            "prompt: '{% for a in range(100000) %}{% for b in range(100000) %}"
            "{% endfor %}{% endfor %}'",
        ),
        "s.yaml:4: cases[0].prompt: template too costly to render",
    ),
    "jinja-huge-string": (
        {},
        case_with("contains: ok").replace("prompt: hi", "prompt: \"{{ 'x' * 1000000000 }}\""),
        "template too costly to render",
    ),
    "jinja-macro-fork-bomb": (
        {},
        case_with("contains: ok").replace(
            "prompt: hi",
            "prompt: '{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}"
            "{% endmacro %}{{ f(60) }}'",
        ),
        "template too costly to render",
    ),
    "jinja-huge-power": (
        {},
        case_with("contains: ok").replace("prompt: hi", "prompt: '{{ 2 ** 100000000 }}'"),
        "too costly",
    ),
}


def build(root: Path, files: dict[str, str], suite: str) -> Path:
    """A project: azeval.toml at root, the suite in root/suites, files below root."""
    (root / "suites").mkdir(parents=True)
    (root / "suites" / "s.yaml").write_text(suite)
    other = root.parent / "other"
    other.mkdir(exist_ok=True)
    (other / "secret.json").write_text(OUTSIDE)
    (other / "rows.jsonl").write_text('{"n": 1, "q": "OUTSIDE-SECRET-7781"}\n')
    (other / "evil.py").write_text("raise SystemExit('OUTSIDE-SECRET-7781')\n")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if text.startswith("->"):
            path.symlink_to((root / text[2:]).resolve())
        elif text == "|fifo":
            os.mkfifo(path)
        else:
            path.write_text(text)
    return root


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_suite_is_exit_2_at_its_place_and_sends_nothing(
    tmp_path, monkeypatch, capsys, name
):
    """Each hostile suite is refused (exit 2) with a message naming the file and the
    place, within a few seconds and a bounded amount of memory; nothing is sent, and no
    content from outside the project (or of the environment) appears in the output."""
    files, suite, expected = HOSTILE[name]
    root = build(tmp_path / "project", files, suite)
    monkeypatch.chdir(root)
    monkeypatch.setenv("AZEVAL_TEST_SENTINEL", SENTINEL)
    with HostileServer({}) as server:
        (root / "azeval.toml").write_text(config_text(server.url))
        tracemalloc.start()
        started = time.perf_counter()
        code = azeval("run", "suites")
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert server.requests == []
    err = capsys.readouterr().err
    print(f"{name}: {elapsed:.2f} s, {peak >> 20} MB")
    assert code == 2, err
    assert "s.yaml" in err
    assert expected in err
    for leaked in ("OUTSIDE-SECRET-7781", SENTINEL, "root:x:0"):
        assert leaked not in err
    assert elapsed < 5.0
    assert peak < 100 * 1024 * 1024


def test_suite_files_from_lets_a_project_trust_another_folder(tmp_path, monkeypatch, capsys):
    """[settings] suite_files_from names folders outside the project that suites may read:
    the schema beside the project loads and the suite validates."""
    root = build(tmp_path / "project", {}, case_with("json_schema: ../../other/secret.json"))
    monkeypatch.chdir(root)
    (root / "azeval.toml").write_text('[settings]\nsuite_files_from = ["../other"]\n')
    assert azeval("validate", "suites") == 0, capsys.readouterr().err


def test_a_file_inside_the_project_beside_the_suites_folder_is_read(tmp_path, monkeypatch):
    """The project is the folder holding azeval.toml, not only the suite's folder: a schema
    in schemas/ beside suites/ loads."""
    root = build(
        tmp_path / "project",
        {"schemas/s.json": OUTSIDE},
        case_with("json_schema: ../schemas/s.json"),
    )
    monkeypatch.chdir(root)
    (root / "azeval.toml").write_text("")
    assert azeval("validate", "suites") == 0


def test_without_a_config_the_project_is_the_suites_folder(tmp_path, monkeypatch):
    """With no azeval.toml above it, a suite may read files in its own folder only."""
    root = build(tmp_path / "project", {"suites/s.json": OUTSIDE}, case_with("json_schema: s.json"))
    monkeypatch.chdir(root)
    assert azeval("validate", "suites") == 0
    (root / "suites" / "s.yaml").write_text(case_with("json_schema: ../suites/../x.json"))
    assert azeval("validate", "suites") == 2


def test_a_bogus_verdict_in_results_jsonl_is_not_a_result_record(tmp_path, monkeypatch, capsys):
    """A journal line whose verdict is not a verdict ("banana") is refused as not a result
    record, naming the line, as other damaged lines are: it was counted nowhere and the
    report, bless and gate carried on as if the run were whole."""
    run_dir = tmp_path / "reports" / "runs" / "20260101-000000-abcd"
    run_dir.mkdir(parents=True)
    meta = {
        "run_id": run_dir.name,
        "status": "complete",
        "started_at": "2026-01-01T00:00:00+00:00",
        "targets": [{"name": "t", "kind": "openai", "model": "gpt-4o"}],
    }
    (run_dir / "run.json").write_text(json.dumps(meta))
    line = {"suite": "s", "case": "c", "target": "t", "repeat": 0, "verdict": "banana", "turns": []}
    (run_dir / "results.jsonl").write_text(json.dumps(line) + "\n")
    monkeypatch.chdir(tmp_path)
    assert azeval("bless", str(run_dir), "-o", "b.json") == 2
    assert "results.jsonl:1: not a result record (verdict 'banana')" in capsys.readouterr().err
    assert azeval("report", str(run_dir)) == 2
