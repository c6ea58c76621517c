"""The tier policy: ordered release tiers, what each requires, and which publish targets need which tier.

A policy file is YAML (schema: ``tiergate/data/schemas/policy.schema.json``; the default ships as
``tiergate/data/default-policy.yaml``). Tiers are listed from least to most open; each tier inherits every requirement
of the tier it ``extends`` (by default the one listed before it), so ``open`` requires all that ``gated`` does and
more.
Loading validates everything and names the file and field of the first mistake.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import Any
from collections.abc import Mapping, Sequence

from tiergate.core.attestation import RISK_DOMAINS
from tiergate.core.benchmarks import BenchmarkCatalogue, builtin_catalogue, normalize, parse_catalogue
from tiergate.core.formats import WEIGHT_CLASSES
from tiergate.core.trust import EVALUATOR_KINDS
from tiergate.core.files import line_of, parse_yaml, read_limited
from tiergate.errors import ConfigError, config_error

POLICY_VERSION = 1
COMPARATORS: tuple[str, ...] = ("<=", "<", ">=", ">", "==", "reported")
MODES: tuple[str, ...] = ("enforce", "warn")
BUILTIN_POLICY_URI = "builtin:default-policy.yaml"

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: Any) -> timedelta:
    """``90d``, ``12h``, ``5m``, ``30s``, ``2w``."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration (write e.g. 90d, 12h, 5m)")
    try:
        return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise ValueError(f"{text!r} is longer than any duration the gate can count") from None


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Condition:
    """A further metric the same attestation must show for it to count (e.g. the attack count of a TAR suite)."""

    metric: str
    comparator: str
    threshold: float

    def describe(self) -> str:
        return f"{self.metric} {self.comparator} {self.threshold:g}"


@dataclass(frozen=True)
class EvaluationRequirement:
    """A score an attestation must show: e.g. benchmark strongreject, metric score, <= 0.10, over >= 300 samples.

    ``metrics`` and ``benchmarks`` are names that mean the same thing to different harnesses (lm-eval's ``acc`` is
    Inspect's ``accuracy``; ``strongreject`` is inspect_evals' ``strong_reject``): any one of them matches.
    """

    id: str
    description: str
    metrics: tuple[str, ...]
    comparator: str
    threshold: float | None = None
    benchmarks: tuple[str, ...] = ()  # empty: any benchmark (of the risk domain)
    risk_domain: str | None = None
    min_samples: int | None = None
    source: str | None = None
    conditions: tuple[Condition, ...] = ()
    #: Every catalogue name of ``benchmarks`` (aliases included): an attestation reporting ``wmdp_chemistry`` is
    #: about ``wmdp_chem``, so its score counts, and a bad one cannot hide from the worst-of rule behind an alias.
    covers: tuple[str, ...] = ()

    @property
    def metric(self) -> str:
        """The name used in messages."""
        return self.metrics[0]

    def value_in(self, metrics: Mapping[str, float]) -> float | None:
        """The score this requirement reads from an attestation's metrics: the worst of its names present (one
        attestation reporting ``acc: 0.2`` and ``accuracy: 0.9`` is judged on the worse), None if none is."""
        values = [metrics[name] for name in self.metrics if name in metrics]
        return self.worst(values) if values else None

    def worst(self, values: Sequence[float]) -> float:
        """The value among ``values`` (not empty) least favourable to meeting this requirement."""
        if self.comparator in ("<=", "<"):
            return max(values)
        if self.comparator in (">=", ">"):
            return min(values)
        # "==": any value that differs is the worst; otherwise they are all equal ("reported": any will do).
        return next((v for v in values if v != self.threshold), values[0])

    def covers_benchmark(self, benchmark: str) -> bool:
        return not self.benchmarks or normalize(benchmark) in map(normalize, self.covers or self.benchmarks)

    def describe(self) -> str:
        what = " / ".join(x for x in (self.risk_domain, "|".join(self.benchmarks)) if x)
        metric = "|".join(self.metrics)
        if self.comparator == "reported":
            rule = f"{what} {metric} reported"
        else:
            rule = f"{what} {metric} {self.comparator} {self.threshold:g}"
        if self.min_samples:
            rule += f" over at least {self.min_samples} samples"
        if self.conditions:
            rule += " with " + " and ".join(c.describe() for c in self.conditions)
        return rule


@dataclass(frozen=True)
class SignerRequirement:
    """Who must have signed the evidence for a tier."""

    min_organizations: int = 0
    required_kinds: tuple[str, ...] = ()
    min_independent: int = 0

    def merge(self, other: SignerRequirement) -> SignerRequirement:
        return SignerRequirement(
            max(self.min_organizations, other.min_organizations),
            tuple(sorted(set(self.required_kinds) | set(other.required_kinds))),
            max(self.min_independent, other.min_independent),
        )


@dataclass(frozen=True)
class Tier:
    """One tier as written in the file (its own requirements only; see :meth:`Policy.effective`)."""

    name: str
    description: str
    extends: str | None
    evaluations: tuple[EvaluationRequirement, ...] = ()
    signers: SignerRequirement = field(default_factory=SignerRequirement)
    max_age: timedelta | None = None
    allowed_formats: tuple[str, ...] | None = None
    mode: str | None = None


@dataclass(frozen=True)
class EffectiveTier:
    """A tier with everything it inherits folded in: what a decision checks."""

    name: str
    rank: int
    chain: tuple[str, ...]  # this tier first, then what it inherits from
    evaluations: tuple[tuple[str, EvaluationRequirement], ...]  # (tier that states it, requirement)
    signers: SignerRequirement
    max_age: timedelta | None
    allowed_formats: tuple[str, ...] | None
    mode: str


@dataclass(frozen=True)
class MlflowTargets:
    registration: str
    aliases: Mapping[str, str]
    stages: Mapping[str, str]
    tags: Mapping[str, Mapping[str, str]]  # tag key -> tag value -> tier


@dataclass(frozen=True)
class HuggingFaceTargets:
    private: str
    gated_manual: str
    gated_auto: str
    public: str


@dataclass(frozen=True)
class Policy:
    name: str
    version: int
    tiers: tuple[Tier, ...]
    mode: str
    clock_skew: timedelta
    mlflow: MlflowTargets
    huggingface: HuggingFaceTargets
    uri: str
    digest: str  # sha256:<hex> of the policy file's bytes
    benchmarks: BenchmarkCatalogue  # the built-in catalogue extended by the file's `benchmarks` list

    @property
    def tier_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tiers)

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise ConfigError(f"unknown tier {name!r}; this policy has {', '.join(self.tier_names)}")

    def rank(self, name: str) -> int:
        return self.tier_names.index(self.tier(name).name)

    def effective(self, name: str) -> EffectiveTier:
        chain = _chain(self, name)
        tiers = [self.tier(n) for n in chain]
        signers = SignerRequirement()
        ages = [t.max_age for t in tiers if t.max_age is not None]
        format_sets = [set(t.allowed_formats) for t in tiers if t.allowed_formats is not None]
        for tier in tiers:
            signers = signers.merge(tier.signers)
        evaluations = tuple((t.name, r) for t in reversed(tiers) for r in t.evaluations)
        own = tiers[0]
        return EffectiveTier(
            name=own.name,
            rank=self.rank(own.name),
            chain=tuple(chain),
            evaluations=evaluations,
            signers=signers,
            max_age=min(ages) if ages else None,
            allowed_formats=tuple(sorted(set.intersection(*format_sets))) if format_sets else None,
            mode=own.mode or self.mode,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Policy:
        """Load a policy file, or the default policy shipped with the package when ``path`` is None."""
        if path is None:
            raw = resources.files("tiergate.data").joinpath("default-policy.yaml").read_bytes()
            return cls.from_bytes(raw, BUILTIN_POLICY_URI)
        return cls.from_bytes(read_limited(path, "policy"), str(path))

    @classmethod
    def from_bytes(cls, raw: bytes, uri: str) -> Policy:
        """Parse a policy file's bytes. Raises ConfigError naming ``uri``, the line or field, and the problem."""
        return _parse_policy(parse_yaml(raw, uri), uri, "sha256:" + hashlib.sha256(raw).hexdigest())


def _chain(policy: Policy, name: str) -> list[str]:
    chain = [policy.tier(name).name]
    while (parent := policy.tier(chain[-1]).extends) is not None:
        if parent in chain:
            raise config_error(policy.uri, f"tiers[{chain[-1]}].extends",
                               f"inheritance cycle: {' -> '.join(chain + [parent])}")
        chain.append(policy.tier(parent).name)
    return chain


# --- parsing ---------------------------------------------------------------------------------------------------

_POLICY_FIELDS = {"version", "name", "mode", "clock_skew", "benchmarks", "tiers", "targets"}
_TIER_FIELDS = {"name", "description", "extends", "requires", "mode"}
_REQUIRES_FIELDS = {"evaluations", "signers", "max_age", "formats"}
_EVALUATION_FIELDS = {"id", "description", "benchmark", "risk_domain", "metric", "comparator", "threshold",
                      "min_samples", "source", "with"}
_CONDITION_FIELDS = {"metric", "comparator", "threshold"}
_SIGNER_FIELDS = {"min_organizations", "kinds", "min_independent"}
#: The one field whose null means something (inherit nothing), not "not written".
_MAY_BE_NULL = {"extends"}


class _Reader:
    """Field access that names the file and the field in every error."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def error(self, where: str, problem: str, near: Any = None) -> ConfigError:
        """``near``: the YAML mapping the problem is in, to name its line."""
        line = line_of(near)
        return config_error(f"{self.uri}: line {line}" if line else self.uri, where, problem)

    def mapping(self, value: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(where, "must be a mapping")
        unknown = sorted(set(map(str, value)) - allowed)
        if unknown:
            raise self.error(f"{where}.{unknown[0]}" if where else unknown[0],
                             f"unknown field (expected one of {', '.join(sorted(allowed))})", value)
        # `formats:` with its list commented out is YAML null, which would read as "no formats rule": a field
        # written without a value is refused, never taken for an absent one (`extends: null` is the one exception).
        empty = sorted(str(k) for k, v in value.items() if v is None and k not in _MAY_BE_NULL)
        if empty:
            raise self.error(f"{where}.{empty[0]}" if where else empty[0],
                             "has no value (YAML null); give it one, or remove the line for the default", value)
        return value

    def text(self, data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"{where}.{key}", "required, a non-empty string")
        return value.strip()

    def names(self, data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        """A name, or a list of names that mean the same thing."""
        value = data.get(key)
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise self.error(f"{where}.{key}", "required, a name or a non-empty list of names")
        return tuple(n.strip() for n in names)

    def choice(self, data: Mapping[str, Any], key: str, where: str, choices: Sequence[str],
               default: str | None = None) -> str | None:
        value = data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or value not in choices:
            raise self.error(f"{where}.{key}", f"{value!r} is not one of {', '.join(map(str, choices))}")
        return value

    def count(self, data: Mapping[str, Any], key: str, where: str) -> int:
        value = data.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(f"{where}.{key}", f"must be a whole number >= 0, found {value!r}")
        return value

    def duration(self, data: Mapping[str, Any], key: str, where: str) -> timedelta | None:
        if data.get(key) is None:
            return None
        try:
            return parse_duration(data[key])
        except ValueError as exc:
            raise self.error(f"{where}.{key}", str(exc)) from None


def _parse_condition(r: _Reader, raw: Any, where: str) -> Condition:
    data = r.mapping(raw, where, _CONDITION_FIELDS)
    comparator = r.choice(data, "comparator", where, COMPARATORS[:-1])  # "reported" is what matching already means
    if comparator is None:
        raise r.error(f"{where}.comparator", f"required, one of {', '.join(COMPARATORS[:-1])}")
    threshold = data.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise r.error(f"{where}.threshold", f"must be a finite number, found {threshold!r}", data)
    return Condition(metric=r.text(data, "metric", where), comparator=comparator, threshold=float(threshold))


def _parse_evaluation(r: _Reader, raw: Any, where: str, catalogue: BenchmarkCatalogue) -> EvaluationRequirement:
    data = r.mapping(raw, where, _EVALUATION_FIELDS)
    comparator = r.choice(data, "comparator", where, COMPARATORS)
    if comparator is None:
        raise r.error(f"{where}.comparator", f"required, one of {', '.join(COMPARATORS)}")
    threshold = data.get("threshold")
    if comparator == "reported":
        if threshold is not None:
            raise r.error(f"{where}.threshold", "a 'reported' requirement takes no threshold")
    elif isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise r.error(f"{where}.threshold", f"must be a finite number, found {threshold!r}", data)
    benchmarks = r.names(data, "benchmark", where) if data.get("benchmark") is not None else ()
    risk_domain = r.choice(data, "risk_domain", where, RISK_DOMAINS)
    if not benchmarks and risk_domain is None:
        raise r.error(where, "name a benchmark, a risk_domain, or both", data)
    for name in benchmarks:  # a requirement counts a benchmark for the domain the catalogue says it measures
        measured = catalogue.domain_of(name)
        if measured is None:
            raise r.error(f"{where}.benchmark", f"{name!r} is not in the benchmark catalogue; add it to the policy's "
                          "'benchmarks' list with the risk_domain it measures", data)
        if risk_domain is not None and measured != risk_domain:
            raise r.error(f"{where}.risk_domain", f"{risk_domain!r}, but benchmark {name!r} measures {measured} "
                          "(the benchmark catalogue)", data)
    min_samples = data.get("min_samples")
    if min_samples is not None:
        min_samples = r.count(data, "min_samples", where)
    requirement_id = r.text(data, "id", where)
    raw_conditions = data.get("with") or []
    if not isinstance(raw_conditions, list):
        raise r.error(f"{where}.with", "must be a list of {metric, comparator, threshold}")
    return EvaluationRequirement(
        id=requirement_id,
        description=str(data.get("description") or requirement_id),
        metrics=r.names(data, "metric", where),
        comparator=comparator,
        threshold=float(threshold) if threshold is not None else None,
        benchmarks=benchmarks,
        covers=tuple(dict.fromkeys(n for b in benchmarks for n in catalogue.get(b).names)),  # type: ignore[union-attr]
        risk_domain=risk_domain,
        min_samples=min_samples,
        source=str(data["source"]) if data.get("source") else None,
        conditions=tuple(_parse_condition(r, c, f"{where}.with[{i}]") for i, c in enumerate(raw_conditions)),
    )


def _parse_signers(r: _Reader, raw: Any, where: str) -> SignerRequirement:
    data = r.mapping(raw or {}, where, _SIGNER_FIELDS)
    kinds = data.get("kinds", [])
    if not isinstance(kinds, list) or any(k not in EVALUATOR_KINDS for k in kinds):
        raise r.error(f"{where}.kinds", f"must list evaluator kinds ({', '.join(EVALUATOR_KINDS)}), found {kinds!r}")
    return SignerRequirement(
        min_organizations=r.count(data, "min_organizations", where),
        required_kinds=tuple(sorted(set(kinds))),
        min_independent=r.count(data, "min_independent", where),
    )


def _parse_formats(r: _Reader, raw: Any, where: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    data = r.mapping(raw, where, {"allow"})
    allow = data.get("allow")
    known = sorted(WEIGHT_CLASSES)  # content classes: text, images and tokenizers are always allowed, unknown never
    if not isinstance(allow, list) or any(f not in known for f in allow):
        raise r.error(f"{where}.allow", f"must list weight content classes among {', '.join(known)}, found {allow!r}")
    return tuple(sorted(set(allow)))


def _parse_tier(r: _Reader, raw: Any, index: int, previous: str | None, catalogue: BenchmarkCatalogue) -> Tier:
    where = f"tiers[{index}]"
    data = r.mapping(raw, where, _TIER_FIELDS)
    name = r.text(data, "name", where)
    where = f"tiers[{index}] ({name})"
    requires = r.mapping(data.get("requires") or {}, f"{where}.requires", _REQUIRES_FIELDS)
    raw_evals = requires.get("evaluations") or []
    if not isinstance(raw_evals, list):
        raise r.error(f"{where}.requires.evaluations", "must be a list")
    extends = data.get("extends", previous)
    if extends is not None and not isinstance(extends, str):
        raise r.error(f"{where}.extends", "must name a tier")
    return Tier(
        name=name,
        description=str(data.get("description") or ""),
        extends=extends,
        evaluations=tuple(_parse_evaluation(r, e, f"{where}.requires.evaluations[{i}]", catalogue)
                          for i, e in enumerate(raw_evals)),
        signers=_parse_signers(r, requires.get("signers"), f"{where}.requires.signers"),
        max_age=r.duration(requires, "max_age", f"{where}.requires"),
        allowed_formats=_parse_formats(r, requires.get("formats"), f"{where}.requires.formats"),
        mode=r.choice(data, "mode", where, MODES),
    )


def _tier_ref(r: _Reader, names: Sequence[str], value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in names:
        raise r.error(where, f"unknown tier {value!r} (tiers: {', '.join(names)})")
    return value


def _tier_map(r: _Reader, names: Sequence[str], raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise r.error(where, "must map names to tiers")
    return {str(k): _tier_ref(r, names, v, f"{where}.{k}") for k, v in raw.items()}


def _parse_targets(r: _Reader, raw: Any, names: Sequence[str]) -> tuple[MlflowTargets, HuggingFaceTargets]:
    data = r.mapping(raw or {}, "targets", {"mlflow", "huggingface"})
    lowest, highest = names[0], names[-1]
    ml = r.mapping(data.get("mlflow") or {}, "targets.mlflow", {"registration", "aliases", "stages", "tags"})
    raw_tags = ml.get("tags") or {}
    if not isinstance(raw_tags, Mapping):
        raise r.error("targets.mlflow.tags", "must map tag keys to {value: tier}")
    mlflow = MlflowTargets(
        registration=_tier_ref(r, names, ml.get("registration", lowest), "targets.mlflow.registration"),
        aliases=_tier_map(r, names, ml.get("aliases") or {}, "targets.mlflow.aliases"),
        stages=_tier_map(r, names, ml.get("stages") or {}, "targets.mlflow.stages"),
        tags={str(k): _tier_map(r, names, v, f"targets.mlflow.tags.{k}") for k, v in raw_tags.items()},
    )
    hf = r.mapping(data.get("huggingface") or {}, "targets.huggingface",
                   {"private", "gated_manual", "gated_auto", "public"})
    huggingface = HuggingFaceTargets(
        private=_tier_ref(r, names, hf.get("private", lowest), "targets.huggingface.private"),
        gated_manual=_tier_ref(r, names, hf.get("gated_manual", highest), "targets.huggingface.gated_manual"),
        gated_auto=_tier_ref(r, names, hf.get("gated_auto", highest), "targets.huggingface.gated_auto"),
        public=_tier_ref(r, names, hf.get("public", highest), "targets.huggingface.public"),
    )
    return mlflow, huggingface


def _catalogue(r: _Reader, raw: Any) -> BenchmarkCatalogue:
    """The built-in catalogue (the default policy's list) extended by this policy's ``benchmarks``."""
    own = parse_catalogue(raw, r.error)
    try:
        return builtin_catalogue().extend(own)
    except ValueError as exc:
        raise r.error("benchmarks", str(exc)) from None


def _parse_policy(data: Any, uri: str, digest: str) -> Policy:
    r = _Reader(uri)
    data = r.mapping(data, "", _POLICY_FIELDS)
    if data.get("version") != POLICY_VERSION:
        raise r.error("version", f"expected {POLICY_VERSION}, found {data.get('version')!r}")
    raw_tiers = data.get("tiers")
    if not isinstance(raw_tiers, list) or not raw_tiers:
        raise r.error("tiers", "must be a non-empty list, from least to most open")
    catalogue = _catalogue(r, data.get("benchmarks"))
    tiers: list[Tier] = []
    for index, raw in enumerate(raw_tiers):
        tier = _parse_tier(r, raw, index, tiers[-1].name if tiers else None, catalogue)
        if tier.name in (t.name for t in tiers):
            raise r.error(f"tiers[{index}].name", f"duplicate tier {tier.name!r}")
        tiers.append(tier)
    names = [t.name for t in tiers]
    for index, tier in enumerate(tiers):
        if tier.extends is not None:
            _tier_ref(r, names, tier.extends, f"tiers[{index}] ({tier.name}).extends")
    ids = [req.id for t in tiers for req in t.evaluations]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise r.error("tiers", f"requirement id {duplicates[0]!r} is used twice; ids must be unique")
    try:
        skew = parse_duration(data.get("clock_skew", "5m"))
    except ValueError as exc:
        raise r.error("clock_skew", str(exc)) from None
    mlflow, huggingface = _parse_targets(r, data.get("targets"), names)
    policy = Policy(
        name=str(data.get("name") or "unnamed"),
        version=POLICY_VERSION,
        tiers=tuple(tiers),
        mode=r.choice(data, "mode", "", MODES, default="enforce") or "enforce",
        clock_skew=skew,
        mlflow=mlflow,
        huggingface=huggingface,
        uri=uri,
        digest=digest,
        benchmarks=catalogue,
    )
    for name in names:
        _chain(policy, name)  # every inheritance chain must end
    return policy
