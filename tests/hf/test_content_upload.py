"""Gated uploads judge files by content (issue 11 items 1 and 3): hidden bytes under excluded paths and disguised
pickles are refused before anything is sent; duplicate_repo judges the source's revision the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from content_samples import (envelope_bytes, pickle_bytes, protocol0_text_pickle, safetensors_bytes, tar_of,
                             torch_zip_bytes)
from tiergate.errors import ModelError
from tiergate.integrations.hf.errors import GateDenied
from hf.hub_standin import HubStandin


def sent(hub: HubStandin) -> list[str]:
    return [r.path for r in hub.requests if any(s in r.path for s in ("preupload", "/commit/", "lfs/objects/batch"))]


@pytest.mark.parametrize(("path", "data", "why"), [
    (".github/payload.tar", tar_of({"w.safetensors": b"\x00" * 64}), "only text may sit under an excluded path"),
    (".github/workflows/ci.yml", protocol0_text_pickle(), "found pickle"),
    (".attestations/adapter.json", b'{"lora_A": [0.1, 0.2]}', "not an attestation envelope"),
    (".gitattributes", pickle_bytes(4), "only text may sit under an excluded path"),
])
def test_upload_folder_refuses_hidden_bytes_before_sending(hub: HubStandin, gated_api: Any, path: str, data: bytes,
                                                           why: str, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/tiny", private=False)
    root = make_model(evidence="open")
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)
    with pytest.raises(ModelError, match=why):
        gated_api.upload_folder(repo_id="org/tiny", folder_path=root)
    assert sent(hub) == []


@pytest.mark.parametrize(("name", "data"), [("pytorch_model.bin.txt", torch_zip_bytes()),
                                            ("model.data", pickle_bytes(0)), ("config.txt", protocol0_text_pickle())])
def test_upload_to_a_public_repo_refuses_disguised_pickles(hub: HubStandin, gated_api: Any, name: str, data: bytes,
                                                            make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/tiny", private=False)
    # Attested with the pickle in it: only the formats rule stands between this folder and a public repo.
    root = make_model(evidence="open",
                      files={"model.safetensors": safetensors_bytes(), "config.json": b"{}", name: data})
    with pytest.raises(GateDenied, match=rf"formats: refused content: {name} \(pickle"):
        gated_api.upload_folder(repo_id="org/tiny", folder_path=root)
    assert sent(hub) == []


def test_an_attestation_envelope_uploads_as_before(hub: HubStandin, gated_api: Any,
                                                   make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/tiny", private=True)
    root = make_model(evidence="open")
    (root / ".attestations" / "extra.json").write_bytes(envelope_bytes())
    gated_api.upload_folder(repo_id="org/tiny", folder_path=root)
    assert ".attestations/extra.json" in hub.head_tree("org/tiny")
