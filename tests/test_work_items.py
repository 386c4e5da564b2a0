"""The one-way flow from the plan to the runner: work items carry what the plan found, one
function runs a work item, and the preflight stands without the runner."""

from __future__ import annotations

import subprocess
import sys


def test_the_preflight_imports_nothing_of_the_runner():
    """Quota facts (the default completion charge, the RPM a TPM grants) live where the
    preflight and the runner both read them: planning loads no runner module."""
    code = (
        "import sys, harness.preflight\n"
        "print(sorted(m for m in sys.modules if m.startswith('harness.runner')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
