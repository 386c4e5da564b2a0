"""Baselines: a run blessed into a small, stable JSON file that a team commits.

The file is meant to be read in a pull request's diff, so it holds what a reviewer wants
to see change and nothing that churns on its own: per target, what was configured and what
the service reported; per case (sorted), its verdict on every repeat, the first repeat's
reply and check statuses, and mean tokens, latency and cost. No timestamps; only the run id
and the git commit it came from.

``load_baseline`` turns the file back into a :class:`~harness.results.store.Run`, so
``compare``, gates and reports read a baseline exactly as they read a run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import jsonschema

from harness.errors import ConfigError
from harness.results import store
from harness.results.record import CaseResult, CheckResult, ErrorInfo, TurnResult
from harness.results.runmeta import RunMeta, TargetEntry
from harness.results.stats import mean_of
from harness.results.store import Run, load_run
from harness.streamed import StreamStats
from harness.suite.yamlfile import place_of
from harness.writable import json_text

FORMAT_VERSION = 1
# Long enough for a reviewer to read the reply; short enough to keep the file small.
MAX_REPLY_CHARS = 4000
_TARGET_FIELDS = ("name", "kind", "deployment", "model", "model_version", "api_version")
# What a baseline keeps of each judge: enough to tell that it changed, not its costs.
_JUDGE_FIELDS = ("model", "model_version", "templates")

_CHECK_SCHEMA = {
    "type": "object",
    "required": ["check", "status"],
    "properties": {
        "check": {"type": "string"},
        "status": {"type": "string"},
        "place": {"type": "string"},
        "message": {"type": "string"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
_CASE_SCHEMA = {
    "type": "object",
    "required": ["verdicts"],
    "properties": {
        "verdicts": {
            "type": "array",
            "minItems": 1,
            "items": {"enum": ["pass", "fail", "error", "unchecked"]},
        },
        "passed": {"type": "integer", "minimum": 0},
        "scores": {
            "type": "array",
            "items": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        },
        "reply": {"type": ["string", "null"]},
        "reply_truncated": {"type": "boolean"},
        "checks": {"type": "array", "items": _CHECK_SCHEMA},
        "error": {"type": ["object", "null"]},
        "prompt_tokens": {"type": "number"},
        "completion_tokens": {"type": "number"},
        "latency_ms": {"type": ["number", "null"]},
        "ttft_ms": {"type": ["number", "null"]},
        "tokens_per_s": {"type": ["number", "null"]},
        "cost_usd": {"type": ["number", "null"]},
        "model": {"type": ["string", "null"]},
        "system_fingerprint": {"type": ["string", "null"]},
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["azeval_baseline", "targets"],
    "properties": {
        "azeval_baseline": {"const": FORMAT_VERSION},
        # Each judge's model and template hashes, so a later run can say its judge changed.
        "judging": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "model": {"type": ["string", "null"]},
                    "model_version": {"type": ["string", "null"]},
                    "templates": {
                        "type": "object",
                        "additionalProperties": {"type": ["string", "null"]},
                    },
                },
            },
        },
        "run_id": {"type": ["string", "null"]},
        "git_commit": {"type": ["string", "null"]},
        "targets": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["cases"],
                "properties": {
                    "target": {"type": "object"},
                    "reported_models": {"type": "array", "items": {"type": "string"}},
                    "system_fingerprints": {"type": "array", "items": {"type": "string"}},
                    "cases": {
                        "type": "object",
                        "propertyNames": {"pattern": "^[^/]+/.+$"},
                        "additionalProperties": _CASE_SCHEMA,
                    },
                },
            },
        },
    },
}


def _sole(values: list[str]) -> str | None:
    return values[0] if len(values) == 1 else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _round(value: float | None, digits: int) -> float | int | None:
    if value is None:
        return None
    rounded = round(value, digits)
    return int(rounded) if digits == 0 else rounded


def _case_entry(
    group: list[CaseResult], target_model: str | None, target_print: str | None
) -> dict[str, Any]:
    group = sorted(group, key=lambda r: r.repeat)
    first = group[0]
    reply = first.reply
    entry: dict[str, Any] = {
        "verdicts": [r.verdict for r in group],
        "passed": sum(r.verdict == "pass" for r in group),
    }
    if any(r.score is not None for r in group):
        # Each repeat's weighted score, so score deltas against the baseline pair exactly.
        entry["scores"] = [r.score for r in group]
    if reply is not None and len(reply) > MAX_REPLY_CHARS:
        entry["reply"] = reply[:MAX_REPLY_CHARS]
        entry["reply_truncated"] = True
    else:
        entry["reply"] = reply
    entry["checks"] = [
        {"check": c.check, "place": c.place, "status": c.status, "message": c.message}
        | ({} if c.score is None else {"score": c.score})
        for c in first.checks
    ]
    if first.error:
        entry["error"] = {
            "kind": first.error.kind,
            "message": first.error.message,
        }
    entry["prompt_tokens"] = _round(_mean([r.prompt_tokens for r in group]), 1)
    entry["completion_tokens"] = _round(_mean([r.completion_tokens for r in group]), 1)
    entry["latency_ms"] = _round(_mean([v for r in group if (v := r.latency_ms) is not None]), 0)
    entry["cost_usd"] = _round(_mean([c for r in group if (c := r.cost_usd) is not None]), 6)
    if any(r.ttft_ms is not None or r.tokens_per_s is not None for r in group):
        # Streamed: its timings are compared as latency is.
        entry["ttft_ms"] = _round(mean_of(r.ttft_ms for r in group), 0)
        entry["tokens_per_s"] = _round(mean_of(r.tokens_per_s for r in group), 1)
    # Only what differs from the target's single reported value, so drift shows once.
    if first.model != target_model:
        entry["model"] = first.model
    if first.system_fingerprint != target_print:
        entry["system_fingerprint"] = first.system_fingerprint
    return entry


def bless(run: Run) -> dict[str, Any]:
    """The baseline document of a run: JSON-ready, deterministic, diff-friendly."""
    infos = {t.name: t.to_json() for t in run.meta.targets}
    stats = run.summary.targets
    sole = {
        name: (_sole(list(s.models)), _sole(list(s.system_fingerprints)))
        for name, s in stats.items()
    }
    entries: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    if run.summary.repeats <= 1:
        # One result per case: each is its case's entry at once, and none is kept.
        for result in run.results:
            entry = _case_entry([result], *sole[result.target])
            entries[result.target][result.case_key] = entry
    else:
        by_target: dict[str, dict[str, list[CaseResult]]] = defaultdict(lambda: defaultdict(list))
        for result in run.results:
            by_target[result.target][result.case_key].append(result)
        for name, groups in by_target.items():
            entries[name] = {key: _case_entry(group, *sole[name]) for key, group in groups.items()}
    targets: dict[str, Any] = {}
    for name in sorted(set(infos) | set(entries)):
        cases = entries.get(name, {})
        info = infos.get(name) or {"name": name}
        targets[name] = {
            "target": {k: info.get(k, "") for k in _TARGET_FIELDS},
            "reported_models": list(stats[name].models),
            "system_fingerprints": list(stats[name].system_fingerprints),
            "cases": {key: cases[key] for key in sorted(cases)},
        }
    document: dict[str, Any] = {
        "azeval_baseline": FORMAT_VERSION,
        "run_id": run.id,
        "git_commit": run.meta.git_commit,
        "targets": targets,
    }
    judging = {
        name: {key: facts.get(key) for key in _JUDGE_FIELDS}
        for name, facts in sorted(run.meta.judging.items())
    }
    if judging:
        document["judging"] = judging
    return document


def dumps(document: dict[str, Any]) -> str:
    """The canonical text of a baseline: sorted keys, two-space indent, trailing newline."""
    return json_text(document, indent=2, sort_keys=True) + "\n"


def write_baseline(run: Run, path: Path) -> Path:
    """Bless ``run`` into ``path`` (folders created; replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(bless(run)), encoding="utf-8")
    tmp.replace(path)
    return path


def parse_baseline(document: Any, source: str) -> Run:
    """Validate a baseline document and build the Run it stands for."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(document), key=lambda e: len(e.absolute_path))
    if errors:
        error = errors[0]
        if list(error.absolute_path) == ["azeval_baseline"]:
            message = f"unsupported baseline format {error.instance!r} (this azeval reads 1)"
        elif error.validator == "propertyNames":
            message = f"case key {error.instance!r} must be 'suite/case'"
        else:
            message = error.message
        raise ConfigError(source, place_of(tuple(error.absolute_path)), message)
    cases: list[_Blessed] = []
    target_infos = []
    for name, body in document["targets"].items():
        info = {k: v for k, v in body.get("target", {}).items() if k in _TARGET_FIELDS}
        target_infos.append({**info, "name": name})
        sole_model = _sole(body.get("reported_models", []))
        sole_print = _sole(body.get("system_fingerprints", []))
        cases += [
            (name, key, entry, sole_model, sole_print) for key, entry in body["cases"].items()
        ]
    results: Collection[CaseResult] = BlessedResults(cases)
    if len(results) <= store.HELD_RESULTS:
        results = list(results)
    meta = RunMeta(
        run_id=document.get("run_id") or Path(source).stem,
        git_commit=document.get("git_commit"),
        baseline=source,
        status="complete",
        judging=document.get("judging") or {},
        targets=tuple(TargetEntry.from_json(info) for info in target_infos),
    )
    return Run(path=Path(source), meta=meta, results=results)


# A blessed case: its target, key, entry, and the target's sole model and fingerprint.
_Blessed = tuple[str, str, dict[str, Any], str | None, str | None]


class BlessedResults(Collection[CaseResult]):
    """A large baseline's results, built from its document's case entries on each pass:
    the entries are held, not a CaseResult (with its turn and checks) per repeat."""

    def __init__(self, cases: list[_Blessed]) -> None:
        self._cases = cases
        self._count = sum(len(entry["verdicts"]) for _, _, entry, _, _ in cases)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[CaseResult]:
        for case in self._cases:
            yield from _case_results(*case)

    def __contains__(self, item: object) -> bool:
        return any(r == item for r in self)


def _stream_of(entry: dict[str, Any]) -> StreamStats | None:
    """A blessed streamed case's mean timings, as the turn a comparison reads them from."""
    if entry.get("ttft_ms") is None and entry.get("tokens_per_s") is None:
        return None
    return StreamStats(
        ttft_ms=entry.get("ttft_ms"),
        total_ms=entry.get("latency_ms") or 0.0,
        chunks=0,
        tokens_per_s=entry.get("tokens_per_s"),
    )


def _case_results(
    target: str, key: str, entry: dict[str, Any], model: str | None, fingerprint: str | None
) -> list[CaseResult]:
    suite, case = key.split("/", 1)
    usage = {
        "prompt_tokens": entry.get("prompt_tokens", 0),
        "completion_tokens": entry.get("completion_tokens", 0),
    }
    checks = tuple(
        CheckResult(
            check=c["check"],
            status=c["status"],
            message=c.get("message", ""),
            place=c.get("place", ""),
            score=c.get("score"),
        )
        for c in entry.get("checks", ())
    )
    scores = list(entry.get("scores") or [])
    error = entry.get("error")
    cost = entry.get("cost_usd")
    out = []
    for repeat, verdict in enumerate(entry["verdicts"]):
        # Every repeat carries the means, so compare's per-repeat averages come back exact;
        # only the first repeat's reply and checks were kept.
        turn = TurnResult(
            request={},
            response=None,
            reply=entry.get("reply") if repeat == 0 else None,
            finish_reason=None,
            usage=usage,
            latency_ms=entry.get("latency_ms"),
            checks=checks if repeat == 0 else (),
            cost_usd=float(cost) if isinstance(cost, (int, float)) else None,
            stream=_stream_of(entry),
        )
        out.append(
            CaseResult(
                suite=suite,
                case=case,
                target=target,
                repeat=repeat,
                verdict=verdict,
                turns=(turn,),
                error=ErrorInfo.from_json(error) if repeat == 0 and error else None,
                model=entry.get("model", model),
                system_fingerprint=entry.get("system_fingerprint", fingerprint),
                score=scores[repeat] if repeat < len(scores) else None,
            )
        )
    return out


def load_baseline(path: Path) -> Run:
    """Read a baseline file; a missing, unreadable or malformed one is a ConfigError (exit 2)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "baseline file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read the baseline: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}:{exc.lineno}", "", f"not valid JSON: {exc.msg} (column {exc.colno})"
        ) from None
    return parse_baseline(document, source)


def load_reference(path: Path) -> Run:
    """A run directory or a baseline file, whichever ``path`` is: what diffs and gates read."""
    if path.is_dir():
        return load_run(path)
    return load_baseline(path)
