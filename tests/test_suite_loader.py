"""Loading suite files: validation with file, line and place; expansion and rendering."""

from __future__ import annotations

import pytest

from harness.errors import SuiteError
from harness.suite import find_suite_files, load_suite, load_suites


def test_minimal_suite_loads_with_defaults_applied(write):
    """defaults.system is put first and defaults.params are merged under the case's."""
    path = write(
        "s.yaml",
        """
        suite: demo
        defaults:
          system: Be brief.
          params: {temperature: 0, max_tokens: 50}
          expect: {max_latency_ms: 9000}
        cases:
          - id: one
            prompt: Hello
            params: {max_tokens: 5}
            expect: {contains: Hi}
        """,
    )
    suite = load_suite(path)
    (case,) = suite.cases
    assert [m.role for m in case.messages] == ["system", "user"]
    assert case.messages[0].content == "Be brief."
    assert dict(case.params) == {"temperature": 0, "max_tokens": 5}
    assert [e.check for e in case.turns[0].expectations] == ["max_latency_ms", "contains"]
    assert len(suite.sha256) == 64


def test_case_with_own_system_message_keeps_it(write):
    """A case that writes its own system message does not get the default one too."""
    path = write(
        "s.yaml",
        """
        suite: demo
        defaults: {system: Default.}
        cases:
          - id: one
            messages:
              - {role: system, content: Mine.}
              - {role: user, content: Hi}
            expect: {contains: x}
        """,
    )
    (case,) = load_suite(path).cases
    assert [m.content for m in case.messages] == ["Mine.", "Hi"]


def test_unknown_check_names_file_line_place_and_suggestion(write):
    """An unknown check is a SuiteError with file:line, the place and a did-you-mean."""
    path = write(
        "refunds.yaml",
        """
        suite: refunds
        cases:
          - id: a
            prompt: hi
            expect: {contains: x}
          - id: b
            prompt: hi
            expect:
              containz: x
        """,
    )
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    message = str(err.value)
    assert f"{path}:9: cases[1].expect: unknown check 'containz'" in message
    assert "did you mean 'contains'?" in message
    assert err.value.exit_code == 2


def test_schema_violation_points_at_the_field(write):
    """A bad role is reported at cases[0].messages[0].role with its line."""
    path = write(
        "s.yaml",
        """
        suite: s
        cases:
          - id: a
            messages:
              - role: bot
                content: hi
        """,
    )
    with pytest.raises(
        SuiteError, match=r"s\.yaml:5: cases\[0\]\.messages\[0\]\.role: 'bot' is not one of"
    ):
        load_suite(path)


def test_unknown_key_in_case_is_named(write):
    """A misspelt case key is an 'unknown key' error, not silently ignored."""
    path = write("s.yaml", "suite: s\ncases:\n  - id: a\n    prompt: hi\n    expekt: {}\n")
    with pytest.raises(SuiteError, match=r"cases\[0\]: unknown key \('expekt' was unexpected\)"):
        load_suite(path)


def test_malformed_yaml_reports_line_and_column(write):
    """YAML syntax errors give the line and column, exit code 2."""
    path = write("s.yaml", "suite: s\ncases:\n  - id: [unclosed\n")
    with pytest.raises(SuiteError, match=r"line \d+, column \d+: not valid YAML"):
        load_suite(path)


def test_case_needs_messages_or_prompt(write):
    """A case with neither messages nor prompt is rejected with a plain message."""
    path = write("s.yaml", "suite: s\ncases:\n  - id: a\n    expect: {contains: x}\n")
    with pytest.raises(SuiteError, match=r"cases\[0\]: needs 'messages' or 'prompt'"):
        load_suite(path)


def test_invalid_json_schema_is_rejected_at_load(write):
    """An expectation's JSON Schema that is itself invalid fails before sending."""
    path = write(
        "s.yaml",
        """
        suite: s
        cases:
          - id: a
            prompt: hi
            expect:
              json_schema: {type: objekt}
        """,
    )
    with pytest.raises(SuiteError, match=r"cases\[0\]\.expect\.json_schema: invalid JSON Schema"):
        load_suite(path)


def test_schema_file_is_resolved_relative_to_suite(write):
    """json_schema may name a file next to the suite; it is loaded and checked."""
    write("suites/schemas/contact.json", '{"type": "object", "required": ["name"]}')
    path = write(
        "suites/s.yaml",
        """
        suite: s
        cases:
          - id: a
            prompt: hi
            expect: {json_schema: schemas/contact.json}
        """,
    )
    (case,) = load_suite(path).cases
    assert case.turns[0].expectations[0].arg == {"type": "object", "required": ["name"]}


def test_missing_schema_file_is_an_error(write):
    """A json_schema file that does not exist names the file it looked for."""
    path = write(
        "s.yaml",
        "suite: s\ncases:\n  - id: a\n    prompt: hi\n    expect: {json_schema: nope.json}\n",
    )
    with pytest.raises(SuiteError, match=r"schema file not found: nope\.json"):
        load_suite(path)


def test_for_each_over_jsonl_expands_and_renders(write):
    """for_each makes one case per JSONL row, rendering ids, messages and expectations."""
    write(
        "data/q.jsonl", '{"id": 1, "q": "tax?", "kw": "IRS"}\n{"id": 2, "q": "vat?", "kw": "VAT"}\n'
    )
    path = write(
        "s.yaml",
        """
        suite: s
        cases:
          - id: "tax-{{ row.id }}"
            for_each: {row: data/q.jsonl}
            messages: [{role: user, content: "Q: {{ row.q }}"}]
            expect: {icontains_any: ["{{ row.kw }}"]}
        """,
    )
    cases = load_suite(path).cases
    assert [c.id for c in cases] == ["tax-1", "tax-2"]
    assert cases[1].messages[0].content == "Q: vat?"
    assert cases[1].turns[0].expectations[0].arg == ("VAT",)
    assert cases[0].place == "cases[0][row 1]"


def test_for_each_prepares_a_check_without_templates_once(write):
    """A check written without templates is prepared once and shared by every row's case
    (a schema compiled once, not 100,000 times); a templated one is prepared per row, and a
    judged check inherited from defaults still gets each case's own judge."""
    write("data/q.jsonl", '{"id": 1, "kw": "IRS"}\n{"id": 2, "kw": "VAT"}\n')
    path = write(
        "s.yaml",
        """
        suite: s
        defaults:
          expect: {rubric: Is it polite?}
        cases:
          - id: "tax-{{ row.id }}"
            for_each: {row: data/q.jsonl}
            prompt: Hello
            expect:
              json_schema: {type: object, required: [reply]}
              icontains: "{{ row.kw }}"
          - id: "other-{{ row.id }}"
            for_each: {row: data/q.jsonl}
            judge: strict
            prompt: Hello
        """,
    )
    first, second, third, _ = load_suite(path).cases
    checks = [{e.check: e for e in c.turns[0].expectations} for c in (first, second, third)]
    assert checks[0]["json_schema"].arg is checks[1]["json_schema"].arg
    assert checks[0]["icontains"].arg == ("IRS",) and checks[1]["icontains"].arg == ("VAT",)
    assert checks[0]["rubric"].arg is checks[1]["rubric"].arg
    assert checks[0]["rubric"].arg is not checks[2]["rubric"].arg
    assert checks[2]["rubric"].arg != checks[0]["rubric"].arg  # judged by 'strict'


def test_for_each_csv_rows(write):
    """CSV data files give one case per row with string values."""
    write("rows.csv", "name,city\nAda,London\nAlan,Wilmslow\n")
    path = write(
        "s.yaml",
        """
        suite: s
        cases:
          - id: "p-{{ r.name }}"
            for_each: {r: rows.csv}
            prompt: "Where does {{ r.name }} live?"
            expect: {contains: "{{ r.city }}"}
        """,
    )
    assert [c.id for c in load_suite(path).cases] == ["p-Ada", "p-Alan"]


def test_undefined_template_variable_is_an_error(write):
    """A typo in a template variable fails at load instead of sending an empty string."""
    path = write(
        "s.yaml",
        "suite: s\ncases:\n  - id: a\n    prompt: 'Hi {{ nmae }}'\n    expect: {contains: x}\n",
    )
    with pytest.raises(SuiteError, match=r"cases\[0\]\.prompt: template variable is undefined"):
        load_suite(path)


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
        ("{{ 'a' + 1 }}", "TypeError"),
        ("{{ r.n ~ r.n.x.y }}", "template variable is undefined"),
    ],
)
def test_a_template_that_fails_while_rendering_names_its_place(write, template, reason):
    """Any error a template raises when rendered is a SuiteError at its place and row."""
    path = write(
        "s.yaml",
        "suite: s\ncases:\n  - id: 'c{{ r.n }}'\n    for_each: {r: [{n: 1}]}\n"
        f'    prompt: "{template}"\n',
    )
    with pytest.raises(SuiteError, match=r"s\.yaml:5: cases\[0\]\.prompt: ") as err:
        load_suite(path)
    assert reason in str(err.value)
    assert str(err.value).endswith("(in row 1)")


def test_duplicate_case_ids_are_rejected(write):
    """Case ids are unique within a suite, after expansion."""
    path = write(
        "s.yaml",
        "suite: s\ncases:\n  - id: a\n    prompt: x\n  - id: a\n    prompt: y\n",
    )
    with pytest.raises(SuiteError, match="case id 'a' is used twice"):
        load_suite(path)


def test_duplicate_suite_ids_across_files(write, tmp_path):
    """Two files with the same suite id are rejected, naming the other file."""
    write("a.yaml", "suite: same\ncases:\n  - id: a\n    prompt: x\n")
    write("b.yaml", "suite: same\ncases:\n  - id: a\n    prompt: x\n")
    with pytest.raises(SuiteError, match="also used by"):
        load_suites([tmp_path])


def test_multi_turn_case_has_a_turn_per_user_message(write):
    """turns add one user message each, with their own expectations."""
    path = write(
        "s.yaml",
        """
        suite: s
        cases:
          - id: chat
            prompt: My name is Ada.
            expect: {not_contains: sorry}
            turns:
              - user: What is my name?
                expect: {icontains: ada}
            history: {policy: stop, budget: 500}
        """,
    )
    (case,) = load_suite(path).cases
    assert len(case.turns) == 2
    assert case.turns[1].messages[0].content == "What is my name?"
    assert case.turns[1].expectations[0].check == "icontains"
    assert (case.history, case.budget) == ("stop", 500)


def test_directory_scan_skips_data_and_schema_folders(write, tmp_path):
    """YAML under data/ or schemas/ is data, not a suite."""
    write("suites/a.yaml", "suite: a\ncases:\n  - id: a\n    prompt: x\n")
    write("suites/data/rows.yaml", "- {id: 1}\n")
    write("suites/schemas/s.yaml", "type: object\n")
    assert [p.name for p in find_suite_files([tmp_path / "suites"])] == ["a.yaml"]


def test_no_suite_files_is_an_input_error(tmp_path):
    """An empty folder is a clear error rather than a run of nothing."""
    with pytest.raises(SuiteError, match="no suite files"):
        find_suite_files([tmp_path])


def test_response_format_schema_file_is_inlined(write):
    """response_format.json_schema.schema may name a file; the request carries its content."""
    write("schemas/c.json", '{"type": "object", "properties": {"a": {"type": "string"}}}')
    path = write(
        "s.yaml",
        """
        suite: s
        cases:
          - id: a
            prompt: hi
            params:
              response_format:
                type: json_schema
                json_schema: {name: c, schema: schemas/c.json, strict: true}
            expect: {is_json: true}
        """,
    )
    (case,) = load_suite(path).cases
    assert case.params["response_format"]["json_schema"]["schema"]["type"] == "object"


def test_messages_remember_where_the_file_writes_them(write):
    """Each message knows its place in the file, so errors point there, not at an index."""
    path = write(
        "s.yaml",
        """
        suite: s
        defaults: {system: Be brief.}
        cases:
          - id: a
            messages:
              - {role: user, content: hi}
              - {role: assistant, content: hello}
              - {role: user, content: bye}
            turns:
              - user: again
        """,
    )
    (case,) = load_suite(path).cases
    assert [m.place for m in case.messages] == [
        "defaults.system",
        "cases[0].messages[0]",
        "cases[0].messages[1]",
        "cases[0].messages[2]",
    ]
    assert case.turns[1].messages[0].place == "cases[0].turns[0].user"


def test_inherited_checks_name_the_defaults_they_come_from(write):
    """A check from defaults.expect is placed there; a case's own key overrides it."""
    path = write(
        "s.yaml",
        """
        suite: s
        defaults:
          expect: {max_latency_ms: 9000, contains: x}
        cases:
          - id: a
            prompt: hi
            expect: {contains: y}
            turns:
              - user: again
        """,
    )
    (case,) = load_suite(path).cases
    first = {e.check: (e.place, e.arg) for e in case.turns[0].expectations}
    assert first == {
        "max_latency_ms": ("defaults.expect.max_latency_ms", 9000.0),
        "contains": ("cases[0].expect.contains", ("y",)),
    }
    assert [e.place for e in case.turns[1].expectations] == [
        "defaults.expect.max_latency_ms",
        "defaults.expect.contains",
    ]


def test_a_bad_default_check_points_at_defaults(write):
    """An invalid argument in defaults.expect is reported at defaults.expect, with its line."""
    path = write(
        "s.yaml",
        "suite: s\ndefaults:\n  expect: {regex: '(oops'}\ncases:\n  - id: a\n    prompt: hi\n",
    )
    with pytest.raises(SuiteError, match=r"s\.yaml:3: defaults\.expect\.regex: invalid regular"):
        load_suite(path)


@pytest.mark.parametrize(
    ("files", "expect", "message"),
    [
        (
            {"bad.yaml": "type: [object\n"},
            "{json_schema: bad.yaml}",
            "schema file bad.yaml is not valid",
        ),
        ({"dir/x.json": "{}"}, "{json_schema: dir}", "schema file dir cannot be read"),
        (
            {"latin.json": b"\xff\xfe"},
            "{json_schema: latin.json}",
            "schema file latin.json is not UTF-8",
        ),
        ({}, "{content_filter: {categories: 5}}", "categories must be a mapping"),
    ],
)
def test_bad_check_arguments_are_suite_errors(write, tmp_path, files, expect, message):
    """Unreadable or malformed schema files and bad arguments name the place, never crash."""
    for name, content in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    path = write("s.yaml", f"suite: s\ncases:\n  - id: a\n    prompt: hi\n    expect: {expect}\n")
    with pytest.raises(SuiteError, match=r"cases\[0\]\.expect\.\w+: " + message):
        load_suite(path)


def test_template_errors_in_defaults_point_at_defaults(write):
    """An undefined variable in defaults.system is reported there, not on the case."""
    path = write(
        "s.yaml",
        "suite: s\ndefaults:\n  system: 'Hi {{ nope }}'\ncases:\n  - id: a\n    prompt: hi\n",
    )
    with pytest.raises(SuiteError, match=r"s\.yaml:3: defaults\.system: template variable"):
        load_suite(path)


def test_bad_data_files_name_the_file(write):
    """A for_each data file that is not UTF-8 is an error naming the data file."""
    (write("rows.jsonl", "x")).write_bytes(b"\xff\xfe{}\n")
    path = write(
        "s.yaml",
        "suite: s\ncases:\n  - id: 'r{{ r.n }}'\n    for_each: {r: rows.jsonl}\n    prompt: hi\n",
    )
    with pytest.raises(SuiteError, match=r"for_each\.r: rows\.jsonl: not UTF-8 text"):
        load_suite(path)
