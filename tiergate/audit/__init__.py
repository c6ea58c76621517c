"""Auditing the transparency log offline: the auditor trusts the gate's public key and its own trust store, nothing
the service says.

- :mod:`.keys` - the checkpoint verifier key (a C2SP vkey file, or the gate's PEM public key plus the log origin);
- :mod:`.sources` - where entries and proofs come from: a gate service over HTTP, or a copy of the log database;
- :mod:`.entries` - re-checking one entry: its format, and for attestations their signatures against the trust store;
- :mod:`.auditor` - the whole-log audit: every entry, the recomputed tree, every checkpoint, the first bad entry.
"""
