"""`gate attest --sigstore`: keyless signing with an identity token from the environment, as CI provides one.

There is no public Fulcio or Rekor here (no network). The token is found (SIGSTORE_ID_TOKEN, or GitHub Actions' token
endpoint through sigstore's detect_credential, served from 127.0.0.1), checked (malformed, expired, wrong audience),
and sent as the bearer of a CSR to the Fulcio a private instance's ClientTrustConfig names; every failure is one
line, exit 2, and nothing is written. A signature is completed against a private instance that stands in for Fulcio
and Rekor on 127.0.0.1 (tests/sigstore_standin.py), and the bundle written is checked by sigstore's own Verifier and
by `gate verify`. What stays untested is in docs/testing.md.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import pytest

from sigstore_standin import Instance
from support import run_gate, write_model

pytest.importorskip("sigstore", reason="the 'sigstore' extra is not installed")

#: Variables through which sigstore's detect_credential (the `id` package) finds a CI's ambient credential: cleared,
#: so that a test run inside a CI sees only what the test sets.
AMBIENT = ("SIGSTORE_ID_TOKEN", "GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
           "GOOGLE_SERVICE_ACCOUNT_NAME", "BUILDKITE", "GITLAB_CI", "CIRCLECI")


def jwt(claims: dict[str, Any]) -> str:
    """An OIDC-shaped token. Its signature is not checked by the client (Fulcio checks it), so a dummy one will do."""
    import jwt as pyjwt  # PyJWT, a dependency of sigstore

    return pyjwt.encode(claims, "not-checked-by-the-client-only-by-fulcio", algorithm="HS256")


def token(**overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": "https://issuer.ci.test", "sub": "repo:acme/evals:ref:refs/heads/main", "aud": "sigstore",
              "iat": now - 10, "nbf": now - 10, "exp": now + 600, **overrides}
    return jwt(claims)


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with the server's canned status and body, and records it."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        server: Any = self.server
        server.seen.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))
        self.send_response(server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(server.body)))
        self.end_headers()
        self.wfile.write(server.body)

    do_GET = do_POST = _answer  # noqa: N815 - http.server's handler names

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def listener() -> Iterator[Any]:
    """A real HTTP listener on 127.0.0.1; set ``.status`` and ``.body`` to choose its answer."""
    servers: list[ThreadingHTTPServer] = []

    def make(status: int, body: bytes) -> ThreadingHTTPServer:
        server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        server.status, server.body, server.seen = status, body, []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def trust_config(path: Path, fulcio: str, rekor: str) -> Path:
    """A private instance's ClientTrustConfig: the trusted root sigstore ships for the public-good instance (any
    valid root does for signing), and a signing config whose Fulcio and Rekor are ``fulcio`` and ``rekor``."""
    from sigstore._internal.tuf import DEFAULT_TUF_URL  # where sigstore keeps its shipped roots, by URL
    import sigstore._store as store

    shipped = Path(store.__file__).parent / DEFAULT_TUF_URL.replace(":", "%3A").replace("/", "%2F")
    start = {"start": "2020-01-01T00:00:00Z"}
    config = {
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": json.loads((shipped / "trusted_root.json").read_text()),
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [{"url": fulcio, "majorApiVersion": 1, "validFor": start, "operator": "test"}],
            "rekorTlogUrls": [{"url": rekor, "majorApiVersion": 1, "validFor": start, "operator": "test"}],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        },
    }
    path.write_text(json.dumps(config))
    return path


def attest(model: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in AMBIENT}
    return subprocess.run(
        [sys.executable, "-m", "tiergate", "attest", str(model), "--evaluator", "ci-evals", "--eval", "strongreject",
         "--metric", "score=0.04", "--sigstore", *extra],
        capture_output=True, text=True, env={**full, **env}, timeout=120)


def one_line_exit_2(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gate: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_no_identity_token_is_a_one_line_usage_error(tmp_path: Path) -> None:
    model = write_model(tmp_path / "tiny")
    one_line_exit_2(attest(model, {}), "SIGSTORE_ID_TOKEN", "id-token: write")
    assert not (model / ".attestations").exists()


@pytest.mark.parametrize(("raw", "needle"), [
    ("not-a-jwt", "malformed"),
    (token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200), "malformed"),
    (token(aud="another-audience"), "audience 'sigstore'"),
])
def test_an_unusable_identity_token_is_refused_before_hashing(tmp_path: Path, raw: str, needle: str) -> None:
    model = write_model(tmp_path / "tiny")
    one_line_exit_2(attest(model, {"SIGSTORE_ID_TOKEN": raw}), "SIGSTORE_ID_TOKEN", needle)
    assert not (model / ".attestations").exists()


def test_the_token_goes_to_the_configured_fulcio_as_a_bearer_with_a_csr(tmp_path: Path, listener: Any) -> None:
    model = write_model(tmp_path / "tiny")
    fulcio = listener(503, b'{"code": 14, "message": "stand-in Fulcio: not issuing"}')
    rekor = listener(503, b"{}")
    config = trust_config(tmp_path / "trust-config.json", f"http://127.0.0.1:{fulcio.server_port}",
                          f"http://127.0.0.1:{rekor.server_port}")
    raw = token()
    line = one_line_exit_2(attest(model, {"SIGSTORE_ID_TOKEN": raw}, "--sigstore-trust-config", str(config)),
                           "signing failed", "nothing was written")
    assert "FulcioClientError" in line
    assert not (model / ".attestations").exists()
    [(method, path, headers, body)] = fulcio.seen
    assert (method, path) == ("POST", "/api/v2/signingCert")
    assert headers["Authorization"] == f"Bearer {raw}"
    request = json.loads(body)
    csr = base64.b64decode(request["certificateSigningRequest"])
    assert b"BEGIN CERTIFICATE REQUEST" in csr
    assert rekor.seen == []  # no certificate, no log entry


def test_github_actions_ambient_credential_is_fetched_with_the_request_token(tmp_path: Path, listener: Any) -> None:
    model = write_model(tmp_path / "tiny")
    raw = token(iss="https://token.actions.githubusercontent.com", sub="repo:acme/evals:ref:refs/heads/main")
    actions = listener(200, json.dumps({"value": raw}).encode())
    fulcio = listener(503, b"{}")
    config = trust_config(tmp_path / "trust-config.json", f"http://127.0.0.1:{fulcio.server_port}",
                          f"http://127.0.0.1:{fulcio.server_port}")
    env = {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
           "ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{actions.server_port}/oidc?api-version=2.0"}
    one_line_exit_2(attest(model, env, "--sigstore-trust-config", str(config)), "signing failed")
    [(method, path, headers, _)] = actions.seen
    assert method == "GET" and "audience=sigstore" in path
    assert headers["Authorization"] == "bearer request-token"
    assert fulcio.seen and fulcio.seen[0][2]["Authorization"] == f"Bearer {raw}"
    assert not (model / ".attestations").exists()


def test_github_actions_without_id_token_permission_says_so(tmp_path: Path) -> None:
    model = write_model(tmp_path / "tiny")
    one_line_exit_2(attest(model, {"GITHUB_ACTIONS": "true"}), "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    assert not (model / ".attestations").exists()


@pytest.mark.parametrize(("content", "needle"), [
    ("{", "not a Sigstore ClientTrustConfig"),
    ('{"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"}', "not a Sigstore ClientTrustConfig"),
    (None, "cannot read"),
])
def test_a_bad_trust_config_is_refused_before_hashing(tmp_path: Path, content: str | None, needle: str) -> None:
    model = write_model(tmp_path / "tiny")
    path = tmp_path / "trust-config.json"
    if content is not None:
        path.write_text(content)
    one_line_exit_2(attest(model, {"SIGSTORE_ID_TOKEN": token()}, "--sigstore-trust-config", str(path)), needle)
    assert not (model / ".attestations").exists()


def test_the_statement_sigstore_signs_is_the_gates_own(tmp_path: Path) -> None:
    """What goes into the bundle's DSSE envelope is the gate's in-toto statement, byte for byte, accepted by
    sigstore's own statement model (the check sign_dsse makes before signing)."""
    from sigstore import dsse

    from tiergate.core.attestation import Evaluation, EvaluatorRef
    from tiergate.core.manifest import hash_model
    from tiergate.core.signing import evaluation_statement
    from tiergate.core.timeutil import utcnow

    manifest = hash_model(write_model(tmp_path / "tiny"))
    evaluation = Evaluation(name="strongreject", benchmark="strongreject", risk_domain="misuse", metrics={"s": 0.1},
                            sample_size=10, stderr={}, harness=None, harness_version=None, dataset=None,
                            dataset_revision=None, evaluated_at=None)
    statement = evaluation_statement(manifest, "tiny", evaluation, EvaluatorRef("ci-evals", None), utcnow())
    wrapped = dsse.Statement(statement.to_json())
    assert wrapped._contents == statement.to_json()
    assert wrapped._matches_digest  # sigstore reads our subject: the OMS digest of the model
    assert [s.name for s in wrapped._inner.subjects] == ["tiny"]


IDENTITY = "https://github.com/acme/evals/.github/workflows/attest.yml@refs/heads/main"
ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture(scope="module")
def instance() -> Iterator[Instance]:
    running = Instance().start()
    yield running
    running.stop()


def signed_keyless(model: Path, instance: Instance, folder: Path) -> tuple[Path, Path]:
    """Sign ``model`` keyless against the stand-in instance; the bundle's path and the instance's trusted root."""
    config, root = instance.write(folder)
    result = attest(model, {"SIGSTORE_ID_TOKEN": token(iss=ISSUER, sub=IDENTITY)},
                    "--sigstore-trust-config", str(config))
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip()), root


def test_a_keyless_signature_is_a_bundle_sigstore_verifies(tmp_path: Path, instance: Instance) -> None:
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity

    model = write_model(tmp_path / "tiny")
    digest = run_gate("hash", str(model)).stdout.strip()
    written, root = signed_keyless(model, instance, tmp_path)
    assert written == model / ".attestations" / "ci-evals-strongreject.sigstore.json"
    document = json.loads(written.read_text())
    assert document["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert document["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    bundle = Bundle.from_json(written.read_text())
    verifier = Verifier(trusted_root=TrustedRoot.from_file(str(root)))
    _, payload = verifier.verify_dsse(bundle, Identity(identity=IDENTITY, issuer=ISSUER))
    statement = json.loads(payload)
    assert [s["digest"]["sha256"] for s in statement["subject"]] == [digest.removeprefix("sha256:")]
    assert statement["predicate"]["evaluator"]["id"] == "ci-evals"
    with pytest.raises(VerificationError):  # the certificate names the workflow that signed, and no other
        verifier.verify_dsse(bundle, Identity(identity=IDENTITY.replace("main", "feature"), issuer=ISSUER))



@pytest.mark.parametrize("root_file", ["trusted_root.json", "trust-config.json"])  # a root, or a config holding one
def test_gate_verify_and_check_accept_a_keyless_attestation(tmp_path: Path, instance: Instance, root_file: str) -> None:
    import yaml

    model = write_model(tmp_path / "tiny")
    written, root = signed_keyless(model, instance, tmp_path)
    trust = tmp_path / "trust.yaml"
    trust.write_text(yaml.safe_dump({"version": 1, "evaluators": [{
        "id": "ci-evals", "organization": "CI Evals", "kind": "third_party",
        "keys": [{"sigstore": {"issuer": ISSUER, "identity": IDENTITY,
                               "trusted_root": str(root.with_name(root_file))}}],
    }]}))
    verified = run_gate("verify", str(model), str(written), "--trust", str(trust), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    row = json.loads(verified.stdout)["attestations"][0]
    assert row["valid"] and row["evaluator"] == "ci-evals"
    checked = run_gate("check", str(model), "--tier", "hosted", "--trust", str(trust))
    assert "strongreject-hosted" in checked.stdout and "met" in checked.stdout, checked.stdout
    # Another workflow's identity is not the trusted one.
    other = tmp_path / "other.yaml"
    other.write_text(trust.read_text().replace("refs/heads/main", "refs/heads/feature"))
    assert run_gate("verify", str(model), str(written), "--trust", str(other)).returncode == 1
