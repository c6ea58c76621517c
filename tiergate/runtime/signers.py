"""Keys held outside a PEM file: a PKCS#11 token (HSM, smart card) or a cloud KMS, through securesystemslib's signers.

``gate attest --signer URI --signer-public-key FILE`` names the key the way securesystemslib does
(``Signer.from_priv_key_uri``): ``hsm:2?label=gate`` (PKCS#11, module in ``PYKCS11LIB``), ``gcpkms:projects/...``,
``awskms:...``, ``azurekms:...``, ``hv:...`` (HashiCorp Vault), ``file2:PATH`` (an unencrypted PEM file). The public
key is given, not fetched, because it is what the trust store must list: the envelope records its key id, and every
signature the signer returns is checked against it before anything is written, so a URI that names another key, or a
back end that signs wrongly, fails here and not at the gate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tiergate.core.keys import PublicKey
from tiergate.errors import ConfigError, UsageError, one_line

#: securesystemslib's URI schemes whose signatures are plain bytes over the data (DSSE's model), with the extra of
#: securesystemslib that brings each back end's client library.
SCHEMES: dict[str, str | None] = {
    "hsm": "hsm", "gcpkms": "gcpkms", "awskms": "awskms", "azurekms": "azurekms", "hv": "vault", "file2": None,
}
#: Schemes securesystemslib has that do not fit, and what to use instead.
_OTHER = {
    "file": "securesystemslib's local-file scheme is file2:PATH (unencrypted); for an encrypted PEM key use --key PATH "
            "with --passphrase-env",
    "sigstore": "sign keyless with --sigstore, which writes a Sigstore bundle",
    "gnupg": "GnuPG signatures are not DSSE signatures; use a key, a PKCS#11 token or a KMS",
    "tkey": "not supported; use a PKCS#11 token or a KMS",
}


@dataclass(frozen=True)
class ExternalSigner:
    """A :class:`~tiergate.core.keys.SigningKey` whose private half stays in an HSM or a KMS."""

    uri: str
    public: PublicKey
    signer: Any  # securesystemslib.signer.Signer (imported lazily: an optional dependency)

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, data: bytes) -> bytes:
        """Raises ConfigError (exit 2) when the back end cannot sign (unreachable KMS, wrong PIN, missing key) or
        returns a signature that ``public`` does not verify."""
        try:
            signature = self.signer.sign(data)
            raw = bytes.fromhex(signature.signature)
        except Exception as exc:  # noqa: BLE001 - each back end raises its own (PKCS#11, HTTP, cloud SDKs): all mean "no"
            raise ConfigError(f"--signer {self.uri}: could not sign ({type(exc).__name__}: {one_line(exc)}); "
                              "nothing was written") from None
        if not self.public.verify(raw, data):
            raise ConfigError(f"--signer {self.uri}: its signature does not verify with --signer-public-key "
                              f"(key id {self.key_id[:16]}...): the URI names another key; nothing was written")
        return raw


def load_signer(uri: str, public: PublicKey, secret: str | None = None) -> ExternalSigner:
    """The signer ``uri`` names, for the key ``public``. ``secret`` answers securesystemslib's secrets handler (the
    PIN of a PKCS#11 token). Nothing is signed yet and no KMS is contacted (their clients connect on first use).

    Raises UsageError for a URI of an unknown or unsuitable scheme, ConfigError (exit 2 both) when the back end's
    library is not installed, the key's algorithm does not suit it, or its configuration is missing."""
    scheme, sep, _ = uri.partition(":")
    if not sep:
        raise UsageError(f"--signer {uri!r}: write SCHEME:KEY, e.g. hsm:2?label=gate or gcpkms:projects/P/locations/L/"
                         f"keyRings/R/cryptoKeys/K/cryptoKeyVersions/1 (schemes: {', '.join(SCHEMES)})")
    if scheme in _OTHER:
        raise UsageError(f"--signer {uri}: {_OTHER[scheme]}")
    if scheme not in SCHEMES:
        raise UsageError(f"--signer {uri}: unknown scheme {scheme!r}; use one of {', '.join(SCHEMES)} "
                         "(securesystemslib's signers)")
    if scheme == "hsm" and public.algorithm not in ("ecdsa-secp256r1", "ecdsa-secp384r1"):
        raise ConfigError(f"--signer {uri}: securesystemslib's PKCS#11 signer takes ECDSA P-256 or P-384 keys; "
                          f"--signer-public-key is {public.algorithm}")
    if scheme == "hsm" and not os.environ.get("PYKCS11LIB"):
        raise ConfigError(f"--signer {uri}: set PYKCS11LIB to the token's PKCS#11 module (e.g. "
                          "/usr/lib/softhsm/libsofthsm2.so, or your HSM vendor's library)")
    from securesystemslib.exceptions import UnsupportedLibraryError  # absent: the CLI names the 'signers' extra
    from securesystemslib.signer import Signer, SSlibKey  # type: ignore[attr-defined]  # its public names, no __all__

    def secrets_handler(what: str) -> str:
        if secret is None:
            raise UsageError(f"--signer {uri}: the signer asks for its {what}; give it with --signer-secret-env VAR")
        return secret

    try:
        key = SSlibKey.from_crypto(public.key, keyid=public.key_id)
        signer = Signer.from_priv_key_uri(uri, key, secrets_handler)
    except UnsupportedLibraryError as exc:
        missing = one_line(exc).rstrip(".")
        raise ConfigError(f"--signer {uri}: {missing}: pip install '{_requirement(scheme)}'") from None
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - ValueError for a bad URI or key type, the back ends' own for the rest
        raise ConfigError(f"--signer {uri}: {type(exc).__name__}: {one_line(exc)}") from None
    return ExternalSigner(uri, public, signer)


def _requirement(scheme: str) -> str:
    extra = SCHEMES.get(scheme)
    return f"securesystemslib[{extra}]" if extra else "securesystemslib"
