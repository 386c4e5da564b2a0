"""The shapes of a judge's answer: one JSON Schema per kind of judged check.

These are the contract users and tests rely on:

    rubric      {"reasoning": str, "verdict": "pass" | "fail"}
    score       {"reasoning": str, "score": 1..5}               (an integer)
    factuality  {"reasoning": str, "choice": "A" | "B" | "C" | "D" | "E"}
    pairwise    {"reasoning": str, "winner": "A" | "B" | "tie"}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

JudgeKind = Literal["rubric", "score", "factuality", "pairwise"]
JUDGE_KINDS: tuple[JudgeKind, ...] = ("rubric", "score", "factuality", "pairwise")

# A verdict's value: "pass"/"fail", a score 1..5, a fact category letter, a winner.
Value = str | int


@dataclass(frozen=True)
class VerdictShape:
    """What one kind of judge answers: the field holding the decision and its values."""

    kind: JudgeKind
    field: str
    values: tuple[Value, ...]

    @property
    def schema(self) -> dict[str, Any]:
        """The JSON Schema, in the subset structured outputs' strict mode accepts (every
        property required, no additional ones, ``enum`` rather than minimum/maximum)."""
        decision: dict[str, Any] = {
            "type": "integer" if isinstance(self.values[0], int) else "string",
            "enum": list(self.values),
        }
        return {
            "type": "object",
            "properties": {"reasoning": {"type": "string"}, self.field: decision},
            "required": ["reasoning", self.field],
            "additionalProperties": False,
        }

    @property
    def schema_name(self) -> str:
        """The json_schema name sent to the service (1–64 of [a-zA-Z0-9_-])."""
        return f"azeval_{self.kind}_verdict"

    def value_of(self, raw: Any) -> Value | None:
        """The allowed value ``raw`` stands for, or None: integers for scores (4 or 4.0,
        never true), strings compared without case (``"Pass"``, ``"tie"``, ``"c"``)."""
        if isinstance(raw, bool):
            return None
        if isinstance(self.values[0], int):
            if isinstance(raw, float) and raw.is_integer():
                raw = int(raw)
            return raw if isinstance(raw, int) and raw in self.values else None
        if not isinstance(raw, str):
            return None
        wanted = raw.strip().lower()
        for value in self.values:
            if str(value).lower() == wanted:
                return value
        return None


SHAPES: dict[JudgeKind, VerdictShape] = {
    "rubric": VerdictShape("rubric", "verdict", ("pass", "fail")),
    "score": VerdictShape("score", "score", (1, 2, 3, 4, 5)),
    "factuality": VerdictShape("factuality", "choice", ("A", "B", "C", "D", "E")),
    "pairwise": VerdictShape("pairwise", "winner", ("A", "B", "tie")),
}

# OpenAI Evals' fact categories: how the reply relates to the reference.
FACT_CHOICES: dict[str, str] = {
    "A": "a subset of the reference, fully consistent with it",
    "B": "a superset of the reference, fully consistent with it",
    "C": "the same details as the reference",
    "D": "in disagreement with the reference",
    "E": "different from the reference, but the differences do not matter for factuality",
}


@dataclass(frozen=True)
class JudgeVerdict:
    """A judge's parsed, validated answer: its decision and its reasoning."""

    kind: JudgeKind
    value: Value
    reasoning: str

    def to_json(self) -> dict[str, Any]:
        return {"reasoning": self.reasoning, SHAPES[self.kind].field: self.value}
