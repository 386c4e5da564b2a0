"""YAML reading that remembers where each value was written, for error messages.

Suites come from strangers too, so a file is walked before it is built: a key written
twice in one mapping (a second ``cases:`` or ``expect:`` would silently replace the
first) and aliases that expand far beyond what is written (a 400-byte "billion laughs"
file) are refused at their line, in time and memory bounded by the file's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import SuiteError

Lines = dict[tuple[str | int, ...], int]
# libyaml's parser when PyYAML was built with it (about 10× faster on large suites).
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Once the values reached through aliases outnumber the nodes written by this factor (past
# a floor no file comes near without aliases), the file is refused.
MAX_ALIAS_EXPANSION = 10
_EXPANSION_FLOOR = 10_000
_MERGE = "tag:yaml.org,2002:merge"


class YamlProblem(ValueError):
    """YAML that azeval refuses: where (``line 3, column 5``) and why."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


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
    try:
        data, lines = parse_yaml(text)
    except YamlProblem as exc:
        raise SuiteError(str(path), exc.where, exc.message) from None
    return data, lines, raw


def parse_yaml(text: str) -> tuple[Any, Lines]:
    """Plain values and each one's line; YamlProblem for invalid YAML, a duplicate key,
    nesting too deep, or an alias bomb. For suites and the YAML files they name."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: Lines = {}
        if node is not None:
            _Walk(lines).node(node, ())
        # Built only once the walk found the tree sound.
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YamlProblem(where, f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem("", f"not valid YAML: {exc}") from None
    except RecursionError:
        raise YamlProblem("", "not valid YAML: nested too deep") from None
    finally:
        loader.dispose()
    return data, lines


class _Walk:
    """One pass over the node tree: each value path's line, duplicate keys, alias growth."""

    def __init__(self, lines: Lines) -> None:
        self.lines = lines
        self.written: set[int] = set()
        self.visits = 0

    def node(self, node: yaml.Node, prefix: tuple[str | int, ...]) -> None:
        self.visits += 1
        self.written.add(id(node))
        if self.visits > max(_EXPANSION_FLOOR, MAX_ALIAS_EXPANSION * len(self.written)):
            raise YamlProblem(
                _where(node),
                f"aliases (*name) expand to more than {MAX_ALIAS_EXPANSION} times the "
                "values written: refused as an alias bomb",
            )
        self.lines[prefix] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Node] = {}
            for key_node, value_node in node.value:
                key = (key_node.tag, key_node.value)
                if key_node.tag != _MERGE and isinstance(key_node, yaml.ScalarNode):
                    if key in first:
                        line = first[key].start_mark.line + 1
                        raise YamlProblem(
                            _where(key_node),
                            f"key '{key_node.value}' is written twice in one mapping (first "
                            f"at line {line}); the second would silently replace the first",
                        )
                    first[key] = key_node
                self.node(value_node, (*prefix, str(key_node.value)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.node(item, (*prefix, index))


def _where(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


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
