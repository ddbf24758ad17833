"""Configurable named objects (initializers, activations) and their name -> class registries.

:class:`Configurable` is the shared base: a frozen dataclass whose fields are
its parameters, with Keras-style ``get_config`` / ``from_config``. A
:class:`Registry` maps canonical names and aliases to such classes; lookups
of unknown names or parameters raise :class:`InitializerError` with a
'did you mean'.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Generic, TypeVar

from netspec.errors import InitializerError

T = TypeVar("T")


def did_you_mean(word: str, candidates: list[str] | tuple[str, ...]) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate, or ``""``."""
    match = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def check_number(name: str, value: Any, *, positive: bool = False) -> None:
    """Raise unless ``value`` is a finite real number (and > 0 when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InitializerError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise InitializerError(f"{name} must be > 0, got {value!r}")


def check_choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    """Raise unless ``value`` is one of ``options`` (with a 'did you mean')."""
    if value not in options:
        hint = did_you_mean(str(value), options)
        raise InitializerError(f"{name} must be one of {', '.join(options)}, got {value!r}{hint}")


@dataclass(frozen=True)
class Configurable:
    """Base of initializers and activations: parameters are the dataclass fields."""

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Allowed values of string parameters (published in the JSON Schema)."""

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        return cls(**{k: v for k, v in config.items() if k != "name"})

    @classmethod
    def parameters(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def parameter_defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in fields(cls)}


class Registry(Generic[T]):
    """Canonical names and aliases of one kind of configurable object."""

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, Any] = {}
        self._aliases: dict[str, str] = {}
        self.version = 0
        """Bumped by every registration: caches built from the registry key on it."""

    def register(self, cls: T) -> T:
        """Register ``cls`` under ``cls.name`` and ``cls.aliases`` (a decorator)."""
        name = cls.name  # type: ignore[attr-defined]
        for key in (name, *cls.aliases):  # type: ignore[attr-defined]
            owner = self._classes.get(self._aliases.get(key, ""))
            if owner is not None and owner is not cls:
                raise InitializerError(f"{self.kind} name {key!r} is already registered")
            self._aliases[key] = name
        self._classes[name] = cls
        self.version += 1
        return cls

    def canonical(self, name: str) -> str:
        if not isinstance(name, str) or name not in self._aliases:
            hint = did_you_mean(str(name), self.names())
            raise InitializerError(f"unknown {self.kind} {name!r}{hint}")
        return self._aliases[name]

    def __getitem__(self, name: str) -> Any:
        return self._classes[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        return name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def names(self) -> list[str]:
        """Every accepted name, aliases included, sorted."""
        return sorted(self._aliases)

    def aliases_of(self, name: str) -> list[str]:
        return sorted(k for k, v in self._aliases.items() if v == name and k != name)

    def build(self, spec: str | dict[str, Any]) -> Any:
        """An instance from a name or a ``{name: ..., **params}`` mapping."""
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict) or "name" not in spec:
            raise InitializerError(f"a {self.kind} is a name or a mapping with 'name', got {spec!r}")
        cls = self[spec["name"]]
        allowed = cls.parameters()
        for key in spec:
            if key != "name" and key not in allowed:
                hint = did_you_mean(key, allowed)
                known = ", ".join(allowed) or "none"
                raise InitializerError(f"{self.kind} {cls.name!r} has no parameter {key!r}{hint}; parameters: {known}")
        try:
            return cls.from_config(spec)
        except TypeError as exc:  # a wrongly typed value the class did not check itself
            raise InitializerError(f"{self.kind} {cls.name!r}: {exc}") from None


F = TypeVar("F")


def registrar(table: dict[str, F]) -> Callable[..., Callable[[F], F]]:
    """A decorator factory filling ``table``: ``@by_type("dense", "conv2d")`` registers a function under
    each name (the exporters' per-layer-type converter tables)."""

    def by_type(*names: str) -> Callable[[F], F]:
        def register(fn: F) -> F:
            for name in names:
                table[name] = fn
            return fn

        return register

    return by_type
