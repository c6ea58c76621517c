"""What the gate writes, checked against the ecosystem's published definitions (not the gate's own schemas).

- DSSE envelopes (evaluation attestations, VSAs): OMS v1.0 ``envelope.schema.json``, the JSON Schema of a DSSE
  envelope carrying an in-toto statement.
- in-toto Statements v1: the in-toto attestation framework's ``statement.proto`` via its published Python binding
  (``in-toto-attestation``): parsed strictly (an unknown or mistyped field fails) and ``Statement.validate()``.
- VSA predicates: the framework's ``predicates/vsa/v1/vsa.proto``, parsed strictly with the descriptor of the
  repository's own generated ``vsa_pb2.py`` (copied; the installed binding 0.9.3 predates ``verifiedLevels`` becoming
  a list, as SLSA has it), loaded into a private descriptor pool. ``verifier.version`` is in the SLSA VSA v1
  specification but not in that proto, so it is checked apart as the spec defines it (a string map).

The copied ``.proto`` files are compared with the bindings used (field names and which are lists), so the validator
is the one of the fetched repository. The gate's own formats (predicate, manifest, decision, policy, trust store)
are checked against the gate's schemas by ``tests/test_schemas.py``.
"""

from __future__ import annotations

import ast
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory, timestamp_pb2
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from in_toto_attestation.v1 import resource_descriptor_pb2, statement_pb2
from in_toto_attestation.v1.statement import Statement as ItStatement

from support import NOW, World
from tiergate.core.decision import decide
from tiergate.core.dsse import Envelope
from tiergate.core.keys import PrivateKey
from tiergate.core.manifest import Manifest
from tiergate.core.policy import Policy
from tiergate.core.vsa import sign_vsa

HERE = Path(__file__).parent
ENVELOPE_SCHEMA = json.loads((HERE / "oms-spec/schemas/v1.0/envelope.schema.json").read_text())
PROTOS = HERE / "in-toto-attestation"


def _vsa_descriptor() -> Descriptor:
    """VerificationSummary from the repository's generated vsa_pb2.py, in a pool of its own (the installed binding
    registers an older definition under the same name in the default pool)."""
    tree = ast.parse((PROTOS / "vsa_pb2.py").read_text())
    (serialized,) = [node.args[0].value for node in ast.walk(tree)
                     if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "AddSerializedFile"
                     and isinstance(node.args[0], ast.Constant)]
    pool = descriptor_pool.DescriptorPool()
    timestamp = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(timestamp)
    pool.Add(timestamp)
    pool.AddSerializedFile(serialized)
    return pool.FindMessageTypeByName("in_toto_attestation.predicates.vsa.v1.VerificationSummary")


VSA = _vsa_descriptor()


def _vsa_message() -> Message:
    return message_factory.GetMessageClass(VSA)()


def _fields(message: str, proto: str) -> set[tuple[str, bool]]:
    """``(JSON name, is a list)`` of ``message``'s fields as the copied .proto declares them (top level only)."""
    text = (PROTOS / proto).read_text()
    body = text[text.index(f"message {message} {{"):]
    depth, end = 0, 0
    for index, char in enumerate(body):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "}" and depth == 0:
            end = index
            break
    body = re.sub(r"message \w+ \{[^{}]*\}", "", body[:end])  # nested message definitions are not fields
    names = set()
    pattern = r"^\s*((?:repeated\s+|map<[^>]+>\s+|[\w.]+\s+)+)(\w+)\s*=\s*\d+(?:\s*\[json_name\s*=\s*\"(\w+)\"\])?"
    for kind, name, json_name in re.findall(pattern, body, re.MULTILINE):
        listed = kind.startswith(("repeated", "map<"))
        names.add((json_name or re.sub(r"_(\w)", lambda m: m.group(1).upper(), name), listed))
    return names


@pytest.mark.parametrize(("descriptor", "message", "proto"), [
    (statement_pb2.Statement.DESCRIPTOR, "Statement", "statement.proto"),
    (resource_descriptor_pb2.ResourceDescriptor.DESCRIPTOR, "ResourceDescriptor", "resource_descriptor.proto"),
    (VSA, "VerificationSummary", "vsa.proto"),
])
def test_binding_is_the_fetched_definition(descriptor: Descriptor, message: str, proto: str) -> None:
    assert {(f.json_name, f.is_repeated) for f in descriptor.fields} == _fields(message, proto)


def check_envelope(data: bytes) -> dict[str, Any]:
    """Validate a DSSE envelope and its in-toto statement; return the statement."""
    envelope = json.loads(data)
    jsonschema.Draft202012Validator(ENVELOPE_SCHEMA).validate(envelope)
    statement = json.loads(Envelope.from_dict(envelope).payload)
    parsed = json_format.ParseDict(statement, statement_pb2.Statement())  # strict: unknown fields raise
    ItStatement.copy_from_pb(parsed).validate()
    return statement  # type: ignore[no-any-return]


def test_evaluation_attestation(world: World, manifest: Manifest) -> None:
    statement = check_envelope(world.attest(manifest, "evalco", "wmdp_bio", {"acc": 0.25}).data)
    assert statement["subject"][0]["digest"] == {"sha256": manifest.root_digest}


def test_co_signed_attestation(world: World, manifest: Manifest) -> None:
    check_envelope(world.attest(manifest, "evalco", "wmdp_bio", {"acc": 0.25}, signers=["evalco", "aisi"]).data)


@pytest.mark.parametrize("allowed", [True, False])
def test_vsa(world: World, manifest: Manifest, allowed: bool) -> None:
    policy = Policy.load()
    items = [world.attest(manifest, "evalco", "risk_assessment", {"completed": 1.0}, when=NOW - timedelta(days=1))]
    decision = decide(policy, "internal" if allowed else "open", manifest, items if allowed else [], world.trust(), NOW)
    assert (decision.decision == "allow") == allowed
    envelope = sign_vsa(decision, "hf://acme/tiny", policy.tier_names, PrivateKey.generate("ecdsa-p256"))
    statement = check_envelope(envelope.to_json())
    predicate = dict(statement["predicate"])
    verifier = dict(predicate.pop("verifier"))
    version = verifier.pop("version")  # SLSA VSA v1: map of component -> version, not in the in-toto proto
    assert isinstance(version, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in version.items())
    json_format.ParseDict({**predicate, "verifier": verifier}, _vsa_message())
    assert predicate["verificationResult"] == ("PASSED" if allowed else "FAILED")
