"""The response cache: one stored answer per (target, exact request body, repeat index).

An entry is keyed on the target's identity (kind, endpoint host, deployment, api-version,
model, model version), the request body as sent (canonical JSON) and the repeat index, so
``--repeat 5`` keeps five answers and a changed prompt, parameter or model version is a
miss. Only successful answers are stored. Each entry keeps the ``model`` and
``system_fingerprint`` the service reported, so a deployment that moved to another model
can retire the answers of the old one (``retire``) instead of serving them.

The file is SQLite in WAL mode with a busy timeout: several processes (pytest-xdist
workers, parallel CI jobs on a shared folder) read and write it at once. A file that is
not an azeval cache, or is damaged, is a CacheError naming it (exit 2); never a wrong answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from harness.errors import InputError
from harness.targets.base import CachedFrom, Completion, TargetInfo
from harness.writable import json_text

CacheMode = Literal["readwrite", "read", "write", "refresh", "off"]
CACHE_MODES: tuple[str, ...] = get_args(CacheMode)
DEFAULT_CACHE_PATH = Path(".azeval/cache.sqlite")

FORMAT = "azeval-response-cache"
VERSION = 1
# Several processes write at once; a writer waits this long for another's transaction.
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS azeval_cache_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    target_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    deployment TEXT NOT NULL,
    api_version TEXT NOT NULL,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    identity TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    response TEXT NOT NULL,
    response_sha256 TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    reported_model TEXT,
    system_fingerprint TEXT,
    run_id TEXT NOT NULL,
    stored_at REAL NOT NULL,
    retired_by TEXT
);
CREATE INDEX IF NOT EXISTS answers_identity ON answers (identity);
CREATE INDEX IF NOT EXISTS answers_stored_at ON answers (stored_at);
"""


class CacheError(InputError):
    """The cache file cannot be used: not an azeval cache, damaged, or from a newer azeval."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str, where: str) -> float:
    """Seconds in an age as a user writes it (``90s``, ``15m``, ``12h``, ``7d``, ``2w``)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(text))
    if found is None or float(found.group(1)) <= 0:
        raise InputError(
            f"{where}: {str(text)!r} is not an age above 0 (write 90s, 15m, 12h, 7d or 2w)"
        )
    return float(found.group(1)) * _AGE_UNITS[found.group(2)]


def canonical_json(value: Any) -> str:
    """One text per JSON value: sorted keys, no spaces, unicode kept (a lone surrogate, which
    UTF-8 and so SQLite cannot store, as its JSON escape)."""
    return json_text(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class TargetIdentity:
    """What makes two targets answer alike; the target's name in azeval.toml is not part."""

    kind: str
    host: str
    deployment: str
    api_version: str
    model: str
    model_version: str

    @classmethod
    def of(cls, info: TargetInfo) -> TargetIdentity:
        # The host and port only: a path or userinfo in an endpoint says nothing about the
        # model, and userinfo may be a credential.
        members = info.extra.get("pool")
        if isinstance(members, list):
            # A pool answers alike whichever member answered: all of them, in any order.
            pairs = sorted((_host(m.get("endpoint", "")), m.get("deployment", "")) for m in members)
            host, deployment = ",".join(h for h, _ in pairs), ",".join(d for _, d in pairs)
        else:
            host, deployment = _host(info.endpoint), info.deployment
        return cls(
            kind=info.kind,
            host=host,
            deployment=deployment,
            api_version=info.api_version,
            model=info.model,
            model_version=info.model_version,
        )

    def to_json(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "host": self.host,
            "deployment": self.deployment,
            "api_version": self.api_version,
            "model": self.model,
            "model_version": self.model_version,
        }

    @property
    def text(self) -> str:
        return canonical_json(self.to_json())


def _host(endpoint: str) -> str:
    """The host and port of an endpoint (none: "")."""
    url = urlsplit(endpoint) if endpoint else None
    if url is None or not url.hostname:
        return ""
    return url.hostname + (f":{url.port}" if url.port else "")


def entry_key(identity: TargetIdentity, body: Mapping[str, Any], repeat: int) -> str:
    """The entry's key: a hash of the identity, the exact body and the repeat index."""
    text = canonical_json({"target": identity.to_json(), "body": body, "repeat": repeat})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    """A stored answer: the response body as the service sent it, and where it came from."""

    key: str
    body: Mapping[str, Any]
    latency_ms: float
    reported_model: str | None
    system_fingerprint: str | None
    run_id: str
    stored_at: str

    def completion(self) -> Completion:
        """The answer as a run uses it, saying where it came from."""
        source = CachedFrom(self.run_id, self.stored_at, self.latency_ms)
        return Completion.from_body(self.body, latency_ms=self.latency_ms, cached=source)


@dataclass(frozen=True)
class TargetEntries:
    """``cache info``'s line for one target identity and the model it reported."""

    target_name: str
    identity: TargetIdentity
    reported_model: str | None
    entries: int
    retired: int
    oldest: str
    newest: str

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target_name,
            **self.identity.to_json(),
            "reported_model": self.reported_model,
            "entries": self.entries,
            "retired": self.retired,
            "oldest": self.oldest,
            "newest": self.newest,
        }


@dataclass(frozen=True)
class CacheInfo:
    """What ``azeval cache info`` shows."""

    path: Path
    entries: int
    size_bytes: int
    by_target: tuple[TargetEntries, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "entries": self.entries,
            "size_bytes": self.size_bytes,
            "by_target": [t.to_json() for t in self.by_target],
        }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


class ResponseCache:
    """An open cache file. ``notices`` says what opening it did (an old format rebuilt)."""

    def __init__(
        self,
        path: Path,
        connection: sqlite3.Connection,
        notices: tuple[str, ...],
        redact: Callable[[str], str],
    ) -> None:
        self.path = path
        self._db = connection
        self.notices = notices
        self._redact = redact

    @classmethod
    def open(cls, path: Path, *, redact: Callable[[str], str] | None = None) -> ResponseCache:
        """Open (or create) the cache at ``path``; ``redact`` scrubs every answer stored."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(path, f"cannot create its folder ({exc.strerror})") from None
        if path.is_dir():
            raise CacheError(path, "is a folder, not a cache file")
        try:
            db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise CacheError(path, f"cannot be opened ({exc})") from None
        try:
            notices = _prepare(db, path)
        except BaseException:
            db.close()
            raise
        return cls(path, db, notices, redact or (lambda text: text))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(
        self,
        identity: TargetIdentity,
        body: Mapping[str, Any],
        repeat: int,
        *,
        ttl_s: float | None = None,
    ) -> CachedAnswer | None:
        """The stored answer, or None: none stored, retired, or older than ``ttl_s``."""
        key = entry_key(identity, body, repeat)
        row = self._query(
            "SELECT response, response_sha256, latency_ms, reported_model, system_fingerprint,"
            " run_id, stored_at FROM answers WHERE key = ? AND retired_by IS NULL",
            (key,),
        ).fetchone()
        if row is None:
            return None
        response, digest, latency_ms, model, fingerprint, run_id, stored_at = row
        if ttl_s is not None and time.time() - stored_at > ttl_s:
            return None
        # A damaged page can hold other bytes than were written: never serve them.
        if hashlib.sha256(response.encode("utf-8")).hexdigest() != digest:
            raise CacheError(self.path, f"entry {key[:12]} is damaged; delete the file")
        return CachedAnswer(
            key=key,
            body=json.loads(response),
            latency_ms=latency_ms,
            reported_model=model,
            system_fingerprint=fingerprint,
            run_id=run_id,
            stored_at=_iso(stored_at),
        )

    def put(
        self,
        identity: TargetIdentity,
        body: Mapping[str, Any],
        repeat: int,
        completion: Completion,
        *,
        target_name: str,
        run_id: str,
        replace: bool = True,
    ) -> None:
        """Store a successful answer (``replace=False``: keep an entry already there)."""
        response = self._redact(canonical_json(dict(completion.body)))
        model = completion.body.get("model")
        fingerprint = completion.body.get("system_fingerprint")
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        self._query(
            f"{verb} INTO answers (key, target_name, kind, host, deployment, api_version,"
            " model, model_version, identity, repeat, response, response_sha256, latency_ms,"
            " reported_model, system_fingerprint, run_id, stored_at, retired_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                entry_key(identity, body, repeat),
                target_name,
                identity.kind,
                identity.host,
                identity.deployment,
                identity.api_version,
                identity.model,
                identity.model_version,
                identity.text,
                repeat,
                response,
                hashlib.sha256(response.encode("utf-8")).hexdigest(),
                float(completion.latency_ms),
                model if isinstance(model, str) else None,
                fingerprint if isinstance(fingerprint, str) else None,
                run_id,
                time.time(),
            ),
        )

    def reported_models(self, identity: TargetIdentity) -> set[str]:
        """The models the service reported in this target's entries still in use."""
        rows = self._query(
            "SELECT DISTINCT reported_model FROM answers"
            " WHERE identity = ? AND retired_by IS NULL AND reported_model IS NOT NULL",
            (identity.text,),
        )
        return {model for (model,) in rows}

    def retire(self, identity: TargetIdentity, live_model: str) -> int:
        """Stop serving this target's entries of any model but ``live_model``; how many."""
        cursor = self._query(
            "UPDATE answers SET retired_by = ? WHERE identity = ? AND retired_by IS NULL"
            " AND reported_model IS NOT NULL AND reported_model != ?",
            (live_model, identity.text, live_model),
        )
        return cursor.rowcount

    def info(self) -> CacheInfo:
        rows = self._query(
            "SELECT target_name, identity, reported_model, COUNT(*),"
            " SUM(retired_by IS NOT NULL), MIN(stored_at), MAX(stored_at) FROM answers"
            " GROUP BY identity, reported_model ORDER BY target_name, identity, reported_model"
        ).fetchall()
        by_target = tuple(
            TargetEntries(
                target_name=name,
                identity=TargetIdentity(**json.loads(identity)),
                reported_model=model,
                entries=count,
                retired=retired,
                oldest=_iso(oldest),
                newest=_iso(newest),
            )
            for name, identity, model, count, retired, oldest, newest in rows
        )
        size = sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
            if p.exists()
        )
        return CacheInfo(
            path=self.path,
            entries=sum(t.entries for t in by_target),
            size_bytes=size,
            by_target=by_target,
        )

    def clear(self) -> int:
        """Remove every entry; how many there were."""
        removed = self._query("DELETE FROM answers").rowcount
        self._vacuum()
        return removed

    def prune(self, older_than_s: float | None) -> int:
        """Remove retired entries, and those stored more than ``older_than_s`` ago."""
        cutoff = time.time() - older_than_s if older_than_s is not None else None
        removed = self._query(
            "DELETE FROM answers WHERE retired_by IS NOT NULL OR stored_at < ?",
            (cutoff if cutoff is not None else float("-inf"),),
        ).rowcount
        self._vacuum()
        return removed

    def _vacuum(self) -> None:
        # The space of removed entries goes back to the file system. Another process with
        # the file open keeps VACUUM from running; the entries are gone either way.
        with contextlib.suppress(sqlite3.OperationalError):
            self._db.execute("VACUUM")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.DatabaseError as exc:
            raise CacheError(self.path, _why(exc)) from None


def _why(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return f"is damaged or not an azeval cache ({text}); delete the file to start afresh"
    return f"cannot be used ({text})"


def _set_wal(db: sqlite3.Connection) -> None:
    """WAL mode, waiting out other processes: SQLite does not call its busy handler while
    it changes the journal mode, so two processes opening a new file at once can see
    'database is locked' at once instead of after the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _prepare(db: sqlite3.Connection, path: Path) -> tuple[str, ...]:
    """Check the file is this format (or empty, or an older one, rebuilt); set WAL mode."""
    try:
        # Read before writing anything: a file that is someone else's is left as it was.
        _check_format(db, path, rebuild=False)
        _set_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            # Again under the write lock: another process may have created or rebuilt it.
            notices = _check_format(db, path, rebuild=True)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(
                "INSERT OR IGNORE INTO azeval_cache_meta VALUES ('format', ?), ('version', ?)",
                (FORMAT, str(VERSION)),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        problems = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise CacheError(path, _why(exc)) from None
    if problems != [("ok",)]:
        detail = "; ".join(str(p[0]) for p in problems[:3])
        raise CacheError(path, f"is damaged ({detail}); delete the file to start afresh")
    return notices


def _check_format(db: sqlite3.Connection, path: Path, *, rebuild: bool) -> tuple[str, ...]:
    tables = {
        name
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    if not tables:
        return ()
    if "azeval_cache_meta" not in tables:
        held = ", ".join(sorted(tables)[:5])
        raise CacheError(path, f"is not an azeval response cache (it holds tables: {held})")
    meta = dict(db.execute("SELECT name, value FROM azeval_cache_meta").fetchall())
    if meta.get("format") != FORMAT:
        raise CacheError(path, f"is not an azeval response cache (format {meta.get('format')!r})")
    try:
        version = int(meta.get("version", "0"))
    except ValueError:
        version = 0
    if version > VERSION:
        raise CacheError(
            path,
            f"was written by a newer azeval (cache format {version}; this one reads {VERSION})",
        )
    if version == VERSION or not rebuild:
        return ()
    # An older format holds answers this azeval cannot trust to mean the same: start again.
    for table in tables:
        db.execute(f'DROP TABLE "{table}"')
    return (
        f"{path}: the cache was in an older format (version {version}); "
        f"its entries were dropped and it was rebuilt (version {VERSION})",
    )
