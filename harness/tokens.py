"""Token counts that match the service, with no internet.

tiktoken downloads its encoding files on first use. azeval builds the two encodings its
models use (cl100k_base, o200k_base) from tiktoken's own cache when that already holds a
verified copy, and otherwise from the copies the ``bpe-openai`` package ships, checked
against the sha256 that tiktoken itself expects. Nothing is downloaded, no environment
variable is set, and a user whose tiktoken already works sees exactly the same encoding.

Message counts follow OpenAI's published formula (3 tokens per message, +1 per ``name``,
+3 to prime the reply; gpt-35-turbo 0301: 4 per message, -1 per ``name``); tool
definitions add the estimate from the OpenAI cookbook.
"""

from __future__ import annotations

import binascii
import functools
import gzip
import hashlib
import importlib.util
import json
import os
import tempfile
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tiktoken
import tiktoken.registry
import tiktoken_ext.openai_public as openai_public

from harness.suite.model import Message

# The encodings azeval can build offline, and the constructor tiktoken registers for each.
OFFLINE_ENCODINGS: Mapping[str, Callable[[], dict[str, Any]]] = {
    "cl100k_base": openai_public.cl100k_base,
    "o200k_base": openai_public.o200k_base,
}
DEFAULT_ENCODING = "cl100k_base"

# Model-name prefixes → encoding, for callers that pass a bare model name. The catalogue
# (harness.models) is the authority; this keeps tokens.py usable on its own.
_PREFIX_ENCODINGS = (
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-35", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-4", "cl100k_base"),
)

# Text the service refuses in a message ("special tokens in the input"): the legacy ChatML
# markers and every special token of the encodings azeval knows.
SPECIAL_TOKEN_TEXTS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|im_sep|>",
    "<|endoftext|>",
    "<|endofprompt|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
)


class EncodingUnavailable(RuntimeError):
    """An encoding could be found neither in tiktoken's cache nor in bpe-openai's data."""


# --- encodings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    url: str
    expected_hash: str


def _tiktoken_cache_file(url: str) -> Path | None:
    """Where tiktoken would look for ``url`` (see tiktoken.load.read_file_cached)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            cache_dir = os.environ[var]
            break
    else:
        cache_dir = str(Path(tempfile.gettempdir()) / "data-gym-cache")
    if not cache_dir:
        return None
    return Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()


def _bundled_file(name: str) -> Path | None:
    """bpe-openai's gzip'd copy of an encoding file, found without importing the package."""
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / f"{name}.tiktoken.gz"
        if candidate.is_file():
            return candidate
    return None


def _verified(data: bytes, expected_hash: str) -> bool:
    return hashlib.sha256(data).hexdigest() == expected_hash


def _parse_ranks(data: bytes) -> dict[bytes, int]:
    """``token rank`` a line, the token in base64 (tiktoken's format); every start of
    azeval that counts tokens reads ~100,000 of them, so in one pass with no loop of ours."""
    fields = data.split()
    return dict(zip(map(binascii.a2b_base64, fields[::2]), map(int, fields[1::2]), strict=True))


def _constructor_args(name: str, load: Callable[[str, str], dict[str, bytes | int]]) -> dict:
    """Run tiktoken's own constructor for ``name`` with ``load`` in place of the download.

    A copy of the function with its own globals, so tiktoken's module is never mutated and
    the pattern, special tokens, URL and expected hash are exactly tiktoken's.
    """
    original = OFFLINE_ENCODINGS[name]
    namespace = {**original.__globals__, "load_tiktoken_bpe": load}
    constructor = types.FunctionType(original.__code__, namespace, original.__name__)
    args: dict[str, Any] = constructor()
    return args


def _source_of(name: str) -> _Source:
    found: list[_Source] = []

    def record(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        found.append(_Source(url, expected_hash or ""))
        return {}

    _constructor_args(name, record)  # type: ignore[arg-type]
    return found[0]


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, built without network access when it can be."""
    if name not in OFFLINE_ENCODINGS:
        return tiktoken.get_encoding(name)
    source = _source_of(name)
    cached = _tiktoken_cache_file(source.url)
    if (
        cached is not None
        and cached.is_file()
        and _verified(cached.read_bytes(), source.expected_hash)
    ):
        # tiktoken will read this same verified file: a user with internet sees no change.
        return tiktoken.get_encoding(name)
    bundled = _bundled_file(name)
    if bundled is None:
        raise EncodingUnavailable(
            f"encoding {name} is not in tiktoken's cache and bpe-openai is not installed"
        )
    data = gzip.decompress(bundled.read_bytes())
    if not _verified(data, source.expected_hash):
        raise EncodingUnavailable(
            f"{bundled}: sha256 does not match tiktoken's expected {source.expected_hash}"
        )

    def load(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        return _parse_ranks(data)

    return tiktoken.Encoding(**_constructor_args(name, load))  # type: ignore[arg-type]


def encoding_name_for(model: str) -> str:
    """The encoding of a model name (dated or versioned names too); cl100k_base if unknown."""
    lowered = model.lower()
    for prefix, name in _PREFIX_ENCODINGS:
        if lowered.startswith(prefix):
            return name
    try:
        return tiktoken.encoding_name_for_model(model)
    except KeyError:
        return DEFAULT_ENCODING


def encoding_for(model: str) -> tiktoken.Encoding:
    """The encoding a model (or, given an encoding's name, that encoding) uses."""
    if model in OFFLINE_ENCODINGS:
        return get_encoding(model)
    return get_encoding(encoding_name_for(model))


# --- counting ------------------------------------------------------------------------------


# Suites repeat system prompts and few-shot examples across cases, and those stay in the
# cache; a for_each's own texts are each counted once, and 65,536 of them held (the text
# is the key) were about 20 MB of a 100,000-case run.
@functools.lru_cache(maxsize=1 << 12)
def _count(encoding: str, text: str) -> int:
    return len(get_encoding(encoding).encode_ordinary(text))


def count_text(text: str, model: str) -> int:
    """Tokens in ``text`` for ``model``; special-token text counts as ordinary text."""
    if not text:
        return 0
    name = model if model in OFFLINE_ENCODINGS else encoding_name_for(model)
    return _count(name, text)


def truncate_text(text: str, n: int, model: str) -> str:
    """The longest prefix of ``text`` (at a token boundary) that has at most ``n`` tokens."""
    if n <= 0:
        return ""
    encoding = encoding_for(model)
    tokens = encoding.encode_ordinary(text)
    if len(tokens) <= n:
        return text
    keep = n
    while keep > 0:
        # A cut inside a multi-byte character leaves bytes that are not text: drop them.
        prefix = encoding.decode_bytes(tokens[:keep]).decode("utf-8", errors="ignore")
        if len(encoding.encode_ordinary(prefix)) <= n:
            return prefix
        keep -= 1
    return ""


def is_0301(model: str, model_version: str = "") -> bool:
    """Whether a model uses the gpt-3.5-turbo-0301 message format (4 per message, -1 per name)."""
    return model_version == "0301" or model.endswith("-0301")


def count_messages(
    messages: Iterable[Message | Mapping[str, Any]],
    model: str,
    *,
    model_version: str = "",
    tools: Sequence[Mapping[str, Any]] | None = None,
    encoding: str | None = None,
) -> int:
    """Prompt tokens the service will charge for these messages (and tool definitions).

    ``messages`` are ``Message`` objects or API-shaped dicts (role, content, name, …).
    ``encoding`` overrides the encoding looked up from ``model`` (the catalogue knows it).
    """
    name = encoding or encoding_name_for(model)
    per_message, per_name = (4, -1) if is_0301(model, model_version) else (3, 1)
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += per_message
        if isinstance(message, Message):
            total += _count_fields(name, message.role, message.content, message.name, per_name)
            if message.tool_calls:
                total += _count_tool_calls(name, message.tool_calls)
        else:
            total += _count_fields(
                name, message.get("role"), message.get("content"), message.get("name"), per_name
            )
            if message.get("tool_calls"):
                total += _count_tool_calls(name, message["tool_calls"])
    if tools:
        total += count_tools(tools, model, encoding=name)
    return total


def _count_fields(encoding: str, role: Any, content: Any, name: Any, per_name: int) -> int:
    total = _count(encoding, role) if role else 0
    if isinstance(content, str):
        total += _count(encoding, content)
    elif isinstance(content, Sequence):
        # Content parts: text parts count as text; images are not estimated here.
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                total += _count(encoding, part["text"])
    if name:
        total += _count(encoding, name) + per_name
    return total


def _count_tool_calls(encoding: str, calls: Iterable[Mapping[str, Any]]) -> int:
    """An estimate: the function name and its JSON arguments of each call in a reply."""
    total = 0
    for call in calls:
        function = call.get("function") or {}
        total += _count(encoding, str(function.get("name", "")))
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        total += _count(encoding, arguments)
    return total


def count_tools(
    tools: Sequence[Mapping[str, Any]], model: str, *, encoding: str | None = None
) -> int:
    """The OpenAI cookbook's estimate of the tokens that tool definitions add to a prompt."""
    if not tools:
        return 0
    name = encoding or encoding_name_for(model)
    # gpt-4o-family models (o200k_base) start each function with 7 tokens, older ones 10.
    func_init = 7 if name == "o200k_base" else 10
    prop_init, prop_key, enum_init, enum_item, func_end = 3, 3, -3, 3, 12
    total = 0
    for tool in tools:
        function = tool.get("function", tool)
        total += func_init
        description = str(function.get("description", "")).removesuffix(".")
        total += _count(name, f"{function.get('name', '')}:{description}")
        properties = (function.get("parameters") or {}).get("properties") or {}
        if properties:
            total += prop_init
            for key, prop in properties.items():
                total += prop_key
                if "enum" in prop:
                    total += enum_init
                    for item in prop["enum"]:
                        total += enum_item + _count(name, str(item))
                p_type = prop.get("type", "")
                p_desc = str(prop.get("description", "")).removesuffix(".")
                total += _count(name, f"{key}:{p_type}:{p_desc}")
    return total + func_end


def special_tokens_in(text: str) -> list[str]:
    """The special-token texts (ChatML markers and the like) that occur in ``text``."""
    if "<|" not in text:
        return []
    return [token for token in SPECIAL_TOKEN_TEXTS if token in text]


def registered_in_tiktoken(name: str) -> bool:
    """Whether tiktoken itself has built ``name`` in this process (used by tests)."""
    return name in tiktoken.registry.ENCODINGS
