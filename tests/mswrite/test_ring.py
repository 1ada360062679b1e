"""A real ring pair in shared memory feeding the writer, block by block, as svc-mswrite will."""

from __future__ import annotations

import threading

import numpy as np
from casacore import tables

from ringbuf import RingLayout, RingPairReader, RingPairWriter, create_ring_pair, destroy_ring_pair
from services.mswrite.stream import NPOL
from services.mswrite.writer import VisWriter

NBLOCKS = 5


def test_ring_pair_blocks_into_ms(tmp_path, key_factory, stream, antennas, make_dumps):
    per_block = stream.dumps_per_block
    vis, weights = make_dumps(stream, NBLOCKS * per_block, seed=9, lost_fraction=0.1)
    data_key, weights_key = key_factory(), key_factory()
    create_ring_pair(data_key, weights_key,
                     RingLayout(nbufs=3, bufsz=per_block * stream.data_dump_bytes),
                     RingLayout(nbufs=3, bufsz=per_block * stream.weights_dump_bytes))
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            data_header, weights_header = stream.headers()
            with RingPairWriter(data_key, weights_key, timeout=10) as writer:
                with writer.open_transfer(data_header, weights_header) as transfer:
                    for i in range(NBLOCKS):
                        part = slice(i * per_block, (i + 1) * per_block)
                        with transfer.open_segment(timeout=10) as seg:
                            seg.data[:] = vis[part].view(np.uint8).reshape(-1)
                            seg.weights[:] = weights[part].view(np.uint8).reshape(-1)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    out = tmp_path / "ring.ms"
    try:
        with RingPairReader(data_key, weights_key, timeout=10) as reader:
            producer = threading.Thread(target=produce)
            producer.start()
            transfer = reader.open_transfer(timeout=10)
            with VisWriter.open(out, transfer.data_header, transfer.weights_header,
                                antennas=antennas) as writer:
                for seg in transfer:
                    writer.write_block(seg.data, seg.weights,
                                       writer.stream.first_dump(seg.obs_offset))
            producer.join(timeout=10)
    finally:
        destroy_ring_pair(data_key, weights_key)
    assert not errors, errors
    with tables.table(str(out), ack=False) as t:
        data, flag = t.getcol("DATA"), t.getcol("FLAG")
    lost = (weights["FD"] == 0).transpose(0, 2, 1).reshape(-1, stream.nchan)
    want = np.where(lost[..., None], 0, vis.transpose(0, 2, 1, 3).reshape(-1, stream.nchan, NPOL))
    np.testing.assert_array_equal(data, want)
    np.testing.assert_array_equal(flag[..., 0], lost)
