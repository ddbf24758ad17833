"""Name -> class registries for initializers and activations.

A registry maps canonical names and aliases to classes that have a ``name``,
``aliases``, ``parameters()`` and ``from_config``. Lookups of unknown names
raise :class:`InitializerError` with a 'did you mean'.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from netspec.errors import InitializerError

T = TypeVar("T")


def did_you_mean(word: str, candidates: list[str] | tuple[str, ...]) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate, or ``""``."""
    match = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


class Registry(Generic[T]):
    """Canonical names and aliases of one kind of configurable object."""

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, Any] = {}
        self._aliases: dict[str, str] = {}

    def register(self, cls: T) -> T:
        """Register ``cls`` under ``cls.name`` and ``cls.aliases`` (a decorator)."""
        name = cls.name  # type: ignore[attr-defined]
        for key in (name, *cls.aliases):  # type: ignore[attr-defined]
            owner = self._classes.get(self._aliases.get(key, ""))
            if owner is not None and owner is not cls:
                raise InitializerError(f"{self.kind} name {key!r} is already registered")
            self._aliases[key] = name
        self._classes[name] = cls
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
