"""`gate attest --signer URI`: keys held outside a PEM file, through securesystemslib's signers.

A real PKCS#11 token (SoftHSM2, Debian's softhsm2) holds a P-256 key it generated itself; `gate attest` signs through
securesystemslib's HSMSigner and the envelope verifies with `gate verify` and `gate check` like any other. Cloud KMSs
cannot be reached from here: a Vault transit URI at a closed local port stands for an unreachable KMS, and what is
not tested is listed in docs/testing.md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tiergate.core.keys import PublicKey
from support import World, run_gate, write_model

SOFTHSM_MODULE = next((p for p in ("/usr/lib/softhsm/libsofthsm2.so",
                                   "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                                   "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so") if os.path.exists(p)), None)
PIN = "4711"
LABEL = "gate-test"

# Generate a P-256 key pair inside the token (its private half never leaves it) and export the public key the way
# securesystemslib does (HSMSigner.import_), as PEM. Run in a subprocess: a PKCS#11 module is initialised once per
# process, with the SOFTHSM2_CONF it saw first.
_GENERATE = """
import sys, pkcs11
from pkcs11.util.ec import encode_named_curve_parameters
from securesystemslib.signer import HSMSigner
from cryptography.hazmat.primitives import serialization
lib = pkcs11.lib(sys.argv[1])
token = lib.get_token(token_label=sys.argv[2])
with token.open(rw=True, user_pin=sys.argv[3]) as session:
    params = session.create_domain_parameters(
        pkcs11.KeyType.EC, {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters(sys.argv[5])}, local=True)
    params.generate_keypair(store=True, id=pkcs11.util.biginteger(int(sys.argv[4])), label="k" + sys.argv[4])
uri, key = HSMSigner.import_(int(sys.argv[4]), sys.argv[2], lambda _: sys.argv[3])
print(uri)
sys.stdout.write(key._crypto_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode())
"""


@dataclass(frozen=True)
class Token:
    env: dict[str, str]
    uris: dict[int, str]  # key id on the token -> securesystemslib URI
    public_keys: dict[int, Path]


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Token:
    if SOFTHSM_MODULE is None or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (Debian: apt-get install softhsm2; scripts/_venv.sh does it as root)")
    pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (pip install 'securesystemslib[hsm]')")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    (root / "softhsm2.conf").write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    env = {"SOFTHSM2_CONF": str(root / "softhsm2.conf"), "PYKCS11LIB": SOFTHSM_MODULE}
    full = {**os.environ, **env}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", LABEL, "--so-pin", "0000", "--pin", PIN],
                   check=True, capture_output=True, env=full)
    uris, public_keys = {}, {}
    for key_id, curve in ((2, "secp256r1"), (3, "secp384r1")):
        made = subprocess.run([sys.executable, "-c", _GENERATE, SOFTHSM_MODULE, LABEL, PIN, str(key_id), curve],
                              check=True, capture_output=True, text=True, env=full)
        uri, pem = made.stdout.split("\n", 1)
        uris[key_id] = uri
        public_keys[key_id] = root / f"hsm-{key_id}.pub"
        public_keys[key_id].write_text(pem)
    return Token(env, uris, public_keys)


def _trust(world: World, tmp_path: Path, pem: Path) -> Path:
    data = world.trust_dict()
    data["evaluators"].append({"id": "hsm-lab", "organization": "HSM Lab", "kind": "third_party",
                               "keys": [{"pem": pem.read_text()}]})
    path = tmp_path / "trust-hsm.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _attest(model: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_gate("attest", str(model), "--evaluator", "hsm-lab", "--eval", "strongreject",
                    "--metric", "score=0.04", "--sample-size", "400", *args, env=env)


def _one_line_exit_2(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gate: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("key_id", [2, 3])
def test_a_key_in_a_pkcs11_token_signs_what_verify_and_check_accept(
    token: Token, tmp_path: Path, world: World, key_id: int,
) -> None:
    model = write_model(tmp_path / "tiny")
    result = _attest(model, "--signer", token.uris[key_id], "--signer-public-key", str(token.public_keys[key_id]),
                     "--signer-secret-env", "HSM_PIN", env={**token.env, "HSM_PIN": PIN})
    assert result.returncode == 0, result.stderr
    written = Path(result.stdout.strip())
    assert written == model / ".attestations" / "hsm-lab-strongreject.intoto.json"
    envelope = json.loads(written.read_text())
    assert [s["keyid"] for s in envelope["signatures"]] == [PublicKey.load(token.public_keys[key_id]).key_id]
    trust = _trust(world, tmp_path, token.public_keys[key_id])
    verified = run_gate("verify", str(model), str(written), "--trust", str(trust), "--json")
    assert verified.returncode == 0, verified.stderr
    row = json.loads(verified.stdout)["attestations"][0]
    assert row["valid"] and row["evaluator"] == "hsm-lab"
    # `check` reads the model's .attestations folder by itself; the HSM-signed score counts like any other.
    checked = run_gate("check", str(model), "--tier", "hosted", "--trust", str(trust))
    assert "strongreject-hosted" in checked.stdout and "met" in checked.stdout, checked.stdout


def test_a_token_and_a_pem_key_co_sign_one_envelope(token: Token, tmp_path: Path, world: World) -> None:
    model = write_model(tmp_path / "tiny")
    (tmp_path / "evalco.key").write_bytes(world.evaluators["evalco"].key.to_pem())
    result = _attest(model, "--key", str(tmp_path / "evalco.key"), "--signer", token.uris[2],
                     "--signer-public-key", str(token.public_keys[2]), "--signer-secret-env", "HSM_PIN",
                     env={**token.env, "HSM_PIN": PIN})
    assert result.returncode == 0, result.stderr
    assert len(json.loads(Path(result.stdout.strip()).read_text())["signatures"]) == 2


@pytest.mark.parametrize("case", ["wrong pin", "no pin", "other key", "no module", "missing key"])
def test_a_token_that_cannot_sign_fails_in_one_line_and_writes_nothing(
    token: Token, tmp_path: Path, case: str,
) -> None:
    model = write_model(tmp_path / "tiny")
    env = {**token.env, "HSM_PIN": PIN}
    uri, public, pin_args = token.uris[2], token.public_keys[2], ["--signer-secret-env", "HSM_PIN"]
    needle = uri
    if case == "wrong pin":
        env["HSM_PIN"] = "0000"
        needle = "could not sign"
    elif case == "no pin":
        pin_args = []
        needle = "--signer-secret-env"
    elif case == "other key":  # the URI names key 2, the public key given is key 3's
        public = token.public_keys[3]
        needle = "does not verify"
    elif case == "no module":
        env["PYKCS11LIB"] = ""
        needle = "PYKCS11LIB"
    elif case == "missing key":
        uri = uri.replace("hsm:2", "hsm:9")
        needle = "could not sign"
    result = _attest(model, "--signer", uri, "--signer-public-key", str(public), *pin_args, env=env)
    _one_line_exit_2(result, needle)
    assert not (model / ".attestations").exists()


def test_without_python_pkcs11_the_error_names_what_to_install(token: Token, tmp_path: Path) -> None:
    model = write_model(tmp_path / "tiny")
    # As if python-pkcs11 were not installed: securesystemslib then refuses to make an HSMSigner.
    code = ("import sys; sys.modules['pkcs11'] = None; sys.argv[0] = 'gate'; from tiergate.cli import main; "
            "main(sys.argv[1:])")
    result = subprocess.run(
        [sys.executable, "-c", code, "attest", str(model), "--evaluator", "hsm-lab", "--eval", "strongreject",
         "--metric", "score=0.04", "--signer", token.uris[2], "--signer-public-key", str(token.public_keys[2])],
        capture_output=True, text=True, env={**os.environ, **token.env}, timeout=120)
    _one_line_exit_2(result, "pip install 'securesystemslib[hsm]'")
    assert not (model / ".attestations").exists()


def test_a_file2_uri_signs_through_securesystemslib(tmp_path: Path, world: World) -> None:
    model = write_model(tmp_path / "tiny")
    key = world.evaluators["evalco"].key
    (tmp_path / "evalco.key").write_bytes(key.to_pem())
    (tmp_path / "evalco.pub").write_bytes(key.public.to_pem())
    result = run_gate("attest", str(model), "--evaluator", "evalco", "--eval", "strongreject", "--metric",
                      "score=0.04", "--signer", f"file2:{tmp_path / 'evalco.key'}",
                      "--signer-public-key", str(tmp_path / "evalco.pub"))
    assert result.returncode == 0, result.stderr
    verified = run_gate("verify", str(model), result.stdout.strip(), "--trust", str(world.trust_path()), "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["attestations"][0]["evaluator"] == "evalco"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends: nothing listens there


def test_an_unreachable_kms_fails_in_one_line_and_writes_nothing(tmp_path: Path, world: World) -> None:
    pytest.importorskip("hvac", reason="hvac (securesystemslib[vault]) is not installed")
    model = write_model(tmp_path / "tiny")
    (tmp_path / "evalco.pub").write_bytes(world.evaluators["evalco"].key.public.to_pem())
    env = {"VAULT_ADDR": f"http://127.0.0.1:{_closed_port()}", "VAULT_TOKEN": "test-token"}
    result = run_gate("attest", str(model), "--evaluator", "evalco", "--eval", "strongreject", "--metric",
                      "score=0.04", "--signer", "hv:gate-key/1", "--signer-public-key", str(tmp_path / "evalco.pub"),
                      env=env)
    _one_line_exit_2(result, "--signer hv:gate-key/1: could not sign", "ConnectionError")
    assert not (model / ".attestations").exists()


@pytest.mark.parametrize(("uri", "needle"), [
    ("gcpkms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1", "securesystemslib[gcpkms]"),
    ("nope:key", "unknown scheme 'nope'"),
    ("file:/tmp/x.key", "file2:PATH"),
    ("sigstore:?identity=a@b&issuer=c", "--sigstore"),
    ("hsm2", "write SCHEME:KEY"),
])
def test_a_bad_or_unusable_signer_uri_fails_before_hashing(tmp_path: Path, world: World, uri: str, needle: str) -> None:
    if uri.startswith("gcpkms:"):
        try:
            import google.cloud.kms  # noqa: F401
        except ImportError:
            pass
        else:
            pytest.skip("google-cloud-kms is installed here: the missing-library message cannot be shown")
    model = write_model(tmp_path / "tiny")
    (tmp_path / "evalco.pub").write_bytes(world.evaluators["evalco"].key.public.to_pem())
    result = run_gate("attest", str(model), "--evaluator", "evalco", "--eval", "strongreject", "--metric",
                      "score=0.04", "--signer", uri, "--signer-public-key", str(tmp_path / "evalco.pub"))
    _one_line_exit_2(result, needle)
    assert not (model / ".attestations").exists()


@pytest.mark.parametrize(("args", "needle"), [
    ([], "say how to sign"),
    (["--signer", "hsm:2"], "go together"),
    (["--signer-public-key", "x.pub"], "go together"),
    (["--sigstore-trust-config", "x.json", "--key", "x.key"], "is for --sigstore"),
    (["--signer-secret-env", "PIN", "--key", "x.key"], "is for --signer"),
    (["--sigstore", "--key", "x.key"], "drop --key/--signer"),
])
def test_signing_flags_that_cannot_work_are_usage_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    model = write_model(tmp_path / "tiny")
    result = run_gate("attest", str(model), "--evaluator", "e", "--eval", "strongreject", "--metric", "score=0.04",
                      *args, cwd=tmp_path)
    _one_line_exit_2(result, needle)
