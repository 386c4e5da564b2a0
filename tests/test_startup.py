"""What ``azeval`` loads to start: commands that send nothing never import the SDK."""

from __future__ import annotations

import subprocess
import sys

import pytest

CONFIG = """
[targets.gpt35]
kind = "azure"
endpoint = "http://127.0.0.1:9"
deployment = "gpt35"
model = "gpt-35-turbo"
"""

# Run in a fresh interpreter: this test process has imported openai long ago.
PROBE = """
import sys
import harness.cli
sys.argv = ["azeval", *sys.argv[1:]]
try:
    harness.cli.main()
except SystemExit as exit_:
    code = exit_.code
sending = sorted({m.split(".")[0] for m in sys.modules} & {"openai", "aiohttp"})
print("exit", code, "loaded", " ".join(sending) or "none", file=sys.stderr)
"""


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_validate_and_plan_do_not_import_openai_or_aiohttp(tmp_path, write, command):
    """`azeval validate` and `azeval plan` send nothing, so they do not pay the second or so
    of importing the openai SDK and aiohttp: after either, neither is in sys.modules."""
    write("azeval.toml", CONFIG)
    write("suites/one.yaml", "suite: one\ncases:\n  - id: hi\n    prompt: Say hi.\n")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, command, "suites", "-t", "gpt35"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "exit 0 loaded none" in done.stderr, done.stderr
