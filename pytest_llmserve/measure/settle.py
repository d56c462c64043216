"""Read until two readings in a row agree: a server counts work a moment after it.

A server may record a request's metrics off the response path (vLLM does), so a
scrape taken the instant a run ends (or starts, right after an earlier test) can
miss counts that are about to land. Every check that reads counter deltas waits for
them to be still first; this is the one loop they share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until_still(
    read: Callable[[], T], same: Callable[[T, T], bool], max_s: float, poll_s: float
) -> tuple[T, bool]:
    """The first reading ``same`` finds equal to the one before, and True.

    ``same(earlier, now)``; past ``max_s``, the last reading and False.
    """
    deadline = time.monotonic() + max_s
    last = read()
    while True:
        time.sleep(poll_s)
        now = read()
        if same(last, now):
            return now, True
        if time.monotonic() > deadline:
            return now, False
        last = now
