"""Sigstore keyless signing: an OIDC identity from the environment, a short-lived Fulcio certificate, a Rekor entry.

The result is a Sigstore bundle v0.3 wrapping the DSSE envelope of the in-toto statement, as ``cosign attest`` and
model-signing write them; the maintained ``sigstore`` package does all of it (:class:`sigstore.sign.SigningContext`).
The identity token comes from ``SIGSTORE_ID_TOKEN`` (any CI that can mint an OIDC token for the audience
``sigstore``) or from the CI's ambient credential as ``sigstore.oidc.detect_credential`` finds it (GitHub Actions'
``ACTIONS_ID_TOKEN_REQUEST_URL``/``_TOKEN`` with ``permissions: id-token: write``, GitLab, Buildkite, CircleCI, GCP).
There is no browser flow: an evaluator signing by hand uses a key (``--key``, ``--signer``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tiergate.core.attestation import Statement
from tiergate.errors import ConfigError, UsageError, one_line

TOKEN_ENV = "SIGSTORE_ID_TOKEN"  # noqa: S105 - the variable's name, not a token
BUNDLE_SUFFIX = ".sigstore.json"
MAX_TRUST_CONFIG = 1024 * 1024


def identity_token() -> Any:
    """The OIDC identity token to sign with, as a ``sigstore.oidc.IdentityToken``.

    Raises UsageError (exit 2) when there is none, ConfigError (exit 2) when it is malformed, expired or not for the
    audience ``sigstore``, or when the CI's credential endpoint fails."""
    from sigstore.oidc import IdentityError, IdentityToken, detect_credential

    raw = os.environ.get(TOKEN_ENV, "").strip()
    source = TOKEN_ENV
    if not raw:
        try:
            raw = detect_credential() or ""
        except IdentityError as exc:
            raise ConfigError(f"--sigstore: the CI's OIDC credential could not be fetched: {one_line(exc)}") from None
        source = "the CI's ambient OIDC credential"
    if not raw:
        raise UsageError(f"--sigstore needs an OIDC identity token: set {TOKEN_ENV}, or run in GitHub Actions with "
                         "'permissions: id-token: write' (or another CI sigstore detects); found neither")
    try:
        return IdentityToken(raw)
    except IdentityError as exc:
        raise ConfigError(f"--sigstore: the identity token from {source} is not usable: {one_line(exc)} (it must "
                          "be a current OIDC token for the audience 'sigstore')") from None


def trust_config(path: Path | None) -> Any:
    """The Sigstore instance to sign with: a private instance's ClientTrustConfig JSON (``path``), else the
    public-good instance, whose trusted root and signing config ``sigstore`` updates over TUF (needs the network).

    Raises ConfigError (exit 2) for an unreadable or invalid file, or when the public-good instance's TUF
    repository cannot be reached."""
    from sigstore.models import ClientTrustConfig

    if path is None:
        try:
            return ClientTrustConfig.production()
        except Exception as exc:  # noqa: BLE001 - TUF raises its own network and metadata errors: all mean "cannot sign"
            raise ConfigError("--sigstore: the public-good instance's trust root could not be updated over TUF "
                              f"({type(exc).__name__}: {one_line(exc)}); check the network, or give a private "
                              "instance with --sigstore-trust-config") from None
    try:
        if path.stat().st_size > MAX_TRUST_CONFIG:
            raise ConfigError(f"{path}: over {MAX_TRUST_CONFIG} bytes, too large for a Sigstore trust config")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the Sigstore trust config ({one_line(exc)})") from None
    try:
        config = ClientTrustConfig.from_json(text)
        # Both parts are checked when read, here and not at the first signature: a bad file changes nothing.
        _ = (config.signing_config, config.trusted_root)
    except Exception as exc:  # noqa: BLE001 - betterproto and sigstore raise several kinds for a malformed document
        raise ConfigError(f"{path}: not a Sigstore ClientTrustConfig "
                          f"(application/vnd.dev.sigstore.clienttrustconfig.v0.1+json): {one_line(exc)}") from None
    return config


def sign_keyless(statement: Statement, token: Any, config: Any) -> bytes:
    """Sign ``statement`` keyless and return the Sigstore bundle v0.3 (JSON) that wraps its DSSE envelope.

    Raises ConfigError (exit 2) when Fulcio, Rekor or a timestamp authority refuses or cannot be reached, or the
    statement is not one ``sigstore`` accepts."""
    from sigstore import dsse
    from sigstore.errors import Error as SigstoreError
    from sigstore.sign import SigningContext

    try:
        payload = dsse.Statement(statement.to_json())
    except SigstoreError as exc:
        raise ConfigError(f"--sigstore: sigstore refuses the statement: {one_line(exc)}") from None
    try:
        context = SigningContext.from_trust_config(config)
        with context.signer(token) as signer:
            bundle = signer.sign_dsse(payload)
    except Exception as exc:  # noqa: BLE001 - requests, Fulcio, Rekor and TSA clients raise their own: "not signed"
        raise ConfigError(f"--sigstore: signing failed ({type(exc).__name__}: {one_line(exc)}); nothing was "
                          "written") from None
    return bundle.to_json().encode("utf-8") + b"\n"
