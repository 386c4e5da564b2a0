"""The pytest plugin: suite files collected as case × target items, run on a fake Azure."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest

from harness.testing import Action, Deployment, ErrorReply, FakeAzure, Match, Rule

pytest_plugins = ["pytester"]

SUITE = """
suite: geo
cases:
  - id: capital
    tags: [smoke]
    prompt: "The capital of France is Paris."
    expect: {contains: Paris}
  - id: wrong
    prompt: "The capital of France is Lyon."
    expect: {contains: Paris}
  - id: unchecked
    prompt: "Say anything."
"""


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAzure]:
    with FakeAzure([Deployment("gpt35"), Deployment("gpt4", model="gpt-4o")]) as fake:
        yield fake


@pytest.fixture
def project(pytester: pytest.Pytester, server: FakeAzure, monkeypatch: pytest.MonkeyPatch) -> None:
    """A project with two fake Azure targets and one suite (two passes-or-fails, one unchecked)."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "test-key")
    targets = "".join(
        textwrap.dedent(
            f"""
            [targets.{name}]
            kind = "azure"
            endpoint = "{server.endpoint}"
            deployment = "{name}"
            model = "gpt-35-turbo"
            """
        )
        for name in ("gpt35", "gpt4")
    )
    pytester.makefile(".toml", azeval=targets + "\n[settings]\nmax_retries = 0\n")
    # As a user's project would: pytest-asyncio is installed here and warns when unset.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.mkdir("suites")
    (pytester.path / "suites" / "geo.yaml").write_text(SUITE, encoding="utf-8")
    (pytester.path / "suites" / "data").mkdir()
    (pytester.path / "suites" / "data" / "rows.yaml").write_text("suite: not-a-suite\n")
    (pytester.path / "other.yaml").write_text("suite: x\ncases: []\n", encoding="utf-8")


def test_collects_case_by_target_items(pytester: pytest.Pytester, project: None) -> None:
    """Each case runs on each target; the suite file's cases become suite/case[target] items."""
    result = pytester.runpytest("suites", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "suites/geo.yaml::geo/capital[[]gpt35[]]",
            "suites/geo.yaml::geo/capital[[]gpt4[]]",
            "suites/geo.yaml::geo/wrong[[]gpt35[]]",
            "*6 tests collected*",
        ]
    )


def test_failing_check_reads_as_a_clear_message(pytester: pytest.Pytester, project: None) -> None:
    """A failed check shows its name, what it expected and the reply; unchecked is skipped."""
    result = pytester.runpytest("suites", "--azeval-target", "gpt35")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*check contains: reply lacks [[]'Paris'[]]; the reply: *Lyon.' "
            "(expected ('Paris',), got *Lyon*)",
            "*reply: *Lyon*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_keyword_selection(pytester: pytest.Pytester, project: None) -> None:
    """-k selects by case id and target name."""
    result = pytester.runpytest("suites", "-k", "capital and gpt4")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("suites", "-k", "smoke")
    result.assert_outcomes(passed=2)


def test_exitfirst_stops_after_the_first_failure(pytester: pytest.Pytester, project: None) -> None:
    """-x stops the session at the first failing case."""
    result = pytester.runpytest("suites", "-x", "-k", "wrong or capital")
    result.assert_outcomes(passed=2, failed=1)


def test_junitxml_carries_the_check_message(pytester: pytest.Pytester, project: None) -> None:
    """--junitxml writes the failing check's message into the failure element."""
    result = pytester.runpytest("suites", "--azeval-target=gpt35", "--junitxml=out.xml")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    xml = (pytester.path / "out.xml").read_text(encoding="utf-8")
    assert 'message="check contains: reply lacks' in xml
    assert 'name="geo/wrong[gpt35]"' in xml


def test_xdist_workers_each_open_their_targets(pytester: pytest.Pytester, project: None) -> None:
    """With -n 2 both workers collect the same items and run them."""
    result = pytester.runpytest_subprocess("suites", "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=2, failed=2, skipped=2)


def test_unrelated_yaml_is_left_alone(pytester: pytest.Pytester, project: None) -> None:
    """YAML outside the named folders, and under data folders, is not collected."""
    result = pytester.runpytest("suites", "--collect-only", "-q")
    assert "other.yaml" not in result.stdout.str()
    assert "rows.yaml" not in result.stdout.str()
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    result = pytester.runpytest("test_plain.py")
    result.assert_outcomes(passed=1)


def test_ini_option_names_suite_folders_and_targets(
    pytester: pytest.Pytester, project: None
) -> None:
    """azeval_suites and azeval_targets in the ini collect suites without naming them."""
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "azeval_suites = suites\nazeval_targets = gpt4\n"
    )
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*3 tests collected*"])


def test_unknown_target_is_a_collection_error(pytester: pytest.Pytester, project: None) -> None:
    """A target that is not configured is reported once, without a traceback."""
    result = pytester.runpytest("suites", "--azeval-target", "nope")
    result.stdout.fnmatch_lines(["*unknown target 'nope' (targets: gpt35, gpt4)*"])
    assert result.ret != 0


def test_bad_suite_names_file_and_place(pytester: pytest.Pytester, project: None) -> None:
    """A malformed suite file fails collection with the loader's file:line message."""
    (pytester.path / "suites" / "bad.yaml").write_text(
        "suite: bad\ncases:\n  - id: a\n    prompt: hi\n    expect: {containz: x}\n"
    )
    result = pytester.runpytest("suites", "--collect-only")
    result.stdout.fnmatch_lines(["*bad.yaml:*unknown check 'containz'*"])


def test_failure_messages_are_scrubbed_of_secrets(
    pytester: pytest.Pytester, project: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret that reaches a failure message (here, echoed in the reply) shows as ***."""
    monkeypatch.setenv("SERVICE_TOKEN", "leaky-token-123456")
    (pytester.path / "suites" / "leak.yaml").write_text(
        "suite: leak\ncases:\n  - id: echo\n    prompt: leaky-token-123456\n"
        "    expect: {contains: Paris}\n",
        encoding="utf-8",
    )
    result = pytester.runpytest("suites/leak.yaml", "--azeval-target", "gpt35")
    result.assert_outcomes(failed=1)
    assert "leaky-token-123456" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*reply: 'Echo: ***'*"])


def test_last_failed_reruns_only_the_failed_items(pytester: pytest.Pytester, project: None) -> None:
    """--lf reruns only the items that failed last time, and --ff runs them first."""
    pytester.runpytest("suites", "--azeval-target", "gpt35").assert_outcomes(
        passed=1, failed=1, skipped=1
    )
    result = pytester.runpytest("suites", "--azeval-target", "gpt35", "--lf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure*"])
    result = pytester.runpytest("suites", "--azeval-target", "gpt35", "--ff", "-x")
    result.assert_outcomes(failed=1)


def test_preflight_refusal_is_reported_not_sent(
    pytester: pytest.Pytester, project: None, server: FakeAzure
) -> None:
    """A case the service would refuse (max_tokens above the model's limit) fails with the
    preflight's message, as `azeval run` records it, and is never sent."""
    (pytester.path / "suites" / "big.yaml").write_text(
        "suite: big\ncases:\n  - id: huge\n    prompt: preflight-marker\n"
        "    params: {max_tokens: 100000}\n    expect: {contains: marker}\n",
        encoding="utf-8",
    )
    result = pytester.runpytest("suites/big.yaml", "--azeval-target", "gpt35")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "preflight: *big.yaml: cases[[]0[]].messages: *maximum context length*",
            "*big.yaml: cases[[]0[]].params.max_tokens: max_tokens is too large: 100000*",
        ]
    )
    sent = [r for r in server.requests if "preflight-marker" in str(r.body)]
    assert sent == []


def test_quota_settings_apply_and_a_spent_quota_stops_the_target(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[settings] max_retry_after holds as in `azeval run`: a 429 asking to wait longer is a
    spent quota, that item fails saying so and the target's later items are not sent."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "test-key")
    spent = Action(error=ErrorReply(429, retry_after=5))
    rules = [Rule(Match(), sequence=(spent, Action(content="ok")))]
    with FakeAzure([Deployment("gpt35")], rules=rules) as fake:
        pytester.makefile(
            ".toml",
            azeval=f'[settings]\nmax_retry_after = 1\n\n[targets.gpt35]\nkind = "azure"\n'
            f'endpoint = "{fake.endpoint}"\ndeployment = "gpt35"\nmodel = "gpt-35-turbo"\n',
        )
        pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
        pytester.makefile(
            ".yaml",
            quota="suite: quota\ncases:\n  - id: first\n    prompt: a\n    expect: {contains: ok}\n"
            "  - id: second\n    prompt: b\n    expect: {contains: ok}\n",
        )
        result = pytester.runpytest("quota.yaml")
        assert len(fake.requests) == 1
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "rate_limited: *retry after 5 seconds*",
            "target 'gpt35' is unavailable, not sent: quota exhausted (HTTP 429): the service "
            "asks to wait 5 s, beyond max_retry_after 1 s*",
        ]
    )


def test_user_checks_and_the_check_model_work_as_in_azeval_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A suite's python: check runs under pytest with its context and its own message, and
    one needing a model asks [settings] check_model, as `azeval run` does (both run a work
    item through the same function)."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "test-key")
    rules = [
        Rule(Match(deployment="judge"), Action(content="NO")),
        Rule(Match(), Action(content="Here it is.")),
    ]
    with FakeAzure([Deployment("gpt35"), Deployment("judge")], rules=rules) as fake:
        pytester.makefile(
            ".toml",
            azeval='[settings]\ncheck_model = "judge"\n\n'
            + "".join(
                f'[targets.{name}]\nkind = "azure"\nendpoint = "{fake.endpoint}"\n'
                f'deployment = "{name}"\nmodel = "gpt-4o"\n\n'
                for name in ("gpt35", "judge")
            ),
        )
        pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
        pytester.makepyfile(
            checks=textwrap.dedent(
                """
                from harness.checks import user_check

                def turn_seen(ctx):
                    return False, f"turn {ctx.turn} of {ctx.case.id} on {ctx.target.name}"

                @user_check(needs=["text", "model"])
                async def judged(ctx):
                    answer = await ctx.services.model.ask([{"role": "user", "content": "ok?"}])
                    return answer.text == "YES", f"the judge said {answer.text}"
                """
            )
        )
        pytester.makefile(
            ".yaml",
            judged="suite: judged\ncases:\n  - id: one\n    prompt: a\n"
            "    expect: {python: [checks.py:turn_seen, checks.py:judged]}\n",
        )
        result = pytester.runpytest("judged.yaml", "--azeval-target", "gpt35")
        judged = [r for r in fake.requests if r.deployment == "judge"]
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "check checks.py:turn_seen: turn 0 of one on gpt35",
            "check checks.py:judged: the judge said NO",
        ]
    )
    assert len(judged) == 1


def test_a_check_needing_a_model_without_one_is_a_collection_error(
    pytester: pytest.Pytester, project: None
) -> None:
    """Without [settings] check_model, a suite whose check needs a model does not collect,
    and the error names the suite file and the check's place."""
    pytester.makepyfile(
        checks="from harness.checks import user_check\n\n"
        "@user_check(needs=['model'])\ndef judged(ctx):\n    return True\n"
    )
    (pytester.path / "suites" / "checks.py").write_text(
        (pytester.path / "checks.py").read_text(), encoding="utf-8"
    )
    (pytester.path / "suites" / "judged.yaml").write_text(
        "suite: judged\ncases:\n  - id: one\n    prompt: a\n"
        "    expect: {python: checks.py:judged}\n",
        encoding="utf-8",
    )
    result = pytester.runpytest("suites/judged.yaml")
    result.stdout.fnmatch_lines(
        ["*judged.yaml: cases[[]0[]].expect.python: check 'checks.py:judged' needs a model*"]
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_a_pool_target_runs_its_items_on_its_members(
    pytester: pytest.Pytester, project: None, server: FakeAzure
) -> None:
    """--azeval-target naming a deployment pool runs each item on the pool (one item per
    case, as for any target), its requests going to the pool's members."""
    config = pytester.path / "azeval.toml"
    config.write_text(config.read_text() + '\n[targets.both]\npool = ["gpt35", "gpt4"]\n')
    before = len(server.requests)
    result = pytester.runpytest("suites", "--azeval-target", "both", "-v")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*geo/capital[[]both[]] PASSED*"])
    sent = {r.deployment for r in server.requests[before:]}
    assert sent <= {"gpt35", "gpt4"} and len(server.requests) - before == 3


def test_similar_is_lent_the_embedder(
    pytester: pytest.Pytester, project: None, server: FakeAzure
) -> None:
    """Under pytest as under azeval run, [settings] embedder lends similar its embeddings:
    the fake echoes the prompt ("Echo: …"), so the reply's five words hold the reference's
    four (cosine 4 / √20 ≈ 0.89 with the fake's vectors); with no embedder named,
    collecting the suite fails naming the check."""
    server.service.deployments["embed"] = Deployment("embed", model="text-embedding-3-small")
    targets = (pytester.path / "azeval.toml").read_text().split("\n[settings]")[0]
    targets += (
        f'\n[targets.embed]\nkind = "azure"\nendpoint = "{server.endpoint}"\n'
        'deployment = "embed"\nmodel = "text-embedding-3-small"\n'
    )
    suite = (
        "suite: near\ncases:\n  - id: echo\n    prompt: Paris is in France\n"
        "    expect:\n      similar: {reference: Paris is in France, min: 0.79}\n"
    )
    (pytester.path / "suites" / "geo.yaml").write_text(suite, encoding="utf-8")
    (pytester.path / "azeval.toml").write_text(targets + "\n[settings]\nmax_retries = 0\n")
    failed = pytester.runpytest("suites", "-q", "--azeval-target", "gpt35")
    failed.stdout.fnmatch_lines(["*check 'similar' needs embeddings*"])
    settings = '\n[settings]\nmax_retries = 0\nembedder = "embed"\n'
    (pytester.path / "azeval.toml").write_text(targets + settings)
    result = pytester.runpytest("suites", "-q", "--azeval-target", "gpt35")
    result.assert_outcomes(passed=1)
    assert any(r.path == "/openai/deployments/embed/embeddings" for r in server.requests)
