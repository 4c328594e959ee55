"""A progress bar on stderr for anything that takes more than a second.

Off when stderr is not a terminal (CI logs stay clean) or when the user asks for quiet.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress"]


class Progress:
    """A thin wrapper around rich's progress bar that appears only after ``delay`` seconds."""

    def __init__(self, label: str = "cells", *, enabled: bool | None = None, delay: float = 1.0) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.delay = delay
        self._bar: Any = None
        self._task: Any = None
        self._total = 0
        self._done = 0
        self._text = ""
        self._started = 0.0

    def start(self, total: int) -> None:
        self._total, self._done, self._started = total, 0, time.monotonic()

    def _ensure(self) -> None:
        if self._bar is not None or not self.enabled:
            return
        if time.monotonic() - self._started < self.delay:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            # cell ids and input specs are shown verbatim: `random:100:0` is no emoji code
            TextColumn("{task.fields[label]}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.description}", markup=False),
            console=Console(stderr=True, emoji=False), transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self._text, total=self._total, completed=self._done, label=self.label)

    def describe(self, text: str) -> None:
        self._text = text
        self._ensure()
        if self._bar is not None:
            self._bar.update(self._task, description=text)

    def advance(self, n: int = 1) -> None:
        self._done += n
        self._ensure()
        if self._bar is not None:
            self._bar.update(self._task, completed=self._done)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
