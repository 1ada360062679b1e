"""services/formats/spead_send.py: the send pieces the senders and svc-spead-send share."""

from __future__ import annotations

import numpy as np
import spead2.send
import spead2.send.asyncio

from services.formats import cbf_sdp, pst, spead_send


def test_scale_immediate_carries_the_float32_bytes_exactly():
    scales = np.array([1.5, np.nan, -0.0], "<f4")
    scales.view("<u4")[1] = 0x7FC01234  # a NaN with a payload
    imm = np.zeros(3, ">u8")
    imm[:] = spead_send.PstBeamItems.scale_immediates(scales.view(np.uint8).reshape(3, 4))
    for value, scale in zip(imm, scales, strict=True):
        # the 48-bit immediate is the low 6 bytes, big-endian: its last 4 are the float32's
        assert int(value).to_bytes(8, "big")[-4:] == scale.tobytes()


def test_beam_data_heap_items_in_icd_order():
    items = spead_send.PstBeamItems(4, (2, 3, 4, 2), np.int8)
    assert [it.id for it in (items.sample_count, items.first_channel, items.scale_raw,
                             items.weights, items.data)] == list(pst.BEAM_DATA_ITEMS)
    imm = np.zeros(3, ">u8")
    heap = items.data_heap(imm, np.zeros(4, "<u2"), np.zeros((2, 3, 4, 2), np.int8))
    assert heap.repeat_pointers
    assert not items.weights.allow_immediate() and not items.data.allow_immediate()


def test_vis_items_take_icd_names_and_optional_descriptions():
    items = spead_send.vis_addressed_items(4, 6, {cbf_sdp.FREQ0_HZ: "mine"})
    assert {i: it.name for i, it in items.items()} == {
        i: cbf_sdp.ITEM_NAMES[i] for i in items}
    assert items[cbf_sdp.FREQ0_HZ].description == "mine"
    assert items[cbf_sdp.CORRELATOR_OUTPUT_DATA].shape == (4, 6)
    assert spead_send.vis_immediate(cbf_sdp.NANT).format == spead_send.IMMEDIATE


def test_udp_stream_of_either_kind():
    for kind in (spead2.send.UdpStream, spead2.send.asyncio.UdpStream):
        stream = spead_send.udp_stream(kind, [("127.0.0.1", 9), ("127.0.0.1", 10)], 1472,
                                       0.0, 4, 1 << 16)
        assert isinstance(stream, kind)
        assert stream.num_substreams == 2
