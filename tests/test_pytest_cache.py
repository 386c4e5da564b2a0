"""The pytest plugin with azeval's response cache: shared by xdist workers, replayable."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest

from harness.testing import Deployment, FakeAzure

pytest_plugins = ["pytester"]

SUITE = """
suite: geo
cases:
"""


@pytest.fixture
def server() -> Iterator[FakeAzure]:
    with FakeAzure([Deployment("gpt35")]) as fake:
        yield fake


@pytest.fixture
def project(pytester: pytest.Pytester, server: FakeAzure, monkeypatch: pytest.MonkeyPatch) -> None:
    """One fake Azure target and a suite of eight cases the default echo reply passes."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "test-key")
    config = textwrap.dedent(
        f"""
        [targets.gpt35]
        kind = "azure"
        endpoint = "{server.endpoint}"
        deployment = "gpt35"
        model = "gpt-35-turbo"

        [settings]
        max_retries = 0
        """
    )
    pytester.makefile(".toml", azeval=config)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.mkdir("suites")
    cases = "".join(
        f"  - {{id: c{n}, prompt: 'word{n}', expect: {{contains: word{n}}}}}\n" for n in range(8)
    )
    (pytester.path / "suites" / "geo.yaml").write_text(SUITE + cases, encoding="utf-8")


def test_xdist_workers_share_the_cache(
    pytester: pytest.Pytester, project: None, server: FakeAzure
) -> None:
    """Two runs under -n 2 with --azeval-cache: the workers write one cache file at once,
    and the second run sends nothing."""
    first = pytester.runpytest_subprocess("suites", "-p", "xdist", "-n", "2", "--azeval-cache")
    first.assert_outcomes(passed=8)
    assert len(server.requests) == 8
    server.reset()
    second = pytester.runpytest_subprocess("suites", "-p", "xdist", "-n", "2", "--azeval-cache")
    second.assert_outcomes(passed=8)
    assert server.requests == []


def test_replay_needs_no_key(
    pytester: pytest.Pytester, project: None, server: FakeAzure, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--azeval-replay with no key set: cached cases pass, a new one fails not_in_cache."""
    pytester.runpytest("suites", "--azeval-cache").assert_outcomes(passed=8)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    suite = pytester.path / "suites" / "geo.yaml"
    suite.write_text(suite.read_text() + "  - {id: new, prompt: fresh, expect: {contains: x}}\n")
    server.reset()
    result = pytester.runpytest("suites", "--azeval-replay")
    result.assert_outcomes(passed=8, failed=1)
    result.stdout.fnmatch_lines(["*not_in_cache*"])
    assert server.requests == []
