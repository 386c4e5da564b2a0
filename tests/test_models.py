"""The model catalogue: lookups, versions, overrides, api-version features."""

from __future__ import annotations

import pytest

from harness import tokens
from harness.errors import ConfigError
from harness.models import api_version_key, load_catalogue, local_spec


def test_gpt35_versions_have_their_own_context_windows() -> None:
    """gpt-35-turbo 0301/0613 have 4,096 tokens; 1106/0125 16,385 with 4,096 out."""
    catalogue = load_catalogue()
    for version, window, out in [
        ("0301", 4096, 4096),
        ("0613", 4096, 4096),
        ("1106", 16385, 4096),
        ("0125", 16385, 4096),
    ]:
        spec, warning = catalogue.lookup("gpt-35-turbo", version)
        assert (spec.context_window, spec.max_output, warning) == (window, out, None)
    assert catalogue.lookup("gpt-35-turbo", "0301")[0].message_format == "0301"


@pytest.mark.parametrize(
    ("model", "version", "window", "out"),
    [
        ("gpt-4", "0613", 8192, 8192),
        ("gpt-4", "turbo-2024-04-09", 128000, 4096),
        ("gpt-4-32k", "", 32768, 32768),
        ("gpt-4-turbo", "", 128000, 4096),
        ("gpt-4o", "2024-05-13", 128000, 4096),
        ("gpt-4o", "2024-08-06", 128000, 16384),
        ("gpt-4o", "2024-11-20", 128000, 16384),
        ("gpt-4o-mini", "", 128000, 16384),
        ("gpt-4.1", "", 1047576, 32768),
        ("o1", "", 200000, 100000),
        ("o3", "", 200000, 100000),
        ("o3-mini", "", 200000, 100000),
        ("o4-mini", "", 200000, 100000),
    ],
)
def test_limits_match_the_published_values(model: str, version: str, window: int, out: int) -> None:
    """Each model version's context window and output limit are the documented ones."""
    spec, warning = load_catalogue().lookup(model, version)
    assert (spec.context_window, spec.max_output) == (window, out)
    assert warning is None


def test_every_model_uses_the_encoding_tiktoken_would() -> None:
    """The catalogue's encoding of each model agrees with the model-name rule in tokens."""
    catalogue = load_catalogue()
    for name in catalogue.models:
        if name == "local":
            continue
        spec, _ = catalogue.lookup(name)
        assert spec.encoding == tokens.encoding_name_for(name), name


def test_o_series_models_reject_max_tokens_and_sampling() -> None:
    """Reasoning models are flagged and accept neither max_tokens nor sampling parameters."""
    spec, _ = load_catalogue().lookup("o3-mini")
    assert spec.o_series
    assert "max_tokens" not in spec.accepts
    assert "sampling" not in spec.accepts
    assert "max_completion_tokens" in spec.accepts


def test_structured_outputs_only_from_gpt4o_2024_08_06() -> None:
    """json_schema is accepted by gpt-4o 2024-08-06 but not by 2024-05-13 or gpt-35-turbo."""
    catalogue = load_catalogue()
    assert "json_schema" in catalogue.lookup("gpt-4o", "2024-08-06")[0].accepts
    assert "json_schema" not in catalogue.lookup("gpt-4o", "2024-05-13")[0].accepts
    assert "json_schema" not in catalogue.lookup("gpt-35-turbo", "0125")[0].accepts


def test_aliases_and_versions_in_the_name_are_understood() -> None:
    """gpt-3.5-turbo-0613 and gpt-4o-2024-05-13 resolve to their catalogue versions."""
    catalogue = load_catalogue()
    spec, _ = catalogue.lookup("gpt-3.5-turbo-0613")
    assert (spec.name, spec.version, spec.context_window) == ("gpt-35-turbo", "0613", 4096)
    spec, _ = catalogue.lookup("GPT-4o-2024-05-13")
    assert (spec.name, spec.version, spec.max_output) == ("gpt-4o", "2024-05-13", 4096)


def test_unknown_model_warns_and_names_the_fallback() -> None:
    """An unknown model gets cl100k_base, 8,192 tokens, no prices, and a warning saying so."""
    spec, warning = load_catalogue().lookup("my-model")
    assert warning == (
        "unknown model 'my-model': assuming cl100k_base, 8,192-token context, no prices"
    )
    assert not spec.known
    assert spec.cost(1000, 1000) is None


def test_unknown_model_of_a_known_family_keeps_its_encoding() -> None:
    """An unknown o1-mini or gpt-4o-audio-preview is counted with o200k_base, as tiktoken does.

    An o-series name is assumed to be a reasoning model; the warning says both.
    """
    catalogue = load_catalogue()
    spec, warning = catalogue.lookup("o1-mini")
    assert (spec.encoding, spec.o_series, spec.known) == ("o200k_base", True, False)
    assert warning == (
        "unknown model 'o1-mini': assuming o200k_base, a reasoning model, 8,192-token "
        "context, no prices"
    )
    spec, _ = catalogue.lookup("gpt-4o-audio-preview")
    assert (spec.encoding, spec.o_series) == ("o200k_base", False)
    spec, _ = catalogue.lookup("text-davinci-003")  # p50k_base: not one azeval builds
    assert spec.encoding == "cl100k_base"


def test_unknown_version_warns_and_uses_the_default() -> None:
    """An unknown version of a known model warns and uses the default version's values."""
    spec, warning = load_catalogue().lookup("gpt-4o", "2030-01-01")
    assert spec.version == "2024-11-20"
    assert warning is not None
    assert "2030-01-01" in warning
    assert "2024-11-20" in warning


def test_no_version_means_the_default_version() -> None:
    """A target without model_version gets the model's default version."""
    spec, warning = load_catalogue().lookup("gpt-35-turbo")
    assert (spec.version, spec.context_window, warning) == ("0125", 16385, None)


def test_cost_uses_prices_per_1k() -> None:
    """Cost is prompt × input price + completion × output price, per 1,000 tokens."""
    spec, _ = load_catalogue().lookup("gpt-4", "0613")
    assert spec.cost(1000, 500) == pytest.approx(0.03 + 0.03)


def test_a_model_level_override_holds_for_every_version() -> None:
    """[models."gpt-35-turbo"] context_window applies to 0613 and 0301 as well, whose
    catalogue tables set their own; a version the user names still wins for that version."""
    catalogue = load_catalogue(
        {
            "gpt-35-turbo": {
                "versions": {"0301": {"context_window": 3000}},
                "context_window": 5000,
                "accepts": ["sampling", "max_tokens"],
            }
        }
    )
    for version, window in (("0613", 5000), ("0125", 5000), ("0301", 3000)):
        spec, _ = catalogue.lookup("gpt-35-turbo", version)
        assert (spec.context_window, spec.accepts) == (window, {"sampling", "max_tokens"})
    spec, _ = catalogue.lookup("gpt-35-turbo", "0613")
    assert spec.price_in_per_1k == 0.0015  # keys the user did not name are the catalogue's


def test_user_overrides_merge_over_the_catalogue() -> None:
    """A config override changes the keys it names and keeps the rest; new models are added."""
    catalogue = load_catalogue(
        {
            "gpt-4o": {"versions": {"2024-08-06": {"price_in_per_1k": 0.003}}},
            "my-finetune": {
                "encoding": "o200k_base",
                "context_window": 32000,
                "max_output": 2000,
                "price_in_per_1k": 0.01,
                "price_out_per_1k": 0.02,
            },
        }
    )
    spec, _ = catalogue.lookup("gpt-4o", "2024-08-06")
    assert spec.price_in_per_1k == 0.003
    assert spec.price_out_per_1k == 0.01
    assert spec.max_output == 16384
    spec, warning = catalogue.lookup("my-finetune")
    assert warning is None
    assert (spec.encoding, spec.context_window, spec.max_output) == ("o200k_base", 32000, 2000)
    # the shipped catalogue is untouched for the next caller
    assert load_catalogue().lookup("gpt-4o", "2024-08-06")[0].price_in_per_1k == 0.0025


@pytest.mark.parametrize(
    ("override", "place"),
    [
        ({"gpt-4o": {"context": 5}}, "models.gpt-4o.context"),
        ({"gpt-4o": {"context_window": "big"}}, "models.gpt-4o.context_window"),
        ({"gpt-4o": {"encoding": "p50k_base"}}, "models.gpt-4o.encoding"),
        ({"gpt-4o": {"accepts": ["telepathy"]}}, "models.gpt-4o.accepts"),
        ({"x": {"versions": {"1": {"aliases": []}}}}, "models.x.versions.1.aliases"),
        ({"x": 3}, "models.x"),
    ],
)
def test_bad_overrides_name_the_place(override: dict, place: str) -> None:
    """A wrong key, type or value in [models] is a ConfigError naming the file and place."""
    with pytest.raises(ConfigError) as info:
        load_catalogue(override, source="azeval.toml")
    assert info.value.path == "azeval.toml"
    assert info.value.place == place


def test_api_versions_compare_by_date_with_preview_first() -> None:
    """A preview sorts after earlier dates and before the same date's GA; v1 is newest."""
    keys = [
        api_version_key(v)
        for v in ["2024-02-01", "2024-06-01", "2024-08-01-preview", "2024-10-21", "v1"]
    ]
    assert keys == sorted(keys)
    assert api_version_key("2024-10-21-preview") < api_version_key("2024-10-21")  # type: ignore[operator]
    assert api_version_key("latest-ish") is None


@pytest.mark.parametrize(
    ("api_version", "feature", "accepted"),
    [
        ("2023-05-15", "tools", False),
        ("2024-02-01", "tools", True),
        ("2024-02-01", "seed", True),
        ("2024-02-01", "logprobs", False),
        ("2024-06-01", "logprobs", True),
        ("2024-06-01", "json_schema", False),
        ("2024-08-01-preview", "json_schema", True),
        ("2024-08-01-preview", "max_completion_tokens", False),
        ("2024-09-01-preview", "max_completion_tokens", True),
        ("2024-09-01-preview", "parallel_tool_calls", True),
        ("2024-10-21", "json_schema", True),
        ("2024-10-21", "parallel_tool_calls", True),
        ("v1", "json_schema", True),
        ("", "json_schema", True),
    ],
)
def test_api_version_feature_table(api_version: str, feature: str, accepted: bool) -> None:
    """Each api-version accepts exactly the features introduced on or before it."""
    assert load_catalogue().api_version_accepts(api_version, feature) is accepted


def test_local_model_takes_its_context_from_the_target() -> None:
    """The local model's window is the target's n_ctx and its counts are marked approximate."""
    spec = local_spec(load_catalogue(), 4096)
    assert spec.context_window == 4096
    assert spec.approximate
