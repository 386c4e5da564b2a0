"""Targets and settings from azeval.toml / pyproject.toml, with environment expansion."""

from __future__ import annotations

import pytest

from harness.config import find_config, load_config
from harness.errors import ConfigError

OPENAI = '[targets.x]\nkind = "openai"\nmodel = "m"\n'
AZURE = """
[targets.gpt35]
kind = "azure"
endpoint = "${AZ_TEST_ENDPOINT}"
deployment = "gpt-35-turbo"
model = "gpt-35-turbo"
model_version = "0125"
tpm = 120000
"""


def test_azure_target_resolves_environment(write, monkeypatch):
    """${VAR} expands when the target is selected; defaults fill api_version and key variable."""
    monkeypatch.setenv("AZ_TEST_ENDPOINT", "https://example.openai.azure.com")
    config = load_config(write("azeval.toml", AZURE))
    (target,) = config.select(["gpt35"])
    assert target.endpoint == "https://example.openai.azure.com"
    assert target.api_version == "2024-10-21"
    assert target.api_key_env == "AZURE_OPENAI_API_KEY"
    assert target.tpm == 120000


def test_missing_environment_variable_names_file_and_place(write, monkeypatch):
    """A missing variable is a ConfigError naming the file, the key and the variable."""
    monkeypatch.delenv("AZ_TEST_ENDPOINT", raising=False)
    path = write("azeval.toml", AZURE)
    with pytest.raises(ConfigError) as err:
        load_config(path).select(["gpt35"])
    assert (
        str(err.value)
        == f"{path}: targets.gpt35.endpoint: environment variable AZ_TEST_ENDPOINT is not set"
    )
    assert err.value.exit_code == 2


def test_env_default_syntax(write, monkeypatch):
    """${VAR:-default} uses the default when the variable is unset."""
    monkeypatch.delenv("AZ_TEST_ENDPOINT", raising=False)
    path = write(
        "azeval.toml",
        AZURE.replace("${AZ_TEST_ENDPOINT}", "${AZ_TEST_ENDPOINT:-http://127.0.0.1:1}"),
    )
    assert load_config(path).select(["gpt35"])[0].endpoint == "http://127.0.0.1:1"


def test_unselected_target_may_lack_its_variables(write, monkeypatch):
    """Only the chosen targets are resolved, so others may reference unset variables."""
    monkeypatch.delenv("AZ_TEST_ENDPOINT", raising=False)
    path = write("azeval.toml", AZURE + '\n[targets.other]\nkind = "openai"\nmodel = "gpt-4o"\n')
    assert [t.name for t in load_config(path).select(["other"])] == ["other"]


@pytest.mark.parametrize(
    ("text", "place", "message"),
    [
        ('[targets.x]\nkind = "azur"\n', "targets.x.kind", "must be one of azure, openai, local"),
        (
            '[targets.x]\nkind = "azure"\nendpoint = "e"\nmodel = "m"\n',
            "targets.x.deployment",
            "required",
        ),
        (
            '[targets.x]\nkind = "azure"\nendpoint = "e"\ndeployment = "d"\n',
            "targets.x.model",
            "required for azure targets: the model the deployment runs",
        ),
        (
            '[targets.x]\nkind = "openai"\nmodel = "m"\ndeploymnt = "d"\n',
            "targets.x.deploymnt",
            "unknown key",
        ),
        (
            '[targets.x]\nkind = "openai"\nmodel = "m"\ntpm = -5\n',
            "targets.x.tpm",
            "positive whole number",
        ),
        ('[settings]\nconcurrency = "many"\n', "settings.concurrency", "positive whole number"),
        ("[bogus]\n", "bogus", "unknown section"),
        # A wrong type or a value out of range is an error at its key, never used as is.
        (OPENAI + "tpm = true\n", "targets.x.tpm", "positive whole number"),
        (OPENAI + "timeout = -5\n", "targets.x.timeout", "seconds above 0"),
        (OPENAI + "timeout = true\n", "targets.x.timeout", "seconds above 0"),
        (OPENAI + "api_key_env = 5\n", "targets.x.api_key_env", "name of an environment variable"),
        (
            '[targets.x]\nkind = "azure"\nendpoint = "e"\nmodel = "m"\ndeployment = "d"\n'
            'api_key_env = ""\n',
            "targets.x.api_key_env",
            'Azure needs a key, or auth = "entra"',
        ),
        (OPENAI + 'base_url = ["a"]\n', "targets.x.base_url", "must be text"),
        ('[targets.x]\nkind = "openai"\nmodel = ["a"]\n', "targets.x.model", "must be text"),
        (OPENAI + "description = 5\n", "targets.x.description", "must be text"),
        (
            '[targets.x]\nkind = "azure"\nendpoint = "e"\nmodel = "m"\ndeployment = ["d"]\n',
            "targets.x.deployment",
            "must be text",
        ),
        ('[targets.x]\nkind = "local"\nthreads = 0\n', "targets.x.threads", "positive"),
        ("[settings]\nconcurrency = 0\n", "settings.concurrency", "positive whole number"),
        ("[settings]\ntimeout = 0\n", "settings.timeout", "seconds above 0"),
        ("[settings]\nmax_retries = -1\n", "settings.max_retries", "0 to 50"),
        ("[settings]\nfail_under = 500\n", "settings.fail_under", "from 0 to 100"),
        ('[settings]\nreports_dir = ""\n', "settings.reports_dir", "name of a folder"),
    ],
)
def test_config_errors_name_the_place(write, text, place, message):
    """Each config mistake is reported at its key, exit code 2."""
    path = write("azeval.toml", text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}: {place}: " in str(err.value)
    assert message in str(err.value)


def test_a_key_pasted_as_its_variable_name_is_not_quoted(write):
    """api_key_env holding the key itself is an error that does not repeat the key."""
    path = write("azeval.toml", OPENAI + 'api_key_env = "sk-0123-4567-89ab"\n')
    with pytest.raises(ConfigError, match=r"targets\.x\.api_key_env") as err:
        load_config(path)
    assert "sk-0123" not in str(err.value)


def test_bare_toml_versions_are_taken_as_written(write):
    """api_version = 2024-10-21 (a TOML date) and model_version = 613 read as text."""
    azure = '[targets.x]\nkind = "azure"\nendpoint = "e"\ndeployment = "d"\nmodel = "m"\n'
    path = write("azeval.toml", azure + "api_version = 2024-10-21\nmodel_version = 613\n")
    target = load_config(path).targets["x"]
    assert (target.api_version, target.model_version) == ("2024-10-21", "613")


@pytest.mark.parametrize("name", ["azeval.toml", "pyproject.toml"])
def test_config_that_is_not_utf8_names_the_file(tmp_path, name):
    """A config file in another encoding is a ConfigError naming it, found or given."""
    path = tmp_path / name
    path.write_bytes(b"[tool.azeval]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=f"{name}: not UTF-8 text"):
        load_config(start=tmp_path)
    with pytest.raises(ConfigError, match=f"{name}: not UTF-8 text"):
        load_config(path)


def test_invalid_toml(write):
    """A TOML syntax error names the file."""
    path = write("azeval.toml", "[targets\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_unknown_target_name_lists_known(write):
    """-t with an unknown name lists the configured targets."""
    path = write("azeval.toml", '[targets.a]\nkind = "openai"\nmodel = "m"\n')
    with pytest.raises(ConfigError, match=r"unknown target 'b' \(targets: a\)"):
        load_config(path).select(["b"])


def test_no_config_means_local_default(tmp_path):
    """With no configuration at all, the embedded local model is the target."""
    config = load_config(start=tmp_path)
    assert config.path is None
    (target,) = config.select([])
    assert (target.name, target.kind) == ("local", "local")


def test_pyproject_tool_section_is_found(write, tmp_path):
    """[tool.azeval] in pyproject.toml is used when there is no azeval.toml."""
    write(
        "pyproject.toml",
        '[project]\nname = "x"\n\n[tool.azeval.targets.a]\nkind = "openai"\nmodel = "m"\n',
    )
    (tmp_path / "sub").mkdir()
    path = find_config(tmp_path / "sub")
    assert path == tmp_path / "pyproject.toml"
    assert list(load_config(path).targets) == ["a"]


def test_local_targets_get_a_patient_timeout(write):
    """A local model shares the CPU, so its targets default to a long request timeout."""
    path = write("azeval.toml", '[targets.mine]\nkind = "local"\n')
    assert load_config(path).targets["mine"].timeout == 300.0
    assert load_config(start=path.parent.parent).select(["local"])[0].timeout == 300.0


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("myres.openai.azure.com", "must be an http(s) URL such as https://NAME.openai.azure.com"),
        ("", "must be an http(s) URL"),
        ("https://myres.openai.azure.com/openai", "write https://myres.openai.azure.com"),
        ("https://myres.openai.azure.com/openai/v1/", "write https://myres.openai.azure.com"),
        ("https://gw.example.com/team/openai/", "write https://gw.example.com/team"),
        (
            "https://myres.openai.azure.com/openai/deployments/gpt-4o/chat/completions"
            "?api-version=2024-10-21",
            "write https://myres.openai.azure.com",
        ),
        ("https://user:pw@myres.openai.azure.com/?sig=abc", "write https://myres.openai.azure.com"),
    ],
)
def test_an_endpoint_azeval_cannot_send_to_is_a_config_error(write, monkeypatch, endpoint, message):
    """An endpoint without http(s), with the /openai… azeval appends itself, or with a query
    is exit 2 at the endpoint, saying what to write; it used to cost retries or a bare 404
    (exit 3). A query or password is not repeated. Checked once ${VAR} is expanded."""
    monkeypatch.setenv("AZ_TEST_ENDPOINT", endpoint)
    path = write("azeval.toml", AZURE)
    with pytest.raises(ConfigError) as err:
        load_config(path).select(["gpt35"])
    assert f"{path}: targets.gpt35.endpoint: " in str(err.value)
    assert message in str(err.value)
    assert "sig=" not in str(err.value) and "pw" not in str(err.value)


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://myres.openai.azure.com",
        "https://myres.openai.azure.com/",
        "http://127.0.0.1:8080",
        "https://gw.example.com/team/",
    ],
)
def test_an_endpoint_with_a_trailing_slash_or_a_gateway_path_is_accepted(
    write, monkeypatch, endpoint
):
    """The resource URL as the portal shows it (with its slash), or a gateway's prefix."""
    monkeypatch.setenv("AZ_TEST_ENDPOINT", endpoint)
    path = write("azeval.toml", AZURE)
    assert load_config(path).select(["gpt35"])[0].endpoint == endpoint


def test_a_base_url_with_chat_completions_is_a_config_error(write):
    """The SDK appends /chat/completions to an openai target's base_url."""
    path = write("azeval.toml", OPENAI + 'base_url = "http://127.0.0.1:8080/v1/chat/completions"\n')
    with pytest.raises(
        ConfigError, match=r"targets\.x\.base_url: .*write http://127\.0\.0\.1:8080/v1$"
    ):
        load_config(path).select(["x"])


def test_an_openai_target_may_go_without_a_key(write, monkeypatch):
    """api_key_env = "" is a server without auth: no key variable is needed."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = write("azeval.toml", OPENAI + 'api_key_env = ""\n')
    assert not load_config(path).select(["x"])[0].uses_key
