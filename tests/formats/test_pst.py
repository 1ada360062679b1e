"""PstLayout: SKA PST HeapLayout arithmetic and header validation."""

from __future__ import annotations

import pytest

from ringbuf.errors import HeaderError
from services.formats.pst import PstLayout
from services.stat.generate import pst_headers


def test_low_and_mid_strides_match_the_reference() -> None:
    low = PstLayout.from_headers(*pst_headers("low"))
    assert (low.packets_per_heap, low.weights_packet_stride) == (864, 52)
    assert (low.data_heap_stride, low.weights_heap_stride) == (5308416, 44928)
    mid = PstLayout.from_headers(*pst_headers("mid"))
    assert (mid.packets_per_heap, mid.weights_packet_stride) == (3, 374)
    assert (mid.data_heap_stride, mid.weights_heap_stride) == (8880, 1122)
    _, weights = mid.header_keys()
    assert weights == {"RESOLUTION": 1122, "PACKET_WEIGHTS_SIZE": 370, "PACKET_SCALES_SIZE": 4,
                       "BLOCK_HEADER_BYTES": 12, "BLOCK_DATA_BYTES": 1110}


@pytest.mark.parametrize("which,key,value,message", [
    ("data", "NBIT", 12, "NBIT 12 is not supported"),
    ("data", "NPOL", 1, "NPOL 1"),
    ("weights", "NDIM", 2, "NDIM 2"),
    ("weights", "UDP_NSAMP", "32.0", "UDP_NSAMP '32' does not match UDP_NSAMP '32.0'"),
    ("data", "RESOLUTION", 3, "RESOLUTION 3 does not match"),
    ("weights", "RESOLUTION", 44927, "RESOLUTION 44927 does not match"),
    ("weights", "PACKET_WEIGHTS_SIZE", 47, "PACKET_WEIGHTS_SIZE 47"),
])
def test_bad_headers_name_the_file_and_key(which, key, value, message) -> None:
    data, weights = pst_headers("low")
    data.source, weights.source = "d.dada", "w.dada"
    (data if which == "data" else weights).set(key, value)
    with pytest.raises(HeaderError, match=message) as info:
        PstLayout.from_headers(data, weights)
    assert f"{which[0]}.dada" in str(info.value)


def test_missing_key_and_indivisible_channels() -> None:
    data, weights = pst_headers("low", NCHAN=48)
    data.source = "d.dada"
    data.delete("UDP_NCHAN")
    with pytest.raises(HeaderError, match="d.dada: missing required key UDP_NCHAN"):
        PstLayout.from_headers(data, weights)
    data, weights = pst_headers("low", NCHAN=50)
    with pytest.raises(HeaderError, match="NCHAN 50 is not a multiple of UDP_NCHAN 24"):
        PstLayout.from_headers(data, weights)


def test_from_shape_is_the_layout_of_the_headers() -> None:
    data, weights = pst_headers("low")
    from_headers = PstLayout.from_headers(data, weights)
    shape = PstLayout.from_shape(data.get_int("NCHAN"), data.get_int("UDP_NCHAN"),
                                 data.get_int("UDP_NSAMP"), data.get_int("WT_NSAMP"),
                                 data.get_int("NBIT"))
    assert shape == from_headers
    # one packet on the wire: 48 weights of 16 bits, then 24 channels x 32 samples x 2 pol x IQ
    assert shape.spead_payload_bytes == 24 * 2 + 32 * 24 * 2 * 2 * 2 == 6192
    assert shape.weights_packet_stride == 4 + 48


def test_beam_spead_items_live_with_the_layout() -> None:
    from services.formats import cbf_sdp, pst

    assert pst.BEAM_KNOWN_ITEMS == (0x7000, 0x7001, 0x7002, 0x7003, 0x7004, 0x7010, 0x7011, 0x7012)
    assert not hasattr(cbf_sdp, "BeamLayout") and not hasattr(cbf_sdp, "BEAM_SCALE")
