"""A consumer class for emu-recv's ``reception.consumer = tests.senders.stats_consumer.Stats``.

It reads the ring pair through the ringbuf API and writes what it saw as JSON to
``outputfilename``, so the test can check the values.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ringbuf import DadaHeader, Segment


class Stats:
    """Counts dumps and sums the visibilities and FD of one transfer."""

    def __init__(self, config: dict[str, str]) -> None:
        self.path = config["outputfilename"]
        self.out: dict[str, Any] = {"dumps": 0, "vis_sum": 0.0, "fd_sum": 0}

    def start(self, data_header: DadaHeader, weights_header: DadaHeader) -> None:
        self.resolution = int(data_header["RESOLUTION"])
        self.out["scan_id"] = int(data_header["SCAN_ID"])
        self.out["nchan"] = int(data_header["NCHAN"])

    def consume(self, segment: Segment) -> None:
        self.out["dumps"] += len(segment.data) // self.resolution
        vis = np.frombuffer(segment.data, np.complex64)
        self.out["vis_sum"] += float(np.abs(vis).sum())
        self.out["fd_sum"] += int(np.frombuffer(segment.weights, np.uint8)[1::2].sum())

    def end(self) -> None:
        with open(self.path, "w") as f:
            json.dump(self.out, f)


class Broken(Stats):
    """Fails on its first block, as a buggy consumer would."""

    def consume(self, segment: Segment) -> None:
        raise ValueError("broken consumer")
