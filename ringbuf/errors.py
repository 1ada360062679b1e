"""The ringbuf exception hierarchy.

Every error a user can cause or meet is one of these, with a message that names the ring,
file, key or value involved. Command-line tools turn them into one line and a non-zero exit.
"""

from __future__ import annotations


class RingBufError(Exception):
    """Base class of every ringbuf error."""


class HeaderError(RingBufError, ValueError):
    """An ASCII header (or config file) is malformed, or a key is missing or has a bad value."""


class RingNotFound(RingBufError):
    """No ring exists under the key."""


class RingExists(RingBufError):
    """A ring already exists under the key."""


class RingLayoutMismatch(RingBufError):
    """The ring exists but its layout or protocol version is not the one expected."""


class RingPermissionError(RingBufError, PermissionError):
    """The operating system refused access to a ring's shared memory or semaphores."""


class RingNoSpace(RingBufError):
    """There is not enough free space in /dev/shm for the ring asked for."""


class RingBusy(RingBufError):
    """The writer slot is taken by a live process, or every reader slot is in use."""


class Timeout(RingBufError, TimeoutError):
    """A blocking call did not complete within its timeout."""


class Interrupted(RingBufError):
    """A blocking call was abandoned because its stop event was set."""


class EndOfData(RingBufError):
    """The current transfer has ended: there are no more blocks to read."""


class WriterDied(EndOfData):
    """The transfer ended because its writer process died (an aborted end of data)."""


class PairOutOfStep(RingBufError):
    """The two rings of a pair ended a transfer at different blocks (one ended first)."""


class Overwritten(RingBufError):
    """A viewer's block was overwritten by the writer while the viewer was reading it."""

    def __init__(self, message: str, missed_blocks: int = 0) -> None:
        super().__init__(message)
        self.missed_blocks = missed_blocks


class DadaFileError(RingBufError):
    """A .dada file (or a data/weights pair of them) is unusable."""
