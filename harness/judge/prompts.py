"""The judge's prompts: Jinja2 templates shipped in the package, overridable by the user.

A template defines ``{% block system %}`` and ``{% block user %}`` (a template without
blocks is one user message). Search order: the folder of a check's own ``template:`` file,
then the project's template folder (``[settings] judge_templates``), then the package's
``harness/judge/templates``. The package's templates are also reachable as
``azeval/<name>``, so an override can ``{% extends "azeval/rubric.j2" %}`` and change one
block. A template's hash covers its source and every template it includes or extends, so a
changed judge prompt shows in the run record like a changed model.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment

from harness.judge.verdicts import SHAPES, JudgeKind
from harness.suite.render import why_template_failed

_PACKAGE = "harness.judge"
PACKAGE_PREFIX = "azeval/"


class TemplateProblem(ValueError):
    """A judge template that cannot be found, parsed or rendered; the message says why."""


@dataclass(frozen=True)
class JudgeTemplate:
    """A loaded judge template, where it came from and the hash of what it renders from."""

    name: str
    sha256: str
    template: jinja2.Template = field(repr=False, compare=False)

    def render(self, variables: Mapping[str, Any]) -> tuple[dict[str, str], ...]:
        """The chat messages of the judge's request; TemplateProblem when it fails."""
        try:
            context = self.template.new_context(dict(variables))
            # Rendering the whole template registers the blocks of the templates it
            # extends in the context; the first of each name is the most derived one.
            whole = "".join(self.template.root_render_func(context)).strip()
            blocks = context.blocks
            if "user" not in blocks:
                return ({"role": "user", "content": whole},)
            messages = []
            for role in ("system", "user"):
                if role in blocks:
                    text = "".join(blocks[role][0](context)).strip()
                    if text:
                        messages.append({"role": role, "content": text})
            return tuple(messages)
        except Exception as exc:
            raise TemplateProblem(f"{self.name}: {why_template_failed(exc)}") from None


def template_name(kind: JudgeKind) -> str:
    """The package template a kind of judged check uses unless told otherwise."""
    if kind not in SHAPES:
        raise ValueError(f"no judge template for {kind!r}")
    return f"{kind}.j2"


def load_template(
    kind: JudgeKind, *, file: Path | None = None, project_dir: Path | None = None
) -> JudgeTemplate:
    """The template for ``kind``: the check's ``file`` if given, else the project's
    override of the same name, else the package's. TemplateProblem when it cannot load."""
    folders: tuple[str, ...] = ()
    if file is not None:
        if not file.is_file():
            raise TemplateProblem(f"judge template not found: {file}")
        folders += (str(file.resolve().parent),)
        name = file.name
    else:
        name = template_name(kind)
    if project_dir is not None:
        folders += (str(project_dir.resolve()),)
    env = _environment(folders)
    try:
        template = env.get_template(name)
        digest = _digest(env, name)
    except jinja2.TemplateNotFound as exc:
        raise TemplateProblem(f"judge template not found: {exc.name}") from None
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or exc.name or name
        raise TemplateProblem(f"{where}:{exc.lineno}: {exc.message}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateProblem(f"judge template {name} cannot be read: {exc}") from None
    shown = str(file) if file is not None else _where(env, name)
    return JudgeTemplate(shown, digest, template)


@functools.lru_cache(maxsize=64)
def _environment(folders: tuple[str, ...]) -> SandboxedEnvironment:
    package = jinja2.PackageLoader(_PACKAGE, "templates")
    # Sandboxed, as suite templates are: these files are shared between people.
    # StrictUndefined: a misspelt variable is an error, not an empty string sent to the judge.
    return SandboxedEnvironment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader(list(folders)),
                jinja2.PrefixLoader({PACKAGE_PREFIX.rstrip("/"): package}),
                package,
            ]
        ),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        # Templates do not change during a run: no stat of every include on every render.
        auto_reload=False,
    )


def _where(env: jinja2.Environment, name: str) -> str:
    """The template's name as a user sees it: the package's, or the project file's path."""
    _, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
    if filename and _PACKAGE.replace(".", "/") not in Path(filename).as_posix():
        return filename
    return PACKAGE_PREFIX + name


def _digest(env: jinja2.Environment, name: str) -> str:
    """sha256 over the template's source and, recursively, every template it references."""
    hasher = hashlib.sha256()
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.add(current)
        source, _, _ = env.loader.get_source(env, current)  # type: ignore[union-attr]
        hasher.update(current.encode() + b"\0" + source.encode() + b"\0")
        referenced = jinja2.meta.find_referenced_templates(env.parse(source))
        pending.extend(sorted(r for r in referenced if r is not None))
    return hasher.hexdigest()
