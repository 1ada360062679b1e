"""Test-data patterns for the junk writer, cheap enough to write at memory speed."""

from __future__ import annotations

import numpy as np

PATTERNS = ("zeros", "ramp", "noise")


class PatternSource:
    """Fills blocks with a pattern; ``ramp`` is byte ``offset % 256``, so readers can verify it."""

    def __init__(self, pattern: str, block_nbytes: int, seed: int = 0) -> None:
        if pattern not in PATTERNS:
            raise ValueError(f"pattern {pattern!r}: choose one of {', '.join(PATTERNS)}")
        self.pattern = pattern
        span = block_nbytes + 256
        if pattern == "zeros":
            self._source = np.zeros(span, np.uint8)
        elif pattern == "ramp":
            self._source = (np.arange(span) % 256).astype(np.uint8)
        else:
            self._source = np.random.default_rng(seed).integers(0, 256, span, dtype=np.uint8)

    def fill(self, out: np.ndarray, obs_offset: int) -> None:
        """Fill ``out`` with the pattern as it stands at byte ``obs_offset`` of the stream."""
        start = obs_offset % 256 if self.pattern == "ramp" else 0
        out[:] = self._source[start : start + len(out)]

