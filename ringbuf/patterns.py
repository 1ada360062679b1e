"""Test-data patterns for the junk writer, cheap enough to write at memory speed."""

from __future__ import annotations

import numpy as np

PATTERNS = ("zeros", "ramp", "noise")


#: the largest source kept: fills are copies of at most this many bytes from a source that
#: stays in cache (like dada_junkdb's 4 MiB), however big the block
CHUNK = 4 << 20


class PatternSource:
    """Fills blocks with a pattern; ``ramp`` is byte ``offset % 256``, so readers can verify it.

    ``noise`` repeats every 4 MiB (``CHUNK``) within a block.
    """

    def __init__(self, pattern: str, block_nbytes: int, seed: int = 0) -> None:
        if pattern not in PATTERNS:
            raise ValueError(f"pattern {pattern!r}: choose one of {', '.join(PATTERNS)}")
        self.pattern = pattern
        self._chunk = min(block_nbytes, CHUNK)
        self._last: tuple[int, int, np.ndarray] = (-1, -1, np.zeros(0, np.uint8))
        span = self._chunk + 256
        if pattern == "zeros":
            self._source = np.zeros(span, np.uint8)
        elif pattern == "ramp":
            self._source = (np.arange(span) % 256).astype(np.uint8)
        else:
            self._source = np.random.default_rng(seed).integers(0, 256, span, dtype=np.uint8)

    def fill(self, out: np.ndarray, obs_offset: int) -> None:
        """Fill ``out`` with the pattern as it stands at byte ``obs_offset`` of the stream."""
        start = obs_offset % 256 if self.pattern == "ramp" else 0
        size, chunk, source = len(out), self._chunk, self._source
        if size <= chunk:
            if self._last[0] != start or self._last[1] != size:  # the same slice every block
                self._last = (start, size, source[start : start + size])
            out[:] = self._last[2]
            return
        for pos in range(0, size, chunk):  # CHUNK is a multiple of 256: the ramp continues
            take = min(chunk, size - pos)
            out[pos : pos + take] = source[start : start + take]

