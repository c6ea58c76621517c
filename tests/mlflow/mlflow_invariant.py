"""The gate's invariant over a whole registry, read straight from MLflow's backend database, its artifact store and
the gate's log:

    every model version in a gated state has a log entry allowing exactly its current bytes at that tier or above,
    and its files are frozen (it carries the gate's digest tag for those bytes, which the artifact guard freezes).

A version's tier is the highest of the registration tier and the tiers its aliases, release tags and stage map to
(with the gate's own target table, so the lookup matches the plugin's). Read in one transaction, so the registry is
seen at one moment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tiergate.core.policy import Policy
from tiergate.integrations.mlflow.cache import ManifestCache
from tiergate.integrations.mlflow.routes import SET_ALIAS, SET_TAG, TRANSITION_STAGE, Call
from tiergate.integrations.mlflow.tags import DIGEST
from tiergate.integrations.mlflow.targets import tier_for

PROMPT_TAG = "mlflow.prompt.is_prompt"


@dataclass
class GatedState:
    """One version in a gated state, as the checker found it."""

    name: str
    version: str
    tier: str
    files: Path
    tags: dict[str, str]


@dataclass
class Invariant:
    """Checks the invariant against one server's backend store, artifact store and gate log."""

    backend_uri: str
    artifacts: Path
    log_path: Path
    policy: Policy
    cache: ManifestCache = field(default_factory=ManifestCache)
    _allowed: dict[str, int] = field(default_factory=dict)  # digest -> highest tier rank allowed in the log
    _engine: Any = None

    def engine(self) -> Any:
        if self._engine is None:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            self._engine = create_engine(self.backend_uri, poolclass=NullPool)
        return self._engine

    def gated_states(self, names: frozenset[str] | None = None) -> list[GatedState]:
        from sqlalchemy import text

        with self.engine().connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            versions = connection.execute(text(
                "SELECT name, version, source, storage_location, current_stage FROM model_versions "
                "WHERE current_stage <> 'Deleted_Internal'")).all()
            tags = connection.execute(text("SELECT name, version, key, value FROM model_version_tags")).all()
            aliases = connection.execute(text("SELECT name, alias, version FROM registered_model_aliases")).all()
            connection.rollback()
        by_version: dict[tuple[str, str], dict[str, str]] = {}
        for name, version, key, value in tags:
            by_version.setdefault((name, str(version)), {})[key] = value
        states = []
        for name, version, source, location, stage in versions:
            if names is not None and name not in names:
                continue
            version = str(version)  # noqa: PLW2901 - the database's number, as the tags spell it
            own = by_version.get((name, version), {})
            if own.get(PROMPT_TAG, "").lower() == "true" and not str(source).startswith(("models:/", "runs:/")):
                continue  # a prompt: no weights
            tiers = [self.policy.mlflow.registration]
            calls = [Call(SET_ALIAS, name, version, alias=alias) for n, alias, v in aliases
                     if n == name and str(v) == version]
            calls += [Call(SET_TAG, name, version, tag_key=k, tag_value=v) for k, v in own.items()]
            calls.append(Call(TRANSITION_STAGE, name, version, stage=stage))
            tiers += [t for call in calls if (t := tier_for(call, self.policy)) is not None]
            uri = str(location or source)
            assert uri.startswith("mlflow-artifacts:"), uri  # the tests register logged models of this server only
            files = self.artifacts / urlparse(uri).path.lstrip("/")
            states.append(GatedState(name, version, max(tiers, key=self.policy.rank), files, own))
        return states

    def _allowed_rank(self, digest: str) -> int:
        from tiergate.core.log.backends import open_store

        store = open_store(str(self.log_path))
        try:
            best = -1
            for entry in store.find(model_digest=digest):
                record = json.loads(entry.entry)
                decision = record.get("decision") or {}
                if record.get("kind") == "decision" and (decision.get("decision") == "allow" or
                                                          decision.get("mode") == "warn"):
                    try:
                        best = max(best, self.policy.rank(decision["requested_tier"]))
                    except Exception:
                        pass
        finally:
            store.close()
        return best

    def violations(self, names: frozenset[str] | None = None) -> list[str]:
        """Every version (of the registered models ``names``, or all) that breaks the invariant, one line each
        (empty: it holds)."""
        found = []
        for state in self.gated_states(names):
            where = f"{state.name}/{state.version} at tier '{state.tier}'"
            if not state.files.is_dir():
                found.append(f"{where}: its files {state.files} are gone")
                continue
            digest = self.cache.manifest(state.files)[0].digest
            if state.tags.get(DIGEST) != digest:
                found.append(f"{where}: serves {digest} but is frozen for {state.tags.get(DIGEST)!r} "
                             "(not frozen at its current bytes)")
            need = self.policy.rank(state.tier)
            if self._allowed.get(digest, -1) < need:
                self._allowed[digest] = self._allowed_rank(digest)
            if self._allowed[digest] < need:
                found.append(f"{where}: no log entry allows {digest} at '{state.tier}' or above")
        return found

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
