"""The JSON Schemas in docs/ describe what the code really reads and writes."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource

from support import NOW, REPO, World
from tiergate.core.decision import decide
from tiergate.core.dsse import Envelope
from tiergate.core.policy import Policy

SCHEMAS = REPO / "tiergate" / "data" / "schemas"


def validator(name: str) -> jsonschema.protocols.Validator:
    documents = [json.loads(p.read_text()) for p in SCHEMAS.glob("*.json")]
    resources = [(d["$id"], Resource.from_contents(d)) for d in documents]
    schema = json.loads((SCHEMAS / name).read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=Registry().with_resources(resources))


def test_default_policy_matches_schema() -> None:
    data = yaml.safe_load((REPO / "tiergate" / "data" / "default-policy.yaml").read_text())
    validator("policy.schema.json").validate(data)


def test_trust_store_matches_schema(world: World) -> None:
    validator("trust-store.schema.json").validate(world.trust_dict())


def test_predicate_and_manifest_match_schema(world: World, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    predicate = json.loads(Envelope.from_json(item.data).payload)["predicate"]
    validator("evaluation-predicate.schema.json").validate(predicate)
    validator("manifest.schema.json").validate(manifest.to_dict())


@pytest.mark.parametrize("tier", ["internal", "open"])
def test_decision_matches_schema(world: World, manifest, tier: str) -> None:
    items = [world.attest(manifest, "evalco", "strongreject", {"score": 0.05}),
             world.attest(manifest, "evalco", "strongreject", {"score": 0.05}, when=NOW + NOW.resolution * 10**9)]
    decision = decide(Policy.load(), tier, manifest, items, world.trust(), NOW)
    assert decision.rejected  # the future-dated one, so rejected_attestations is exercised too
    validator("decision.schema.json").validate(json.loads(decision.to_json()))


def test_signed_answer_matches_schema(world: World, manifest) -> None:
    import base64

    from tiergate.core.answer import AnswerRequest, SignedAnswer, body_digest, new_nonce
    from tiergate.core.keys import PrivateKey

    decision = decide(Policy.load(), "internal", manifest, [], world.trust(), NOW)
    body = decision.to_json().encode()
    for tier, target in (("internal", None), (None, "huggingface:private")):
        header = SignedAnswer(AnswerRequest(new_nonce(), manifest.digest, tier, target), decision.decision,
                              "internal", body_digest(body), "example.org/log", 7, NOW).sign(PrivateKey.generate())
        envelope = Envelope.from_json(base64.b64decode(header))
        validator("answer.schema.json").validate(json.loads(envelope.payload))
