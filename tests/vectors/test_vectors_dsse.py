"""DSSE against the specification's own example (secure-systems-lab/dsse ``implementation/signing_spec.py``).

The reference implementation's docstring is a doctest: a P-256 key (``d``, ``point_x``, ``point_y``), the envelope
``Sign`` writes for ``hello world``, that ``Verify`` recognises its signer, and the PAE bytes. The values are read
from the copied file by :mod:`doctest`, not re-typed here.
"""

from __future__ import annotations

import ast
import base64
import doctest
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tiergate.core.dsse import Envelope, pae
from tiergate.core.keys import PublicKey

SPEC = Path(__file__).parent / "dsse" / "signing_spec.py"


def _examples() -> dict[str, str]:
    """Each doctest example's source (first line) -> its expected output."""
    docstring = ast.get_docstring(ast.parse(SPEC.read_text()))
    assert docstring
    return {ex.source.strip(): ex.want for ex in doctest.DocTestParser().get_examples(docstring)}


EXAMPLES = _examples()


def _source(prefix: str) -> str:
    (source,) = [s for s in EXAMPLES if s.startswith(prefix)]
    return source


def _literal(prefix: str) -> Any:
    return ast.literal_eval(EXAMPLES[_source(prefix)])


def _verifier() -> PublicKey:
    numbers = dict(re.findall(r"(point_x|point_y)=(\d+)", _source("signer = ecdsa.Signer.construct(")))
    assert "curve='P-256'" in _source("signer = ecdsa.Signer.construct(")
    key = ec.EllipticCurvePublicNumbers(int(numbers["point_x"]), int(numbers["point_y"]), ec.SECP256R1()).public_key()
    return PublicKey(key)


def _envelope_json() -> bytes:
    return json.dumps(_literal("pprint(json.loads(signature_json))")).encode()


def test_pae_is_the_reference_pae() -> None:
    payload_type = ast.literal_eval(_source("payloadType = ").split("=", 1)[1].strip())
    payload = ast.literal_eval(_source("payload = ").split("=", 1)[1].strip())
    assert pae(payload_type, payload) == _literal("PAE(payloadType, payload)")


def test_reference_envelope_verifies() -> None:
    # The reference Verify recognises its signer ('mykey'); the gate must accept the same envelope with that key.
    assert "recognizedSigners=['mykey']" in EXAMPLES[_source("pprint(result)")]
    envelope = Envelope.from_json(_envelope_json())
    assert envelope.payload == b"hello world" and envelope.signatures[0].keyid == "66301bbf"
    assert envelope.verified_keys([_verifier()]) == [_verifier()]


@pytest.mark.parametrize("part", ["payload", "payloadType", "sig"])
def test_reference_envelope_altered_is_refused(part: str) -> None:
    document = json.loads(_envelope_json())
    if part == "sig":
        sig = bytearray(base64.b64decode(document["signatures"][0]["sig"]))
        sig[10] ^= 1
        document["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    elif part == "payload":
        document["payload"] = base64.b64encode(b"hello World").decode()
    else:
        document["payloadType"] = "http://example.com/HelloWorle"
    assert Envelope.from_dict(document).verified_keys([_verifier()]) == []
