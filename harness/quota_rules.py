"""How Azure counts a deployment's quota: what a request is charged up front, and the
requests per minute a TPM grants. The preflight (a plan's charge and time under quota) and
the runner (its scheduler) both read these, so neither needs the other."""

from __future__ import annotations

# What Azure charges for the completion of a request that does not set max_tokens.
DEFAULT_COMPLETION_CHARGE = 4096
# Azure grants 6 requests a minute per 1,000 TPM of a deployment's quota.
RPM_PER_1000_TPM = 6


def default_rpm(tpm: int | None, rpm: int | None) -> int | None:
    """The requests-per-minute limit: the one configured, else Azure's share of the TPM."""
    if rpm is not None or tpm is None:
        return rpm
    return max(1, tpm * RPM_PER_1000_TPM // 1000)


def request_charge(prompt_tokens: int, reserve: int | None) -> int:
    """What a request is charged against TPM when admitted: its prompt tokens plus the
    completion tokens it reserves (max_tokens), or the default charge when it sets none."""
    return prompt_tokens + (reserve if reserve is not None else DEFAULT_COMPLETION_CHARGE)
