"""The public test kit: Hypothesis strategies and property checks for initializers and specs.

A stable import path for :mod:`netspec.check.kit`, where the kit lives (see
that module for what each function proves). Needs the ``test`` extra.
"""

from netspec.check.kit import *  # noqa: F403
from netspec.check.kit import __all__  # noqa: F401
