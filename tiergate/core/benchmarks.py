"""The benchmark catalogue: which risk domain each benchmark the gate knows measures.

An attestation's risk domain is what its benchmark measures, looked up here, never the label its signer wrote: an
evaluator trusted only for ``capability`` must not clear a bio-weapons requirement by signing WMDP-bio as
"capability". A benchmark the catalogue does not list has no risk domain, so a scoped evaluator cannot use it for
anything. The catalogue is part of the policy (its ``benchmarks`` list); the default policy
(``tiergate/data/default-policy.yaml``) carries the built-in one with a source for each entry, and every other policy
extends it (see docs/policy.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any
from collections.abc import Callable, Mapping

from tiergate.core.attestation import RISK_DOMAINS

BUILTIN_POLICY_FILE = "default-policy.yaml"
_FIELDS = {"name", "aliases", "risk_domain", "source"}


def benchmark_of_task(task: str) -> str:
    """``inspect_evals/wmdp_bio`` -> ``wmdp_bio``: the registry prefix is not part of the benchmark's name."""
    return task.rsplit("/", 1)[-1]


def normalize(name: str) -> str:
    """How benchmark names compare (policy requirements and the catalogue alike): case-insensitively."""
    return name.strip().lower()


@dataclass(frozen=True)
class Benchmark:
    name: str
    risk_domain: str
    aliases: tuple[str, ...] = ()
    source: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class BenchmarkCatalogue:
    """Benchmarks by name (aliases included, case-insensitive), each with the one risk domain it measures."""

    benchmarks: tuple[Benchmark, ...] = ()

    def __post_init__(self) -> None:
        seen: dict[str, Benchmark] = {}
        for benchmark in self.benchmarks:
            for name in benchmark.names:
                other = seen.setdefault(normalize(name), benchmark)
                if other is not benchmark:
                    raise ValueError(f"benchmark name {name!r} is listed twice ({other.name} and {benchmark.name})")

    def get(self, name: str) -> Benchmark | None:
        key = normalize(name)
        return next((b for b in self.benchmarks if key in map(normalize, b.names)), None)

    def domain_of(self, benchmark: str) -> str | None:
        """The risk domain ``benchmark`` measures, or None when the catalogue does not list it."""
        entry = self.get(benchmark)
        return entry.risk_domain if entry else None

    def extend(self, other: BenchmarkCatalogue) -> BenchmarkCatalogue:
        """This catalogue plus ``other``'s entries. An entry ``other`` repeats must say the same risk domain (a copy
        of the default policy repeats them all); one that gives a known benchmark another domain is refused, since
        it would silently re-scope every evaluator. Raises ValueError naming the benchmark."""
        merged = list(self.benchmarks)
        for entry in other.benchmarks:
            for known in filter(None, map(self.get, entry.names)):
                if known.risk_domain != entry.risk_domain:
                    raise ValueError(f"benchmark {entry.name!r} measures {known.risk_domain} in the built-in catalogue "
                                     f"({known.source or 'no source given'}), not {entry.risk_domain}")
            new = [n for n in entry.names if self.get(n) is None]
            if new:  # names (or aliases of a known benchmark) this catalogue lacks
                merged.append(Benchmark(new[0], entry.risk_domain, tuple(new[1:]), entry.source))
        return BenchmarkCatalogue(tuple(merged))


def parse_catalogue(raw: Any, error: Callable[[str, str], Exception], where: str = "benchmarks") -> BenchmarkCatalogue:
    """Read a policy's ``benchmarks`` list; ``error(field, problem)`` builds the exception naming file and field."""
    if raw is None:
        return BenchmarkCatalogue()
    if not isinstance(raw, list):
        raise error(where, "must be a list of {name, risk_domain, aliases, source}")
    entries = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            raise error(at, "must be a mapping with name and risk_domain")
        unknown = sorted(set(map(str, item)) - _FIELDS)
        if unknown:
            raise error(f"{at}.{unknown[0]}", f"unknown field (expected one of {', '.join(sorted(_FIELDS))})")
        name, domain, aliases = item.get("name"), item.get("risk_domain"), item.get("aliases", [])
        if not isinstance(name, str) or not name.strip():
            raise error(f"{at}.name", "required, a non-empty string")
        if domain not in RISK_DOMAINS:
            raise error(f"{at}.risk_domain", f"{domain!r} is not one of {', '.join(RISK_DOMAINS)}")
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
            raise error(f"{at}.aliases", "must be a list of names")
        source = item.get("source")
        if source is not None and not isinstance(source, str):
            raise error(f"{at}.source", "must be text (where the benchmark is defined)")
        entries.append(Benchmark(name.strip(), domain, tuple(a.strip() for a in aliases), source))
    try:
        return BenchmarkCatalogue(tuple(entries))
    except ValueError as exc:
        raise error(where, str(exc)) from None


_BUILTIN: BenchmarkCatalogue | None = None


def builtin_catalogue() -> BenchmarkCatalogue:
    """The catalogue of the policy shipped with the package (its ``benchmarks`` list), read once."""
    global _BUILTIN
    if _BUILTIN is None:
        from tiergate.core.files import parse_yaml
        from tiergate.errors import config_error

        uri = f"builtin:{BUILTIN_POLICY_FILE}"
        data = parse_yaml(resources.files("tiergate.data").joinpath(BUILTIN_POLICY_FILE).read_bytes(), uri)
        raw = data.get("benchmarks") if isinstance(data, Mapping) else None
        _BUILTIN = parse_catalogue(raw, lambda field, problem: config_error(uri, field, problem))
    return _BUILTIN
