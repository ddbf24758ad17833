"""Custom initializers and activations from trusted Python code.

Two ways, both explicit; a spec can only *name* what is registered, it never
imports anything:

* call :func:`register_initializer` / :func:`register_activation` on a class
  (a frozen dataclass subclassing :class:`~netspec.init.initializers.Initializer`
  or :class:`~netspec.nn.activations.Activation`) from your own code;
* publish it in an installed package under the entry-point groups
  ``netspec.init.initializers`` / ``netspec.nn.activations``; they are loaded the
  first time a name is not found (and by ``netspec schema``).
"""

from __future__ import annotations

from netspec.errors import InitializerError
from netspec.init.initializers import INITIALIZERS, Initializer
from netspec.nn.activations import ACTIVATIONS, Activation

_loaded = False


def register_initializer(cls: type[Initializer]) -> type[Initializer]:
    """Register a custom initializer class under its ``name`` (a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Initializer)) or not cls.name:
        raise InitializerError(f"{cls!r} is not an Initializer subclass with a name")
    return INITIALIZERS.register(cls)


def register_activation(cls: type[Activation]) -> type[Activation]:
    """Register a custom activation class under its ``name`` (a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Activation)) or not cls.name:
        raise InitializerError(f"{cls!r} is not an Activation subclass with a name")
    return ACTIVATIONS.register(cls)


def load_plugins() -> bool:
    """Register every installed entry point of the two groups, once; True if any was new.

    Called lazily — by ``netspec schema``, and when a spec or a lookup names
    something the built-in registries do not know — so start-up stays fast.
    """
    global _loaded
    if _loaded:
        return False
    _loaded = True
    from importlib.metadata import entry_points

    before = (INITIALIZERS.version, ACTIVATIONS.version)
    for group, register in (
        ("netspec.init.initializers", register_initializer),
        ("netspec.nn.activations", register_activation),
    ):
        for ep in entry_points(group=group):
            try:
                register(ep.load())
            except Exception as exc:  # a broken plugin is reported by name, not as a traceback
                raise InitializerError(f"plugin {ep.name!r} ({ep.value}) in {group} failed to load: {exc}") from None
    return (INITIALIZERS.version, ACTIVATIONS.version) != before
