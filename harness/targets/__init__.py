"""Targets: the only code that talks to a service. ``open_target`` builds one from config."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from harness.config import TargetConfig
from harness.errors import ConfigError
from harness.redact import public_url
from harness.targets.base import Completion, Target, TargetError, TargetInfo

if TYPE_CHECKING:
    import openai

__all__ = ["Completion", "Target", "TargetError", "TargetInfo", "open_target"]

ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"


async def open_target(config: TargetConfig) -> Target:
    """Build the target a (resolved) config describes; a missing key is a ConfigError."""
    if config.kind == "azure":
        return _azure(config)
    if config.kind == "openai":
        return _openai(config)
    from harness.targets.local import open_local_target

    return await open_local_target(config)


async def open_embedder(config: TargetConfig) -> Target:
    """The target an embedder config describes: the same clients (its ``embed`` sends
    embeddings requests); a local one runs its own llama.cpp server in embedding mode."""
    if config.kind != "local":
        return await open_target(config)
    from harness.targets.local import open_local_target

    return await open_local_target(config, embedding=True)


def target_info(config: TargetConfig) -> TargetInfo:
    """What a (resolved) config's target is, built without a client or a key: what a
    replay from the cache matches answers by. A local target reads its GGUF's hash; a pool
    is its members' model, with their deployments and endpoints in ``extra``."""
    if config.members:
        members = [target_info(m) for m in config.members]
        return TargetInfo(
            name=config.name,
            kind="azure",
            model=config.model,
            model_version=config.model_version,
            deployment=", ".join(m.deployment for m in members),
            api_version=members[0].api_version,
            extra={
                "pool": [
                    {"name": m.name, "deployment": m.deployment, "endpoint": m.endpoint}
                    for m in members
                ]
            },
        )
    if config.kind == "azure":
        return TargetInfo(
            name=config.name,
            kind="azure",
            model=config.model,
            model_version=config.model_version,
            deployment=config.deployment,
            api_version="v1" if config.use_v1 else config.api_version,
            endpoint=public_url(config.endpoint),
        )
    if config.kind == "openai":
        return TargetInfo(
            name=config.name,
            kind="openai",
            model=config.model,
            model_version=config.model_version,
            endpoint=public_url(config.base_url),
        )
    from harness.targets.gguf import gguf_sha256, resolve_gguf

    gguf = resolve_gguf(config)
    sha256 = gguf_sha256(gguf)
    # As open_local_target names it, so replayed answers match the ones it stored.
    return TargetInfo(
        name=config.name,
        kind="local",
        model=gguf.stem,
        model_version=sha256[:12],
        extra={"gguf": str(gguf), "sha256": sha256},
    )


# openai is imported when a target is built, not with the package: it is most of the
# start-up time of commands that send nothing (validate, plan, report, --help).


def _azure(config: TargetConfig) -> Target:
    import openai

    from harness.targets.sdk import SdkTarget
    from harness.targets.transport import http_client

    info = target_info(config)
    credential = (
        {"azure_ad_token_provider": _entra_token_provider(config)}
        if config.auth == "entra"
        else {"api_key": config.api_key()}
    )
    client: openai.AsyncOpenAI
    if config.use_v1:
        # The v1 API: no api-version, the deployment travels in the body as `model`.
        token = credential.get("azure_ad_token_provider") or credential["api_key"]
        headers = {"api-key": credential["api_key"]} if "api_key" in credential else None
        client = openai.AsyncOpenAI(
            base_url=config.endpoint.rstrip("/") + "/openai/v1",
            api_key=token,
            default_headers=headers,
            max_retries=0,
            http_client=http_client(config.max_response_bytes),
        )
    else:
        client = openai.AsyncAzureOpenAI(
            azure_endpoint=config.endpoint,
            api_version=config.api_version,
            max_retries=0,
            http_client=http_client(config.max_response_bytes),
            **credential,
        )
    return SdkTarget(info, client, model=config.deployment)


def _openai(config: TargetConfig) -> Target:
    import openai

    from harness.targets.sdk import SdkTarget
    from harness.targets.transport import http_client

    info = target_info(config)
    if config.uses_key:
        key, headers = config.api_key(), None
    else:
        # api_key_env = "": a server without auth (llama.cpp, vLLM, Ollama …). The SDK will
        # not build a client without a key, so it gets a placeholder it never sends, and
        # never OPENAI_API_KEY, which a server the user does not trust would receive.
        key, headers = "no-key", {"Authorization": openai.Omit()}
    client = openai.AsyncOpenAI(
        base_url=config.base_url or None,
        api_key=key,
        max_retries=0,
        http_client=http_client(config.max_response_bytes),
    )
    return SdkTarget(info, client, model=config.model, headers=headers)


def require_azure_identity(config: TargetConfig) -> None:
    """auth = "entra" needs the optional azure-identity package: a ConfigError naming the
    target's auth (exit 2) when it is missing. validate checks it too, before any run."""
    try:
        importlib.import_module("azure.identity.aio")
    except ImportError:
        raise ConfigError(
            config.source,
            f"{config.place}.auth",
            "Entra ID auth needs azure-identity: pip install 'azeval[entra]'",
        ) from None


def _entra_token_provider(config: TargetConfig):  # type: ignore[no-untyped-def]
    require_azure_identity(config)
    from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider

    return get_bearer_token_provider(DefaultAzureCredential(), ENTRA_SCOPE)
