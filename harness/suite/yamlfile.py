"""YAML reading that remembers where each value was written, for error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import SuiteError

Lines = dict[tuple[str | int, ...], int]
# libyaml's parser when PyYAML was built with it (about 10× faster on large suites).
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> tuple[Any, Lines, bytes]:
    """The document (plain Python values), a map from value path to its 1-based line, and
    the file's bytes (for its content hash)."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SuiteError(str(path), "", "file not found") from None
    except OSError as exc:
        raise SuiteError(str(path), "", f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise SuiteError(str(path), "", f"not UTF-8 text ({exc.reason})") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SuiteError(str(path), where, f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise SuiteError(str(path), "", f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: Lines = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines, raw


def _walk(node: yaml.Node, prefix: tuple[str | int, ...], lines: Lines) -> None:
    lines[prefix] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            _walk(value_node, (*prefix, str(key_node.value)), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*prefix, index), lines)


def place_of(parts: tuple[str | int, ...] | list[str | int]) -> str:
    """('cases', 3, 'expect') → 'cases[3].expect'."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def line_of(lines: Lines, parts: tuple[str | int, ...]) -> int | None:
    """The line of the nearest written ancestor of a path."""
    while parts:
        if parts in lines:
            return lines[parts]
        parts = parts[:-1]
    return lines.get(())
