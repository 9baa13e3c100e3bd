"""The compiled ruleset a client serves, swapped atomically, and its on-disk copy.

Readers take no lock: they read one attribute, which holds an immutable ``Snapshot``. Only
writers (the background updater, bootstrap) serialise on a lock, and they compile before they
take it, so a slow compile never delays a swap that is already decided.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from flagsite_sdk.engine import CompiledRuleset, compile_ruleset
from flagsite_sdk.engine.serve import Resolver

log = logging.getLogger("flagsite_sdk")


class Source(StrEnum):
    """Where a snapshot came from. Only the server is authoritative."""

    SERVER = "server"
    CACHE = "cache"
    BOOTSTRAP = "bootstrap"


@dataclass(frozen=True, slots=True)
class Snapshot:
    ruleset: CompiledRuleset
    source: Source
    # Boolean flags' resolvers by key: the client's is_enabled needs the variant for exposure
    # events, which the engine's own fast path does not return.
    booleans: Mapping[str, Resolver]

    @property
    def version(self) -> int:
        return self.ruleset.version


Listener = Callable[[Snapshot], None]


class RulesetStore:
    def __init__(self, cache_path: str | os.PathLike[str] | None = None) -> None:
        self.current: Snapshot | None = None
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.rejected = 0
        self._write_lock = threading.Lock()
        self._from_server = threading.Event()
        self._listeners: list[Listener] = []

    def reset_after_fork(self) -> None:
        """New locks in a forked child: a parent thread may have held one at the fork, and
        it will never release it here."""
        self._write_lock = threading.Lock()
        had_server = self._from_server.is_set()
        self._from_server = threading.Event()
        if had_server:
            self._from_server.set()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @property
    def has_server_ruleset(self) -> bool:
        return self._from_server.is_set()

    def wait_for_server(self, timeout: float) -> bool:
        return self._from_server.wait(timeout)

    def apply(self, document: Mapping[str, Any], source: Source) -> bool:
        """Installs ``document`` if it is newer than what is served; True when it was swapped.

        A document from the server always replaces one from the cache or a bootstrap, whatever
        their versions, because those may describe another environment or an old database.
        An invalid document is logged and counted, and the last good ruleset stays.
        """
        current = self.current
        version = _version_of(document)
        if current is not None and not _supersedes(version, source, current):
            if source is Source.SERVER:
                self._from_server.set()
            return False
        try:
            # Lenient: a flag this SDK cannot compile (an operator from a newer server, say)
            # answers PARSE_ERROR on its own instead of holding back the whole version, and
            # with it a kill switch on another flag (docs/ruleset.md, forward compatibility).
            compiled = compile_ruleset(dict(document), lenient=True)
        except Exception:
            self.rejected += 1
            log.exception(
                "flagsite: rejected a ruleset (version %s); keeping the last one", version
            )
            return False
        if compiled.problems:
            log.warning(
                "flagsite: ruleset version %s: %d flag(s) could not be compiled and answer "
                "PARSE_ERROR with your defaults (is this SDK older than the server?); every "
                "other flag applies. %s",
                version,
                len(compiled.broken_flags),
                "; ".join(f"{e.path}: {e.message}" for e in compiled.problems[:5]),
            )
        snapshot = Snapshot(compiled, source, _boolean_resolvers(compiled))
        with self._write_lock:
            current = self.current
            if current is not None and not _supersedes(version, source, current):
                return False
            self.current = snapshot
        if source is Source.SERVER:
            self._from_server.set()
            self._write_cache(document)
        for listener in self._listeners:
            try:
                listener(snapshot)
            except Exception:
                log.exception("flagsite: a ruleset listener failed")
        return True

    def load_cache(self) -> bool:
        """Serves the on-disk copy, if there is a readable one; for cold starts in an outage."""
        if self.cache_path is None:
            return False
        try:
            document = read_document(self.cache_path)
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            log.warning("flagsite: unreadable ruleset cache %s", self.cache_path, exc_info=True)
            return False
        return self.apply(document, Source.CACHE)

    def _write_cache(self, document: Mapping[str, Any]) -> None:
        if self.cache_path is None:
            return
        try:
            write_document_atomically(self.cache_path, document)
        except OSError:
            log.warning(
                "flagsite: could not write ruleset cache %s", self.cache_path, exc_info=True
            )


def _boolean_resolvers(ruleset: CompiledRuleset) -> dict[str, Resolver]:
    resolvers: dict[str, Resolver] = {}
    for key in ruleset.flag_keys():
        flag = ruleset.flag(key)
        if flag is not None and flag.value_type == "boolean":
            resolvers[key] = flag.resolve
    return resolvers


def _version_of(document: Mapping[str, Any]) -> int:
    version = document.get("version")
    return version if isinstance(version, int) else -1


def _supersedes(version: int, source: Source, current: Snapshot) -> bool:
    if source is Source.SERVER and current.source is not Source.SERVER:
        return True
    if source is not Source.SERVER and current.source is Source.SERVER:
        return False
    return version > current.version


def read_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        document = json.load(fh)
    if not isinstance(document, dict):
        raise ValueError(f"{path}: a ruleset document is a JSON object")
    return document


def write_document_atomically(path: Path, document: Mapping[str, Any]) -> None:
    """Writes via a temporary file and a rename, so a crash never leaves a torn copy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
