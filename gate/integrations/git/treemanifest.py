"""The manifest of a model that is not a local folder: a git tree or a Hub revision, known as (path, size, sha256).

:func:`gate.core.manifest.hash_model` decides what belongs to a model folder's identity (ignored paths, the policed
``.attestations/`` folder, no weights under any ignored path). A pushed git tree or a Hub revision must get the *same*
identity as the folder it was made from, or attestations signed over the folder would not match what was published;
this module applies the same rules to a list of already-known digests, so that no file has to be read again.
"""

from __future__ import annotations

from typing import Iterable

from gate.core.manifest import (ATTESTATION_DIR, DEFAULT_IGNORES, FileDigest, Manifest, check_relative_path,
                                police_ignored)
from gate.errors import ModelError


def is_ignored(path: str, ignores: Iterable[str] = DEFAULT_IGNORES) -> bool:
    """Whether ``path`` is left out of the model identity (as hash_model leaves it out of a folder's)."""
    return any(path == ig or path.startswith(ig + "/") for ig in ignores)


def is_attestation_path(path: str) -> bool:
    return path.startswith(ATTESTATION_DIR + "/")


def manifest_from_files(files: Iterable[FileDigest], where: str) -> Manifest:
    """The manifest of a tree whose per-file digests are known.

    Applies hash_model's rules: ignored paths are left out, but may not hold weights, and the attestation folder may
    hold attestation files only, since what is outside the identity could otherwise carry unhashed weights.
    ``where`` names the tree in error messages (e.g. ``org/model@1a2b3c`` or ``refs/heads/main``).
    """
    items = list(files)
    check_tree_paths((item.path for item in items), where)
    return Manifest(files=tuple(item for item in items if not is_ignored(item.path)))


def check_tree_paths(paths: Iterable[str], where: str) -> None:
    """Refuse paths that could name something outside the model, and what an ignored path may not hold.

    Every ignored path goes through :func:`gate.core.manifest.police_ignored`, the rule a folder is hashed with:
    attestation files only in ``.attestations/``, no weight file under ``.git``, ``.github``, ``.gitattributes`` or
    ``.gitignore``.
    """
    for path in paths:
        try:
            check_relative_path(path)
        except ValueError as exc:
            raise ModelError(f"{where}: {exc}") from None
        if is_ignored(path):
            try:
                police_ignored(path)
            except ModelError as exc:
                raise ModelError(f"{where}: {exc}") from None
