"""The pure core of release-gate.

Nothing here knows MLflow, the Hugging Face Hub or HTTP. Modules, one concept each:

- :mod:`gate.core.manifest` - model identity: per-file SHA-256 and the OMS-compatible root digest.
- :mod:`gate.core.keys` - signing keys and key ids.
- :mod:`gate.core.dsse` - DSSE envelopes (PAE signing and verification).
- :mod:`gate.core.attestation` - in-toto Statement v1 and the evaluation predicate.
- :mod:`gate.core.signing` - making evaluation attestations.
- :mod:`gate.core.evidence` - reading real evaluation logs (Inspect, lm-evaluation-harness).
- :mod:`gate.core.benchmarks` - benchmarks known by name and their risk domains.
- :mod:`gate.core.trust` - the trust store of evaluators and their keys.
- :mod:`gate.core.verify` - verifying attestations against a trust store and a model.
- :mod:`gate.core.oms` - verifying OpenSSF Model Signing (model-signing) signatures.
- :mod:`gate.core.collect` - finding attestation files (explicit paths, a model's ``.attestations/``).
- :mod:`gate.core.policy` - the tier policy file.
- :mod:`gate.core.targets` - publish targets and the tier each needs: one rule, one normalisation of names.
- :mod:`gate.core.decision` - the release decision (and its JSON form).
- :mod:`gate.core.vsa` - SLSA verification summaries of decisions.
- :mod:`gate.core.log` - the append-only Merkle log: tree math, signed checkpoints, entries, storage.
- :mod:`gate.core.files`, :mod:`gate.core.timeutil` - size-limited file reading; RFC 3339 times.
"""
