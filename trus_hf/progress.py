"""Progress output that suits where it goes: tqdm's live bar on a terminal; on a log file, a pipe, CI or a cluster
job, one line every ``interval`` seconds (and at the end) with the count, the rate and the time left, never a
carriage-return redraw. The other libraries' bars (datasets, transformers) follow the same choice.

Example:
    >>> from trus_hf.progress import progress
    >>> sum(progress(range(3), desc="counting", enabled=False))
    3
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["LineProgress", "interactive", "progress", "quiet_library_bars"]

T = TypeVar("T")
logger = logging.getLogger("trus_hf.progress")


def interactive(stream: Any = None) -> bool:
    """Whether progress goes to a terminal (stderr by default)."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class LineProgress:
    """Iterate and log a line at most every ``interval`` seconds: ``desc: n/total (p%), rate/s, left h:mm:ss``."""

    def __init__(self, iterable: Iterable[T], total: int | None, desc: str, interval: float, unit: str):
        self.iterable, self.total, self.desc, self.interval, self.unit = iterable, total, desc, interval, unit
        self.postfix = ""

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def _line(self, n: int, started: float) -> str:
        elapsed = max(time.perf_counter() - started, 1e-9)
        rate = n / elapsed
        parts = [
            f"{self.desc}: {n}" + (f"/{self.total} ({100 * n / self.total:.0f}%)" if self.total else ""),
            f"{rate:.2f} {self.unit}/s",
        ]
        if self.total and rate > 0:
            parts.append(f"left {_duration((self.total - n) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def __iter__(self) -> Iterator[T]:
        started = last = time.perf_counter()
        n = 0
        for item in self.iterable:
            yield item
            n += 1
            now = time.perf_counter()
            if now - last >= self.interval:
                logger.info(self._line(n, started))
                last = now
        logger.info(self._line(n, started) + f", done in {_duration(time.perf_counter() - started)}")


def progress(
    iterable: Iterable[T],
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    interval: float = 30.0,
    enabled: bool = True,
    leave: bool = False,
) -> Any:
    """A live tqdm bar on a terminal, a `LineProgress` otherwise, or the plain iterable when not ``enabled``."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not enabled:
        return iterable
    if interactive():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
    return LineProgress(iterable, total, desc, interval, unit)


def quiet_library_bars() -> None:
    """Away from a terminal, turn off the redrawing bars of datasets and transformers (our own lines stay)."""
    if interactive():
        return
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
