"""One rate limiter for every writer that paces itself (``ringbuf play``, ``ringbuf junk``)."""

from __future__ import annotations

import threading
import time


class Pacer:
    """Sleeps so that no more than ``bytes_per_s`` bytes go out per second (None: no limit).

    Call :meth:`account` after each block; it sleeps until the bytes so far are due. A set
    ``stop`` event cuts the sleep short.
    """

    def __init__(self, bytes_per_s: float | None, stop: threading.Event | None = None) -> None:
        self.bytes_per_s = bytes_per_s
        self.stop = stop
        self.start = time.monotonic()
        self.sent = 0

    def account(self, nbytes: int) -> bool:
        """Count ``nbytes`` sent and wait until they are due; False if ``stop`` was set."""
        self.sent += nbytes
        if not self.bytes_per_s:
            return True
        ahead = self.sent / self.bytes_per_s - (time.monotonic() - self.start)
        if ahead <= 0:
            return True
        if self.stop is not None:
            return not self.stop.wait(ahead)
        time.sleep(ahead)
        return True
