"""CI shards: ``azeval run --shard K/N`` and ``azeval merge`` against the fake Azure server."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from harness.suite.loader import load_suites
from harness.suite.shard import Shard, content_identity, cut
from harness.testing import Action, Deployment, FakeAzure, Match, Rule
from tests.conftest import azeval
from tests.factories import GPT35_CONFIG

KEY = "sk-shard-test-0123456789"
CONFIG = (
    """
[settings]
max_retries = 1
"""
    + GPT35_CONFIG
    + """
[targets.gpt4o]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "gpt4o"
model = "gpt-4o"
model_version = "2024-08-06"
"""
)


def suite_text(n: int, name: str = "shop") -> str:
    """A suite of n cases: odd ones ask about refunds (the fake answers 'About a week.' on
    gpt4o, failing them there), even ones say hello."""
    cases = []
    for i in range(n):
        ask = f"Refund question {i}?" if i % 2 else f"Say hello {i}."
        want = "5 days" if i % 2 else "hello"
        cases.append(
            f"  - id: case-{i:03d}\n    prompt: {ask}\n    expect: {{icontains: '{want}'}}\n"
        )
    return f"suite: {name}\ndefaults:\n  params: {{max_tokens: 20}}\ncases:\n" + "".join(cases)


RULES = [
    Rule(Match(last_user="(?i)refund", deployment="gpt35"), Action(content="Refunds: 5 days.")),
    Rule(Match(last_user="(?i)refund"), Action(content="About a week.")),
    Rule(Match(last_user="(?i)hello"), Action(content="Hello there!")),
]


@pytest.fixture
def server():
    deployments = [Deployment("gpt35"), Deployment("gpt4o", model="gpt-4o-2024-08-06")]
    with FakeAzure(deployments, rules=RULES, api_keys=(KEY,)) as fake:
        yield fake


@pytest.fixture
def project(tmp_path, monkeypatch, server, write):
    """A project with two targets and a 24-case suite, its endpoint and key in the env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_AZURE_ENDPOINT", server.endpoint)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    write("azeval.toml", CONFIG)
    write("suites/shop.yaml", suite_text(24))
    return tmp_path


def runs_in(folder: Path) -> list[Path]:
    return sorted((folder / "runs").iterdir()) if (folder / "runs").exists() else []


def run_shards(project: Path, count: int, *, only: tuple[int, ...] = ()) -> list[Path]:
    """Run each shard into reports/shard-K (as a CI job each) and return the run folders."""
    dirs = []
    for k in only or range(1, count + 1):
        reports = project / f"shard-{k}"
        azeval("run", "suites", "--shard", f"{k}/{count}", "--reports-dir", str(reports))
        (run_dir,) = runs_in(reports)
        dirs.append(run_dir)
    return dirs


def meta_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def verdicts_of(run_dir: Path) -> dict[tuple[str, str], str]:
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return {(r["case"], r["target"]): r["verdict"] for r in map(json.loads, lines)}


# --- the shard of a case ------------------------------------------------------------------


@pytest.mark.parametrize("written", ["0/4", "5/4", "x/y", "2", "1/0", "-1/4", "2/4/8", ""])
def test_a_shard_that_is_not_k_of_n_is_refused(written):
    """Shard.parse takes K/N with 1 ≤ K ≤ N only, saying what is wrong."""
    with pytest.raises(ValueError, match=r"shard|K/N"):
        Shard.parse(written)


def test_every_case_is_in_exactly_one_shard(write):
    """The N shards of a suite partition its cases: none lost, none run twice."""
    suites = load_suites([str(write("s.yaml", suite_text(60)))])
    seen: list[str] = []
    for k in range(1, 5):
        seen += [c.key for s in cut(suites, Shard(k, 4)).suites for c in s.cases]
    assert sorted(seen) == sorted(c.key for c in suites[0].cases)
    # A stable hash spreads 60 cases over 4 shards, not all into one.
    sizes = [sum(len(s.cases) for s in cut(suites, Shard(k, 4)).suites) for k in range(1, 5)]
    assert min(sizes) >= 5, sizes


def test_a_case_stays_in_its_shard_when_other_cases_are_added(write):
    """Membership hangs on the case's own key: adding 40 cases (and another suite) moves
    none of the first 20 to another shard."""
    small = load_suites([str(write("a/shop.yaml", suite_text(20)))])
    first = {c.key for c in small[0].cases}
    grown = load_suites(
        [
            str(write("b/shop.yaml", suite_text(60))),
            str(write("b/more.yaml", suite_text(9, "more"))),
        ]
    )
    for k in range(1, 4):
        before = {c.key for s in cut(small, Shard(k, 3)).suites for c in s.cases}
        after = {c.key for s in cut(grown, Shard(k, 3)).suites for c in s.cases}
        assert before == after & first


def test_content_identity_follows_the_suite_text_and_the_selection(write):
    """The identity a merge compares changes with a suite's text or the cases selected,
    and with nothing else."""
    path = write("s.yaml", suite_text(6))
    one = load_suites([str(path)])
    assert content_identity(one) == content_identity(load_suites([str(path)]))
    assert content_identity(cut(one, Shard(1, 2)).suites) != content_identity(one)
    write("s.yaml", suite_text(6).replace("Say hello 0.", "Say hi 0."))
    assert content_identity(load_suites([str(path)])) != content_identity(one)


# --- azeval run --shard -------------------------------------------------------------------


@pytest.mark.parametrize("written", ["0/4", "5/4", "x/y"])
def test_run_with_a_bad_shard_exits_2_and_sends_nothing(project, server, capsys, written):
    """`--shard 0/4`, `5/4` and `x/y` are usage errors naming the option; nothing is sent."""
    assert azeval("run", "suites", "--shard", written) == 2
    err = capsys.readouterr().err
    assert "--shard" in err and written in err
    assert server.requests == []
    assert not (project / "reports" / "runs").exists()


def test_a_shard_run_runs_its_cases_and_records_the_shard(project, server):
    """A shard runs only its cases (on every target), and run.json says which shard of
    which content it is."""
    (run_dir,) = run_shards(project, 4, only=(2,))
    meta = meta_of(run_dir)
    suites = load_suites(["suites/shop.yaml"])
    expected = {c.id for c in cut(suites, Shard(2, 4)).suites[0].cases}
    assert {case for case, _ in verdicts_of(run_dir)} == expected
    assert len(verdicts_of(run_dir)) == 2 * len(expected)
    assert len(server.requests) == 2 * len(expected)
    assert meta["shard"]["index"] == 2 and meta["shard"]["count"] == 4
    assert meta["shard"]["content"] == content_identity(suites)
    assert meta["shard"]["suites"] == {"shop": {"cases": 24, "narrowed": False}}
    assert meta["suites"][0]["selected"] == sorted(expected)
    assert "This run is shard 2/4." in (run_dir / "report.html").read_text()


def test_an_empty_shard_is_recorded_and_sends_nothing(project, server, write, capsys):
    """A shard holding none of the cases writes an empty run (the merge needs it) and
    exits 0 without sending."""
    write("suites/shop.yaml", suite_text(1))
    empty = next(k for k in range(1, 9) if not cut(load_suites(["suites"]), Shard(k, 8)).suites)
    assert azeval("run", "suites", "--shard", f"{empty}/8") == 0
    assert "holds none of the selected cases" in capsys.readouterr().err
    (run_dir,) = runs_in(project / "reports")
    assert meta_of(run_dir)["shard"]["index"] == empty
    assert verdicts_of(run_dir) == {}
    assert server.requests == []


def test_resume_keeps_the_shard_and_refuses_another(project, capsys):
    """A resumed shard run stays that shard; --resume with another --shard is exit 2."""
    (run_dir,) = run_shards(project, 3, only=(1,))
    before = meta_of(run_dir)["shard"]
    assert azeval("run", "--resume", str(run_dir), "--shard", "2/3") == 2
    assert "shard 1/3" in capsys.readouterr().err
    azeval("run", "--resume", str(run_dir))
    assert meta_of(run_dir)["shard"] == before


# --- azeval merge -------------------------------------------------------------------------


def comparable(summary: dict) -> dict:
    """A summary without what timing decides (latency, waits)."""
    timed = {"latency_p50_ms", "latency_p95_ms", "waited_s"}
    return {
        **summary,
        "targets": {
            name: {k: v for k, v in s.items() if k not in timed}
            for name, s in summary["targets"].items()
        },
    }


def test_four_shards_merged_give_the_verdicts_summary_and_gate_of_one_run(project, capsys):
    """4 shards + merge = one run: the same results, summary and exit code, one report."""
    whole_code = azeval("run", "suites", "--reports-dir", "whole", "--junit", "whole.xml")
    (whole,) = runs_in(project / "whole")
    shards = run_shards(project, 4)
    capsys.readouterr()
    code = azeval("merge", *map(str, shards), "-o", "merged", "--junit", "merged.xml")
    out = capsys.readouterr()
    assert code == whole_code == 1  # the refund cases fail on gpt4o
    merged = project / "merged"
    assert verdicts_of(merged) == verdicts_of(whole)
    assert comparable(meta_of(merged)["summary"]) == comparable(meta_of(whole)["summary"])
    meta = meta_of(merged)
    assert meta["shard"]["merged"] == [1, 2, 3, 4] and meta["shard"]["missing"] == []
    assert meta["status"] == "complete"
    assert [m["shard"] for m in meta["merged_from"]] == [1, 2, 3, 4]
    assert meta["suites"][0]["cases"] == 24 and "selected" not in meta["suites"][0]
    assert (merged / "report.html").is_file()
    assert "Merged 4 of 4 shard(s)" in out.err
    assert "48 result(s): 36 passed, 12 failed" in out.out
    junit = (project / "merged.xml").read_text()
    assert junit.count("<testcase") == (project / "whole.xml").read_text().count("<testcase")
    # The stored merged run gates as the merge did.
    assert azeval("gate", str(merged)) == 1


def test_a_merge_of_passing_shards_passes(project, write):
    """Shards that all pass merge into a run whose gate passes (exit 0)."""
    write("suites/shop.yaml", suite_text(12).replace("'5 days'", "'e'"))
    shards = run_shards(project, 2)
    assert azeval("merge", *map(str, shards), "-o", "merged") == 0


def test_a_missing_shard_fails_the_gate_unless_allowed(project, write, capsys):
    """A merge lacking a shard says which and exits 1, though every case in it passed;
    --allow-missing-shards lets it pass, and `azeval gate` rules the same way."""
    write("suites/shop.yaml", suite_text(12).replace("'5 days'", "'e'"))
    shards = run_shards(project, 3, only=(1, 3))
    capsys.readouterr()
    assert azeval("merge", *map(str, shards), "-o", "merged") == 1
    out = capsys.readouterr()
    assert "Missing shard(s): 2/3" in out.err
    assert "shard(s) 2/3 missing" in out.out
    assert meta_of(project / "merged")["shard"]["missing"] == [2]
    report = (project / "merged" / "report.html").read_text()
    assert "Merged from shard(s) 1/3, 3/3." in report and "shard(s) 2/3 missing" in report
    assert azeval("gate", "merged") == 1
    assert azeval("gate", "merged", "--allow-missing-shards") == 0
    assert azeval("merge", *map(str, shards), "-o", "again", "--allow-missing-shards") == 0
    assert "allowed: --allow-missing-shards" in capsys.readouterr().out


def test_merging_the_same_run_twice_is_refused(project, capsys):
    """One run named twice, or a copy of it, is exit 2 naming it; nothing is written."""
    (one,) = run_shards(project, 2, only=(1,))
    assert azeval("merge", str(one), str(one), "-o", "merged") == 2
    assert "named twice" in capsys.readouterr().err
    copy = project / "copy"
    shutil.copytree(one, copy)
    assert azeval("merge", str(one), str(copy), "-o", "merged") == 2
    err = capsys.readouterr().err
    assert f"{copy}/run.json: run_id" in err and "copied" in err
    assert not (project / "merged").exists()


def test_overlapping_shards_are_refused(project, capsys):
    """Two runs of the same shard are exit 2 naming both."""
    first = run_shards(project, 2, only=(1,))[0]
    azeval("run", "suites", "--shard", "1/2", "--reports-dir", "again")
    (second,) = runs_in(project / "again")
    assert azeval("merge", str(first), str(second), "-o", "merged") == 2
    err = capsys.readouterr().err
    assert "shard 1/2 again" in err and str(first) in err and str(second) in err
    assert not (project / "merged").exists()


def test_shards_of_different_suite_content_are_refused(project, write, capsys):
    """A suite edited between two shards' runs is exit 2 naming the suite and the run."""
    (one,) = run_shards(project, 2, only=(1,))
    write("suites/shop.yaml", suite_text(24).replace("Say hello 0.", "Say hi 0."))
    (two,) = run_shards(project, 2, only=(2,))
    assert azeval("merge", str(one), str(two), "-o", "merged") == 2
    err = capsys.readouterr().err
    assert f"{two}/run.json: suites" in err and "suite 'shop'" in err and "differs" in err


def test_shards_of_different_counts_targets_or_selections_are_refused(project, capsys):
    """Shards cut into another number, run on other targets, from another -k selection,
    with other repeats or streamed are exit 2, each saying what differs."""
    (base,) = run_shards(project, 2, only=(1,))
    cases = [
        (("--shard", "2/3"), "cut into the same number"),
        (("--shard", "2/2", "-t", "gpt35"), "run the same targets"),
        (("--shard", "2/2", "-k", "case-00"), "selection"),
        (("--shard", "2/2", "--repeat", "2"), "the same repeats"),
        (("--shard", "2/2", "--stream"), "the same --stream"),
    ]
    for n, (options, says) in enumerate(cases):
        azeval("run", "suites", *options, "--reports-dir", f"other-{n}")
        (other,) = runs_in(project / f"other-{n}")
        capsys.readouterr()
        assert azeval("merge", str(base), str(other), "-o", f"merged-{n}") == 2
        assert says in capsys.readouterr().err


def test_a_run_that_is_not_a_shard_is_refused(project, capsys):
    """A plain run (no --shard) is exit 2: merge joins shard runs."""
    azeval("run", "suites", "-k", "case-001")
    (plain,) = runs_in(project / "reports")
    assert azeval("merge", str(plain), "-o", "merged") == 2
    assert "not a shard run" in capsys.readouterr().err


def test_merge_into_a_folder_that_holds_files_is_refused(project, capsys):
    """The merged run goes into a new (or empty) folder, never over another run."""
    shards = run_shards(project, 2)
    (project / "merged").mkdir()
    (project / "merged" / "run.json").write_text("{}")
    assert azeval("merge", *map(str, shards), "-o", "merged") == 2
    assert "not empty" in capsys.readouterr().err


# --- the documented workflow --------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "github-actions-shards.yml"


def test_ci_md_shows_the_shipped_sharded_workflow():
    """docs/ci.md's sharded workflow is the example file, word for word (zizmor audits the
    file in tests/test_ci_examples.py)."""
    text = (EXAMPLE.parent.parent / "ci.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert EXAMPLE.read_text(encoding="utf-8") in blocks


def test_the_workflow_runs_four_shards_and_a_merge_job_that_gates():
    """A matrix of shards 1-4 each uploading its run, and a gate job that needs them, runs
    when one failed, downloads them all and merges them with the gate's options."""
    workflow = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    shard, gate = workflow["jobs"]["shard"], workflow["jobs"]["gate"]
    assert shard["strategy"]["matrix"]["shard"] == [1, 2, 3, 4]
    assert shard["strategy"]["fail-fast"] is False
    assert workflow["permissions"] == {}
    assert shard["permissions"] == {"contents": "read"}
    uploads = [s for s in shard["steps"] if "upload-artifact" in s.get("uses", "")]
    assert uploads and uploads[0]["if"] == "always()"
    assert gate["needs"] == "shard" and "cancelled()" in gate["if"]
    assert "secrets." not in str(gate)  # the merge sends nothing and needs no key
    downloads = [s for s in gate["steps"] if "download-artifact" in s.get("uses", "")]
    assert downloads[0]["with"]["pattern"] == "azeval-shard-*"
    for step in shard["steps"] + gate["steps"]:
        if "actions/checkout" in step.get("uses", ""):
            assert step["with"]["persist-credentials"] is False


def _commands(step_name: str) -> list[str]:
    workflow = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    (step,) = [s for s in steps if s.get("name", "").startswith(step_name)]
    return shlex.split(step["run"])


def test_the_workflow_commands_work_as_written(project, server, monkeypatch, capsys):
    """The shard step's command, run for shards 1-4 into the artifact layout the download
    gives, and the gate step's command, gate the suites like one run against its baseline."""
    assert azeval("run", "suites", "--reports-dir", "whole") == 1
    (whole,) = runs_in(project / "whole")
    assert azeval("bless", str(whole), "-o", "baselines/baseline.json") == 0
    shard_command = _commands("Run this job's shard")
    assert shard_command[:2] == ["azeval", "run"]
    for k in range(1, 5):
        monkeypatch.setenv("SHARD", str(k))
        args = [os.path.expandvars(a) for a in shard_command[1:]]
        azeval(*args)
        (run_dir,) = runs_in(project / "shard")
        shutil.move(str(run_dir), project / "shards" / f"azeval-shard-{k}" / run_dir.name)
    merge_command = _commands("Merge the shards")
    assert merge_command[:2] == ["azeval", "merge"]
    expanded = [p for a in merge_command[1:] for p in (sorted(map(str, Path().glob(a))) or [a])]
    capsys.readouterr()
    assert azeval(*expanded) == 0  # the known failures are in the baseline: no regression
    assert "Gate: passed" in capsys.readouterr().out
    assert verdicts_of(project / "reports" / "merged") == verdicts_of(whole)
    assert (project / "reports" / "junit.xml").is_file()


def test_bless_refuses_a_merge_that_lacks_a_shard(project, capsys):
    """A baseline of part of the suites is refused unless --allow-partial says so."""
    shards = run_shards(project, 2, only=(1,))
    azeval("merge", *map(str, shards), "-o", "merged")
    capsys.readouterr()
    assert azeval("bless", "merged", "-o", "base.json") == 2
    assert "shard(s) 2/2 missing" in capsys.readouterr().err
    assert not (project / "base.json").exists()
    assert azeval("bless", "merged", "-o", "base.json", "--allow-partial") == 0


def test_a_target_dead_in_one_shard_makes_the_merge_exit_3(project, write, capsys):
    """A shard that found a target refusing it (404) makes the merged run exit 3, naming
    the target and the shard, as one run would."""
    write(
        "azeval.toml",
        CONFIG + '\n[targets.gone]\nkind = "azure"\nendpoint = "${FAKE_AZURE_ENDPOINT}"\n'
        'deployment = "missing"\nmodel = "gpt-35-turbo"\n',
    )
    shards = []
    for k in (1, 2):
        azeval(
            "run",
            "suites",
            "--shard",
            f"{k}/2",
            "-t",
            "gpt35",
            "-t",
            "gone",
            "--reports-dir",
            f"s{k}",
        )
        shards += runs_in(project / f"s{k}")
    capsys.readouterr()
    assert azeval("merge", *map(str, shards), "-o", "merged") == 3
    out = capsys.readouterr().out
    assert "target 'gone' is unavailable" in out and "(shard 1/2)" in out
