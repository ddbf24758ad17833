"""A progress bar on stderr for builds that take more than about a second, only on a terminal."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class Progress:
    """Counts parameters done; draws after ``delay`` seconds if ``stream`` is a terminal."""

    def __init__(self, total: int, enabled: bool = True, stream: TextIO | None = None, delay: float = 1.0):
        self.total = max(1, total)
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.start = time.monotonic()
        self.delay = delay
        self.drawn = False

    def advance(self, n: int) -> None:
        self.done += n
        if self.enabled and time.monotonic() - self.start >= self.delay:
            self.draw()

    def draw(self) -> None:
        width = 30
        frac = min(1.0, self.done / self.total)
        bar = "#" * int(frac * width)
        self.stream.write(f"\rinitializing [{bar:<{width}}] {frac:6.1%} of {self.total:,} parameters")
        self.stream.flush()
        self.drawn = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.drawn:
            if exc_type is None:
                self.draw()
            self.stream.write("\n")
            self.stream.flush()
