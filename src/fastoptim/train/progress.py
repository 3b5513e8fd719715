"""A progress bar per training run: tqdm when installed, else a plain text bar (on stderr)."""
from __future__ import annotations

import sys
import time

__all__ = ["progress"]


class _PlainBar:
    """``[#####.....] 120/500 epochs  cost 0.4321``, redrawn at most ten times a second."""

    def __init__(self, total: int, desc: str, stream=None) -> None:
        self.total, self.desc, self.n, self.postfix = total, desc, 0, ""
        self.stream = stream or sys.stderr
        self._last = 0.0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.n >= self.total or now - self._last >= 0.1:
            self._last = now
            self._draw()

    def set_postfix_str(self, text: str, refresh: bool = False) -> None:
        self.postfix = text

    def _draw(self) -> None:
        width = 30
        done = width * self.n // max(self.total, 1)
        self.stream.write(f"\r{self.desc:<9} [{'#' * done}{'.' * (width - done)}] "
                          f"{self.n}/{self.total} epochs  {self.postfix}")
        self.stream.flush()

    def close(self) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = False) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int, desc: str, enabled: bool = True):
    """A bar with ``update(n)``, ``set_postfix_str(text)`` and ``close()``."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainBar(total, desc)
    return tqdm(total=total, desc=f"{desc:<9}", unit="epoch", file=sys.stderr,
                dynamic_ncols=True, mininterval=0.1)
