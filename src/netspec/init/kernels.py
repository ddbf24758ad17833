"""Which implementation runs the block streams' hot loops: the compiled kernels or NumPy.

``netspec.init._kernels`` (C, ``_kernels.c``, built at install when a C compiler is present) draws
PCG64's words itself, from the bit generator's public state, and computes the same IEEE operations as
the NumPy reference transforms, value by value, in the same order, so the bytes do not depend on which
one runs (:func:`call` hands the state over and back). The kernels are used only after a self-check:
once per process, before first use, each kernel and its NumPy reference fill the same arrays from
equally seeded generators (odd and even lengths, every transform; the modules with kernels
``kernel_checks()``, see :data:`PROVIDERS`) and must agree bit for bit, values and the generator's state after; if
they ever differ (a miscompiled build, say), netspec uses NumPy and :func:`status` says why.

``NETSPEC_KERNELS=numpy`` forces the NumPy transforms (for comparison, or to rule the kernels out);
``NETSPEC_KERNELS=compiled`` makes a missing or failing extension an error instead of a fallback.
"""

from __future__ import annotations

import importlib
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

API = 1
"""The interface version of the compiled module this code expects (``_kernels.API``): a stale build left
from another netspec version (an editable install after ``git pull``) is not used."""

PROVIDERS = ("netspec.init.streams", "netspec.init.ziggurat")
"""The modules whose transforms have kernels; each has ``kernel_checks()``, the self-checks run before any
kernel is used."""

Check = tuple[str, Callable[[ModuleType | None], bytes]]
"""A self-check: its name, and a run that gives bytes from the kernel module or from NumPy (None)."""


@dataclass
class _Selection:
    """What runs in this process (guarded by ``_lock``)."""

    choice: str | None = None
    """Set by :func:`use`; None: from the environment."""
    checked: bool = False
    module: ModuleType | None = None
    status: str = ""


_lock = threading.Lock()
_selection = _Selection()


def native() -> ModuleType | None:
    """The checked compiled kernels, or None when the NumPy transforms are to run."""
    sel = _selection
    if not sel.checked:
        with _lock:
            _select(sel)
    return sel.module


def usable(native: ModuleType | None, bitgen: object, out: np.ndarray) -> ModuleType | None:
    """``native`` where a kernel can fill ``out`` from ``bitgen``: a plain PCG64 and a C-contiguous array in
    native byte order; None (the NumPy transforms, same bytes) otherwise."""
    if native is None or type(bitgen) is not np.random.PCG64:
        return None
    return native if out.flags.c_contiguous and out.flags.writeable and out.dtype.isnative else None


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
    with bitgen.lock:  # as random_raw: a generator shared by threads gives each word once
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
    """Load the kernels and run every provider's self-checks (under the lock), once. A mismatch turns the
    kernels off, or is an error when they were required (``compiled``)."""
    if sel.checked:
        return
    choice = sel.choice or _choice()
    module, sel.status = _load(choice)
    sel.module = module
    mismatch = ""
    if module is not None:
        for name in PROVIDERS:
            mismatch = mismatch or _self_check(module, importlib.import_module(name).kernel_checks())
    if mismatch:
        sel.module = None
        sel.status = f"numpy (the compiled kernels disagree with the NumPy reference on {mismatch}; disabled)"
        if choice == "compiled":
            raise InitializerError(f"{ENV}=compiled, but the compiled kernels disagree with NumPy: {mismatch}")
    sel.checked = True


def _load(choice: str) -> tuple[ModuleType | None, str]:
    if choice == "numpy":
        return None, f"numpy ({ENV}=numpy)"
    problem = ""
    try:
        from netspec.init import _kernels
    except ImportError as exc:
        problem = f"the compiled kernels are not installed or do not load ({exc}); no C compiler at install time?"
    else:
        if getattr(_kernels, "API", None) != API:
            problem = (f"the compiled kernels are from another netspec version (API {getattr(_kernels, 'API', None)}, "
                       f"expected {API}); reinstall netspec to rebuild them")  # fmt: skip
    if problem:
        if choice == "compiled":
            raise InitializerError(f"{ENV}=compiled, but {problem}")
        return None, f"numpy ({problem})"
    return _kernels, "compiled (C kernels, checked against the NumPy reference)"


def _self_check(module: ModuleType, checks: list[Check]) -> str:
    """The first check whose compiled and NumPy results differ (or whose kernel raises), or ''."""
    for name, run in checks:
        try:
            if run(module) != run(None):
                return name
        except Exception as exc:  # a stale or broken build: not used
            return f"{name} (raised {type(exc).__name__}: {exc})"
    return ""
