"""Which implementation runs the block streams' hot loops: the compiled kernels or NumPy.

``netspec.init._kernels`` (C, ``_kernels.c``, built at install when a C compiler is present) draws
PCG64's words itself, from the bit generator's public state, and computes the same IEEE operations as
the NumPy reference transforms, value by value, in the same order, so the bytes do not depend on which
one runs (:func:`call` hands the state over and back). The kernels are used only after a self-check:
once per process, before first use, each kernel and its NumPy reference fill the same arrays from
equally seeded generators (odd and even lengths, every transform) and must agree bit for bit, values
and the generator's state after; if they ever differ (a miscompiled build, say), netspec uses NumPy
and :func:`status` says why.

``NETSPEC_KERNELS=numpy`` forces the NumPy transforms (for comparison, or to rule the kernels out);
``NETSPEC_KERNELS=compiled`` makes a missing or failing extension an error instead of a fallback.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from types import ModuleType

import numpy as np

from netspec.errors import InitializerError

ENV = "NETSPEC_KERNELS"
CHOICES = ("auto", "compiled", "numpy")

MASK64 = (1 << 64) - 1

_lock = threading.Lock()
_state: dict[str, object] = {}


def native() -> ModuleType | None:
    """The checked compiled kernels, or None when the NumPy transforms are to run."""
    if "module" not in _state:
        with _lock:
            if "module" not in _state:
                _state["module"], _state["status"] = _load(_choice())
    module = _state["module"]
    return module if isinstance(module, ModuleType) else None


def status() -> str:
    """One line: which transforms run, and why (for ``netspec --version`` and the benchmarks)."""
    native()
    return str(_state["status"])


def use(choice: str | None) -> None:
    """Select the transforms for this process (``auto``, ``compiled``, ``numpy``; None: from the environment).
    Tests use it to run both implementations; the bytes are the same either way."""
    if choice is not None and choice not in CHOICES:
        raise ValueError(f"kernels: {choice!r} is not one of {CHOICES}")
    with _lock:
        _state.clear()
        if choice is not None:
            _state["module"], _state["status"] = _load(choice)


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


def _load(choice: str) -> tuple[ModuleType | None, str]:
    if choice == "numpy":
        return None, f"numpy ({ENV}=numpy)"
    try:
        from netspec.init import _kernels
    except ImportError as exc:
        if choice == "compiled":
            raise InitializerError(f"{ENV}=compiled, but the compiled kernels are not installed ({exc})") from None
        return None, "numpy (the compiled kernels are not installed: no C compiler at install time?)"
    mismatch = _self_check(_kernels)
    if mismatch:
        if choice == "compiled":
            raise InitializerError(f"{ENV}=compiled, but the compiled kernels disagree with NumPy: {mismatch}")
        return None, f"numpy (the compiled kernels disagree with the NumPy reference on {mismatch}; disabled)"
    return _kernels, "compiled (C kernels, checked against the NumPy reference)"


def _self_check(module: ModuleType) -> str:
    """The first transform whose compiled and NumPy results differ on the check words, or ''."""
    from netspec.init import streams, ziggurat

    for name, run in (*streams.kernel_checks(), *ziggurat.kernel_checks()):
        if run(module) != run(None):
            return name
    return ""
