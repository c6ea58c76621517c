"""Publish targets and the tier each one needs: one rule for every integration, one normalisation of names.

A target is *where* a release goes: an MLflow registration, alias, stage or tag, or a Hugging Face repository state.
The policy's ``targets`` section maps targets to tiers; this module is the only place that reads that mapping, so the
service's target API, the MLflow plugin, the Hub wrapper and the git hook cannot disagree about what
``mlflow:alias:Production`` needs.

Names are compared as people read them (:func:`normalise`): Unicode NFKC, case folded, surrounding whitespace
ignored; so ``Production``, ``production `` and full-width ``ｐｒｏｄｕｃｔｉｏｎ`` are all the policy's ``production``.
A name that only *looks like* a mapped name (:func:`skeleton`: Cyrillic or Greek letters in place of Latin ones,
invisible characters, separators, an unknown non-ASCII letter in place of one of its letters) is neither that target
nor an unmapped one: it is refused (:class:`ConfusableTarget`), because a reader, a UI or case-insensitive tooling
would take it for the release target while the gate let it through ungated.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Protocol
from collections.abc import Mapping

from tiergate.errors import ConfigError, InputError

MLFLOW, HUGGINGFACE = "mlflow", "huggingface"
REGISTRATION, ALIAS, STAGE, TAG = "registration", "alias", "stage", "tag"
HUB_STATES = ("private", "gated_manual", "gated_auto", "public")
TARGET_FORMS = tuple(f"{HUGGINGFACE}:{state}" for state in HUB_STATES) + (
    "mlflow:registration", "mlflow:alias:<name>", "mlflow:stage:<name>", "mlflow:tag:<key>=<value>")


class TargetError(InputError):
    """A target that cannot be resolved to a tier."""


class UnknownTarget(TargetError):
    """The target text is not one of :data:`TARGET_FORMS`."""


class ConfusableTarget(TargetError):
    """The target's name looks like a name the policy maps but is not it (a look-alike): refused."""


class MlflowTable(Protocol):
    """The policy's ``targets.mlflow`` (:class:`tiergate.core.policy.MlflowTargets` or a view of a remote policy)."""

    @property
    def registration(self) -> str: ...

    @property
    def aliases(self) -> Mapping[str, str]: ...

    @property
    def stages(self) -> Mapping[str, str]: ...

    @property
    def tags(self) -> Mapping[str, Mapping[str, str]]: ...


class HubTable(Protocol):
    """The policy's ``targets.huggingface``."""

    @property
    def private(self) -> str: ...

    @property
    def gated_manual(self) -> str: ...

    @property
    def gated_auto(self) -> str: ...

    @property
    def public(self) -> str: ...


class TargetPolicy(Protocol):
    """What of a policy the rule reads."""

    @property
    def mlflow(self) -> MlflowTable: ...

    @property
    def huggingface(self) -> HubTable: ...


def normalise(name: str) -> str:
    """The name as compared: NFKC, case folded (then NFKC again, as Unicode's caseless matching asks), surrounding
    whitespace removed."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold()).strip()


#: Letters that render like a Latin letter (Cyrillic, Greek, and a few others), and digits read as letters. Not
#: exhaustive on purpose: any other non-ASCII letter counts as a wildcard in :func:`skeleton` matching.
_LOOKALIKE = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l",
    "ɡ": "g", "ո": "n", "օ": "o", "ս": "u", "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ı": "i", "ɩ": "i", "ℓ": "l", "0": "o", "1": "l",
}
_WILDCARD = "\0"


def skeleton(name: str) -> str:
    """What a name looks like: its normalised form decomposed, accents, invisible characters, whitespace and
    punctuation dropped, look-alike letters replaced by the Latin letter they resemble, and any other non-ASCII
    letter or digit replaced by a wildcard."""
    out = []
    for char in unicodedata.normalize("NFKD", normalise(name)):
        category = unicodedata.category(char)
        if category[0] in "MZCPS":
            continue  # marks, separators, control and format characters, punctuation, symbols
        if char in _LOOKALIKE:
            out.append(_LOOKALIKE[char])
        elif char.isascii():
            out.append(char)
        else:
            out.append(_WILDCARD)
    return "".join(out)


def _looks_alike(a: str, b: str) -> bool:
    """Same shape, letter by letter, with most letters the same: a name in another script altogether (every letter
    a wildcard) is a different name, not a disguised one."""
    if len(a) != len(b) or not all(x == y or _WILDCARD in (x, y) for x, y in zip(a, b, strict=True)):
        return False
    return 2 * sum(x == y for x, y in zip(a, b, strict=True)) >= len(a)


def lookup(table: Mapping[str, str], name: str, what: str) -> str | None:
    """The entry of ``table`` for ``name`` (normalised on both sides), None if the table has none; raises
    :class:`ConfusableTarget` if ``name`` is a look-alike of one of the table's names."""
    wanted = normalise(name)
    for key, value in table.items():
        if normalise(key) == wanted:
            return value
    shape = skeleton(name)
    if shape:
        for key in table:
            if _looks_alike(skeleton(key), shape):
                raise ConfusableTarget(f"{what} {name!r} looks like the release target {key!r} but is not it; use "
                                       f"{key!r} itself, or a name that cannot be mistaken for it")
    return None


@dataclass(frozen=True)
class Target:
    """Where a release goes: ``mlflow`` ``registration``/``alias``/``stage``/``tag`` (with its name, and for a tag its
    value) or a ``huggingface`` repository state (its kind: ``private``, ``gated_manual``, ``gated_auto``,
    ``public``)."""

    system: str
    kind: str
    name: str = ""
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> Target:
        """From ``mlflow:alias:production``, ``mlflow:tag:release.tier=hosted``, ``huggingface:public``; system and
        kind are normalised like names. Raises :class:`UnknownTarget`."""
        system, _, rest = text.partition(":")
        system = normalise(system)
        if system == HUGGINGFACE and normalise(rest) in HUB_STATES:
            return cls(HUGGINGFACE, normalise(rest))
        if system == MLFLOW:
            kind, sep, name = rest.partition(":")
            kind = normalise(kind)
            if kind == REGISTRATION and not sep:
                return cls(MLFLOW, REGISTRATION)
            if kind in (ALIAS, STAGE) and name.strip():
                return cls(MLFLOW, kind, name)
            if kind == TAG and "=" in name and name.partition("=")[0].strip():
                key, _, value = name.partition("=")
                return cls(MLFLOW, TAG, key, value)
        raise UnknownTarget(f"unknown target {text!r}; use one of {', '.join(TARGET_FORMS)}")

    def __str__(self) -> str:
        if self.system == HUGGINGFACE or self.kind == REGISTRATION:
            return f"{self.system}:{self.kind}"
        if self.kind == TAG:
            return f"{self.system}:{TAG}:{self.name}={self.value}"
        return f"{self.system}:{self.kind}:{self.name}"


def mapped_tier(policy: TargetPolicy, target: Target) -> str | None:
    """The tier the policy maps ``target`` to; None for an MLflow alias, stage or tag it does not list (publishing
    there is no release). Raises :class:`ConfusableTarget` for a look-alike of a listed name, :class:`UnknownTarget`
    for a target of no known system."""
    if target.system == HUGGINGFACE and target.kind in HUB_STATES:
        return str(getattr(policy.huggingface, target.kind))
    if target.system != MLFLOW:
        raise UnknownTarget(f"unknown target {str(target)!r}; use one of {', '.join(TARGET_FORMS)}")
    table = policy.mlflow
    if target.kind == REGISTRATION:
        return table.registration
    if target.kind == ALIAS:
        return lookup(table.aliases, target.name, "alias")
    if target.kind == STAGE:
        return lookup(table.stages, target.name, "stage")
    if target.kind == TAG:
        values = _tag_values(table, target.name)
        return lookup(values, target.value, f"value of tag {target.name!r}") if values is not None else None
    raise UnknownTarget(f"unknown target {str(target)!r}; use one of {', '.join(TARGET_FORMS)}")


def _tag_values(table: MlflowTable, key: str) -> Mapping[str, str] | None:
    wanted = normalise(key)
    for name, values in table.tags.items():
        if normalise(name) == wanted:
            return values
    lookup({name: name for name in table.tags}, key, "tag key")  # raises for a look-alike key
    return None


def required_tier(policy: TargetPolicy, target: Target) -> str:
    """The tier publishing to ``target`` needs: the mapped tier, or for an MLflow name the policy does not list, what
    registration needs (such a name is in the registry, so registered). Raises as :func:`mapped_tier`."""
    tier = mapped_tier(policy, target)
    return policy.mlflow.registration if tier is None else tier


def is_mapped(policy: TargetPolicy, target: Target) -> bool:
    """Whether the policy lists ``target`` (or a look-alike of it): taking it away withdraws a release."""
    try:
        return mapped_tier(policy, target) is not None
    except ConfusableTarget:
        return True


def mapped_tag_key(policy: TargetPolicy, key: str) -> bool:
    """Whether ``key`` is (or looks like) a tag key the policy lists."""
    try:
        return _tag_values(policy.mlflow, key) is not None
    except ConfusableTarget:
        return True


def tier_named(tier_names: tuple[str, ...], name: str) -> str:
    """The policy tier called ``name`` (normalised like target names), for places where a person writes a tier
    (git config, ``--tier``). Raises :class:`~tiergate.errors.ConfigError` for no such tier or a look-alike of one."""
    try:
        found = lookup({tier: tier for tier in tier_names}, name, "tier")
    except ConfusableTarget as exc:
        raise ConfigError(str(exc)) from None
    if found is None:
        raise ConfigError(f"unknown tier {name!r}; this policy has {', '.join(tier_names)}")
    return found
