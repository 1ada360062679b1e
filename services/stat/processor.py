"""StatProcessor: the one statistics driver of svc-stat and stat-file-processor (SKA PST's).

A processor belongs to one transfer (a scan in the rings, or a recording): its headers are
parsed once into :class:`~services.stat.compute.StatInputs` and its STAT_* keys resolved once
with :func:`~services.stat.config.stat_config`. Each segment it is given is computed and handed
to every :class:`~services.stat.publish.StatPublisher`, in order::

    SegmentProducer --Segment--> StatProcessor --StatResult--> [Hdf5StatPublisher,
                                                                ScalarStatPublisher]

svc-stat calls :meth:`StatProcessor.process` with each sampled segment of a ring pair;
stat-file-processor calls :meth:`StatProcessor.process_stream` with a file producer, whose
pieces are accumulated into segments of a chosen number of heaps (constant memory).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ringbuf import DadaHeader, Segment, SegmentProducer
from services.common.config import ConfigSource
from services.stat.compute import StatComputer, StatInputs, StatResult, compute_segment
from services.stat.config import StatConfig, stat_config
from services.stat.publish import StatPublisher


class StatProcessor:
    """Computes the statistics of the segments of one transfer and publishes each result."""

    def __init__(self, inputs: StatInputs, config: StatConfig,
                 publishers: Sequence[StatPublisher] = ()) -> None:
        self.inputs = inputs
        self.config = config
        self.publishers = list(publishers)

    @classmethod
    def for_transfer(cls, data_header: DadaHeader, weights_header: DadaHeader,
                     source: ConfigSource | None = None,
                     publishers: Sequence[StatPublisher] = ()) -> StatProcessor:
        """Parse a transfer's headers; STAT_* from ``data_header`` under ``source``'s layers.

        Raises HeaderError (ConfigError for a STAT_* key) naming the source and the key.
        """
        inputs = StatInputs.from_headers(data_header, weights_header)
        return cls(inputs, stat_config(data_header, source), publishers)

    def publish(self, result: StatResult) -> None:
        for publisher in self.publishers:
            publisher.publish(result)

    def process(self, segment: Segment) -> StatResult:
        """Compute and publish the statistics of ``segment`` (all its whole heaps).

        SegmentError if data and weights hold different numbers of whole heaps or none;
        OSError from a publisher.
        """
        result = compute_segment(segment, self.config, self.inputs)
        self.publish(result)
        return result

    def process_stream(self, producer: SegmentProducer, nheaps: int,
                       segment_heaps: int | None = None,
                       progress: Callable[[int], None] | None = None) -> int:
        """Publish the statistics of every ``segment_heaps`` heaps of ``producer``.

        ``nheaps`` is the number of whole heaps the producer yields (it fixes the time bins of
        the last result); None gives one result for all of them.  A result may span several
        producer segments.  ``progress(n)`` is called after every n heaps.  Returns the number
        of results published.
        """
        stride = self.inputs.layout.data_heap_stride
        wstride = self.inputs.layout.weights_heap_stride
        per_result = nheaps if segment_heaps is None else segment_heaps
        computer: StatComputer | None = None
        start_offset = published = done = 0
        for piece in producer.segments():
            nheap = len(piece.data) // stride
            used = 0
            while used < nheap:
                if computer is None:
                    computer = StatComputer(self.inputs, min(per_result, nheaps - done),
                                            self.config)
                    start_offset = piece.obs_offset + used * stride
                n = min(nheap - used, computer.nheap - computer.heaps_done)
                computer.add(piece.data[used * stride:(used + n) * stride],
                             piece.weights[used * wstride:(used + n) * wstride])
                used += n
                done += n
                if progress:
                    progress(n)
                if computer.heaps_done == computer.nheap:
                    self.publish(computer.result(start_offset))
                    published += 1
                    computer = None
        return published
