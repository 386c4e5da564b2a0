"""A suite's project: the folder the files a suite names (schemas, data, checks) come from.

Suites come from pull requests and colleagues. A file one names is read, and its content
may be sent to the endpoint or quoted in an error, so it must be a regular file (not
/dev/zero, a FIFO, /proc), no larger than ``MAX_FILE_BYTES``, inside the suite's project
after symlinks are resolved: the folder holding azeval.toml (or a pyproject.toml with
[tool.azeval]), else the suite's own folder. ``[settings] suite_files_from`` names more
folders (relative to the config file) a project chooses to trust.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from harness.errors import InputError

# Far above any schema, data set or check module; far below what hurts to hold in memory.
MAX_FILE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Project:
    """Where a suite's files may come from."""

    root: Path
    also: tuple[Path, ...] = ()

    @classmethod
    def of(cls, suite_dir: Path) -> Project:
        """The project of a suite in ``suite_dir``: its config's folder, else that folder."""
        from harness.config import find_config, load_config

        try:
            config = find_config(suite_dir.resolve())
        except InputError:
            config = None
        if config is None:
            return cls(suite_dir.resolve())
        try:
            settings = load_config(config).settings
        except InputError:  # the run reports a broken config itself, at its place
            settings = {}
        root = config.parent.resolve()
        also = tuple((root / p).resolve() for p in settings.get("suite_files_from", ()))
        return cls(root, also)

    def contains(self, path: Path) -> bool:
        return any(path.is_relative_to(folder) for folder in (self.root, *self.also))


def suite_file(written: str, suite_dir: Path, project: Project, what: str) -> Path:
    """The resolved path of a file a suite names; ValueError saying why it may not be read."""
    path = (suite_dir / written).resolve()
    if not project.contains(path):
        raise ValueError(
            f"{what} {written} is outside the suite's project ({project.root}); "
            "name folders to trust in [settings] suite_files_from"
        )
    try:
        info = path.stat()
    except OSError:
        raise ValueError(f"{what} not found: {written}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{what} {written} cannot be read (not a regular file)")
    if info.st_size > MAX_FILE_BYTES:
        raise ValueError(f"{what} {written} is larger than {MAX_FILE_BYTES >> 20} MB")
    return path


def read_suite_file(written: str, suite_dir: Path, project: Project, what: str) -> bytes:
    """The bytes of a file a suite names, checked (see suite_file) and read bounded."""
    return read_checked(suite_file(written, suite_dir, project, what), written, what)


def read_checked(path: Path, written: str, what: str) -> bytes:
    """The bytes of a checked file, read within the size limit whatever stat said (opened
    without blocking and checked again: the path may have changed meanwhile)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ValueError(f"{what} {written} cannot be read (not a regular file)")
            data = _read_bounded(handle)
    except OSError as exc:
        raise ValueError(f"{what} {written} cannot be read ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{what} {written} is larger than {MAX_FILE_BYTES >> 20} MB")
    return data


def _read_bounded(handle: BinaryIO) -> bytes:
    # In pieces: read(n) sets n bytes aside at once, whatever the file holds.
    parts, size = [], 0
    while size <= MAX_FILE_BYTES:
        part = handle.read(1 << 16)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)
