"""The pure core of tiergate.

Nothing here knows MLflow, the Hugging Face Hub or HTTP. Modules, one concept each:

- :mod:`tiergate.core.manifest` - model identity: per-file SHA-256 and the OMS-compatible root digest.
- :mod:`tiergate.core.keys` - signing keys and key ids.
- :mod:`tiergate.core.dsse` - DSSE envelopes (PAE signing and verification).
- :mod:`tiergate.core.attestation` - in-toto Statement v1 and the evaluation predicate.
- :mod:`tiergate.core.signing` - making evaluation attestations.
- :mod:`tiergate.core.evidence` - reading real evaluation logs (Inspect, lm-evaluation-harness).
- :mod:`tiergate.core.benchmarks` - benchmarks known by name and their risk domains.
- :mod:`tiergate.core.trust` - the trust store of evaluators and their keys.
- :mod:`tiergate.core.verify` - verifying attestations against a trust store and a model.
- :mod:`tiergate.core.oms` - verifying OpenSSF Model Signing (model-signing) signatures.
- :mod:`tiergate.core.collect` - finding attestation files (explicit paths, a model's ``.attestations/``).
- :mod:`tiergate.core.policy` - the tier policy file.
- :mod:`tiergate.core.targets` - publish targets and the tier each needs: one rule, one normalisation of names.
- :mod:`tiergate.core.decision` - the release decision (and its JSON form).
- :mod:`tiergate.core.vsa` - SLSA verification summaries of decisions.
- :mod:`tiergate.core.log` - the append-only Merkle log: tree math, signed checkpoints, entries, storage.
- :mod:`tiergate.core.files`, :mod:`tiergate.core.timeutil` - size-limited file reading; RFC 3339 times.
"""
