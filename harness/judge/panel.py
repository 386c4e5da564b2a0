"""The judges of a run, resolved before anything is sent: who judges each check, and how.

``plan_judges`` walks every judged check of the loaded suites, finds its judge (the
check's ``judge:``, else its case's, else the suite defaults', else ``--judge``, else
``[settings] judge``), checks that the judge is a configured target and that its template
loads and renders; any problem is an InputError naming the file and place (exit 2).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.config import Config
from harness.errors import ConfigError, SuiteError
from harness.judge.arguments import JudgedArg
from harness.judge.judging import DEFAULT_MAX_TOKENS, JudgeOptions
from harness.judge.prompts import JudgeTemplate, TemplateProblem, load_template
from harness.judge.sampling import DEFAULT_MIN_AGREEMENT
from harness.judge.verdicts import JudgeKind
from harness.suite.model import Case, Expectation, Suite

NO_JUDGE = (
    "needs a judge: name a configured target as [settings] judge, judge: on the check, "
    "the case or the suite defaults, or --judge NAME"
)
# What a template is test-rendered with before the run: a reply shaped like a real one.
_SAMPLE_REPLY = "(the reply to be judged)"


@dataclass(frozen=True)
class JudgePlan:
    """The judges a run needs and how they are asked by default."""

    default: str | None
    names: tuple[str, ...]
    options: JudgeOptions
    templates_dir: Path | None

    def options_for(self, arg: JudgedArg) -> JudgeOptions:
        """The run's options, with what the check says for itself."""
        own: dict[str, Any] = {
            "samples": arg.samples,
            "temperature": arg.temperature,
            "seed": arg.seed,
            "max_tokens": arg.max_tokens,
            "min_agreement": arg.min_agreement,
        }
        return replace(self.options, **{k: v for k, v in own.items() if v is not None})

    def judge_of(self, arg: JudgedArg) -> str | None:
        return arg.judge or self.default

    def template(self, kind: JudgeKind, file: Path | None) -> JudgeTemplate:
        return _template(kind, file, self.templates_dir)


@functools.lru_cache(maxsize=256)
def _template(kind: JudgeKind, file: Path | None, folder: Path | None) -> JudgeTemplate:
    # One load per template per process: a thousand judged cases read it once.
    return load_template(kind, file=file, project_dir=folder)


def judge_options(settings: Mapping[str, Any]) -> JudgeOptions:
    """The judge's defaults from [settings]: temperature 0 and a fixed seed unless told."""
    return JudgeOptions(
        temperature=float(settings.get("judge_temperature", 0.0)),
        seed=int(settings.get("judge_seed", 0)),
        max_tokens=int(settings.get("judge_max_tokens", DEFAULT_MAX_TOKENS)),
        samples=int(settings.get("judge_samples", 1)),
        min_agreement=float(settings.get("judge_min_agreement", DEFAULT_MIN_AGREEMENT)),
    )


def judged_checks(suites: list[Suite]) -> Iterator[tuple[Case, Expectation, JudgedArg]]:
    """Every judged check of every case, with its case."""
    for suite in suites:
        if not any(isinstance(e.arg, JudgedArg) for e in suite.checks()):
            continue  # a 100,000-row for_each without judged checks is not built for this
        for case in suite.cases:
            for turn in case.turns:
                for expectation in turn.expectations:
                    if isinstance(expectation.arg, JudgedArg):
                        yield case, expectation, expectation.arg


def plan_judges(suites: list[Suite], config: Config, cli_judge: str | None = None) -> JudgePlan:
    """Resolve and check every judged check's judge and template; InputError on a problem."""
    source = config.path or "azeval.toml"
    known = set(config.targets) | {"local"}
    configured = ", ".join(sorted(config.targets)) or "none; 'local' is the embedded model"
    setting = config.settings.get("judge")
    if setting is not None and setting not in known:
        raise ConfigError(
            source, "settings.judge", f"'{setting}' is not a configured target ({configured})"
        )
    if cli_judge is not None and cli_judge not in known:
        raise ConfigError(
            "command line", "--judge", f"'{cli_judge}' is not a configured target ({configured})"
        )
    folder = config.settings.get("judge_templates")
    base = Path(config.path).parent if config.path else Path.cwd()
    templates_dir = (base / folder) if folder else None
    if templates_dir is not None and not templates_dir.is_dir():
        raise ConfigError(source, "settings.judge_templates", f"folder not found: {templates_dir}")
    plan = JudgePlan(
        default=cli_judge or setting,
        names=(),
        options=judge_options(config.settings),
        templates_dir=templates_dir,
    )
    names: set[str] = set()
    for case, expectation, arg in judged_checks(suites):
        name = plan.judge_of(arg)
        if name is None:
            raise SuiteError(case.path, expectation.place, f"{expectation.check} {NO_JUDGE}")
        if name not in known:
            raise SuiteError(
                case.path,
                expectation.place,
                f"judge '{name}' is not a configured target ({configured})",
            )
        names.add(name)
        try:
            template = plan.template(arg.kind, arg.template)
            conversation = [m.to_api() for m in case.turns[0].messages]
            template.render(arg.variables(_SAMPLE_REPLY, conversation, "json_schema"))
        except TemplateProblem as exc:
            raise SuiteError(case.path, expectation.place, f"judge template: {exc}") from None
    return replace(plan, names=tuple(sorted(names)))
