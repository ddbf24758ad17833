"""Exception types shared by the whole package.

Two kinds of failure reach users: an :class:`InitializerError` for a bad
initializer or activation parameter (raised by the library API), and a
:class:`SpecError` that carries one or more located :class:`Diagnostic` records
for a bad spec file (raised by the loader, the validator and the compiler).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class NetspecError(Exception):
    """Base class of every error netspec raises on purpose."""


class UsageError(Exception):
    """The command line is wrong (bad options or arguments): the CLI exits 2."""


class WeightsError(NetspecError, ValueError):
    """A weights file cannot be read or written as asked, or does not match its spec (also
    ``netspec.io.weights.WeightsError``)."""


class InitializerError(NetspecError, ValueError):
    """An initializer, activation or fan computation got an invalid parameter.

    The message always names the parameter and the offending value.
    """


@dataclass(frozen=True)
class Diagnostic:
    """One located problem in a spec file.

    ``line`` and ``column`` are 1-based; ``path`` is the JSON path inside the
    document (``layers[2].units``), empty for the document itself.
    """

    message: str
    line: int = 0
    column: int = 0
    path: str = ""
    hint: str = ""
    severity: str = "error"
    source: str = ""
    """The file the position is in, when not the spec's own (an imported block library)."""
    text: str = ""
    """That file's text (for the code frame)."""

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.source, self.line, self.column, self.message)


@dataclass
class SpecError(NetspecError):
    """A spec file is invalid; ``diagnostics`` lists every problem found."""

    source: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    text: str = ""

    def __post_init__(self) -> None:
        self.diagnostics.sort(key=lambda d: d.sort_key)
        Exception.__init__(self, self.__str__())

    def __str__(self) -> str:
        from netspec.spec.diagnostics import render

        return render(self)
