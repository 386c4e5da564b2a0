"""Secrets in every shape, through every error path: none reaches a file or an output stream.

A hostile service echoes the credentials it received in every spelling (plain, JSON-escaped,
URL-encoded, HTML-escaped, as a Python repr) in error messages, error codes, invalid bodies,
reply text, the model name and redirect locations. After the run, its report, JUnit, Markdown,
step summary, re-rendered report and baseline, no file under the project and neither output
stream holds any secret's core. A key no HTTP header can carry is refused before anything is
sent (exit 2 naming the variable, never printing the key).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.conftest import azeval
from tests.hostile.server import Answer, HostileServer, json_answer, ok

# Each secret holds a core that survives every escaping, so finding the core anywhere is a leak.
SHAPES = {
    "plain": "sk-plain-S3CRETcore01",
    "json-escaped": 'sk"quote\\back-S3CRETcore02',
    "url-encoded": "sk/url+enc=S3CRETcore03&x%y",
    "entra-jwt": "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGkifQ.S3CRETcore04sig",
}
REFUSED = {
    "trailing-cr": "sk-cr-S3CRETcore05\r",
    "trailing-lf": "sk-lf-S3CRETcore06\n",
    "trailing-crlf": "sk-crlf-S3CRETcore07\r\n",
    "inner-space": "sk space-S3CRETcore08",
    "non-ascii": "sk-ümlaut-S3CRETcore09",
}
PASSWORD = "pw-S3CRETcore10"
CORES = [f"S3CRETcore{n:02d}" for n in range(1, 11)]
NON_FATAL = ("echo-400", "echo-500", "echo-429", "echo-invalid", "echo-content", "echo-model")
FATAL = ("echo-401", "echo-404", "echo-redirect")

CONFIG = """
[settings]
max_retries = 1

[targets.az]
kind = "azure"
endpoint = "${LEAKY_ENDPOINT}"
deployment = "gpt4o"
model = "gpt-4o"
api_key_env = "LEAKY_API"
"""


def credentials(headers: dict[str, str]) -> list[str]:
    """What the client sent that a hostile server could repeat."""
    found = [headers.get("api-key", "")]
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        found.append(value)
    if scheme.lower() == "basic":
        found.append(base64.b64decode(value).decode().partition(":")[2])
    return [c for c in found if c]


def echo(headers: dict[str, str]) -> str:
    spellings = []
    for secret in credentials(headers):
        spellings += [
            secret,
            json.dumps(secret),
            quote(secret, safe=""),
            quote_plus(secret),
            html.escape(secret),
            repr(secret),
        ]
    return "you sent " + " | ".join(spellings)


def _answers() -> dict[str, object]:
    def error(status: int, **extra: str):  # type: ignore[no-untyped-def]
        def answer(headers: dict[str, str]) -> Answer:
            text = echo(headers)
            return json_answer({"error": {"message": text, "code": text}}, status, **extra)

        return answer

    def redirect(headers: dict[str, str]) -> Answer:
        secret = quote(credentials(headers)[0], safe="")
        return Answer(307, b"", {"Location": f"http://127.0.0.1:9/{secret}?k={secret}"})

    def invalid(headers: dict[str, str]) -> Answer:
        return Answer(200, f"<html>{echo(headers)}</html>".encode())

    def model(headers: dict[str, str]) -> Answer:
        answer = ok("fine")
        body = json.loads(answer.body)  # type: ignore[arg-type]
        body["model"] = body["system_fingerprint"] = echo(headers)
        return json_answer(body)

    return {
        "echo-400": error(400),
        "echo-500": error(500),
        "echo-429": error(429, **{"Retry-After": "0"}),
        "echo-401": error(401),
        "echo-404": error(404),
        "echo-redirect": redirect,
        "echo-invalid": invalid,
        "echo-content": lambda headers: ok(echo(headers)),
        "echo-model": model,
    }


def suite(markers: tuple[str, ...]) -> str:
    lines = ["suite: leaks", "cases:"]
    for marker in markers:
        lines += [f"  - id: {marker}", f"    prompt: {marker}", "    expect: {contains: ok}"]
    return "\n".join(lines) + "\n"


def run_everything(root: Path, monkeypatch: pytest.MonkeyPatch, markers: tuple[str, ...]) -> int:
    """A run with every output, then report and bless; the run's exit code."""
    monkeypatch.chdir(root)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(root / "step-summary.md"))
    (root / "azeval.toml").write_text(CONFIG)
    (root / "suites").mkdir(exist_ok=True)
    (root / "suites" / "leaks.yaml").write_text(suite(markers))
    code = azeval("run", "suites", "--junit", "junit.xml", "--markdown", "summary.md")
    runs = root / "reports" / "runs"
    for run_dir in runs.iterdir() if runs.is_dir() else ():
        azeval("report", str(run_dir))
        azeval("bless", str(run_dir), "-o", "baseline.json", "--allow-partial")
    return code


def leaks(root: Path, captured: pytest.CaptureResult[str]) -> list[str]:
    """Every place a secret's core is found: files under root, stdout, stderr."""
    places = []
    for path in root.rglob("*"):
        if path.is_file() and path.name != "azeval.toml":
            text = path.read_bytes().decode("utf-8", "replace")
            places += [f"{path.relative_to(root)}: {c}" for c in CORES if c in text]
    for name, text in (("stdout", captured.out), ("stderr", captured.err)):
        places += [f"{name}: {c}" for c in CORES if c in text]
    return places


SCENARIOS = [(shape, NON_FATAL) for shape in [*SHAPES, "url-password"]] + [
    (shape, (path,)) for shape in [*SHAPES, "url-password"] for path in FATAL
]


@pytest.mark.parametrize(
    ("shape", "markers"), SCENARIOS, ids=[f"{s}-{'+'.join(m)}" for s, m in SCENARIOS]
)
def test_no_secret_shape_reaches_a_file_or_a_stream(tmp_path, monkeypatch, capsys, shape, markers):
    """Whatever the service repeats of the key (or of a password in the endpoint URL), on
    whichever path (error message, code, invalid body, reply, model, redirect, dead
    target), every file written and both output streams hold none of it; the errors are
    still recorded."""
    key = SHAPES.get(shape, SHAPES["plain"])
    monkeypatch.setenv("LEAKY_API", key)
    with HostileServer(_answers()) as server:  # type: ignore[arg-type]
        host = server.url.removeprefix("http://")
        userinfo = f"gw:{PASSWORD}@" if shape == "url-password" else ""
        monkeypatch.setenv("LEAKY_ENDPOINT", f"http://{userinfo}{host}")
        code = run_everything(tmp_path, monkeypatch, markers)
        assert server.requests, "the cases were sent"
    assert code in (1, 3)
    results = (next((tmp_path / "reports" / "runs").iterdir()) / "results.jsonl").read_text()
    assert len(results.splitlines()) == len(markers)
    assert leaks(tmp_path, capsys.readouterr()) == []


@pytest.mark.parametrize("shape", REFUSED)
def test_a_key_a_header_cannot_carry_is_refused_unsent_and_unprinted(
    tmp_path, monkeypatch, capsys, shape
):
    """A key with a line end, inner whitespace or a non-ASCII character is exit 2 naming the
    variable; nothing is sent and the key is printed nowhere (it was echoed by the HTTP
    client's 'Illegal header value' into every output, and misreported as unreachable)."""
    monkeypatch.setenv("LEAKY_API", REFUSED[shape])
    with HostileServer(_answers()) as server:  # type: ignore[arg-type]
        monkeypatch.setenv("LEAKY_ENDPOINT", server.url)
        code = run_everything(tmp_path, monkeypatch, NON_FATAL)
        assert server.requests == []
    captured = capsys.readouterr()
    assert code == 2
    assert "LEAKY_API" in captured.err
    assert leaks(tmp_path, captured) == []
