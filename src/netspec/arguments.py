"""Value types of the command line's options (argparse ``type=`` functions shared by every command)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from netspec.errors import UsageError


def int_in(low: int, high: int, what: str = "value") -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{what} {value} must be >= {low}" + (f" and <= {high}" if high < 2**63 else "")
            )
        return value

    return parse


positive_int = int_in(1, 2**63, "value")
seed = int_in(0, 2**63 - 1, "seed")
"""A seed: 0 <= seed < 2^63, as the spec's ``seed``."""


def alpha(text: str) -> float:
    """``--alpha``: a false-alarm probability, 0 < alpha < 1 (else a usage error, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"alpha must be in (0, 1), got {value}")
    return value


def add_max_params(parser: argparse.ArgumentParser) -> None:
    """``--max-params``: the largest network a command compiles (refused before anything is allocated)."""
    from netspec.spec.compiler import DEFAULT_MAX_PARAMS

    parser.add_argument("--max-params", type=positive_int, default=DEFAULT_MAX_PARAMS, metavar="N",
                        help=f"refuse networks with more parameters (default {DEFAULT_MAX_PARAMS:,})")  # fmt: skip


def add_dtype(parser: argparse.ArgumentParser, what: str = "override the spec's dtype") -> None:
    """``--dtype``: the parameters' precision instead of the spec's (the half types round its float32 values)."""
    from netspec.init.precision import PRECISIONS

    parser.add_argument("--dtype", choices=PRECISIONS, help=f"{what} ({', '.join(PRECISIONS)}; bfloat16 and "
                        "float16 are the float32 values rounded to nearest even)")  # fmt: skip


def output_path(path: str, suffixes: tuple[str, ...], what: str = "the output") -> str:
    """``path`` if its suffix is one of ``suffixes`` and its folder exists, else a usage error (exit 2)
    before any work: ``-o`` checks shared by the commands that write a file."""
    if os.path.splitext(path)[1].lower() not in suffixes:
        raise UsageError(f"{path}: {what} is {' or '.join(suffixes)} (the format comes from the suffix)")
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise UsageError(f"{path}: the folder does not exist")
    return path
