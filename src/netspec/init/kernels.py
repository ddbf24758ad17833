"""Which implementation runs the block streams' hot loops: the compiled kernels or NumPy.

``netspec.init._kernels`` (C, ``_kernels.c``, built at install when a C compiler is present) draws
PCG64's words itself, from the bit generator's public state, and computes the same IEEE operations as
the NumPy reference transforms, value by value, in the same order, so the bytes do not depend on which
one runs (:func:`call` hands the state over and back). The kernels are used only after a self-check:
once per process, before first use, each kernel and its NumPy reference fill the same arrays from
equally seeded generators (odd and even lengths, every transform; the modules with kernels
:func:`register` these checks) and must agree bit for bit, values and the generator's state after; if
they ever differ (a miscompiled build, say), netspec uses NumPy and :func:`status` says why.

``NETSPEC_KERNELS=numpy`` forces the NumPy transforms (for comparison, or to rule the kernels out);
``NETSPEC_KERNELS=compiled`` makes a missing or failing extension an error instead of a fallback.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from netspec.errors import InitializerError

ENV = "NETSPEC_KERNELS"
CHOICES = ("auto", "compiled", "numpy")

MASK64 = (1 << 64) - 1

Check = tuple[str, Callable[[ModuleType | None], bytes]]
"""A self-check: its name, and a run that gives bytes from the kernel module or from NumPy (None)."""

@dataclass
class _Selection:
    """What runs in this process (guarded by ``_lock``)."""

    choice: str | None = None
    """Set by :func:`use`; None: from the environment."""
    loaded: bool = False
    module: ModuleType | None = None
    status: str = ""
    checked: int = 0
    """How many registered check providers the module has passed."""


_lock = threading.Lock()
_selection = _Selection()
_providers: list[Callable[[], list[Check]]] = []


def register(provider: Callable[[], list[Check]]) -> None:
    """Add the self-checks of a module with kernels (``streams``, ``ziggurat`` register theirs at import):
    no kernel is used before every registered check has passed."""
    with _lock:
        _providers.append(provider)


def native() -> ModuleType | None:
    """The checked compiled kernels, or None when the NumPy transforms are to run."""
    sel = _selection
    if not sel.loaded or sel.checked != len(_providers):
        with _lock:
            _select(sel)
    return sel.module


def status() -> str:
    """One line: which transforms run, and why (for ``netspec --version`` and the benchmarks)."""
    native()
    return _selection.status


def use(choice: str | None) -> None:
    """Select the transforms for this process (``auto``, ``compiled``, ``numpy``; None: from the environment)
    and check them now. Tests use it to run both implementations; the bytes are the same either way."""
    global _selection
    if choice is not None and choice not in CHOICES:
        raise ValueError(f"kernels: {choice!r} is not one of {CHOICES}")
    with _lock:
        _selection = _Selection(choice=choice)
        if choice is not None:
            _select(_selection)


def call(bitgen: np.random.PCG64, kernel: Callable[..., tuple], *args: object) -> object:
    """Run ``kernel(state, *args)`` from ``bitgen``'s state, then move ``bitgen`` past the words the kernel
    drew (as if NumPy's ``random_raw`` had drawn them). A kernel returns ``(result, new state)``;
    ``result`` is returned."""
    state = bitgen.state
    pcg = state["state"]
    s, inc = int(pcg["state"]), int(pcg["inc"])
    result, (hi, lo) = kernel((s >> 64, s & MASK64, inc >> 64, inc & MASK64), *args)
    pcg["state"] = (hi << 64) | lo
    bitgen.state = state
    return result


def _choice() -> str:
    choice = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise InitializerError(f"{ENV}={choice!r}: expected one of {', '.join(CHOICES)}")
    return choice


def _select(sel: _Selection) -> None:
    """Load the kernels if not yet done, then run the checks registered since (under the lock). A mismatch
    turns the kernels off, or is an error when they were required (``compiled``)."""
    choice = sel.choice or _choice()
    if not sel.loaded:
        sel.module, sel.status = _load(choice)
        sel.loaded = True
    for provider in _providers[sel.checked :]:
        mismatch = _self_check(sel.module, provider()) if sel.module is not None else ""
        if mismatch:
            sel.module = None
            sel.status = f"numpy (the compiled kernels disagree with the NumPy reference on {mismatch}; disabled)"
            if choice == "compiled":
                sel.loaded = False
                raise InitializerError(f"{ENV}=compiled, but the compiled kernels disagree with NumPy: {mismatch}")
    sel.checked = len(_providers)


def _load(choice: str) -> tuple[ModuleType | None, str]:
    if choice == "numpy":
        return None, f"numpy ({ENV}=numpy)"
    try:
        from netspec.init import _kernels
    except ImportError as exc:
        if choice == "compiled":
            raise InitializerError(f"{ENV}=compiled, but the compiled kernels are not installed ({exc})") from None
        return None, "numpy (the compiled kernels are not installed: no C compiler at install time?)"
    return _kernels, "compiled (C kernels, checked against the NumPy reference)"


def _self_check(module: ModuleType, checks: list[Check]) -> str:
    """The first check whose compiled and NumPy results differ, or ''."""
    for name, run in checks:
        if run(module) != run(None):
            return name
    return ""
