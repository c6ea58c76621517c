"""Collecting attestation files: explicit paths, folders of them, and the ``.attestations/`` folder beside weights."""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Iterable

from tiergate.core.dsse import MAX_ENVELOPE_BYTES
from tiergate.core.manifest import ATTESTATION_DIR, ATTESTATION_SUFFIXES, attestation_documents
from tiergate.core.verify import AttestationInput
from tiergate.core.files import read_limited
from tiergate.errors import InputError

#: A folder of attestations holding more files than this is refused rather than read without end.
MAX_ATTESTATION_FILES = 1000


def read_attestation(path: str | os.PathLike[str]) -> list[AttestationInput]:
    """One attestation file; a ``.jsonl`` file yields one input per non-empty line (in-toto bundle layout).

    Raises InputError when the file cannot be read or is too large.
    """
    p = Path(path)
    return attestation_inputs(str(p), read_limited(p, "attestation", MAX_ENVELOPE_BYTES, error=InputError))


def attestation_inputs(source: str, data: bytes) -> list[AttestationInput]:
    """The inputs of one attestation file named ``source`` (a path or URI ending in the file's name): the file, or
    for a ``.jsonl`` file one input per non-empty line, named ``source:N``."""
    if not source.endswith(".jsonl"):
        return [AttestationInput(source, data)]
    return [AttestationInput(f"{source}:{n}", line) for n, line in enumerate(attestation_documents(data, True), 1)]


def _judged_alone(path: Path) -> list[AttestationInput]:
    """:func:`read_attestation`, except that a file that cannot be read (too large, unreadable) becomes an input
    carrying that problem: it is rejected with its reason while the files beside it are still judged."""
    try:
        return read_attestation(path)
    except InputError as exc:
        return [AttestationInput(str(path), b"", problem=str(exc))]


def read_attestations(paths: Iterable[str | os.PathLike[str]]) -> list[AttestationInput]:
    """Read files and folders (a folder: every attestation-suffixed file in it and below it, sorted)."""
    items: list[AttestationInput] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            # Recursive, as the manifest polices the attestation folder recursively: what sits there is read.
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(ATTESTATION_SUFFIXES))
            if len(files) > MAX_ATTESTATION_FILES:
                raise InputError(f"{p}: {len(files)} files is more than the {MAX_ATTESTATION_FILES} attestations "
                                 "read from one folder")
            for f in files:
                items.extend(_judged_alone(f))
        else:
            items.extend(_judged_alone(p))
    return items


def model_attestations(model_dir: str | os.PathLike[str]) -> list[AttestationInput]:
    """The attestations kept in the model's own ``.attestations/`` folder (none if it has no such folder)."""
    folder = Path(model_dir) / ATTESTATION_DIR
    return read_attestations([folder]) if folder.is_dir() else []
