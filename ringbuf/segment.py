"""A segment: one data block and the weights block that covers the same span (SKA PST).

Ring-pair readers and viewers, and the ``.dada`` file segment producer, all yield
:class:`Segment` objects, so statistics code can take either without knowing which.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ringbuf.header import DadaHeader


@dataclass(frozen=True)
class Segment:
    """Views of a data block and its weights block (uint8, read-only unless being written).

    ``obs_offset`` is the byte offset of ``data[0]`` from the start of the observation
    (the data stream's OBS_OFFSET); ``weights_obs_offset`` is the same for the weights stream.
    """

    data: np.ndarray
    weights: np.ndarray
    obs_offset: int
    weights_obs_offset: int
    data_header: DadaHeader
    weights_header: DadaHeader


class SegmentProducer(Protocol):
    """Anything that yields segments: a ring-pair reader/viewer or a .dada file pair."""

    data_header: DadaHeader
    weights_header: DadaHeader

    def segments(self) -> Iterator[Segment]:
        """Yield segments in time order until the end of the stream."""
        ...
