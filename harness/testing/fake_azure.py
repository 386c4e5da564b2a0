"""Run the fake Azure OpenAI server from a shell.

    python -m harness.testing.fake_azure --port 8080 --config rules.yaml

Prints the endpoint (``http://127.0.0.1:8080``) on its first line and serves until
interrupted. The config file is YAML or JSON in the shape ``harness.testing`` documents.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Sequence

from harness.testing.config import load_config
from harness.testing.server import FakeAzure

__all__ = ["FakeAzure", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, serve until Ctrl-C, return an exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.testing.fake_azure", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--config", help="rules and deployments, YAML or JSON")
    parser.add_argument(
        "--api-key", action="append", help="an accepted api-key (repeatable; default test-key)"
    )
    args = parser.parse_args(argv)
    try:
        options = load_config(args.config) if args.config else {}
    except (OSError, ValueError) as e:
        print(f"Error: {args.config}: {e}", file=sys.stderr)
        return 2
    options.update(host=args.host, port=args.port)
    if args.api_key:
        options["api_keys"] = args.api_key
    with FakeAzure(**options) as server:
        print(server.endpoint, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
