"""The target whose embeddings ``similar`` compares (``[settings] embedder``), checked
before anything is sent: it must be configured (or the embedded ``local`` model) and run an
embeddings model, and a suite with ``similar`` and no embedder is refused at its place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.config import CONFIG_FILE, Config, TargetConfig
from harness.errors import ConfigError
from harness.runner.check_model import refuse_checks_needing
from harness.suite.model import Suite


@dataclass(frozen=True)
class EmbeddingModel:
    """What azeval knows of an embeddings model: its native dimensions, the most tokens
    one input may have, and its list price (USD per 1,000 tokens, Azure = OpenAI)."""

    dimensions: int
    max_input_tokens: int
    price_per_1k: float | None  # None: unknown, so the run's cost is unknown too


EMBEDDING_MODELS = {
    "text-embedding-3-small": EmbeddingModel(1536, 8191, 0.00002),
    "text-embedding-3-large": EmbeddingModel(3072, 8191, 0.00013),
    "text-embedding-ada-002": EmbeddingModel(1536, 8191, 0.0001),
}
MAX_INPUTS = 2048  # inputs in one embeddings request (Azure OpenAI's limit)


def embedding_model(config: TargetConfig) -> EmbeddingModel | None:
    """The embeddings model a target runs; None when it runs a chat model."""
    if config.kind == "local":
        return EmbeddingModel(0, config.n_ctx, 0.0)
    model = config.model.lower()
    if model in EMBEDDING_MODELS:
        return EMBEDDING_MODELS[model]
    # Another embeddings model (a server's own, a newer one): no price azeval knows.
    return EmbeddingModel(0, 8191, None) if "embed" in model else None


def embedder_for(config: Config, suites: Sequence[Suite], *, sending: bool) -> TargetConfig | None:
    """The ``[settings] embedder`` target (resolved when the run sends); a ConfigError when
    it is unknown or runs a chat model, a SuiteError at the first ``similar`` when none is
    named."""
    name = config.settings.get("embedder")
    if name is None:
        refuse_checks_needing(
            suites,
            "embeddings",
            "needs embeddings: name an embeddings target (text-embedding-3-small, or local) "
            "as [settings] embedder",
        )
        return None
    name = str(name)
    where = config.path or CONFIG_FILE
    if name not in config.targets and name != "local":
        known = ", ".join(sorted(config.targets)) or "none configured"
        raise ConfigError(where, "settings.embedder", f"unknown target '{name}' (targets: {known})")
    target = config.select([name], only=None if sending else {"model"})[0]
    if target.members:
        raise ConfigError(
            where, "settings.embedder", f"target '{name}' is a pool: name one of its members"
        )
    if embedding_model(target) is None:
        models = ", ".join(EMBEDDING_MODELS)
        raise ConfigError(
            where,
            "settings.embedder",
            f"target '{name}' runs {target.model!r}, a chat model: an embedder runs an "
            f"embeddings model ({models}) or is a local target",
        )
    return target
