"""Azure targets over real HTTP: key and Entra auth, the v1 path, errors classified."""

from __future__ import annotations

import sys
import types

import pytest

from harness.config import parse_config
from harness.errors import ConfigError
from harness.targets import TargetError, open_target
from harness.targets.sdk import rate_headers
from harness.testing import Action, Deployment, ErrorReply, FakeAzure, Match, Rule

KEY = "target-test-key-0123"
TOKEN = "entra-token-4567"
MESSAGES = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def server():
    with FakeAzure(
        [Deployment("gpt35", model="gpt-35-turbo", context_window=4096)],
        api_keys=(KEY,),
        bearer_tokens=(TOKEN,),
    ) as fake:
        yield fake


def azure_target(server, **extra):
    body = {
        "kind": "azure",
        "endpoint": server.endpoint,
        "deployment": "gpt35",
        "model": "gpt-35-turbo",
    }
    return parse_config({"targets": {"t": {**body, **extra}}}, "azeval.toml").select(["t"])[0]


@pytest.fixture
def entra(monkeypatch):
    """A stand-in for azure-identity that hands out TOKEN and remembers the scope asked for."""
    scopes: list[str] = []

    def get_bearer_token_provider(credential, scope):
        scopes.append(scope)

        async def provide() -> str:
            return TOKEN

        return provide

    module = types.ModuleType("azure.identity.aio")
    module.DefaultAzureCredential = object  # type: ignore[attr-defined]
    module.get_bearer_token_provider = get_bearer_token_provider  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure.identity.aio", module)
    return scopes


async def test_key_auth_on_the_deployments_path(server, monkeypatch):
    """The api-key header and the api-version query reach the deployment's URL."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    target = await open_target(azure_target(server))
    try:
        completion = await target.complete({"messages": MESSAGES}, timeout=10)
    finally:
        await target.aclose()
    assert completion.body["choices"][0]["message"]["content"]
    (request,) = server.requests
    assert request.path == "/openai/deployments/gpt35/chat/completions"
    assert request.query["api-version"] == "2024-10-21"
    assert request.headers["api-key"] == "REDACTED"


async def test_a_request_is_sent_as_written_without_the_sdks_transform(server, monkeypatch):
    """The body goes out through the SDK's client exactly as written, params unknown to the
    SDK included, without create()'s TypedDict walk over the messages (its largest cost)."""
    import openai.resources.chat.completions.completions as completions

    async def refuse(*args, **kwargs):
        raise AssertionError("the SDK's request transform ran")

    monkeypatch.setattr(completions, "async_maybe_transform", refuse)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    target = await open_target(azure_target(server))
    body = {"messages": MESSAGES, "temperature": 0, "max_tokens": 20, "future_param": [1, 2]}
    try:
        completion = await target.complete(body, timeout=10)
    finally:
        await target.aclose()
    assert completion.body["choices"][0]["message"]["content"]
    (request,) = server.requests
    assert request.path == "/openai/deployments/gpt35/chat/completions"
    assert request.body == {**body, "model": "gpt35"}


async def test_entra_auth_sends_a_bearer_token_for_the_cognitive_services_scope(server, entra):
    """auth = entra asks azure-identity for the right scope and sends its token."""
    target = await open_target(azure_target(server, auth="entra"))
    try:
        await target.complete({"messages": MESSAGES}, timeout=10)
    finally:
        await target.aclose()
    assert entra == ["https://cognitiveservices.azure.com/.default"]
    (request,) = server.requests
    assert request.status == 200
    assert "api-key" not in request.headers


async def test_v1_path_puts_the_deployment_in_the_body(server, monkeypatch):
    """use_v1 sends to /openai/v1/chat/completions with model = deployment, no api-version."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    config = azure_target(server, use_v1=True)
    assert config.api_version == "v1"
    target = await open_target(config)
    try:
        await target.complete({"messages": MESSAGES}, timeout=10)
    finally:
        await target.aclose()
    (request,) = server.requests
    assert request.path == "/openai/v1/chat/completions"
    assert request.body["model"] == "gpt35"
    assert "api-version" not in request.query
    assert request.status == 200


async def test_entra_without_azure_identity_is_a_config_error(server, monkeypatch):
    """Entra auth without the optional package says how to install it, exit 2."""
    monkeypatch.setitem(sys.modules, "azure.identity.aio", None)
    with pytest.raises(ConfigError, match=r"targets\.t\.auth: Entra ID auth needs azure-identity"):
        await open_target(azure_target(server, auth="entra"))


@pytest.mark.parametrize(
    ("reply", "kind", "status", "code"),
    [
        (ErrorReply(400, code="invalid_request"), "bad_request", 400, "invalid_request"),
        (ErrorReply(408, code="Timeout"), "timeout", 408, "Timeout"),
        (ErrorReply(429, retry_after=2.5), "rate_limited", 429, "429"),
        (ErrorReply(500), "server_error", 500, None),
        (ErrorReply(503), "server_error", 503, "ServiceUnavailable"),
    ],
)
async def test_error_answers_are_classified(server, monkeypatch, reply, kind, status, code):
    """Each HTTP error becomes a TargetError of the right kind, with the body's code."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    server.set_rules([Rule(Match(), Action(error=reply))])
    target = await open_target(azure_target(server))
    try:
        with pytest.raises(TargetError) as err:
            await target.complete({"messages": MESSAGES}, timeout=10)
    finally:
        await target.aclose()
    assert (err.value.kind, err.value.status, err.value.code) == (kind, status, code)
    if kind == "rate_limited":
        assert err.value.retry_after == pytest.approx(2.5)
        assert err.value.retryable


async def test_filtered_prompt_and_long_context_have_their_own_kinds(server, monkeypatch):
    """400 content_filter and context_length_exceeded are told apart from other 400s."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    server.set_rules([Rule(Match(last_user="bomb"), Action(prompt_filters={"violence": "high"}))])
    target = await open_target(azure_target(server))
    try:
        with pytest.raises(TargetError) as blocked:
            await target.complete({"messages": [{"role": "user", "content": "a bomb"}]}, timeout=10)
        with pytest.raises(TargetError) as long:
            await target.complete({"messages": MESSAGES, "max_tokens": 100_000}, timeout=10)
    finally:
        await target.aclose()
    assert blocked.value.kind == "content_filter"
    assert blocked.value.body["error"]["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert long.value.kind == "context_length"


async def test_openai_target_without_a_key_sends_no_authorization(monkeypatch):
    """api_key_env = "" is a server without auth: no Authorization header is sent, and
    never OPENAI_API_KEY, which belongs to OpenAI, not to whatever base_url points at."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-for-openai-only-0123")
    body = {"kind": "openai", "model": "gpt35", "api_key_env": ""}
    with FakeAzure([Deployment("gpt35", model="gpt-35-turbo")], api_keys=None) as open_server:
        body["base_url"] = open_server.endpoint + "/openai/v1"
        config = parse_config({"targets": {"t": body}}, "azeval.toml").select(["t"])[0]
        assert not config.uses_key
        target = await open_target(config)
        try:
            await target.complete({"messages": MESSAGES}, timeout=10)
        finally:
            await target.aclose()
        (request,) = open_server.requests
    assert request.status == 200
    assert request.body["model"] == "gpt35"
    assert "authorization" not in request.headers
    assert "api-key" not in request.headers


async def test_a_404_names_the_url_that_was_not_found(server, monkeypatch):
    """Azure's bare 'Resource not found' (a wrong path, an api-version it does not know)
    says which URL was asked for, so the api-version or endpoint at fault shows."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    reply = ErrorReply(404, code="404", message="Resource not found")
    server.set_rules([Rule(Match(), Action(error=reply))])
    target = await open_target(azure_target(server, api_version="2099-01-01"))
    try:
        with pytest.raises(TargetError) as err:
            await target.complete({"messages": MESSAGES}, timeout=10)
    finally:
        await target.aclose()
    assert err.value.kind == "not_found"
    assert err.value.message == (
        f"Resource not found (POST {server.endpoint}"
        "/openai/deployments/gpt35/chat/completions?api-version=2099-01-01)"
    )


async def test_a_429_carries_the_rate_limit_headers(monkeypatch):
    """A refused request's TargetError keeps the rate-limit headers (which limit was hit,
    when it resets), as a success's Completion does; a reset that is no duration is dropped."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    deployment = Deployment(
        "gpt35", model="gpt-35-turbo", rpm=6, request_window=10, reset_headers=True
    )
    with FakeAzure([deployment], api_keys=(KEY,)) as fake:
        target = await open_target(azure_target(fake))
        try:
            completion = await target.complete({"messages": MESSAGES, "max_tokens": 5}, timeout=10)
            with pytest.raises(TargetError) as err:
                await target.complete({"messages": MESSAGES, "max_tokens": 5}, timeout=10)
        finally:
            await target.aclose()
    assert completion.headers["x-ratelimit-remaining-requests"] == "0"
    assert completion.headers["x-ratelimit-reset-requests"] == "10s"
    headers = err.value.headers
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert float(headers["retry-after-ms"]) > 9000
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert rate_headers(
        {"x-ratelimit-reset-tokens": "6m0s", "x-ratelimit-reset-requests": "soon"}
    ) == {"x-ratelimit-reset-tokens": "6m0s"}


def test_rate_headers_are_read_whatever_the_case_of_their_names():
    """Header names are case-insensitive: a mapping spelling them in capitals is read."""
    assert rate_headers({"X-RateLimit-Remaining-Tokens": "120", "Retry-After": "2"}) == {
        "x-ratelimit-remaining-tokens": "120",
        "retry-after": "2",
    }
