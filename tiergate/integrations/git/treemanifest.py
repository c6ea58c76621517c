"""The manifest of a model that is not a local folder: a git tree or a Hub revision, known as (path, size, sha256).

:func:`tiergate.core.manifest.hash_model` decides what belongs to a model folder's identity and what excluded paths
may hold (:func:`tiergate.core.manifest.check_excluded`). A pushed git tree or a Hub revision must get the *same*
identity as the folder it was made from, or attestations signed over the folder would not match what was published;
this module applies the same rules to a list of already-known digests, and the callers judge excluded files by their
bytes with the same core function (:func:`check_excluded_content`).
"""

from __future__ import annotations

from collections.abc import Iterable

from tiergate.core.formats import ByteSource
from tiergate.core.manifest import (ATTESTATION_DIR, DEFAULT_IGNORES, FileDigest, Manifest, check_excluded,
                                check_relative_path, excluded_rule)
from tiergate.errors import ModelError


def is_ignored(path: str, ignores: Iterable[str] = DEFAULT_IGNORES) -> bool:
    """Whether ``path`` is left out of the model identity (as hash_model leaves it out of a folder's)."""
    return any(path == ig or path.startswith(ig + "/") for ig in ignores)


def is_attestation_path(path: str) -> bool:
    return path.startswith(ATTESTATION_DIR + "/")


def manifest_from_files(files: Iterable[FileDigest], where: str) -> Manifest:
    """The manifest of a tree whose per-file digests (and content classes) are known.

    Applies hash_model's path rules; excluded paths are left out. Their content must have been judged by the caller
    with :func:`check_excluded_content`. ``where`` names the tree in error messages (e.g. ``org/model@1a2b3c``).
    """
    items = list(files)
    check_tree_paths((item.path for item in items), where)
    return Manifest(files=tuple(item for item in items if not is_ignored(item.path)))


def check_tree_paths(paths: Iterable[str], where: str) -> None:
    """Refuse paths that could name something outside the model, and excluded names refused whatever they hold
    (``.git``, a plain file named ``.attestations`` or ``.github``, a folder named ``.gitattributes``)."""
    for path in paths:
        try:
            check_relative_path(path)
        except ValueError as exc:
            raise ModelError(f"{where}: {exc}") from None
        if is_ignored(path):
            rule = excluded_rule(path)
            if rule.startswith("refuse:"):
                raise ModelError(f"{where}: {rule[len('refuse:'):]}")


def check_excluded_content(path: str, source: ByteSource, where: str) -> None:
    """:func:`tiergate.core.manifest.check_excluded` for a file of a tree: ModelError naming the tree if refused."""
    try:
        check_excluded(path, source)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None
