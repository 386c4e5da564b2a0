"""similar: cosine similarity of embeddings from the run's embedder, through the openai
SDK's embeddings API against the fake Azure server (deterministic vectors, both API
shapes) and the local llama.cpp model; texts batched per request, references embedded
once per run, embedding tokens in the run's cost, failures recorded as check errors."""

from __future__ import annotations

import json
import math

import pytest

from harness.testing import Action, Deployment, FakeAzure, Fault, Match, Rule
from harness.testing.embeddings import vector_of
from tests.conftest import azeval
from tests.test_cost import newest_run
from tests.test_overlap_checks import KEY

CONFIG = """
[settings]
max_retries = 0
concurrency = 8
embedder = "embed"

[targets.gpt35]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "gpt35"
model = "gpt-35-turbo"

[targets.embed]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "embed3"
model = "text-embedding-3-small"
"""

SUITE = """
suite: near
cases:
  - id: "q{{ row.n }}"
    for_each: {row: rows.jsonl}
    prompt: "Question {{ row.n }}?"
    expect:
      similar: {reference: "{{ row.reference }}", min: 0.5}
"""

# Twenty cases: each reply "paris is lovely number N"; the reference is shared by all.
REFERENCE = "Paris is the capital of France"
ROWS = [{"n": i, "reference": REFERENCE} for i in range(20)]


def _reply(i: int) -> str:
    return f"Paris is lovely number{i}"


def _cos(a: str, b: str) -> float:
    va, vb = vector_of(a), vector_of(b)
    return sum(x * y for x, y in zip(va, vb, strict=True))


@pytest.fixture
def fake(tmp_path, monkeypatch, write):
    """The chat deployment answers each question; embed3 is the embeddings deployment."""
    rules = [
        Rule(Match(last_user=rf"^Question {i}\?$"), Action(content=_reply(i))) for i in range(20)
    ]
    deployments = [Deployment("gpt35"), Deployment("embed3", model="text-embedding-3-small")]
    with FakeAzure(deployments, rules=rules, api_keys=(KEY,)) as server:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("FAKE_AZURE_ENDPOINT", server.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        write("azeval.toml", CONFIG)
        write("suites/near.yaml", SUITE)
        write("suites/rows.jsonl", "".join(json.dumps(r) + "\n" for r in ROWS))
        yield server


def _embedding_requests(server):
    return [r for r in server.requests if r.path.endswith("/embeddings")]


def _results(root):
    lines = (newest_run(root) / "results.jsonl").read_text().splitlines()
    return {r["case"]: r for r in map(json.loads, lines)}


def test_the_fake_vectors_give_hand_computed_cosines():
    """The fake's vectors are hashed bags of words: shared words 'paris is' of 4 and 6
    distinct words give 2 / (√4·√6); the same words in another order give 1."""
    assert _cos("Paris is lovely number0", REFERENCE) == pytest.approx(2 / math.sqrt(4 * 6))
    assert _cos("France: of the capital, is Paris!", REFERENCE) == pytest.approx(1.0)


def test_similar_scores_batches_and_embeds_the_reference_once(fake, tmp_path):
    """Every case records the cosine as its score (0.408 < 0.5: a fail); the 20 replies and
    the one shared reference (21 texts) go in fewer requests than texts, the reference once;
    each request went to the deployment's embeddings URL through the SDK."""
    assert azeval("run", "suites", "-t", "gpt35") == 1
    results = _results(tmp_path)
    check = results["q3"]["turns"][0]["checks"][0]
    assert check["check"] == "similar" and check["status"] == "fail"
    assert check["score"] == pytest.approx(2 / math.sqrt(24), abs=1e-9)
    assert "cosine similarity 0.408 < min 0.5" in check["message"]
    sent = _embedding_requests(fake)
    inputs = [text for r in sent for text in r.body["input"]]
    assert sorted(inputs) == sorted([_reply(i) for i in range(20)] + [REFERENCE])
    assert len(sent) < 21
    assert {r.path for r in sent} == {"/openai/deployments/embed3/embeddings"}
    meta = json.loads((newest_run(tmp_path) / "run.json").read_text())
    assert meta["embedder"]["requests"] == len(sent) and meta["embedder"]["inputs"] == 21
    report = (newest_run(tmp_path) / "report.html").read_text()
    assert (
        f"Embeddings for similar: embed (text-embedding-3-small), {len(sent)} request(s) for "
        "21 text(s)" in report
    )


def test_embed_batch_1_sends_each_text_alone(fake, tmp_path, write):
    """[settings] embed_batch = 1: one request per distinct text (21), still the
    reference once."""
    write("azeval.toml", CONFIG.replace("concurrency = 8", "concurrency = 8\nembed_batch = 1"))
    azeval("run", "suites", "-t", "gpt35")
    sent = _embedding_requests(fake)
    assert [len(r.body["input"]) for r in sent] == [1] * 21


def test_the_embedding_cost_is_in_the_case_and_the_run(fake, tmp_path):
    """Each check's cost is its texts' share of the embedding tokens at the model's price
    ($0.02 per million); the checks' costs add up to every token billed, and each case's
    cost is its chat turn's plus its check's."""
    azeval("run", "suites", "-t", "gpt35")
    results = _results(tmp_path)
    meta = json.loads((newest_run(tmp_path) / "run.json").read_text())
    billed = meta["embedder"]["tokens"]
    checks = [r["turns"][0]["checks"][0] for r in results.values()]
    assert sum(c["cost_usd"] for c in checks) == pytest.approx(billed * 0.00002 / 1000)
    turns = sum(r["turns"][0]["cost_usd"] for r in results.values())
    summary = meta["summary"]["targets"]["gpt35"]
    assert summary["cost_usd"] == pytest.approx(turns + billed * 0.00002 / 1000, abs=1e-8)


def test_the_v1_api_shape_sends_the_deployment_in_the_body(fake, tmp_path, write):
    """use_v1 = true on the embedder: POST /openai/v1/embeddings with model = deployment."""
    write("azeval.toml", CONFIG + "use_v1 = true\n")
    azeval("run", "suites", "-t", "gpt35")
    sent = _embedding_requests(fake)
    assert sent and {r.path for r in sent} == {"/openai/v1/embeddings"}
    assert {r.body["model"] for r in sent} == {"embed3"}


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (Fault("429", every=1, retry_after=0.01), "rate_limited (HTTP 429)"),
        (Fault("invalid_json", every=1), "invalid_response"),
    ],
)
def test_a_failed_embeddings_request_is_the_check_error(fake, tmp_path, fault, says):
    """A 429 after the retries, or a body that is not JSON: each check is an error naming
    the failure (never a pass or a fail), every case is recorded, and the run exits 1."""
    fake.service.deployments["embed3"] = Deployment(
        "embed3", model="text-embedding-3-small", faults=(fault,)
    )
    assert azeval("run", "suites", "-t", "gpt35") == 1
    results = _results(tmp_path)
    assert len(results) == 20
    for result in results.values():
        (check,) = result["turns"][0]["checks"]
        assert check["status"] == "error" and "score" not in check
        assert "the embeddings request to 'embed' failed" in check["message"]
        assert says in check["message"]
        assert result["verdict"] == "fail"


def test_a_429_the_retries_get_past_costs_nothing_but_time(fake, tmp_path, write):
    """The embedder's first request is refused with 429 and Retry-After: the sender waits
    and sends it again (the same retries as chat requests), and every check scores."""
    write("azeval.toml", CONFIG.replace("max_retries = 0", "max_retries = 2"))
    fake.service.deployments["embed3"] = Deployment(
        "embed3", model="text-embedding-3-small", faults=(Fault("429", first=1, retry_after=0.05),)
    )
    azeval("run", "suites", "-t", "gpt35")
    statuses = [r.status for r in _embedding_requests(fake)]
    assert statuses[0] == 429 and 200 in statuses
    checks = [r["turns"][0]["checks"][0] for r in _results(tmp_path).values()]
    assert {c["status"] for c in checks} == {"fail"}
    assert all(c["score"] == pytest.approx(2 / math.sqrt(24)) for c in checks)


@pytest.mark.parametrize(
    ("config", "says"),
    [
        (CONFIG.replace('embedder = "embed"\n', ""), "expect.similar: check 'similar' needs"),
        (CONFIG.replace('embedder = "embed"', 'embedder = "gpt35"'), "a chat model"),
        (CONFIG.replace('embedder = "embed"', 'embedder = "nope"'), "unknown target 'nope'"),
        (CONFIG.replace("concurrency = 8", "embed_batch = 4096"), "settings.embed_batch"),
    ],
)
def test_bad_embedder_settings_are_exit_2_and_nothing_is_sent(fake, write, capsys, config, says):
    """similar without an embedder, an embedder that is a chat model or unknown, a batch
    over Azure's 2,048 inputs: exit 2 naming the place, nothing sent."""
    write("azeval.toml", config)
    assert azeval("run", "suites", "-t", "gpt35") == 2
    assert says in capsys.readouterr().err
    assert fake.requests == []


def test_a_bad_min_on_similar_is_exit_2_naming_the_place(fake, write, capsys):
    """min outside [0, 1] on similar: exit 2 naming the file and key, nothing sent."""
    write("suites/near.yaml", SUITE.replace("min: 0.5", "min: 1.5"))
    assert azeval("run", "suites", "-t", "gpt35") == 2
    err = capsys.readouterr().err
    assert "near.yaml" in err and "expect.similar.min" in err
    assert fake.requests == []


def test_the_local_model_embeds_through_llama_cpp(fake, tmp_path, write):
    """embedder = "local": the embedded GGUF in a llama.cpp server of its own in embedding
    mode (mean pooling), through the same SDK embeddings call; a reply equal to its
    reference scores 1, another text less, and the local embeddings cost 0."""
    write("azeval.toml", CONFIG.replace('embedder = "embed"', 'embedder = "local"'))
    write(
        "suites/near.yaml",
        """
        suite: near
        cases:
          - id: same
            prompt: "Question 1?"
            expect:
              similar: {reference: "Paris is lovely number1", min: 0.99}
          - id: other
            prompt: "Question 2?"
            expect:
              similar: {reference: "Quarterly revenue fell by four percent.", min: 0.99}
        """,
    )
    assert azeval("run", "suites", "-t", "gpt35") == 1
    results = _results(tmp_path)
    same = results["same"]["turns"][0]["checks"][0]
    other = results["other"]["turns"][0]["checks"][0]
    assert same["status"] == "pass" and same["score"] == pytest.approx(1.0, abs=1e-4)
    assert other["status"] == "fail" and other["score"] < same["score"]
    assert same["cost_usd"] == 0.0
    meta = json.loads((newest_run(tmp_path) / "run.json").read_text())
    assert meta["embedder"]["kind"] == "local" and meta["embedder"]["requests"] >= 1
    assert _embedding_requests(fake) == []


def test_validate_names_a_similar_check_with_no_embedder(fake, write, capsys):
    """azeval validate says what run would refuse: similar with no embedder named."""
    write("azeval.toml", CONFIG.replace('embedder = "embed"\n', ""))
    assert azeval("validate", "suites") == 2
    said = capsys.readouterr()
    assert "check 'similar' needs embeddings" in said.out + said.err
    assert fake.requests == []


def test_a_replay_sends_no_embeddings_and_its_similar_checks_say_so(fake, tmp_path, write):
    """--replay answers from the cache and sends nothing, embeddings included: each
    similar is an error saying no embedder was lent, never a pass."""
    write("azeval.toml", CONFIG.replace("[settings]\n", "[settings]\ncache = true\n"))
    azeval("run", "suites", "-t", "gpt35")
    fake.reset()
    assert azeval("run", "suites", "-t", "gpt35", "--replay") == 1
    assert fake.requests == []
    for result in _results(tmp_path).values():
        (check,) = result["turns"][0]["checks"]
        assert check["status"] == "error" and "no embedder was lent" in check["message"]
