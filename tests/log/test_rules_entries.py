"""Policy and trust entries, decision bases, and the writer that logs each policy and trust store once."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from support import NOW, World
from tiergate.core.keys import PrivateKey
from tiergate.core.log.backends import open_store
from tiergate.core.log.entries import (
    Basis, DecisionRecord, EntryFormatError, PolicyRecord, TrustRecord, canonical_json, decision_entry, parse_entry,
    policy_entry, trust_entry,
)
from tiergate.core.decision import decide
from tiergate.core.policy import Policy
from tiergate.core.trust import TrustStore
from tiergate.runtime.local import RulesLog


def _trust_with_key_file(tmp_path: Path) -> TrustStore:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "e.pub").write_bytes(PrivateKey.generate().public.to_pem())
    (tmp_path / "trust.yaml").write_text(yaml.safe_dump({"version": 1, "evaluators": [
        {"id": "e", "organization": "E", "kind": "third_party", "keys": [{"path": "keys/e.pub"}]}]}))
    return TrustStore.load(tmp_path / "trust.yaml")


def test_policy_and_trust_entries_round_trip_to_the_same_digests(tmp_path: Path) -> None:
    policy, trust = Policy.load(), _trust_with_key_file(tmp_path)
    read = parse_entry(policy_entry(policy, NOW))
    assert isinstance(read, PolicyRecord) and read.digest == policy.digest
    assert Policy.from_bytes(read.data, read.uri).digest == policy.digest
    record = parse_entry(trust_entry(trust, NOW))
    assert isinstance(record, TrustRecord) and record.digest == trust.digest
    rebuilt = TrustStore.from_bytes(record.data, record.key_files, record.source)
    assert rebuilt.digest == trust.digest and rebuilt.keys() == trust.keys()  # nothing read from disk
    (tmp_path / "keys" / "e.pub").unlink()
    assert TrustStore.from_bytes(record.data, record.key_files, record.source).digest == trust.digest


def test_entries_whose_digest_does_not_cover_their_bytes_are_refused(tmp_path: Path) -> None:
    body = json.loads(trust_entry(_trust_with_key_file(tmp_path), NOW))
    body["trust"]["key_files"][0]["data"] = base64.b64encode(PrivateKey.generate().public.to_pem()).decode()
    with pytest.raises(EntryFormatError, match="is not the digest of its files"):
        parse_entry(canonical_json(body))  # a key file swapped under an unchanged digest
    body = json.loads(policy_entry(Policy.load(), NOW))
    body["policy"]["data"] = base64.b64encode(b"version: 1\ntiers: [{name: open}]\n").decode()
    with pytest.raises(EntryFormatError, match="is not the SHA-256 of its data"):
        parse_entry(canonical_json(body))
    with pytest.raises(EntryFormatError, match="no recorded bytes"):
        trust_entry(TrustStore(()), NOW)


@pytest.mark.parametrize(("basis", "reason"), [
    ({"policy": -1, "trust": 2, "attestations": [], "appended_with": 0}, "basis.policy must be a log index"),
    ({"policy": 1, "trust": True, "attestations": [], "appended_with": 0}, "basis.trust must be a log index"),
    ({"policy": 1, "trust": 2, "attestations": [5, 3], "appended_with": 0}, "ascending"),
    ({"policy": 1, "trust": 2, "attestations": [3, 3], "appended_with": 0}, "ascending"),
    ({"policy": 1, "trust": 2, "attestations": [], "appended_with": 0, "extra": 1}, "unknown field 'extra'"),
    ({"policy": 1, "trust": 2, "attestations": []}, "no 'appended_with'"),
])
def test_a_malformed_basis_is_refused(world: World, manifest, basis: dict, reason: str) -> None:
    decision = decide(Policy.load(), "internal", manifest, [], world.trust(), NOW)
    body = json.loads(decision_entry(decision, {}, Basis(1, 2)))
    body["basis"] = basis
    with pytest.raises(EntryFormatError, match=reason):
        parse_entry(canonical_json(body))
    del body["basis"]  # a pre-v2 entry is still well formed, and says it has no basis
    read = parse_entry(canonical_json(body))
    assert isinstance(read, DecisionRecord) and read.basis is None


def test_each_policy_and_trust_store_is_logged_once_and_found_again(tmp_path: Path) -> None:
    policy, trust = Policy.load(), _trust_with_key_file(tmp_path)
    with open_store(tmp_path / "log.db") as store:
        assert RulesLog(store).basis(policy, trust, NOW) == (0, 1)
        assert RulesLog(store).basis(policy, trust, NOW) == (0, 1)  # a restarted writer finds them by digest
        assert RulesLog(store).basis(policy, TrustStore((), source="none"), NOW) == (0, None)
        other = Policy.from_bytes(b"version: 1\nname: other\ntiers: [{name: internal}]\n", "other.yaml")
        assert RulesLog(store).basis(other, trust, NOW) == (2, 1)  # a changed policy: a new entry
        assert store.size() == 3
