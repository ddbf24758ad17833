"""Custom initializers and activations from trusted Python code.

Two ways, both explicit; a spec can only *name* what is registered, it never
imports anything:

* call :func:`register_initializer` / :func:`register_activation` on a class
  (a frozen dataclass subclassing :class:`Initializer` or :class:`Activation`,
  both importable from here with the declared distributions and :class:`Fans`)
  from your own code;
* publish it in an installed package under the entry-point groups
  ``netspec.initializers`` / ``netspec.activations``; they are discovered
  once, at the entry points: the ``netspec`` command, :func:`netspec.load`
  / :func:`netspec.loads`, or an explicit :func:`load_plugins` call.
"""

from __future__ import annotations

from netspec.errors import InitializerError
from netspec.init.distributions import Constant, Distribution, Normal, TruncatedNormal, Uniform
from netspec.init.fans import Fans
from netspec.init.initializers import INITIALIZERS, Initializer
from netspec.nn.activations import ACTIVATIONS, Activation

__all__ = [
    "Activation",
    "Constant",
    "Distribution",
    "Fans",
    "Initializer",
    "Normal",
    "TruncatedNormal",
    "Uniform",
    "load_plugins",
    "register_activation",
    "register_initializer",
]

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
    """Register every installed entry point of the two groups, once per process; True if any was new.

    Raises:
        InitializerError: a plugin failed to import or is not a valid class (named in the message).
    """
    global _loaded
    if _loaded:
        return False
    _loaded = True
    from importlib.metadata import entry_points

    before = (INITIALIZERS.version, ACTIVATIONS.version)
    for group, register in (
        ("netspec.initializers", register_initializer),
        ("netspec.activations", register_activation),
    ):
        for ep in entry_points(group=group):
            try:
                register(ep.load())
            except Exception as exc:  # a broken plugin is reported by name, not as a traceback
                raise InitializerError(f"plugin {ep.name!r} ({ep.value}) in {group} failed to load: {exc}") from None
    return (INITIALIZERS.version, ACTIVATIONS.version) != before
