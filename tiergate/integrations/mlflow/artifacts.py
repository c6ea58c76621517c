"""Freezing the files of gated versions: no artifact write or delete may change what a gated version serves.

The gate decides on a version's weights when it is registered, aliased, tagged or staged, and writes the digest it
decided on to the version (``tiergate.digest``). Without this module anyone allowed to log artifacts could then
overwrite those files through MLflow's artifact proxy (``MlflowClient.log_model_artifact`` to the same logged model,
``log_artifact`` to the run): ``models:/name@production`` would serve unevaluated bytes while the version's tags still
say allow. So every artifact write the server carries out (upload, multipart upload, delete, presigned upload URL,
the UI's upload) is checked first, and refused with a 403 if its target lies inside the files of a version that
carries the gate's digest, or, for a delete, if a gated version's files lie inside it.

One exception: attestation files may still be added to the ``.attestations/`` folder of a gated version. That folder
is not part of the model's identity (the digest does not cover it), every decision verifies again whatever is in it,
and evaluators attach evidence to a registered version there before it is promoted. Such an upload must be a plain
upload (not multipart, not a presigned URL: the server must see the bytes), at most :data:`EVIDENCE_LIMIT` bytes,
and parse as attestations (DSSE envelopes, one per line in ``.jsonl``, or OMS bundles); otherwise one junk file there
would make every later decision on the version fail, and it could not be deleted.

Every artifact write through the server holds the registry lock shared while it runs (:mod:`hook`), so none overlaps
a gated call, which holds it exclusively from before it hashes the files until its decision tags are written.

Finding the versions a write touches (correctness first, uploads are not a hot path, nothing is cached): MLflow keeps
a run's files under ``<experiment location>/<run id>/artifacts`` and a logged model's under
``<experiment location>/models/<model id>/artifacts``, and (since 3.x) a proxied version source must lie inside the run
or logged model it names. So the run and model ids in the target path select the candidates (one registry query:
gated versions whose storage location, source or run mentions one of them), and each candidate's files are then
compared with the target exactly. A target with no id in its path (an experiment folder being deleted, say) is
compared with every gated version.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable, Mapping

from tiergate.core.manifest import ATTESTATION_DIR, ATTESTATION_SUFFIXES, attestation_file_problem, parse_digest
from tiergate.errors import GateError, InputError
from tiergate.integrations.mlflow.gatekeeper import Deny
from tiergate.integrations.mlflow.holder import GateHolder
from tiergate.integrations.mlflow.internals import artifacts as mlflow_artifacts
from tiergate.integrations.mlflow.internals.artifacts import GatedVersion, Place

log = logging.getLogger("tiergate.integrations.mlflow")

#: The ``rpc`` recorded in the gate's log for a refused artifact write.
RPC = "ArtifactWrite"
#: The largest attestation file accepted into a gated version's ``.attestations/`` (a signed evaluation statement
#: is a few KiB; the core reads at most 16 MiB per file, and a larger one would fail every later decision).
EVIDENCE_LIMIT = 1024 * 1024
#: The calls whose bytes the server sees, so that evidence uploaded with them can be checked before it lands.
EVIDENCE_CALLS = frozenset({mlflow_artifacts.UPLOAD_ARTIFACT, mlflow_artifacts.UI_UPLOAD})

_VERBS = {
    mlflow_artifacts.UPLOAD_ARTIFACT: "uploading artifact",
    mlflow_artifacts.DELETE_ARTIFACT: "deleting artifacts at",
    "CreateMultipartUpload": "starting a multipart upload of artifact",
    "CompleteMultipartUpload": "completing a multipart upload of artifact",
    "AbortMultipartUpload": "aborting a multipart upload of artifact",
    mlflow_artifacts.PRESIGNED_UPLOAD: "creating a presigned upload URL for artifact",
    mlflow_artifacts.UI_UPLOAD: "uploading artifact",
}


@dataclass(frozen=True)
class ArtifactWrite:
    """One artifact write as the gate sees it: which call, the path as the request named it, where it lands."""

    call: str
    path: str
    target: Place
    deletes: bool = False  # removes everything under target

    def describe(self) -> str:
        """``uploading artifact '1/models/m-…/artifacts/model.safetensors'``: for messages and the log."""
        return f"{_VERBS.get(self.call, 'writing artifact')} '{self.path}'"

    def context(self) -> dict[str, Any]:
        return {"host": "mlflow", "rpc": RPC, "call": self.call, "path": self.path}


def _within(inner: Place, outer: Place) -> bool:
    return len(inner) >= len(outer) and inner[:len(outer)] == outer


def _attestation_file(rest: Place) -> bool:
    """A file in the version's ``.attestations/`` folder that is an attestation by name (what the manifest accepts
    there): the one thing that may still be added to a frozen version."""
    return len(rest) >= 2 and rest[0] == ATTESTATION_DIR and rest[-1].endswith(ATTESTATION_SUFFIXES)


def frozen_by(write: ArtifactWrite, versions: Iterable[tuple[GatedVersion, Place]]) -> list[GatedVersion]:
    """The gated versions (with where their files are) whose files ``write`` would change."""
    hits = []
    for version, files in versions:
        if _within(write.target, files):
            if write.deletes or not _attestation_file(write.target[len(files):]):
                hits.append(version)
        elif write.deletes and _within(files, write.target):
            hits.append(version)
    return hits


def evidence_for(write: ArtifactWrite, versions: Iterable[tuple[GatedVersion, Place]]) -> list[GatedVersion]:
    """The gated versions into whose ``.attestations/`` folder ``write`` adds an attestation file."""
    return [version for version, files in versions if not write.deletes and _within(write.target, files)
            and _attestation_file(write.target[len(files):])]


@dataclass(frozen=True)
class Evidence:
    """An attestation file uploaded into gated versions' ``.attestations/``: allowed once its bytes are checked
    (:func:`check_evidence`)."""

    write: ArtifactWrite
    versions: tuple[GatedVersion, ...]


def check_evidence(evidence: Evidence, data: bytes) -> Deny | None:
    """Deny unless ``data`` (the whole upload) is a small, well-formed attestation file."""
    version = evidence.versions[0]
    where = (f"tiergate refused {evidence.write.describe()}: only attestation files may be added to the "
             f"'{ATTESTATION_DIR}/' folder of model version {version.name}/{version.version}, whose files are frozen")
    if len(data) > EVIDENCE_LIMIT:
        return Deny(f"{where}; this one is larger than {EVIDENCE_LIMIT} bytes")
    problem = attestation_file_problem(data, evidence.write.path.endswith(".jsonl"))
    if problem == "empty":
        return Deny(f"{where}; this one is empty")
    if problem:  # the identity rule's own check: what it would refuse at the next decision is refused now
        return Deny(f"{where}; this one is not a DSSE envelope or OMS bundle: {problem}")
    return None


class ArtifactGuard:
    """Refuses artifact writes that would change the files of a gated version."""

    def __init__(self, holder: GateHolder) -> None:
        self._holder = holder

    def before(self, write: ArtifactWrite, requester: Mapping[str, str]) -> Deny | Evidence | None:
        """Deny if ``write`` touches a gated version's files; :class:`Evidence` if it adds an attestation file to
        them (the caller checks its bytes). Exceptions mean: refuse (fail closed)."""
        candidates = self._candidates(write)
        hits = frozen_by(write, candidates)
        evidence = evidence_for(write, candidates)
        if evidence and write.call not in EVIDENCE_CALLS:
            hits = hits or evidence  # a multipart or presigned upload: the server never sees its bytes
        if not hits:
            return Evidence(write, tuple(evidence)) if evidence else None
        first = hits[0]
        others = f" (and {len(hits) - 1} other gated version(s) with files there)" if len(hits) > 1 else ""
        message = (f"tiergate refused {write.describe()}: the artifacts of model version {first.name}/"
                   f"{first.version} are frozen once published through the release gate{others}; log a new model and "
                   f"register a new version (the gate decided on {first.digest})")
        self._record(write, hits, requester)
        return Deny(message)

    @staticmethod
    def _candidates(write: ArtifactWrite) -> list[tuple[GatedVersion, Place]]:
        ids = mlflow_artifacts.entity_ids(write.target)
        located = []
        for version in mlflow_artifacts.gated_versions(ids or None):
            if not ids and not write.deletes and version.uri.startswith("runs:/"):
                continue  # a run's files lie under its id, which the target does not contain
            files = mlflow_artifacts.version_place(version)
            if files is not None:
                located.append((version, files))
        return located

    def _record(self, write: ArtifactWrite, hits: list[GatedVersion], requester: Mapping[str, str]) -> None:
        """A refused write goes to the gate's log, when one is configured, recorded as a withdrawal is: a decision at
        the lowest tier (which has nothing to refuse) about the frozen version's digest, the event in its context.
        Failing to record does not undo the refusal."""
        try:
            gate = self._holder.current()
            if not (gate.config.log or gate.config.server):
                return
            for version in hits:
                context = {**write.context(), "model": version.name, "version": version.version, **requester,
                           "event": "write refused"}
                gate.decide(gate.policy.tier_names[0], parse_digest(version.digest), (), context)
        except Exception:
            log.exception("could not record the refused %s in the gate's log", write.describe())


# --- reading the request ------------------------------------------------------------------------------------------


def _proxied(call: str, raw: str, name: str | None = None) -> ArtifactWrite:
    path = mlflow_artifacts.proxied_path(raw)
    if name is not None:
        path = posixpath.join(path, name)
    if not path:
        raise InputError(f"{call} request names no artifact path")
    return ArtifactWrite(call, path, mlflow_artifacts.proxied_place(path),
                         deletes=call == mlflow_artifacts.DELETE_ARTIFACT)


def flask_write(call: str, flask_request: Any) -> ArtifactWrite:
    """The write a Flask request for ``call`` (from :func:`mlflow_artifacts.artifact_write_routes`) would carry out."""
    if call == mlflow_artifacts.PRESIGNED_UPLOAD:
        return ArtifactWrite(call, *mlflow_artifacts.presigned_upload_place(flask_request))
    if call == mlflow_artifacts.UI_UPLOAD:
        return ArtifactWrite(call, *mlflow_artifacts.ui_upload_place(flask_request))
    raw = str((flask_request.view_args or {}).get("artifact_path") or "")
    if call in mlflow_artifacts.MULTIPART_CALLS:
        return _proxied(call, raw, mlflow_artifacts.multipart_file(call, flask_request))
    return _proxied(call, raw)


def asgi_write(call: str, raw_path: str) -> ArtifactWrite:
    """The write a request to MLflow's native FastAPI upload route would carry out."""
    if call != mlflow_artifacts.UPLOAD_ARTIFACT:
        raise GateError(f"tiergate does not know the artifact call {call}")
    return _proxied(call, raw_path)


def unknown_route(method: str, path: str) -> str:
    return (f"tiergate refused {method} {path}: this MLflow serves an artifact write tiergate does not "
            "know, so it cannot tell whether the write would change a gated version's files; it is refused until "
            "tiergate supports this MLflow version")
