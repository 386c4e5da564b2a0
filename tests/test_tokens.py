"""Offline encodings and message token counts."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken.load
import tiktoken.registry

from harness import tokens
from harness.suite.model import Message

FOUNDERS = [
    {"role": "system", "content": "Assistant is a large language model trained by OpenAI."},
    {"role": "user", "content": "Who were the founders of Microsoft?"},
]

# The OpenAI cookbook's example ("How to count tokens with tiktoken"), whose API-reported
# prompt_tokens were 127 on gpt-3.5-turbo-0301, 129 on gpt-3.5-turbo-0613 and gpt-4, and
# 124 on gpt-4o.
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
WEATHER_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


def _forget_encodings() -> None:
    tokens.get_encoding.cache_clear()
    tokens._count.cache_clear()


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No network and an empty tiktoken cache: only bundled data can work."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))

    def no_network(blobpath: str) -> bytes:
        raise AssertionError(f"tried to download {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    _forget_encodings()
    yield cache
    _forget_encodings()


def test_counts_work_with_no_network_and_an_empty_cache(offline: Path) -> None:
    """Both encodings build from bundled data without a download or touching the cache."""
    assert tokens.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert tokens.get_encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert list(offline.iterdir()) == []
    assert not tokens.registered_in_tiktoken("cl100k_base")


def test_offline_encoding_keeps_tiktokens_special_tokens(offline: Path) -> None:
    """The offline encodings carry tiktoken's own special tokens and vocabulary size."""
    cl100k = tokens.get_encoding("cl100k_base")
    assert cl100k.encode("<|endoftext|>", allowed_special="all") == [100257]
    assert cl100k.n_vocab == 100277
    o200k = tokens.get_encoding("o200k_base")
    assert o200k.encode("<|endoftext|>", allowed_special="all") == [199999]


def test_offline_ranks_are_tiktokens_own_reading_of_the_file(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both encodings' bundled files read to the very ranks tiktoken's own loader reads."""
    for name in ("cl100k_base", "o200k_base"):
        bundled = tokens._bundled_file(name)
        assert bundled is not None
        data = gzip.decompress(bundled.read_bytes())
        monkeypatch.setattr(tiktoken.load, "read_file_cached", lambda *args, data=data, **kw: data)
        assert tokens._parse_ranks(data) == tiktoken.load.load_tiktoken_bpe(name)


def test_a_verified_tiktoken_cache_is_used_as_is(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When tiktoken's cache holds the verified file, tiktoken itself builds the encoding."""
    bundled = tokens._bundled_file("cl100k_base")
    assert bundled is not None
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    (offline / hashlib.sha1(url.encode()).hexdigest()).write_bytes(
        gzip.decompress(bundled.read_bytes())
    )
    assert tokens.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert tokens.registered_in_tiktoken("cl100k_base")


def test_bundled_data_with_the_wrong_hash_is_refused(
    offline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundled file whose sha256 differs from tiktoken's expected hash is never used."""
    bad = tmp_path / "cl100k_base.tiktoken.gz"
    bad.write_bytes(gzip.compress(b"aGVsbG8= 0\n"))
    monkeypatch.setattr(tokens, "_bundled_file", lambda name: bad)
    with pytest.raises(tokens.EncodingUnavailable, match="sha256"):
        tokens.get_encoding("cl100k_base")


def test_founders_example_counts_29_like_the_service(offline: Path) -> None:
    """The prompt azure-openai.md quotes counts 29 tokens on gpt-35-turbo, as the service said."""
    assert tokens.count_messages(FOUNDERS, "gpt-35-turbo") == 29


def test_message_objects_count_like_dicts() -> None:
    """Message objects and API-shaped dicts give the same count."""
    messages = [Message(role=m["role"], content=m["content"]) for m in FOUNDERS]
    assert tokens.count_messages(messages, "gpt-35-turbo") == 29


def test_formula_is_3_per_message_plus_values_plus_3() -> None:
    """Each message adds 3 + its role and content tokens; the reply priming adds 3."""
    # "Assistant is a large language model trained by OpenAI." is 11 tokens, "system" 1.
    assert tokens.count_text(FOUNDERS[0]["content"], "gpt-35-turbo") == 11
    assert tokens.count_messages(FOUNDERS[:1], "gpt-35-turbo") == 3 + 1 + 11 + 3
    assert tokens.count_messages([], "gpt-35-turbo") == 3


def test_a_name_adds_its_tokens_plus_one() -> None:
    """A name costs its own tokens plus 1 ("example_user" is 2 tokens)."""
    plain = {"role": "system", "content": "Hi"}
    named = {**plain, "name": "example_user"}
    assert tokens.count_messages([named], "gpt-4") - tokens.count_messages([plain], "gpt-4") == 3


def test_0301_uses_4_per_message_and_minus_1_per_name() -> None:
    """gpt-35-turbo 0301 charges 4 per message and a name replaces the role (-1)."""
    assert tokens.count_messages(FOUNDERS, "gpt-35-turbo", model_version="0301") == 31
    assert tokens.count_messages(FOUNDERS, "gpt-3.5-turbo-0301") == 31
    named = [{"role": "system", "name": "example_user", "content": "Hi"}]
    # 4 + role 1 + content 1 + name 2 - 1 + priming 3
    assert tokens.count_messages(named, "gpt-35-turbo", model_version="0301") == 10


def test_cookbook_example_matches_the_api_reported_counts() -> None:
    """The cookbook's few-shot prompt counts 127 (0301), 129 (gpt-35/gpt-4), 124 (gpt-4o)."""
    assert tokens.count_messages(COOKBOOK, "gpt-35-turbo", model_version="0301") == 127
    assert tokens.count_messages(COOKBOOK, "gpt-35-turbo", model_version="0613") == 129
    assert tokens.count_messages(COOKBOOK, "gpt-4") == 129
    assert tokens.count_messages(COOKBOOK, "gpt-4o") == 124


def test_gpt4o_uses_o200k() -> None:
    """gpt-4o counts with o200k_base, which packs Japanese tighter than cl100k_base."""
    assert tokens.encoding_name_for("gpt-4o-2024-08-06") == "o200k_base"
    assert tokens.encoding_name_for("o3-mini") == "o200k_base"
    assert tokens.encoding_name_for("gpt-35-turbo") == "cl100k_base"
    assert tokens.count_text("こんにちは、世界", "gpt-4") == 5
    assert tokens.count_text("こんにちは、世界", "gpt-4o") == 3


def test_tool_definitions_match_the_cookbook_estimate() -> None:
    """The cookbook's weather tool prompt counts 105 on gpt-35-turbo and 101 on gpt-4o."""
    assert tokens.count_messages(WEATHER_MESSAGES, "gpt-35-turbo", tools=WEATHER_TOOLS) == 105
    assert tokens.count_messages(WEATHER_MESSAGES, "gpt-4o", tools=WEATHER_TOOLS) == 101
    assert tokens.count_tools([], "gpt-4o") == 0


def test_special_token_text_counts_as_ordinary_text() -> None:
    """Text holding <|endoftext|> is counted, not refused."""
    assert tokens.count_text("<|endoftext|>", "gpt-4") > 1
    assert tokens.special_tokens_in("a <|im_start|>user b <|im_end|>") == [
        "<|im_start|>",
        "<|im_end|>",
    ]
    assert tokens.special_tokens_in("plain <| text") == []


def test_truncate_text_keeps_a_prefix_of_at_most_n_tokens() -> None:
    """Truncation returns a prefix with at most n tokens and never a broken character."""
    text = "héllo wörld ünïcödé 日本語のテキスト " * 20
    for n in (0, 1, 5, 17, 40):
        cut = tokens.truncate_text(text, n, "gpt-4")
        assert text.startswith(cut)
        assert tokens.count_text(cut, "gpt-4") <= n
        assert "\ufffd" not in cut
    assert tokens.truncate_text("short", 100, "gpt-4o") == "short"
    assert tokens.count_text(tokens.truncate_text(text, 17, "gpt-4"), "gpt-4") >= 15


def test_counting_many_distinct_texts_holds_a_bounded_cache_that_keeps_repeated_ones():
    """Counting 6,000 distinct texts (a for_each's prompts) caches at most 4,096 of them,
    while a system prompt counted between each stays cached and is counted once."""
    tokens._count.cache_clear()
    system = "You are a careful support agent."
    for n in range(6000):
        tokens.count_text(f"My order {n} arrived damaged.", "gpt-4o")
        tokens.count_text(system, "gpt-4o")
    info = tokens._count.cache_info()
    assert info.currsize <= 4096
    assert info.misses == 6001  # each distinct text once, the system prompt once
