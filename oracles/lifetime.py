"""Processes that end with the one that started them.

Worker processes (oracle evaluation forks them, the runner spawns them) must not outlive
the run: a ``kill -9`` of fpharness would otherwise leave them computing, holding memory
and the cache, for as long as their work lasts. Here, at the bottom of the layers, so the
oracle evaluator and the harness's workers share one way of doing it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent"]


def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` ends, ``kill -9`` included: the kernel sends
    SIGKILL (Linux ``PR_SET_PDEATHSIG``, which works while the GIL is held), and a watchdog
    thread checks the parent every second where that is missing."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="fpharness-watchdog", daemon=True).start()
