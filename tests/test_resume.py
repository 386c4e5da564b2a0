"""Nothing lost: Ctrl-C and kill -9 mid-run, then ``azeval run --resume`` finishes the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from harness import api
from harness.errors import ConfigError
from harness.runner.engine import RunOptions
from harness.runner.resume import resume_inputs
from harness.runner.retry import RetryPolicy
from harness.testing import Action, Deployment, ErrorReply, FakeAzure, Match, Rule
from tests.conftest import azeval
from tests.factories import GPT35_CONFIG

KEY = "sk-resume-0123456789abcdef"
CASES = 24
AZEVAL = Path(sys.executable).with_name("azeval")
CONFIG = (
    """
[settings]
concurrency = 2
"""
    + GPT35_CONFIG
)
# Every third case fails its check, so verdicts are not all alike.
# Slow enough that a run of 24 cases at -j 2 (about 1.8 s) is still going when the Ctrl-C
# tests interrupt it after four results, however quick the machine.
RULES = [Rule(Match(last_user=r"[0369]$"), Action(content="nope", latency_ms=150))]
DEFAULT = Action(content="ok", latency_ms=150)


def suite_text() -> str:
    lines = ["suite: resume", "defaults:", "  params: {max_tokens: 10}", "cases:"]
    for n in range(CASES):
        lines += [f"  - id: c{n:02d}", f"    prompt: case {n}", "    expect: {icontains: ok}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def server():
    with FakeAzure([Deployment("gpt35")], rules=RULES, default=DEFAULT, api_keys=(KEY,)) as fake:
        yield fake


@pytest.fixture
def project(tmp_path, monkeypatch, server):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_AZURE_ENDPOINT", server.endpoint)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    (tmp_path / "azeval.toml").write_text(CONFIG)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "resume.yaml").write_text(suite_text())
    return tmp_path


def _as_at_a_terminal() -> None:
    # A job started in the background of a shell (`.ci/run &`) inherits SIGINT ignored, and
    # Python then never turns it into KeyboardInterrupt: the Ctrl-C these tests send would
    # be lost. At a terminal, where users press it, SIGINT is not ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(AZEVAL), "run", *args],
        cwd=project,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_at_a_terminal,
    )


def wait_for_lines(project: Path, count: int, timeout: float = 30.0) -> Path:
    """The run directory, once its journal holds at least ``count`` lines."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        for journal in (project / "reports" / "runs").glob("*/results.jsonl"):
            if journal.read_text().count("\n") >= count:
                return journal.parent
        time.sleep(0.02)
    raise AssertionError(f"no journal reached {count} lines in {timeout} s")


def journal(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def verdicts(run_dir: Path) -> dict[str, str]:
    lines = journal(run_dir)
    keys = [r["case"] for r in lines]
    assert len(keys) == len(set(keys)), "a case was recorded twice"
    return {r["case"]: r["verdict"] for r in lines}


def uninterrupted(project: Path) -> dict[str, str]:
    proc = start(project, "suites")
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    (run_dir,) = (project / "reports" / "runs").iterdir()
    found = verdicts(run_dir)
    assert len(found) == CASES
    return found


def test_sigint_writes_partial_report_and_resume_command(project, server):
    """Ctrl-C: run.json says interrupted, a partial report, the resume command, exit 130."""
    proc = start(project, "suites")
    run_dir = wait_for_lines(project, 4)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "interrupted"
    assert (run_dir / "report.html").is_file()
    assert f"Resume with: azeval run --resume {run_dir.relative_to(project)}" in err
    kept = verdicts(run_dir)
    assert 4 <= len(kept) < CASES

    sent = len(server.requests)
    proc = start(project, "--resume", str(run_dir.relative_to(project)))
    proc.communicate(timeout=60)
    assert proc.returncode == 1  # some cases fail their check, none errs
    final = verdicts(run_dir)
    assert len(final) == CASES and set(kept) <= set(final)
    assert len(server.requests) - sent == CASES - len(kept)  # only the missing were sent
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"


def test_sigkill_then_resume_gives_the_uninterrupted_verdicts(project, server):
    """kill -9 mid-run loses at most what was in flight; --resume reaches the same verdicts."""
    expected = uninterrupted(project)
    for old in (project / "reports" / "runs").iterdir():
        old.rename(project / old.name)  # out of the way, so the next run is the only one
    proc = start(project, "suites")
    run_dir = wait_for_lines(project, CASES // 3)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    kept = verdicts(run_dir)
    assert CASES // 3 <= len(kept) < CASES
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    proc = start(project, "suites", "--resume", str(run_dir))
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert verdicts(run_dir) == expected


def run_api(project: Path, **options):
    prepared = api.prepare(["suites"], ["gpt35"])
    policy = RetryPolicy(max_retries=0)
    return api.run(prepared, RunOptions(retry=policy, reports_dir=project / "reports", **options))


def test_duplicate_journal_lines_last_one_wins(project, server):
    """A journal holding a key twice is read last-wins, and resume rewrites it without twins."""
    outcome = run_api(project)
    run_dir = outcome.run.path
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["verdict"] != "error"
    twin = {**first, "verdict": "error", "error": {"kind": "server_error", "message": "x"}}
    with (run_dir / "results.jsonl").open("a") as handle:
        handle.write(json.dumps(twin) + "\n")
    sent = len(server.requests)
    resumed = run_api(project, resume=run_dir)
    assert len(server.requests) == sent  # nothing was missing
    by_key = {r.key: r for r in resumed.run.results}
    assert len(resumed.run.results) == CASES == len(by_key)
    assert by_key[f"resume/{first['case']}@gpt35#0"].verdict == "error"
    assert len(journal(run_dir)) == CASES


def test_a_resume_plans_and_counts_only_the_cases_it_has_left(project, server):
    """A resume reads its journal once for what it keeps; its preflight plans only the
    cases left to run and its count is theirs, and it then sends only those."""
    run_dir = run_api(project).run.path
    lines = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "results.jsonl").write_text("".join(lines[:10]))
    options = RunOptions(resume=run_dir, reports_dir=project / "reports")
    done = api.kept(options)
    kept_cases = {json.loads(line)["case"] for line in lines[:10]}
    assert set(done or ()) == {f"resume/{case}@gpt35#0" for case in kept_cases}
    prepared = api.prepare(["suites"], ["gpt35"])
    checked = api.preflight(prepared, options, done)
    assert {row.case for row in checked.rows} == {f"c{n:02d}" for n in range(CASES)} - kept_cases
    assert api.pending(prepared, options, done) == CASES - 10
    assert api.pending(prepared, options, done, checked) == CASES - 10  # from the plan's rows
    narrowed = api.left(prepared, options, done)
    assert narrowed.results_left == CASES - 10  # counted as the cases left were found
    assert api.pending(narrowed, options, done, checked) == CASES - 10
    sent = len(server.requests)
    resumed = run_api(project, resume=run_dir)
    assert len(server.requests) - sent == CASES - 10
    assert len(resumed.run.results) == CASES


def _for_each_project(project: Path, rows: int) -> None:
    """The project's suite as one for_each over ``rows`` rows (lazily built cases)."""
    (project / "suites" / "resume.yaml").write_text(
        "suite: resume\ndefaults:\n  params: {max_tokens: 10}\ncases:\n"
        '  - id: "r{{ row.n }}"\n    for_each: {row: rows.jsonl}\n'
        '    prompt: "case {{ row.n }}"\n    expect: {icontains: ok}\n'
    )
    (project / "suites" / "rows.jsonl").write_text(
        "".join(json.dumps({"n": n}) + "\n" for n in range(rows))
    )


def _killed_half_way(project: Path, rows: int) -> Path:
    """A finished run of the for_each suite cut back to the journal of its first half."""
    _for_each_project(project, rows)
    assert azeval("run", "suites", "-t", "gpt35", "-j", "8") == 1  # some fail their check
    (run_dir,) = (project / "reports" / "runs").iterdir()
    lines = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "results.jsonl").write_text("".join(lines[: rows // 2]))
    return run_dir


def test_a_resume_reads_its_journal_once_before_it_sends(project, server, monkeypatch):
    """`azeval run --resume` reads the journal once for what it keeps: the plan, the count
    of what is left and the engine share that one read (the run's end reads it once more,
    to summarise it)."""
    run_dir = _killed_half_way(project, 20)
    import harness.results.store as store
    import harness.runner.engine as engine
    import harness.runner.resume as resume

    reads: list[int] = []  # requests the fake had seen at each read

    def counted(path: Path):
        reads.append(len(server.requests))
        return store.index_journal(path)

    monkeypatch.setattr(resume, "index_journal", counted)
    monkeypatch.setattr(engine, "index_journal", counted)
    sent = len(server.requests)
    assert azeval("run", "--resume", str(run_dir)) == 1
    assert len(server.requests) - sent == 10
    assert reads == [sent, sent + 10]  # one before the first request, one at the end
    assert len(journal(run_dir)) == 20


def _count_builds(monkeypatch) -> Counter[str]:
    """How many times each case id is built (with its checks or without) from now on."""
    from harness.suite.build import CaseWriting

    built: Counter[str] = Counter()
    case = CaseWriting.case

    def counted(self, place, variables, *, checks=True):
        made = case(self, place, variables, checks=checks)
        built[made.id] += 1
        return made

    monkeypatch.setattr(CaseWriting, "case", counted)
    return built


def test_a_resume_builds_no_case_it_has_finished(project, server, monkeypatch):
    """The cases a resume has finished are not built again, neither for its load, its plan
    nor its lanes: only each one's key is read, from its row's id, and the lanes draw only
    the cases left. (The run it resumes built every row at its load, to find a bad row
    before anything was sent; the same text and data need only their first row built.)"""
    run_dir = _killed_half_way(project, 20)
    built = _count_builds(monkeypatch)
    done = {row["case"] for row in journal(run_dir)}
    assert azeval("run", "--resume", str(run_dir)) == 1
    assert {built[case] for case in done - {"r0"}} == {0}
    assert built["r0"] >= 1  # the first row, whose checks read the files they read
    assert all(built[f"r{n}"] >= 2 for n in range(20) if f"r{n}" not in done)  # plan, run
    assert {row["case"] for row in journal(run_dir)} == {f"r{n}" for n in range(20)}


def test_a_resume_by_another_version_or_of_other_data_builds_every_row_at_load(
    project, server, monkeypatch
):
    """Only the same text and files, loaded by the same version of azeval, are trusted to
    have loaded cleanly before: a run.json of another version, or a data file changed since
    (which the resume then refuses), has every row built at load."""
    run_dir = _killed_half_way(project, 20)
    meta = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**meta, "azeval_version": "0.0.1"}))
    built = _count_builds(monkeypatch)
    assert azeval("run", "--resume", str(run_dir)) == 1
    assert set(built) == {f"r{n}" for n in range(20)}  # every row, the finished ones too

    built.clear()
    rows = project / "suites" / "rows.jsonl"
    rows.write_text(rows.read_text() + json.dumps({"n": 20}) + "\n")
    sent = len(server.requests)
    assert azeval("run", "--resume", str(run_dir)) == 2
    assert len(built) == 21  # every row, the new one too, before the refusal
    assert len(server.requests) == sent


def test_a_resume_of_a_bad_row_added_to_the_data_names_the_row(project, server, capsys):
    """A row made bad since the run (its data file changed) is found at load as before,
    not trusted from the run's clean load."""
    run_dir = _killed_half_way(project, 20)
    rows = project / "suites" / "rows.jsonl"
    rows.write_text(rows.read_text() + '{"m": 1}\n')
    sent = len(server.requests)
    capsys.readouterr()
    assert azeval("run", "--resume", str(run_dir)) == 2
    assert len(server.requests) == sent
    err = capsys.readouterr().err
    assert "resume.yaml:5: cases[0].id: template variable is undefined" in err
    assert "(in row 21)" in err


def test_a_resume_of_a_partly_done_case_runs_only_its_missing_repeats(project, server):
    """A case with some of its repeats kept is still left to run, and only its missing
    repeats are sent: none runs twice."""
    _for_each_project(project, 4)
    assert azeval("run", "suites", "-t", "gpt35", "--repeat", "3") == 1
    (run_dir,) = (project / "reports" / "runs").iterdir()
    lines = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["repeat"] != 2]
    (run_dir / "results.jsonl").write_text("".join(kept))
    sent = len(server.requests)
    assert azeval("run", "--resume", str(run_dir)) == 1
    assert len(server.requests) - sent == 4
    keys = [(row["case"], row["repeat"]) for row in journal(run_dir)]
    assert sorted(keys) == sorted((f"r{n}", k) for n in range(4) for k in range(3))


def test_run_json_on_disk_mid_run_holds_no_secret(project, monkeypatch):
    """The run.json a killed run leaves behind is scrubbed, like the final one: a token in
    the endpoint URL (here as a gateway's password) never reaches the disk, and the
    endpoint is recorded without its user-info."""
    token = "sas-token-0123456789"
    monkeypatch.setenv("AZURE_SAS_TOKEN", token)
    endpoint = os.environ["FAKE_AZURE_ENDPOINT"].replace("://", "://gw:${AZURE_SAS_TOKEN}@")
    config = CONFIG.replace("${FAKE_AZURE_ENDPOINT}", endpoint)
    (project / "azeval.toml").write_text(config)
    seen: list[str] = []

    def peek(result) -> None:
        (run_dir,) = (project / "reports" / "runs").iterdir()
        seen.append((run_dir / "run.json").read_text())

    prepared = api.prepare(["suites"], ["gpt35"])
    options = RunOptions(retry=RetryPolicy(max_retries=0), reports_dir=project / "reports")
    api.run(prepared, options, progress=peek)
    public = os.environ["FAKE_AZURE_ENDPOINT"]
    assert seen and f'"endpoint": "{public}"' in seen[0]
    assert not [text for text in seen if "gw:" in text]
    assert not [text for text in seen if token in text]


def test_retry_errors_runs_failed_requests_again(project, server):
    """--resume with retry_errors sends the error cases again and keeps the rest."""
    server.set_rules([Rule(Match(last_user="1$"), Action(error=ErrorReply(500))), *RULES])
    outcome = run_api(project)
    errors = {r.case for r in outcome.run.results if r.verdict == "error"}
    assert errors == {"c01", "c11", "c21"}
    server.set_rules(RULES)
    sent = len(server.requests)
    plain = run_api(project, resume=outcome.run.path)
    assert len(server.requests) == sent and len(plain.run.results) == CASES
    again = run_api(project, resume=outcome.run.path, retry_errors=True)
    assert len(server.requests) - sent == len(errors)
    assert not [r for r in again.run.results if r.verdict == "error"]
    assert len(journal(outcome.run.path)) == CASES


def test_resume_refuses_a_suite_changed_since_the_run(project, server):
    """A suite edited after the run started: --resume is a ConfigError naming the file,
    sends nothing and keeps the journal, instead of passing old verdicts off as new."""
    outcome = run_api(project)
    run_dir = outcome.run.path
    before = (run_dir / "results.jsonl").read_text()
    suite = project / "suites" / "resume.yaml"
    suite.write_text(suite.read_text().replace("prompt: case 1\n", "prompt: case 1 changed\n"))
    sent = len(server.requests)
    with pytest.raises(ConfigError, match=r"resume\.yaml: changed since run"):
        run_api(project, resume=run_dir)
    assert len(server.requests) == sent
    assert (run_dir / "results.jsonl").read_text() == before


def test_resume_with_another_repeat_is_what_a_later_resume_continues(project, server):
    """A resume with a different repeat count records it in run.json, so a later plain
    --resume (which takes its repeat from there) finishes that count, not the original."""
    outcome = run_api(project, repeat=1)
    run_dir = outcome.run.path
    assert resume_inputs(run_dir).repeat == 1
    sent = len(server.requests)
    run_api(project, resume=run_dir, repeat=2)
    assert len(server.requests) - sent == CASES  # the second repeat of each case
    assert json.loads((run_dir / "run.json").read_text())["options"]["repeat"] == 2
    assert resume_inputs(run_dir).repeat == 2


def test_a_run_stopped_by_an_error_is_recorded_interrupted_not_complete(project, server):
    """An error mid-run (here the progress callback: `azeval run | head` closes the pipe)
    leaves run.json "interrupted", so bless refuses the partial run and --resume finishes it."""
    seen: list[str] = []

    def broken_pipe(result) -> None:
        seen.append(result.case)
        if len(seen) == 3:
            raise BrokenPipeError("stderr closed")

    prepared = api.prepare(["suites"], ["gpt35"])
    options = RunOptions(retry=RetryPolicy(max_retries=0), reports_dir=project / "reports")
    with pytest.raises(BrokenPipeError):
        api.run(prepared, options, progress=broken_pipe)
    (run_dir,) = (project / "reports" / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert len(journal(run_dir)) < CASES
    bless = subprocess.run(
        [str(AZEVAL), "bless", str(run_dir)], cwd=project, capture_output=True, text=True
    )
    assert bless.returncode == 2 and "the run is interrupted" in bless.stderr
    resumed = run_api(project, resume=run_dir)
    assert resumed.run.meta.status == "complete"
    assert len(resumed.run.results) == CASES


def test_resume_restores_the_runs_own_j_and_timeout(project, server):
    """A run started with -j 1 --timeout 7 is resumed with them, not with the config's
    concurrency = 2: a plain --resume finishes the run the way it started, and says so in
    run.json for the next resume; a -j given to the resume wins."""
    assert azeval("run", "suites", "-j", "1", "--timeout", "7") == 1
    (run_dir,) = (project / "reports" / "runs").iterdir()
    inputs = resume_inputs(run_dir)
    assert (inputs.concurrency, inputs.timeout) == (1, 7.0)
    lines = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "results.jsonl").write_text("".join(lines[:10]))  # as if killed after 10
    assert azeval("run", "--resume", str(run_dir)) == 1
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["scheduler"]["gpt35"]["max_concurrency"] == 1
    assert meta["options"]["overrides"] == {"concurrency": 1, "timeout": 7.0}
    assert len(journal(run_dir)) == CASES
    (run_dir / "results.jsonl").write_text("".join(lines[:10]))
    assert azeval("run", "--resume", str(run_dir), "-j", "2") == 1
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["scheduler"]["gpt35"]["max_concurrency"] == 2
    assert resume_inputs(run_dir).concurrency == 2


def test_a_resume_of_a_selected_streamed_run_keeps_its_cases(project, server):
    """A resume of a run of some cases (-k), streamed, finds what it has left by key through
    the selection and the streaming (their keys read, not built) and sends only those."""
    _for_each_project(project, 12)
    args = ("run", "suites", "-t", "gpt35", "-k", "r1", "--stream")
    assert azeval(*args) == 1  # r1, r10, r11; r10 fails its check
    (run_dir,) = (project / "reports" / "runs").iterdir()
    lines = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "results.jsonl").write_text(lines[0])
    sent = len(server.requests)
    assert azeval("run", "--resume", str(run_dir)) == 1
    assert len(server.requests) - sent == 2
    assert sorted(row["case"] for row in journal(run_dir)) == ["r1", "r10", "r11"]
